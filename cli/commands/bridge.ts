/** status, health, start, stop, list: the bridge and its container runs and calls. */
import { BRIDGE_OPTIONS_HELP, ExitCode, UsageError, positiveNumber } from '../args';
import { bridgeCommand, printJson, reply, type CliContext } from '../command';
import { formatTimeAgo, renderFields, renderTable, shortId } from '../format';
import type { ContainerRunSummary } from '../../rpc/methods/containers';

interface StatusResult {
  version: string;
  state: string;
  socket: string;
  containers: number;
  container_ids: string[];
}

interface HealthResult {
  status: string;
  checked_at?: string;
  checks: Record<string, { status: string; latency_ms: number; error?: string }>;
}

/** A run as `containers.list` answers it. */
export type ContainerRun = ContainerRunSummary;

export interface CallSummary {
  session_id: string;
  room_id: string | null;
  state: string;
  user_state?: string;
  duration: string;
  created_at: string;
  host_id: string | null;
}

const STATUS_USAGE = `usage: armorclaw status [--json] [--socket PATH]
  The bridge's version, socket and Active containers (JSON-RPC \`status\`).

${BRIDGE_OPTIONS_HELP}`;

const HEALTH_USAGE = `usage: armorclaw health [--json] [--socket PATH]
  Each dependency check (Temporal, keystore, configs, Docker, signaling, Matrix) with its
  latency (JSON-RPC \`health\`). Exits 5 when the bridge is unhealthy.

${BRIDGE_OPTIONS_HELP}`;

const START_USAGE = `usage: armorclaw start --key-id ID [--agent-type T] [--image REF] [--ttl DURATION]
                       [--room-id ROOM] [--secrets-mode MODE] [--budget-usd N]
                       [--json] [--socket PATH]
  Starts an agent in a hardened container and waits until it runs (JSON-RPC \`start\`).
  --key-id ID         the stored API key the agent gets (see list-keys)
  --agent-type T      agent type (default openclaw: OpenClaw; echo: the reference agent);
                      names the container armorclaw-<T>-<unix time>
  --image REF         Docker image (default: the type's image in containers.agent_types)
  --ttl DURATION      lifetime such as 30m or 2h (default: containers.default_ttl)
  --room-id ROOM      bind the agent to a Matrix room (!opaque:server; needs matrix login)
  --secrets-mode MODE proxy (the key stays in the bridge; default) or file
  --budget-usd N      the run's spending limit in USD, metered by the provider proxy (0: none)

${BRIDGE_OPTIONS_HELP}`;

const STOP_USAGE = `usage: armorclaw stop CONTAINER [--json] [--socket PATH]
  Stops a run and waits for its cleanup (JSON-RPC \`stop\`). CONTAINER is the container name
  (armorclaw-...), its id, or an id prefix of at least 12 characters as \`docker ps\` shows.

${BRIDGE_OPTIONS_HELP}`;

const LIST_USAGE = `usage: armorclaw list [--all] [--limit N] [--json] [--socket PATH]
  Container runs with their states (Pending, Active, Ended, Failed, Expired) and live voice
  calls (JSON-RPC \`containers.list\` and \`webrtc.list\`).
  --all        also runs that are over (newest first)
  --limit N    at most N runs (1-1000, default 100)
  --json prints {"containers": <containers.list result>, "calls": <webrtc.list result>}.

${BRIDGE_OPTIONS_HELP}`;

export const statusCommand = bridgeCommand({
  name: 'status',
  summary: 'the bridge: version, socket, Active containers',
  usage: STATUS_USAGE,
  async run(cli, ctx) {
    const st = (await cli.call('status')) as StatusResult;
    reply(ctx, cli, st, renderStatus);
    return ExitCode.Ok;
  },
});

export function renderStatus(st: StatusResult): string {
  return renderFields([
    ['bridge', `${st.state} (version ${st.version})`],
    ['socket', st.socket],
    [
      'containers',
      `${st.containers} active` +
        (st.container_ids.length ? `: ${st.container_ids.map(shortId).join(', ')}` : ''),
    ],
  ]);
}

export const healthCommand = bridgeCommand({
  name: 'health',
  summary: 'dependency checks; exit 5 when unhealthy',
  usage: HEALTH_USAGE,
  async run(cli, ctx) {
    const h = (await cli.call('health')) as HealthResult;
    reply(ctx, cli, h, (v) => renderHealth(v, ctx.now()));
    return h.status === 'healthy' ? ExitCode.Ok : ExitCode.Unhealthy;
  },
});

export function renderHealth(h: HealthResult, now: number): string {
  const rows = Object.entries(h.checks).map(([name, c]) => [
    name,
    c.status,
    `${c.latency_ms} ms`,
    c.error ?? '',
  ]);
  const when = h.checked_at ? ` (checked ${formatTimeAgo(h.checked_at, now)})` : '';
  return `bridge ${h.status}${when}\n` + renderTable(['CHECK', 'STATUS', 'LATENCY', 'ERROR'], rows);
}

