/**
 * The Matrix sync loop as a session: started once per host, and brought back at once after a
 * crash instead of waiting out Temporal's timeouts. Used by the bridge's start and by
 * `matrix.login`, so it sits below both.
 */
import type { Client } from '@temporalio/client';
import { ApplicationFailure, WorkflowIdConflictPolicy } from '@temporalio/common';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import type { Logger } from 'pino';
import type { matrixSyncWorkflow } from '../workflows/matrix-sync';

/**
 * Starts the Matrix sync workflow of this host if it is not running (idempotent), and makes sure
 * a loop left behind by a previous bridge process resumes at once (see `syncLoopIsStale`).
 */
export async function ensureMatrixSync(
  client: Client,
  opts: {
    taskQueue: string;
    hostId: string;
    /** When this bridge process started: attempts begun before it belong to a dead process. */
    processStartedMs?: number;
    log?: Logger;
  },
): Promise<void> {
  const { taskQueue, hostId, log } = opts;
  const processStartedMs = opts.processStartedMs ?? processStartedAtMs();
  const workflowId = `matrix-sync-${hostId}`;
  const stale = await syncLoopIsStale(client, workflowId, processStartedMs).catch(() => false);
  await client.workflow.start<typeof matrixSyncWorkflow>('matrixSyncWorkflow', {
    taskQueue,
    workflowId,
    args: [{ hostId }],
    workflowIdConflictPolicy: stale
      ? WorkflowIdConflictPolicy.TERMINATE_EXISTING
      : WorkflowIdConflictPolicy.USE_EXISTING,
  });
  if (stale)
    log?.info({ workflowId }, 'restarted the Matrix sync loop of a previous bridge process');
  await recoverOrphanedSends(client, processStartedMs, log);
}

/** When this process started. Matrix activities run in it only (the host's task queue). */
export function processStartedAtMs(): number {
  return Date.now() - process.uptime() * 1000;
}

const { PENDING_ACTIVITY_STATE_STARTED, PENDING_ACTIVITY_STATE_SCHEDULED } =
  temporal.api.enums.v1.PendingActivityState;

/**
 * Whether the running sync workflow's loop is not running in this process and would not resume
 * soon by itself. After a crash Temporal still sees the dead process's attempt as started until
 * its 90 s heartbeat timeout; after a graceful stop the attempt failed (SyncInterrupted) and the
 * retry waits out a backoff that grows with every restart (the loop never completes, so its
 * attempt count never resets) up to 30 s. Either way nothing would be received for that long.
 * The loop's position lives in the MatrixStore, so starting the workflow afresh loses nothing.
 */
async function syncLoopIsStale(
  client: Client,
  workflowId: string,
  processStartedMs: number,
): Promise<boolean> {
  const desc = await client.workflow.getHandle(workflowId).describe();
  if (desc.status.name !== 'RUNNING') return false;
  return (desc.raw.pendingActivities ?? []).some((a) => {
    if (a.state === PENDING_ACTIVITY_STATE_STARTED) {
      const startedMs = optionalTsToMs(a.lastStartedTime);
      return startedMs !== undefined && startedMs < processStartedMs;
    }
    if (a.state === PENDING_ACTIVITY_STATE_SCHEDULED) {
      const scheduledMs = optionalTsToMs(a.scheduledTime);
      return (a.attempt ?? 1) > 1 || (scheduledMs !== undefined && scheduledMs < processStartedMs);
    }
    return false;
  });
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
          { workflowId: wf.workflowId, runId: desc.runId, activityId: a.activityId },
          ApplicationFailure.retryable('the bridge process running it is gone', 'WorkerGone'),
        );
        log?.info({ workflowId: wf.workflowId }, 'retrying a Matrix send orphaned by a crash');
      }
    }
  } catch (err) {
    // Not fatal: Temporal retries those attempts by itself once they time out.
    log?.warn({ err: (err as Error).message }, 'could not recover orphaned Matrix sends');
  }
}
