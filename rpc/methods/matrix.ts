import { randomUUID } from 'node:crypto';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type Client,
} from '@temporalio/client';
import {
  ApplicationFailure,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
} from '@temporalio/common';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { MatrixError } from 'matrix-js-sdk';
import { z } from 'zod';
import type { Logger } from 'pino';
import type { MatrixConnection } from '../../matrix/client';
import { publicEvent, type MatrixInbox } from '../../matrix/inbox';
import type { MatrixStore } from '../../services/matrix-store';
import type { MatrixSendInput } from '../../workflows/matrix-send';
import { isRoomId } from '../../services/matrix-trust';
import type { RpcDispatcher } from '../dispatcher';
import { internalError, invalidParams } from '../errors';
import { noParams, parseParams } from '../params';

export interface MatrixMethodsDeps {
  matrix: MatrixConnection;
  store: MatrixStore;
  inbox: MatrixInbox;
  client: Client;
  taskQueue: string;
  hostId: string;
  log: Logger;
}

/** The durable queue `matrix.receive` drains (one cursor shared by polling clients). */
export const RECEIVE_CONSUMER = 'rpc:matrix.receive';
export const RECEIVE_BATCH = 10;
export const MAX_MESSAGE_CHARS = 32 * 1024;

const loginParams = z.strictObject({ username: z.string().min(1), password: z.string().min(1) });
const sendParams = z.strictObject({
  room_id: z.string(),
  message: z.string(),
  msgtype: z.enum(['m.text', 'm.notice']).optional(),
});
const subscribeParams = z.strictObject({
  room_ids: z.array(z.string()).max(100).optional(),
  types: z.array(z.string()).max(20).optional(),
});
const unsubscribeParams = z.strictObject({ subscription: z.string() });

/**
 * Starts the Matrix sync workflow of this host if it is not running (idempotent), and makes sure
 * a loop left behind by a previous bridge process resumes at once (see `syncLoopIsStale`).
 */
export async function ensureMatrixSync(
  client: Client,
  taskQueue: string,
  hostId: string,
  log?: Logger,
): Promise<void> {
  const workflowId = `matrix-sync-${hostId}`;
  const stale = await syncLoopIsStale(client, workflowId).catch(() => false);
  await client.workflow.start('matrixSyncWorkflow', {
    taskQueue,
    workflowId,
    args: [{ hostId }],
    workflowIdConflictPolicy: stale
      ? WorkflowIdConflictPolicy.TERMINATE_EXISTING
      : WorkflowIdConflictPolicy.USE_EXISTING,
  });
  if (stale)
    log?.info({ workflowId }, 'restarted the Matrix sync loop of a previous bridge process');
  await recoverOrphanedSends(client, log);
}

