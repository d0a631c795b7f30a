/**
 * Where a `start` spends its time, read back from its run's workflow history: from the request
 * to the run's first event, each gap between consecutive events up to the update that answers
 * `start` (waitActive), and from there to the answer. A gap is named by the event that ends it:
 * a task waiting for a worker to take it, a task running on the worker, or the server's own
 * bookkeeping in between.
 */
import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** Milliseconds of each phase, by name. */
export type Phases = Record<string, number>;

const timeOf = (e: HistoryEvent): number => {
  const t = e.eventTime;
  if (!t) return NaN;
  return Number(String(t.seconds ?? 0)) * 1000 + (t.nanos ?? 0) / 1e6;
};

/** The phase the gap before `e` counts towards (names of activities from `activities`). */
function phaseOf(e: HistoryEvent, activities: Map<string, string>): string {
  if (e.workflowTaskStartedEventAttributes) return 'workflow task: waiting for a worker';
  if (e.workflowTaskCompletedEventAttributes) return 'workflow task: running';
  const started = e.activityTaskStartedEventAttributes;
  if (started) {
    const name = activities.get(String(started.scheduledEventId)) ?? '?';
    return `${name}: waiting for a worker`;
  }
  const completed = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
  if (completed) {
    const name = activities.get(String(completed.scheduledEventId)) ?? '?';
    return `${name}: running`;
  }
  return 'server: between tasks';
}

/**
 * The phases of one start: `sentAt` when the request was sent, `answeredAt` when its answer
 * arrived (epoch ms). Undefined when the history has no completed update (the start failed).
 */
export function startPhases(
  events: HistoryEvent[],
  sentAt: number,
  answeredAt: number,
): Phases | undefined {
  const activities = new Map<string, string>();
  const phases: Phases = {};
  const add = (name: string, ms: number) => (phases[name] = (phases[name] ?? 0) + ms);
  let prev: number | undefined;
  for (const e of events) {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (name) activities.set(String(e.eventId), name);
    const t = timeOf(e);
    if (prev === undefined) add('request → the run exists', t - sentAt);
    else add(phaseOf(e, activities), t - prev);
    prev = t;
    if (e.workflowExecutionUpdateCompletedEventAttributes) {
      add('update done → `start` answered', answeredAt - t);
      return phases;
    }
  }
  return undefined;
}

/** The phases of each run (workflow id → its start's send and answer times), summed. */
export async function tracedStarts(
  client: Client,
  runs: Array<{ workflowId: string; sentAt: number; answeredAt: number }>,
): Promise<Phases[]> {
  const out: Phases[] = [];
  for (const run of runs) {
    const history = await client.workflow.getHandle(run.workflowId).fetchHistory();
    const phases = startPhases(history.events ?? [], run.sentAt, run.answeredAt);
    if (phases) out.push(phases);
  }
  return out;
}

/** Mean milliseconds of each phase over `all`, largest first. */
export function meanPhases(all: Phases[]): Array<[string, number]> {
  const sum: Phases = {};
  for (const p of all) for (const [k, v] of Object.entries(p)) sum[k] = (sum[k] ?? 0) + v;
  return Object.entries(sum)
    .map(([k, v]): [string, number] => [k, v / Math.max(1, all.length)])
    .sort((a, b) => b[1] - a[1]);
}
