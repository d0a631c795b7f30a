/** What every `armorclaw` command is, and the setup shared by those that talk to the bridge. */
import {
  BRIDGE_OPTIONS,
  ExitCode,
  parse,
  positiveNumber,
  resolveSocketPath,
  type OptionSpec,
} from './args';
import { callBridge, type Call } from './rpc-client';

export interface CliContext {
  /** Standard output (results). */
  write(text: string): void;
  /** Standard error (messages, prompts). */
  warn(text: string): void;
  env: NodeJS.ProcessEnv;
  now(): number;
  /** Makes the function that calls the bridge; tests put a fake bridge here. */
  bridge(socketPath: string, timeoutMs: number): Call;
  /** Set once a command has parsed --json: errors are then also printed as JSON on stdout. */
  json?: boolean;
}

export interface Command {
  name: string;
  /** One line for the top-level help. */
  summary: string;
  /** The command's own --help text. */
  usage: string;
  run(args: string[], ctx: CliContext): Promise<number>;
}

export const defaultContext = (): CliContext => ({
  write: (text) => void process.stdout.write(text),
  warn: (text) => void process.stderr.write(text),
  env: process.env,
  now: () => Date.now(),
  bridge: (socketPath, timeoutMs) => (method, params) =>
    callBridge(socketPath, method, params, { timeoutMs }),
});

/**
 * Parses a bridge command's arguments (its own options plus the common ones). Returns null
 * after printing the usage when --help was asked for.
 */
export function bridgeArgs<T extends OptionSpec>(
  args: string[],
  ctx: CliContext,
  usage: string,
  options: T,
  positionals: { min?: number; max?: number; names?: string } = {},
) {
  const parsed = parse(args, { ...BRIDGE_OPTIONS, ...options }, usage, positionals);
  const values = parsed.values as {
    json?: boolean;
    socket?: string;
    timeout?: string;
    help?: boolean;
  };
  if (values.help) {
    ctx.write(usage + '\n');
    return null;
  }
  ctx.json = values.json === true;
  const timeoutS = positiveNumber(values.timeout, '--timeout', usage, 24 * 3600) ?? 120;
  const socketPath = resolveSocketPath(values.socket, ctx.env);
  return {
    values: parsed.values,
    positionals: parsed.positionals,
    json: ctx.json,
    call: ctx.bridge(socketPath, timeoutS * 1000),
  };
}

/** Pretty JSON for --json output. */
export const printJson = (ctx: CliContext, value: unknown): void =>
  ctx.write(JSON.stringify(value, null, 2) + '\n');

/** A bridge command's parsed arguments and its way to call the bridge. */
export type BridgeArgs = NonNullable<ReturnType<typeof bridgeArgs>>;

/**
 * A command that talks to the bridge: the common options and --help are handled here, `run`
 * gets the parsed arguments.
 */
export function bridgeCommand<T extends OptionSpec>(spec: {
  name: string;
  summary: string;
  usage: string;
  options?: T;
  positionals?: { min?: number; max?: number; names?: string };
  run(cli: BridgeArgs, ctx: CliContext): Promise<number>;
}): Command {
  return {
    name: spec.name,
    summary: spec.summary,
    usage: spec.usage,
    async run(args, ctx) {
      const cli = bridgeArgs(args, ctx, spec.usage, spec.options ?? {}, spec.positionals);
      return cli ? spec.run(cli, ctx) : ExitCode.Ok;
    },
  };
}

/** Prints a result: as JSON with --json, else as the text `human` makes of it. */
export function reply<T>(
  ctx: CliContext,
  cli: BridgeArgs,
  value: T,
  human: (v: T) => string,
): void {
  if (cli.json) printJson(ctx, value);
  else ctx.write(human(value));
}
