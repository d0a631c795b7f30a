/**
 * gateway token create | list | revoke: the HTTP gateway's bearer tokens, through the bridge's
 * socket (whoever can reach the socket may mint them). The token text is printed once, by
 * `create`; the bridge keeps only its SHA-256.
 */
import { BRIDGE_OPTIONS_HELP, ExitCode, UsageError } from '../args';
import { bridgeArgs, printJson, type CliContext, type Command } from '../command';
import { formatTime, renderTable } from '../format';

export const GATEWAY_USAGE = `usage:
  armorclaw gateway token create NAME [--json] [--socket PATH]
      Makes a gateway token (acgw_…) and prints it once: store it now, it cannot be shown again.
      Clients send it as "Authorization: Bearer <token>" (JSON-RPC \`gateway.token_create\`).
  armorclaw gateway token list [--json] [--socket PATH]
      Id, name, creation and revocation time of every token; never the token.
  armorclaw gateway token revoke ID [--json] [--socket PATH]
      Revokes the token: its next request is refused with AUTH_INVALID, also after a restart.

${BRIDGE_OPTIONS_HELP}`;

interface TokenRecord {
  id: string;
  name: string;
  created_at: string;
  revoked_at: string | null;
}

export const gatewayCommand: Command = {
  name: 'gateway',
  summary: 'gateway token create NAME | list | revoke ID',
  usage: GATEWAY_USAGE,
  async run(args, ctx) {
    const [group, sub, ...rest] = args;
    if (group === '--help' || group === '-h') {
      ctx.write(GATEWAY_USAGE + '\n');
      return ExitCode.Ok;
    }
    if (group !== 'token') {
      throw new UsageError(
        group === undefined
          ? 'gateway needs a subcommand: token'
          : `unknown gateway subcommand "${group}"`,
        GATEWAY_USAGE,
      );
    }
    switch (sub) {
      case 'create':
        return create(rest, ctx);
      case 'list':
        return list(rest, ctx);
      case 'revoke':
        return revoke(rest, ctx);
      case '--help':
      case '-h':
        ctx.write(GATEWAY_USAGE + '\n');
        return ExitCode.Ok;
      case undefined:
        throw new UsageError('gateway token needs create, list or revoke', GATEWAY_USAGE);
      default:
        throw new UsageError(`unknown gateway token subcommand "${sub}"`, GATEWAY_USAGE);
    }
  },
};

async function create(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, GATEWAY_USAGE, {}, { min: 1, max: 1, names: 'NAME' });
  if (!cli) return ExitCode.Ok;
  const r = (await cli.call('gateway.token_create', {
    name: cli.positionals[0]!,
  })) as TokenRecord & {
    token: string;
  };
  if (cli.json) printJson(ctx, r);
  else {
    ctx.write(`${r.token}\n`);
    ctx.warn(`gateway token ${r.id} (${r.name}) created; it is shown only this once.\n`);
  }
  return ExitCode.Ok;
}

async function list(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, GATEWAY_USAGE, {}, { max: 0 });
  if (!cli) return ExitCode.Ok;
  const r = (await cli.call('gateway.token_list', {})) as { tokens: TokenRecord[] };
  if (cli.json) printJson(ctx, r);
  else if (r.tokens.length === 0) ctx.write('no gateway tokens\n');
  else {
    ctx.write(
      renderTable(
        ['ID', 'NAME', 'CREATED', 'REVOKED'],
        r.tokens.map((t) => [t.id, t.name, formatTime(t.created_at), formatTime(t.revoked_at)]),
      ),
    );
  }
  return ExitCode.Ok;
}

async function revoke(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, GATEWAY_USAGE, {}, { min: 1, max: 1, names: 'ID' });
  if (!cli) return ExitCode.Ok;
  const r = (await cli.call('gateway.token_revoke', { id: cli.positionals[0]! })) as {
    token: TokenRecord;
  };
  if (cli.json) printJson(ctx, r);
  else ctx.write(`revoked gateway token ${r.token.id} (${r.token.name})\n`);
  return ExitCode.Ok;
}
