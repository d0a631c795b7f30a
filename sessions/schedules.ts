/**
 * Gateway cron jobs as Temporal Schedules (schedule id `cron-<job id>`, listed in the Temporal
 * Web UI under Schedules): each firing starts an `agentTurnWorkflow` whose workflow id is
 * `turn-cron-<job id>-<scheduled time>` (Temporal appends the time), so its answer is collectable
 * with `agent.wait` by the run id `cron-<job id>-<time>`. The job's own fields ride in the
 * schedule's memo, so `cron.list` needs nothing but Temporal.
 */
import {
  MONTHS,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleSpec,
} from '@temporalio/client';
import type { agentTurnWorkflow } from '../workflows/agent-turn';
import { turnWorkflowId, type AgentTurnInput } from '../workflows/definitions';
import { ArmorclawKind, turnAttributes } from '../workflows/search-attributes';

export const CRON_SCHEDULE_PREFIX = 'cron-';
export const cronScheduleId = (jobId: string): string => `${CRON_SCHEDULE_PREFIX}${jobId}`;

export type CronJobType = 'at' | 'every' | 'cron';

/** A job as the gateway answers it: the spec's fields, then the bridge's extensions. */
export interface CronJob {
  id: string;
  type: CronJobType;
  expression: string;
  isolated: boolean;
  maxRetries: number;
  backoffMs: number;
  /** Epoch ms of the next firing; null once a one-shot (`at`) job has fired. */
  nextRunAt: number | null;
  message: string;
  sessionId?: string;
  channelId?: string;
}

/** What the memo keeps of a job (all but `id` and `nextRunAt`, which Temporal knows). */
type JobMemo = Omit<CronJob, 'id' | 'nextRunAt'>;
const MEMO_KEY = 'cronJob';

/** When a job fires: an interval, a 5-field cron expression, or one instant (UTC). */
export type CronTiming =
  | { kind: 'every'; everyMs: number }
  | { kind: 'cron'; expression: string }
  | { kind: 'at'; atMs: number };

function specOf(timing: CronTiming): ScheduleSpec {
  switch (timing.kind) {
    case 'every':
      return { intervals: [{ every: timing.everyMs }] };
    case 'cron':
      return { cronExpressions: [timing.expression] };
    case 'at': {
      const t = new Date(timing.atMs);
      return {
        calendars: [
          {
            year: t.getUTCFullYear(),
            month: MONTHS[t.getUTCMonth()]!,
            dayOfMonth: t.getUTCDate(),
            hour: t.getUTCHours(),
            minute: t.getUTCMinutes(),
            second: t.getUTCSeconds(),
          },
        ],
      };
    }
  }
}

/**
 * Creates the job's schedule and answers it with its next firing. Overlapping firings all run
 * (a turn holds its answer for `agent.wait` after it is done, so "skip while one runs" would
 * skip for the whole retention time); `at` jobs fire once.
 */
export async function createCronSchedule(
  client: Client,
  opts: {
    taskQueue: string;
    jobId: string;
    timing: CronTiming;
    job: JobMemo;
    turn: AgentTurnInput;
  },
): Promise<CronJob> {
  const handle = await client.schedule.create({
    scheduleId: cronScheduleId(opts.jobId),
    spec: specOf(opts.timing),
    action: {
      type: 'startWorkflow',
      workflowType: 'agentTurnWorkflow' as unknown as typeof agentTurnWorkflow,
      taskQueue: opts.taskQueue,
      workflowId: turnWorkflowId(`${CRON_SCHEDULE_PREFIX}${opts.jobId}`),
      args: [opts.turn],
      typedSearchAttributes: turnAttributes(opts.turn.run, 'Pending'),
    },
    policies: { overlap: ScheduleOverlapPolicy.ALLOW_ALL },
    memo: { [MEMO_KEY]: opts.job },
    typedSearchAttributes: [{ key: ArmorclawKind, value: 'cron' }],
    ...(opts.timing.kind === 'at' ? { state: { remainingActions: 1 } } : {}),
  });
  const desc = await handle.describe();
  return {
    id: opts.jobId,
    nextRunAt: desc.info.nextActionTimes[0]?.getTime() ?? null,
    ...opts.job,
  };
}

/** Every cron job of the namespace, from the visibility store (it trails creation by a moment). */
export async function listCronJobs(client: Client): Promise<CronJob[]> {
  const jobs: CronJob[] = [];
  for await (const s of client.schedule.list()) {
    if (!s.scheduleId.startsWith(CRON_SCHEDULE_PREFIX)) continue;
    const memo = s.memo?.[MEMO_KEY] as JobMemo | undefined;
    if (!memo) continue;
    jobs.push({
      id: s.scheduleId.slice(CRON_SCHEDULE_PREFIX.length),
      nextRunAt: s.info.nextActionTimes[0]?.getTime() ?? null,
      ...memo,
    });
  }
  return jobs;
}

/** Deletes the job's schedule (turns it already started run on); false when there is none. */
export async function deleteCronSchedule(client: Client, jobId: string): Promise<boolean> {
  try {
    await client.schedule.getHandle(cronScheduleId(jobId)).delete();
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}
