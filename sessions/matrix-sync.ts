/**
 * The Matrix sync of an account as a session: one workflow per account that every bridge logged
 * in as it joins, and which runs its sync calls on one of their hosts at a time. Used by the
 * bridge's start, by `matrix.login` and by `matrix.receive`, so it sits below them.
 */
import {
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import type { Logger } from 'pino';
import type { matrixSyncWorkflow } from '../workflows/matrix-sync';
import {
  matrixEventsQuery,
  matrixSyncJoinSignal,
  matrixSyncStatusQuery,
  matrixSyncWorkflowId,
  matrixTakeUpdate,
  NOTHING_TO_TAKE,
  type MatrixQueuedEvent,
  type MatrixSyncStatus,
} from '../workflows/definitions';
import { ArmorclawHost } from '../workflows/search-attributes';

/** How every bridge of a deployment runs the sync (the same settings on each). */
export interface MatrixSyncSettings {
  /** The shared task queue the sync workflow runs on. */
  taskQueue: string;
  hostGraceMs: number;
  syncTimeoutMs: number;
}

/**
 * Offers this host to the sync of `userId`, starting the account's sync workflow if it is not
 * running (idempotent). A sync call this host's previous process left running is failed, so the
 * workflow makes it again at once instead of waiting for its heartbeat to time out.
 */
export async function ensureMatrixSync(
  client: Client,
  opts: MatrixSyncSettings & {
    userId: string;
    hostId: string;
    /** When this bridge process started: attempts begun before it belong to a dead process. */
    processStartedMs?: number;
    log?: Logger;
  },
): Promise<void> {
  const { hostId, userId, log } = opts;
  const processStartedMs = opts.processStartedMs ?? processStartedAtMs();
  const workflowId = matrixSyncWorkflowId(userId);
  await client.workflow.signalWithStart<typeof matrixSyncWorkflow, [{ hostId: string }]>(
    'matrixSyncWorkflow',
    {
      taskQueue: opts.taskQueue,
      workflowId,
      args: [{ userId, hostGraceMs: opts.hostGraceMs, syncTimeoutMs: opts.syncTimeoutMs }],
      signal: matrixSyncJoinSignal,
      signalArgs: [{ hostId }],
    },
  );
  // Bridges before this one ran a sync per host, `matrix-sync-<host>`, whose code is gone.
  await client.workflow
    .getHandle(`matrix-sync-${hostId}`)
    .terminate('replaced by the account-wide Matrix sync')
    .catch(() => undefined);
  await failOrphanedSync(client, workflowId, hostId, processStartedMs, log);
  await recoverOrphanedSends(client, processStartedMs, log);
}

/**
 * Takes up to `limit` events of the account's queue for `consumer`: the span of seqs taken
 * (nothing, before any sync). The events themselves are read from this bridge's copy.
 */
export async function takeMatrixEvents(
  client: Client,
  userId: string,
  consumer: string,
  limit: number,
): Promise<{ after: number; upTo: number }> {
  try {
    return await client.workflow
      .getHandle(matrixSyncWorkflowId(userId))
      .executeUpdate(matrixTakeUpdate, { args: [{ consumer, limit }] });
  } catch (err) {
    const nothing =
      err instanceof WorkflowUpdateFailedError &&
      err.cause instanceof ApplicationFailure &&
      err.cause.type === NOTHING_TO_TAKE;
    if (nothing || err instanceof WorkflowNotFoundError) return { after: 0, upTo: 0 };
    throw err;
  }
}

/** The account's queued events after `after`, oldest first (empty before any sync). */
export async function matrixEventsAfter(
  client: Client,
  userId: string,
  after: number,
  limit: number,
): Promise<MatrixQueuedEvent[]> {
  try {
    return await client.workflow
      .getHandle(matrixSyncWorkflowId(userId))
      .query(matrixEventsQuery, { after, limit });
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return [];
    throw err;
  }
}

/** Who runs the account's sync, and how it went. Undefined when it never started. */
export async function matrixSyncStatus(
  client: Client,
  userId: string,
): Promise<MatrixSyncStatus | undefined> {
  try {
    return await client.workflow
      .getHandle(matrixSyncWorkflowId(userId))
      .query(matrixSyncStatusQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

/** When this process started. Matrix activities run in it only (the host's task queue). */
export function processStartedAtMs(): number {
  return Date.now() - process.uptime() * 1000;
}

const { PENDING_ACTIVITY_STATE_STARTED } = temporal.api.enums.v1.PendingActivityState;

/**
 * The sync call this host's previous process was making when it died stays "started" until its
 * heartbeat times out (20 s). When the account's sync is on this host and its pending call began
 * before this process did, the call is failed here; the workflow makes it again at once, from the
 * same position, so the restart costs no wait.
 */
async function failOrphanedSync(
  client: Client,
  workflowId: string,
  hostId: string,
  processStartedMs: number,
  log?: Logger,
): Promise<void> {
  try {
    const desc = await client.workflow.getHandle(workflowId).describe();
    if (desc.status.name !== 'RUNNING' || desc.typedSearchAttributes.get(ArmorclawHost) !== hostId)
      return;
    if (await failAttemptsOfDeadProcess(client, desc, processStartedMs))
      log?.info({ workflowId }, 'resumed the Matrix sync a previous bridge process was running');
  } catch (err) {
    // Not fatal: the workflow moves on by itself once the call's heartbeat times out.
    log?.warn({ err: (err as Error).message }, 'could not resume an orphaned Matrix sync call');
  }
}

/**
 * A send attempt that was running when the bridge died stays "started" until its 30 s
 * start-to-close timeout. Activities run in this process only, so an attempt started before this
 * process did is orphaned: it is failed here (retryable) and Temporal retries it at once, with the
 * same transaction id, so the message still lands once.
 */
async function recoverOrphanedSends(
  client: Client,
  processStartedMs: number,
  log?: Logger,
): Promise<void> {
  try {
    const query = `WorkflowType = 'matrixSendWorkflow' AND ExecutionStatus = 'Running'`;
    for await (const wf of client.workflow.list({ query })) {
      const desc = await client.workflow.getHandle(wf.workflowId).describe();
      if (desc.status.name !== 'RUNNING') continue;
      if (await failAttemptsOfDeadProcess(client, desc, processStartedMs))
        log?.info({ workflowId: wf.workflowId }, 'retrying a Matrix send orphaned by a crash');
    }
  } catch (err) {
    // Not fatal: Temporal retries those attempts by itself once they time out.
    log?.warn({ err: (err as Error).message }, 'could not recover orphaned Matrix sends');
  }
}

/**
 * Fails (retryable, `WorkerGone`) each of a workflow's activity attempts that started before this
 * process did: the process that ran it is dead. Answers how many it failed.
 */
async function failAttemptsOfDeadProcess(
  client: Client,
  desc: WorkflowExecutionDescription,
  processStartedMs: number,
): Promise<number> {
  let failed = 0;
  for (const a of desc.raw.pendingActivities ?? []) {
    const startedMs = optionalTsToMs(a.lastStartedTime);
    if (
      a.state !== PENDING_ACTIVITY_STATE_STARTED ||
      !a.activityId ||
      startedMs === undefined ||
      startedMs >= processStartedMs
    )
      continue;
    await client.activity.fail(
      { workflowId: desc.workflowId, runId: desc.runId, activityId: a.activityId },
      ApplicationFailure.retryable('the bridge process running it is gone', 'WorkerGone'),
    );
    failed++;
  }
  return failed;
}
