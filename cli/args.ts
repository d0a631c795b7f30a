/**
 * Command-line plumbing shared by every `armorclaw` command: exit codes, usage errors, option
 * parsing with the common options (--json, --socket, --timeout, --help), and the socket path.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load';

/** What the process exits with; documented in `armorclaw --help` and docs/cli.md. */
export const ExitCode = {
  Ok: 0,
  /** The bridge answered with a JSON-RPC error, or a local step failed. */
  Error: 1,
  Usage: 2,
  /** No bridge on the socket (missing, refused, not permitted) or it went away mid-request. */
  Unreachable: 3,
  /** `audit verify` found the hash chain broken. */
  AuditBroken: 4,
  /** `health` answered `unhealthy`. */
  Unhealthy: 5,
} as const;

export const EXIT_CODES_HELP = `exit codes:
  0  ok
  1  the bridge answered with an error (its message and JSON-RPC code are printed), or a local
     step failed
  2  usage: unknown command, bad or missing arguments, a secret on the command line, a bad
     configuration file
  3  cannot reach the bridge: no socket, connection refused or not permitted, or the bridge
     dropped the connection before answering
  4  audit verify: the audit log's hash chain is broken
  5  health: the bridge answered but is unhealthy`;

/** A problem with the command line itself: exit 2 with the command's usage text. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The usage text to print after the message (defaults to the top-level one). */
    readonly usage?: string,
  ) {
    super(message);
  }
}

export type OptionSpec = Record<
  string,
  { type: 'string' | 'boolean'; multiple?: boolean; short?: string }
>;

/** Options every command that talks to the bridge accepts. */
export const BRIDGE_OPTIONS = {
  json: { type: 'boolean' },
  socket: { type: 'string' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export const BRIDGE_OPTIONS_HELP = `common options:
  --json            print the bridge's raw result as JSON (for scripts)
  --socket PATH     the bridge's socket (default: $ARMORCLAW_SOCKET, else the bridge's
                    socket.path setting: /run/armorclaw/bridge.sock as root)
  --timeout SEC     give up waiting for the answer after SEC seconds (default 120)
  -h, --help        this help`;

/**
 * Parses `args` against `options`; unknown options are usage errors. With `maxPositionals`
 * undefined, positionals are refused without being quoted back (a stray one could be a secret
 * typed in the wrong place).
 */
export function parse<T extends OptionSpec>(
  args: string[],
  options: T,
  usage: string,
  positionals: { min?: number; max?: number; names?: string } = {},
) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message, usage);
  }
  const { min = 0, max = 0 } = positionals;
  const n = parsed.positionals.length;
  const wantsHelp = (parsed.values as { help?: boolean }).help === true;
  if (!wantsHelp && n > max) {
    throw new UsageError(
      max === 0 ? 'unexpected argument(s)' : `too many arguments (at most ${max})`,
      usage,
    );
  }
  if (!wantsHelp && n < min) throw new UsageError(`missing ${positionals.names}`, usage);
  return parsed;
}

/** A whole number of seconds from an option, or undefined when absent. */
export function positiveNumber(
  value: string | undefined,
  option: string,
  usage: string,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new UsageError(`${option} must be a whole number from 1 to ${max}`, usage);
  }
  return Number(value);
}

/**
 * The socket the bridge listens on: --socket, else ARMORCLAW_SOCKET, else what the bridge
 * itself would choose from its configuration (same file, same defaults).
 */
export function resolveSocketPath(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (flag !== undefined) {
    if (flag === '') throw new UsageError('--socket needs a path');
    return flag;
  }
  if (env.ARMORCLAW_SOCKET) return env.ARMORCLAW_SOCKET;
  return loadConfig({ env }).socket.path;
}

/**
 * Moves common options written before the command (`armorclaw --socket S status`) after it, so
 * each command parses them with its own options.
 */
export function splitCommand(argv: string[]): { command: string | undefined; rest: string[] } {
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    if (a === '--json' || a.startsWith('--socket=') || a.startsWith('--timeout=')) {
      leading.push(a);
      i++;
    } else if ((a === '--socket' || a === '--timeout') && i + 1 < argv.length) {
      leading.push(a, argv[i + 1]!);
      i += 2;
    } else break;
  }
  const command = argv[i];
  return { command, rest: [...argv.slice(i + 1), ...leading] };
}