/** When this process started. Matrix activities run in it only (the host's task queue). */
const PROCESS_STARTED_MS = Date.now() - process.uptime() * 1000;
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
async function syncLoopIsStale(client: Client, workflowId: string): Promise<boolean> {
  const desc = await client.workflow.getHandle(workflowId).describe();
  if (desc.status.name !== 'RUNNING') return false;
  return (desc.raw.pendingActivities ?? []).some((a) => {
    if (a.state === PENDING_ACTIVITY_STATE_STARTED) {
      const startedMs = optionalTsToMs(a.lastStartedTime);
      return startedMs !== undefined && startedMs < PROCESS_STARTED_MS;
    }
    if (a.state === PENDING_ACTIVITY_STATE_SCHEDULED) {
      const scheduledMs = optionalTsToMs(a.scheduledTime);
      return (
        (a.attempt ?? 1) > 1 || (scheduledMs !== undefined && scheduledMs < PROCESS_STARTED_MS)
      );
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
async function recoverOrphanedSends(client: Client, log?: Logger): Promise<void> {
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
          startedMs >= PROCESS_STARTED_MS
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

/** Sends through `matrixSendWorkflow`: exactly once, with the event id as delivery receipt. */
export async function sendThroughWorkflow(
  deps: Pick<MatrixMethodsDeps, 'client' | 'taskQueue' | 'hostId'>,
  roomId: string,
  body: string,
  msgtype: string,
  /**
   * Names the send: the same key always means the same message, so a caller that retries after
   * losing the answer (an agent whose bridge restarted) gets the first send's receipt.
   */
  idempotencyKey?: string,
): Promise<{ event_id: string; room_id: string }> {
  const input: MatrixSendInput = { hostId: deps.hostId, roomId, msgtype, body };
  const workflowId = idempotencyKey
    ? `matrix-send-key-${idempotencyKey}`
    : `matrix-send-${randomUUID()}`;
  try {
    try {
      return await deps.client.workflow.execute('matrixSendWorkflow', {
        taskQueue: deps.taskQueue,
        workflowId,
        args: [input],
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      return await deps.client.workflow.getHandle(workflowId).result();
    }
  } catch (err) {
    const cause = err instanceof WorkflowFailedError ? (err.cause?.cause ?? err.cause) : undefined;
    if (cause instanceof ApplicationFailure && cause.type === 'NotLoggedIn') {
      throw internalError('Internal error: not logged in to Matrix');
    }
    if (cause instanceof ApplicationFailure && cause.type === 'MatrixSendRejected') {
      throw internalError(`Internal error: send failed: ${cause.message}`);
    }
    throw internalError('Internal error: send failed');
  }
}

/** matrix.login, matrix.send, matrix.receive, matrix.status, matrix.subscribe, matrix.unsubscribe. */
export function registerMatrixMethods(dispatcher: RpcDispatcher, deps: MatrixMethodsDeps): void {
  const { matrix, store, inbox } = deps;

  dispatcher.addMethod('matrix.login', async (params) => {
    const { username, password } = parseParams(loginParams, params);
    try {
      const session = await matrix.login(username, password);
      await ensureMatrixSync(deps.client, deps.taskQueue, deps.hostId, deps.log);
      return { status: 'logged_in', user_id: session.userId };
    } catch (err) {
      if (err instanceof MatrixError && (err.httpStatus === 403 || err.httpStatus === 401)) {
        throw invalidParams('Invalid params: the homeserver refused these credentials');
      }
      deps.log.warn({ err: (err as Error).message }, 'Matrix login failed');
      throw internalError(
        'Internal error: Matrix login failed (homeserver unreachable or not configured)',
      );
    }
  });

  dispatcher.addMethod('matrix.send', async (params) => {
    const p = parseParams(sendParams, params);
    if (!isRoomId(p.room_id))
      throw invalidParams('Invalid params: room_id must be a room id (!opaque)');
    if (p.message.length === 0 || p.message.length > MAX_MESSAGE_CHARS) {
      throw invalidParams(`Invalid params: message must be 1 to ${MAX_MESSAGE_CHARS} characters`);
    }
    if (!matrix.loggedIn) throw internalError('Internal error: not logged in to Matrix');
    return sendThroughWorkflow(deps, p.room_id, p.message, p.msgtype ?? 'm.text');
  });

  dispatcher.addMethod('matrix.receive', (params) => {
    parseParams(noParams, params);
    const events = store.take(RECEIVE_CONSUMER, RECEIVE_BATCH).map(publicEvent);
    return { events, count: events.length };
  });

  dispatcher.addMethod('matrix.status', (params) => {
    parseParams(noParams, params);
    const s = matrix.status;
    return {
      enabled: s.enabled,
      status: s.status,
      user_id: s.user_id ?? null,
      logged_in: s.logged_in,
    };
  });

  // Push: `matrix.event` notifications on the subscriber's own connection.
  const subscriptions = new Map<string, () => void>();
  dispatcher.addMethod('matrix.subscribe', (params, ctx) => {
    const p = parseParams(subscribeParams, params);
    const id = `sub-${randomUUID()}`;
    const unsubscribe = inbox.subscribe({ roomIds: p.room_ids, types: p.types }, (events) => {
      for (const e of events)
        ctx.notify('matrix.event', { subscription: id, event: publicEvent(e) });
    });
    const release = ctx.keepOpen();
    subscriptions.set(id, () => {
      unsubscribe();
      release();
    });
    ctx.onClose(() => {
      subscriptions.get(id)?.();
      subscriptions.delete(id);
    });
    return { subscription: id };
  });

  dispatcher.addMethod('matrix.unsubscribe', (params) => {
    const { subscription } = parseParams(unsubscribeParams, params);
    const unsubscribe = subscriptions.get(subscription);
    if (!unsubscribe) throw invalidParams(`Invalid params: no subscription ${subscription}`);
    unsubscribe();
    subscriptions.delete(subscription);
    return { subscription, status: 'unsubscribed' };
  });
}
