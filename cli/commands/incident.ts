/**
 * incident status | lift: incident containment as the operator on this host sees and ends it,
 * through the bridge's socket. Bundling an incident is the gateway's `incident.bundle` (it
 * revokes the gateway tokens given to it); lifting it here is the same durable change.
 */
import { BRIDGE_OPTIONS_HELP, ExitCode, UsageError } from '../args';
import { bridgeArgs, printJson, type CliContext, type Command } from '../command';
import { formatTime } from '../format';

export const INCIDENT_USAGE = `usage:
  armorclaw incident status [--json] [--socket PATH]
      Whether incident containment is in force (proactive sends refused, tools isolated), since
      when and by whom, the revoked gateway tokens' hashes and the policy log.
  armorclaw incident lift [--json] [--socket PATH]
      Ends containment: proactive sends and capability grants are allowed again. Revoked gateway
      tokens stay revoked.

${BRIDGE_OPTIONS_HELP}`;

interface IncidentView {
  active: boolean;
  since: string | null;
  bundled_by: string | null;
  lifted_at: string | null;
  lifted_by: string | null;
  revoked_token_hashes: string[];
  policy_logs: Array<{ at: string; kind: string; detail?: Record<string, unknown> }>;
}

export const incidentCommand: Command = {
  name: 'incident',
  summary: 'incident status | lift',
  usage: INCIDENT_USAGE,
  async run(args, ctx) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'status':
        return show(rest, ctx, 'incident.status');
      case 'lift':
        return show(rest, ctx, 'incident.lift');
      case '--help':
      case '-h':
        ctx.write(INCIDENT_USAGE + '\n');
        return ExitCode.Ok;
      case undefined:
        throw new UsageError('incident needs status or lift', INCIDENT_USAGE);
      default:
        throw new UsageError(`unknown incident subcommand "${sub}"`, INCIDENT_USAGE);
    }
  },
};

async function show(args: string[], ctx: CliContext, method: string): Promise<number> {
  const cli = bridgeArgs(args, ctx, INCIDENT_USAGE, {}, { max: 0 });
  if (!cli) return ExitCode.Ok;
  const s = (await cli.call(method, {})) as IncidentView;
  if (cli.json) {
    printJson(ctx, s);
    return ExitCode.Ok;
  }
  if (s.active) {
    ctx.write(`incident containment IN FORCE since ${formatTime(s.since)} (by ${s.bundled_by})\n`);
    ctx.write('proactive sends refused; capability grants refused (tools isolated)\n');
  } else if (s.lifted_at) {
    ctx.write(`no incident in force (last lifted ${formatTime(s.lifted_at)} by ${s.lifted_by})\n`);
  } else {
    ctx.write('no incident in force\n');
  }
  for (const h of s.revoked_token_hashes) ctx.write(`revoked token sha256 ${h}\n`);
  for (const l of s.policy_logs.slice(-20)) {
    ctx.write(`${formatTime(l.at)}  ${l.kind}${l.detail ? `  ${JSON.stringify(l.detail)}` : ''}\n`);
  }
  return ExitCode.Ok;
}
