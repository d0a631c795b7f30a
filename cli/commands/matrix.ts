/** matrix login: logs the bridge in to its Matrix homeserver. */
import { BRIDGE_OPTIONS_HELP, ExitCode, UsageError } from '../args';
import { bridgeArgs, printJson, type CliContext, type Command } from '../command';
import { readSecret } from '../input';

// A Matrix password has no fixed limit; this only bounds what stdin may feed in.
const MAX_PASSWORD_BYTES = 4096;

export const MATRIX_USAGE = `usage:
  armorclaw matrix login --username USER [--json] [--socket PATH]
      Logs the bridge in (JSON-RPC \`matrix.login\`) and starts its Matrix sync. The password
      is read from stdin, or prompted for (hidden) on a terminal; never give it as an argument:
        armorclaw matrix login --username armorclaw-bot < password-file
      USER is a localpart or a full @user:server id. The homeserver is the bridge's
      matrix.homeserver setting (ARMORCLAW_MATRIX_HOMESERVER); it cannot be chosen per login.

${BRIDGE_OPTIONS_HELP}`;

export const PASSWORD_IN_ARGV = `armorclaw: refusing --password: a password on the command line is visible to every user \
of this host (ps, /proc/<pid>/cmdline) and lands in shell history.
Pipe it on stdin instead, e.g.
  armorclaw matrix login --username armorclaw-bot < password-file
or run matrix login on a terminal without piping anything to be prompted for it (input hidden).`;

const HOMESERVER_FLAG = `--homeserver is not a login option: the bridge logs in to its own matrix.homeserver \
setting (ARMORCLAW_MATRIX_HOMESERVER or matrix.homeserver in the config file); set it there and \
restart the bridge`;

/** Whether argv carries a password option (checked before any parsing can echo it). */
export const hasPasswordOption = (argv: string[]): boolean =>
  argv.some((a) => a === '--password' || a.startsWith('--password=') || a === '-p');

export const matrixCommand: Command = {
  name: 'matrix',
  summary: 'matrix login --username USER (password on stdin or a hidden prompt)',
  usage: MATRIX_USAGE,
  async run(args, ctx) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'login':
        return login(rest, ctx);
      case '--help':
      case '-h':
        ctx.write(MATRIX_USAGE + '\n');
        return ExitCode.Ok;
      case undefined:
        throw new UsageError('matrix needs a subcommand: login', MATRIX_USAGE);
      default:
        throw new UsageError(`unknown matrix subcommand "${sub}"`, MATRIX_USAGE);
    }
  },
};

async function login(args: string[], ctx: CliContext): Promise<number> {
  if (args.some((a) => a === '--homeserver' || a.startsWith('--homeserver='))) {
    throw new UsageError(HOMESERVER_FLAG, MATRIX_USAGE);
  }
  // No positionals: a stray argument could be the password typed in the wrong place.
  const cli = bridgeArgs(args, ctx, MATRIX_USAGE, { username: { type: 'string' } });
  if (!cli) return ExitCode.Ok;
  const username = cli.values.username as string | undefined;
  if (!username) throw new UsageError('matrix login needs --username', MATRIX_USAGE);
  const password = await readSecret(
    'Matrix password (input hidden): ',
    'password',
    MAX_PASSWORD_BYTES,
  );
  if (password === '') {
    throw new Error(
      'no password given; pipe it on stdin, e.g. armorclaw matrix login --username U < password-file',
    );
  }
  const r = (await cli.call('matrix.login', { username, password })) as {
    status: string;
    user_id: string;
  };
  if (cli.json) printJson(ctx, r);
  else ctx.write(`logged in as ${r.user_id}\n`);
  return ExitCode.Ok;
}
