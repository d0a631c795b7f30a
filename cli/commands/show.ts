/**
 * show: one container run as its workflow reports it, live or over: how it ended, its secrets
 * mode, what the provider proxy metered against its limit and what the agent said last.
 */
import { BRIDGE_OPTIONS_HELP, ExitCode } from '../args';
import { bridgeCommand, reply } from '../command';
import { cell, formatTime, renderFields, renderTable, shortId } from '../format';
import type { ContainerStatusResult } from '../../rpc/methods/containers';

/** Notifications shown; the run keeps its latest 50 (all in --json). */
const SHOWN_NOTIFICATIONS = 10;
/** A notification's message is cut here to keep it on one line. */
const MESSAGE_CHARS = 100;

const SHOW_USAGE = `usage: armorclaw show CONTAINER [--json] [--socket PATH]
  One container run, running or over: state, end reason, secrets mode, what the provider proxy
  metered (requests, tokens, cost against the run's limit) and the agent's last notifications
  (JSON-RPC \`containers.status\`). CONTAINER is the container name (armorclaw-...), its id,
  or an id prefix of at least 12 characters.
  --json prints the bridge's result (every notification the run keeps, up to 50).

${BRIDGE_OPTIONS_HELP}`;

export const showCommand = bridgeCommand({
  name: 'show',
  summary: 'one container run: end reason, usage and cost, notifications',
  usage: SHOW_USAGE,
  positionals: { min: 1, max: 1, names: 'CONTAINER' },
  async run(cli, ctx) {
    const st = (await cli.call('containers.status', {
      container_id: cli.positionals[0],
    })) as ContainerStatusResult;
    reply(ctx, cli, st, renderShow);
    return ExitCode.Ok;
  },
});

export function renderShow(st: ContainerStatusResult): string {
  const u = st.usage;
  const limit = u.limit_usd === null ? 'no limit' : `of ${usd(u.limit_usd)} limit`;
  const out = renderFields([
    ['run', st.container_name],
    ['container', shortId(st.container_id)],
    ['state', st.state],
    ['end reason', endReason(st)],
    ['agent', `${st.agent_type} (key ${st.key_id}, image ${st.image})`],
    [
      'secrets mode',
      `${st.secrets_mode} (secrets file ${st.secrets_removed ? 'removed' : 'present'})`,
    ],
    ['requests', u.requests],
    ['tokens', `${u.input_tokens} input, ${u.output_tokens} output`],
    ['cost', `${usd(u.cost_usd)} ${limit}`],
    ['cleanup', st.cleanup_done ? 'done' : 'not yet'],
  ]);
  const shown = st.notifications.slice(-SHOWN_NOTIFICATIONS);
  const count =
    shown.length < st.notifications.length
      ? `last ${shown.length} of ${st.notifications.length}`
      : `${shown.length}`;
  return (
    out +
    `\nNOTIFICATIONS (${count})\n` +
    (shown.length
      ? renderTable(
          ['TIME', 'KIND', 'MESSAGE'],
          shown.map((n) => [formatTime(n.at), n.kind, oneLine(n.message)]),
        )
      : '  none\n')
  );
}

/** `container_exited (exit code 137): detail`, or `-` while the run has not ended. */
function endReason(st: ContainerStatusResult): string {
  if (!st.end_reason) return '-';
  const code = st.exit_code === undefined ? '' : ` (exit code ${st.exit_code})`;
  return `${st.end_reason}${code}${st.end_detail ? `: ${st.end_detail}` : ''}`;
}

/** Dollars to the micro-dollar the bridge counts in, at least cents: `$0.00`, `$0.0065`. */
export function usd(value: number): string {
  return `$${value.toFixed(6).replace(/0{1,4}$/, '')}`;
}

/** A message cut to one table cell; control characters (newlines included) become `?`. */
function oneLine(message: string): string {
  const text = cell(message);
  return text.length > MESSAGE_CHARS ? text.slice(0, MESSAGE_CHARS - 1) + '…' : text;
}
