/**
 * hosts [list] | reap HOST: the bridge hosts sharing the Temporal namespace (`hosts.list`), and
 * giving up one that will not come back (`hosts.reap`). Asked of any bridge: each answers for
 * all of them through Temporal.
 */
import { BRIDGE_OPTIONS_HELP, ExitCode, UsageError } from '../args';
import { bridgeArgs, printJson, type CliContext, type Command } from '../command';
import { cell, formatTime, renderTable } from '../format';

export const HOSTS_USAGE = `usage:
  armorclaw hosts [list] [--json] [--socket PATH]
      Every host with an open session, and this bridge's own: whether its bridge is alive (it
      polled its task queue within the last 75 s), when it was last seen, its open runs, the
      runs that ended and wait for it to tear their containers down, and its open calls.
  armorclaw hosts reap HOST [--force] [--json] [--socket PATH]
      Gives HOST up: its open runs end as lost and stop waiting for it (their containers stay
      on that machine; its bridge removes them if it ever starts again). Refused while HOST's
      bridge still polls, unless --force (the machine is known to be gone).

${BRIDGE_OPTIONS_HELP}`;

interface Host {
  host_id: string;
  alive: boolean;
  last_seen: string | null;
  runs: number;
  awaiting_cleanup: number;
  calls: number;
}

export const hostsCommand: Command = {
  name: 'hosts',
  summary: 'hosts [list] | reap HOST [--force]',
  usage: HOSTS_USAGE,
  async run(args, ctx) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'list':
        return list(rest, ctx);
      case 'reap':
        return reap(rest, ctx);
      case '--help':
      case '-h':
        ctx.write(HOSTS_USAGE + '\n');
        return ExitCode.Ok;
      default:
        if (sub === undefined || sub.startsWith('-')) return list(args, ctx);
        throw new UsageError(`unknown hosts subcommand "${sub}"`, HOSTS_USAGE);
    }
  },
};

async function list(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(args, ctx, HOSTS_USAGE, {}, { max: 0 });
  if (!cli) return ExitCode.Ok;
  const r = (await cli.call('hosts.list', {})) as { hosts: Host[]; this_host: string };
  if (cli.json) printJson(ctx, r);
  else {
    ctx.write(
      renderTable(
        ['HOST', 'STATE', 'LAST SEEN', 'RUNS', 'AWAITING CLEANUP', 'CALLS'],
        r.hosts.map((h) => [
          h.host_id === r.this_host ? `${h.host_id} (this)` : h.host_id,
          h.alive ? 'alive' : 'gone',
          h.last_seen === null ? '-' : formatTime(h.last_seen),
          String(h.runs),
          String(h.awaiting_cleanup),
          String(h.calls),
        ]),
      ),
    );
  }
  return ExitCode.Ok;
}

async function reap(args: string[], ctx: CliContext): Promise<number> {
  const cli = bridgeArgs(
    args,
    ctx,
    HOSTS_USAGE,
    { force: { type: 'boolean' } },
    { min: 1, max: 1, names: 'HOST' },
  );
  if (!cli) return ExitCode.Ok;
  const force = (cli.values as { force?: boolean }).force === true;
  const r = (await cli.call('hosts.reap', {
    host_id: cli.positionals[0],
    ...(force ? { force } : {}),
  })) as { host_id: string; runs: string[] };
  if (cli.json) printJson(ctx, r);
  else {
    ctx.write(
      `gave host ${cell(r.host_id)} up: ${r.runs.length} run(s) no longer wait for it` +
        (r.runs.length > 0 ? ` (${r.runs.map(cell).join(', ')})` : '') +
        '\n',
    );
  }
  return ExitCode.Ok;
}
