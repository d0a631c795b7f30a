/**
 * The `armorclaw` command: talks to the running bridge over its JSON-RPC socket (status, start,
 * list, ...) and manages the keystore on this host (add-key, list-keys). Secrets (tokens,
 * passwords) come from stdin or a hidden prompt, never from argv.
 */
import { ConfigError } from '../config/load';
import { EXIT_CODES_HELP, ExitCode, UsageError, splitCommand } from './args';
import { defaultContext, type CliContext, type Command } from './command';
import { auditCommand } from './commands/audit';
import {
  healthCommand,
  listCommand,
  startCommand,
  statusCommand,
  stopCommand,
} from './commands/bridge';
import { configsCommand } from './commands/configs';
import { devicesCommand } from './commands/devices';
import { gatewayCommand } from './commands/gateway';
import { hostsCommand } from './commands/hosts';
import { incidentCommand } from './commands/incident';
import { TOKEN_IN_ARGV, addKeyCommand, listKeysCommand } from './commands/keys';
import { PASSWORD_IN_ARGV, hasPasswordOption, matrixCommand } from './commands/matrix';
import { pairCommand } from './commands/pair';
import { relayCommand } from './commands/relay';
import { rpcCommand } from './commands/rpc';
import { showCommand } from './commands/show';
import { BridgeUnreachableError, RpcCallError } from './rpc-client';

export const COMMANDS: readonly Command[] = [
  statusCommand,
  healthCommand,
  startCommand,
  stopCommand,
  listCommand,
  showCommand,
  configsCommand,
  auditCommand,
  matrixCommand,
  gatewayCommand,
  incidentCommand,
  pairCommand,
  devicesCommand,
  relayCommand,
  hostsCommand,
  rpcCommand,
  addKeyCommand,
  listKeysCommand,
];

export const USAGE = `usage: armorclaw COMMAND [options]    (armorclaw COMMAND --help for its options)

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(10)}  ${c.summary}`).join('\n')}

Every command takes --json (the raw result, for scripts) and -h/--help; those that talk to the
bridge take --socket PATH (default $ARMORCLAW_SOCKET, else the bridge's socket.path setting)
and --timeout SEC.

${EXIT_CODES_HELP}`;

/** Runs one command line; resolves to the exit code. Never throws. */
export async function runCli(argv: string[], ctx: CliContext = defaultContext()): Promise<number> {
  // Checked before parsing so that no parse error message can echo the secret back.
  if (argv.some((a) => a === '--token' || a.startsWith('--token='))) {
    ctx.warn(TOKEN_IN_ARGV + '\n');
    return ExitCode.Usage;
  }
  if (hasPasswordOption(argv)) {
    ctx.warn(PASSWORD_IN_ARGV + '\n');
    return ExitCode.Usage;
  }
  const { command, rest } = splitCommand(argv);
  try {
    if (command === 'help' || command === '--help' || command === '-h') {
      const topic = COMMANDS.find((c) => c.name === rest[0]);
      ctx.write((topic?.usage ?? USAGE) + '\n');
      return ExitCode.Ok;
    }
    if (command === undefined) throw new UsageError('missing command');
    const cmd = COMMANDS.find((c) => c.name === command);
    if (!cmd) throw new UsageError(`unknown command "${command}"`);
    return await cmd.run(rest, ctx);
  } catch (err) {
    return report(err, ctx);
  }
}

/** Prints a failure the way its exit code says. */
function report(err: unknown, ctx: CliContext): number {
  if (err instanceof UsageError) {
    ctx.warn(`armorclaw: ${err.message}\n${err.usage ?? USAGE}\n`);
    return ExitCode.Usage;
  }
  if (err instanceof ConfigError) {
    ctx.warn(`armorclaw: ${err.message}\n`);
    return ExitCode.Usage;
  }
  if (err instanceof BridgeUnreachableError) {
    ctx.warn(`armorclaw: ${err.message}\n`);
    return ExitCode.Unreachable;
  }
  if (err instanceof RpcCallError) {
    if (ctx.json) {
      const error = {
        code: err.code,
        message: err.message,
        ...(err.data !== undefined && { data: err.data }),
      };
      ctx.write(JSON.stringify({ error }, null, 2) + '\n');
    }
    ctx.warn(`armorclaw: the bridge answered: ${err.message} (JSON-RPC code ${err.code})\n`);
    return ExitCode.Error;
  }
  // The CLI's user is the host's operator: the message is enough, a stack is noise.
  const message = err instanceof Error ? err.message : String(err);
  ctx.warn(`armorclaw: ${message}\n`);
  return ExitCode.Error;
}