export const startCommand = bridgeCommand({
  name: 'start',
  summary: 'start an agent container (--key-id ID)',
  usage: START_USAGE,
  options: {
    'key-id': { type: 'string' },
    'agent-type': { type: 'string' },
    image: { type: 'string' },
    ttl: { type: 'string' },
    'room-id': { type: 'string' },
    'secrets-mode': { type: 'string' },
    'budget-usd': { type: 'string' },
  },
  async run(cli, ctx) {
    const v = cli.values as Record<string, string | undefined>;
    if (!v['key-id']) throw new UsageError('start needs --key-id', START_USAGE);
    const budget = v['budget-usd'];
    if (budget !== undefined && !/^\d+(\.\d+)?$/.test(budget)) {
      throw new UsageError('--budget-usd must be a number of USD such as 2 or 0.5', START_USAGE);
    }
    const params = {
      key_id: v['key-id'],
      ...(v['agent-type'] !== undefined && { agent_type: v['agent-type'] }),
      ...(v.image !== undefined && { image: v.image }),
      ...(v.ttl !== undefined && { ttl: v.ttl }),
      ...(v['room-id'] !== undefined && { room_id: v['room-id'] }),
      ...(v['secrets-mode'] !== undefined && { secrets_mode: v['secrets-mode'] }),
      ...(budget !== undefined && { budget_usd: Number(budget) }),
    };
    const r = (await cli.call('start', params)) as {
      container_id: string;
      container_name: string;
      status: string;
      endpoint: string;
    };
    if (cli.json) printJson(ctx, r);
    else {
      ctx.write(
        renderFields([
          ['started', r.container_name],
          ['container', shortId(r.container_id)],
          ['status', r.status],
          ['endpoint', r.endpoint],
        ]),
      );
    }
    return ExitCode.Ok;
  },
});

export const stopCommand = bridgeCommand({
  name: 'stop',
  summary: 'stop a container run (name or id)',
  usage: STOP_USAGE,
  positionals: { min: 1, max: 1, names: 'CONTAINER' },
  async run(cli, ctx) {
    const r = (await cli.call('stop', { container_id: cli.positionals[0] })) as {
      status: string;
      container_id: string;
      container_name: string;
      cleanup?: 'pending';
    };
    reply(
      ctx,
      cli,
      r,
      (v) =>
        `${v.status} ${v.container_name} (container ${shortId(v.container_id)})` +
        (v.cleanup === 'pending'
          ? '; its host is away: the container is removed when it is back\n'
          : '\n'),
    );
    return ExitCode.Ok;
  },
});

export const listCommand = bridgeCommand({
  name: 'list',
  summary: 'container runs and voice calls with their states',
  usage: LIST_USAGE,
  options: {
    all: { type: 'boolean' },
    limit: { type: 'string' },
  },
  async run(cli, ctx) {
    const limit = positiveNumber(
      cli.values.limit as string | undefined,
      '--limit',
      LIST_USAGE,
      1000,
    );
    const containers = (await cli.call('containers.list', {
      ...(cli.values.all === true && { all: true }),
      ...(limit !== undefined && { limit }),
    })) as { count: number; truncated: boolean; runs: ContainerRun[] };
    const calls = (await cli.call('webrtc.list')) as {
      active_sessions: number;
      sessions: CallSummary[];
    };
    if (cli.json) printJson(ctx, { containers, calls });
    else ctx.write(renderList(containers.runs, containers.truncated, calls.sessions, ctx));
    return ExitCode.Ok;
  },
});

export function renderList(
  runs: ContainerRun[],
  truncated: boolean,
  calls: CallSummary[],
  ctx: Pick<CliContext, 'now'>,
): string {
  const now = ctx.now();
  let out = `CONTAINER RUNS (${runs.length}${truncated ? ', more with a higher --limit' : ''})\n`;
  out += runs.length
    ? renderTable(
        ['NAME', 'STATE', 'CONTAINER', 'AGENT', 'KEY', 'STARTED', 'ENDED'],
        runs.map((r) => [
          r.container_name,
          runState(r),
          shortId(r.container_id),
          r.agent_type,
          r.key_id,
          formatTimeAgo(r.started_at, now),
          r.closed_at ? formatTimeAgo(r.closed_at, now) : '-',
        ]),
      )
    : '  none\n';
  out += `\nVOICE CALLS (${calls.length})\n`;
  out += calls.length
    ? renderTable(
        ['SESSION', 'STATE', 'ROOM', 'DURATION', 'STARTED', 'HOST'],
        calls.map((c) => [
          c.session_id,
          c.user_state ?? c.state,
          c.room_id,
          c.duration,
          formatTimeAgo(c.created_at, now),
          c.host_id,
        ]),
      )
    : '  none\n';
  return out;
}

/** The run's state; a workflow ended from outside (terminated) says so beside its last state. */
function runState(r: ContainerRun): string {
  const ws = r.workflow_status;
  if (
    r.closed_at &&
    ws &&
    ws !== 'COMPLETED' &&
    !['Ended', 'Failed', 'Expired'].includes(r.state)
  ) {
    return `${r.state} (${ws.toLowerCase()})`;
  }
  return r.state;
}
