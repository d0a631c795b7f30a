import { randomUUID } from 'node:crypto';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure, WorkflowIdReusePolicy } from '@temporalio/common';
import { z } from 'zod';
import type { Logger } from 'pino';
import type { MatrixStore } from '../../services/matrix-store';
import { isPermanentMatrixError, messageContent, type MatrixConnection } from '../../matrix/client';
import { publicEvent, type MatrixInbox } from '../../matrix/inbox';
import { MatrixHttpError } from '../../matrix/http';
import {
  ensureMatrixSync,
  takeMatrixEvents,
  type MatrixSyncSettings,
} from '../../sessions/matrix-sync';
import type { MatrixSendInput } from '../../workflows/definitions';
import { isRoomId } from '../../services/matrix-trust';
import type { RpcDispatcher } from '../dispatcher';
import { internalError, invalidParams } from '../errors';
import { noParams, parseParams } from '../params';
import type { matrixSendWorkflow } from '../../workflows/matrix-send';

export interface MatrixMethodsDeps {
  matrix: MatrixConnection;
  inbox: MatrixInbox;
  client: Client;
  taskQueue: string;
  hostId: string;
  /** This bridge's copy of the account's queue, which `matrix.receive` reads. */
  store: MatrixStore;
  /** Brings the copy up to a queue seq (the replica's `copyUpTo`). */
  copyQueue: (userId: string, upTo: number) => Promise<void>;
  /** How this deployment runs the account's sync (`matrix.login` joins it). */
  sync: MatrixSyncSettings;
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

const isAlreadyStarted = (err: unknown) => err instanceof WorkflowExecutionAlreadyStartedError;

/**
 * How long a send's workflow waits before it starts, when the direct send below may still
 * deliver the message: a bridge killed mid-send leaves the workflow to deliver it this long
 * later; a send that landed terminates it before it ever runs.
 */
export const SEND_FALLBACK_DELAY_MS = 10_000;

/**
 * Sends a message exactly once, with its event id as the delivery receipt. Durable through
 * `matrixSendWorkflow`, whose id is the transaction id (the homeserver keeps one event per
 * device and transaction id, however often it is sent). When this bridge is logged in it does
 * not wait for the workflow: it starts it with a delay and, at the same time, sends the message
 * itself with the same transaction id. The direct send answers at the homeserver's pace, and the
 * delayed workflow is terminated without having run. If the direct send fails for a reason a
 * retry may cure, or the bridge dies before it answered, the workflow delivers the message (the
 * same transaction id: never twice); a refusal is the answer.
 */
export async function sendThroughWorkflow(
  deps: Pick<MatrixMethodsDeps, 'client' | 'taskQueue' | 'hostId'> & {
    matrix?: MatrixConnection;
  },
  roomId: string,
  body: string,
  msgtype: string,
  /**
   * Names the send: the same key always means the same message, so a caller that retries after
   * losing the answer (an agent whose bridge restarted) gets the first send's receipt.
   */
  idempotencyKey?: string,
  /** The thread root's event id, to post into that thread. */
  threadId?: string,
): Promise<{ event_id: string; room_id: string }> {
  const input: MatrixSendInput = {
    hostId: deps.hostId,
    roomId,
    msgtype,
    body,
    ...(threadId === undefined ? {} : { threadId }),
  };
  const workflowId = idempotencyKey
    ? `matrix-send-key-${idempotencyKey}`
    : `matrix-send-${randomUUID()}`;
  const options = {
    taskQueue: deps.taskQueue,
    workflowId,
    args: [input] as [MatrixSendInput],
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
  };
  const matrix = deps.matrix;
  try {
    if (matrix?.loggedIn) {
      const intent = deps.client.workflow.start<typeof matrixSendWorkflow>('matrixSendWorkflow', {
        ...options,
        startDelay: SEND_FALLBACK_DELAY_MS,
      });
      intent.catch(() => undefined); // looked at below, when it matters
      const direct = await matrix
        .send(roomId, messageContent(msgtype, body, threadId), workflowId)
        .then(
          (eventId) => ({ eventId, err: undefined }),
          (err: unknown) => ({ eventId: undefined, err }),
        );
      const refused = direct.err !== undefined && isPermanentMatrixError(direct.err);
      if (direct.eventId !== undefined || refused) {
        // Nothing left for the workflow: terminated once its start is in, not awaited (a key
        // sent before has a run of its own, left alone). Should that fail, the workflow runs
        // after its delay and sends the same transaction id again, which lands nothing new.
        const why = refused ? 'refused by the homeserver' : `delivered: ${direct.eventId}`;
        void intent.then((run) => run.terminate(why)).catch(() => undefined);
        if (direct.eventId !== undefined) return { event_id: direct.eventId, room_id: roomId };
        throw ApplicationFailure.nonRetryable(
          `the homeserver refused the message: ${(direct.err as Error).message}`,
          'MatrixSendRejected',
        );
      }
      // Not delivered: the workflow's, with the same transaction id.
      try {
        return await (await intent).result();
      } catch (err) {
        if (!isAlreadyStarted(err)) throw err;
      }
    } else {
      try {
        return await deps.client.workflow.execute<typeof matrixSendWorkflow>(
          'matrixSendWorkflow',
          options,
        );
      } catch (err) {
        if (!isAlreadyStarted(err)) throw err;
      }
    }
    // The key was used before: that send's receipt.
    return await deps.client.workflow.getHandle(workflowId).result();
  } catch (err) {
    if (err instanceof ApplicationFailure && err.type === 'MatrixSendRejected') {
      throw internalError(`Internal error: send failed: ${err.message}`);
    }
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
  const { matrix, inbox } = deps;

  dispatcher.addMethod('matrix.login', async (params) => {
    const { username, password } = parseParams(loginParams, params);
    try {
      const session = await matrix.login(username, password);
      await ensureMatrixSync(deps.client, {
        ...deps.sync,
        userId: session.userId,
        hostId: deps.hostId,
        log: deps.log,
      });
      return { status: 'logged_in', user_id: session.userId };
    } catch (err) {
      if (err instanceof MatrixHttpError && (err.httpStatus === 403 || err.httpStatus === 401)) {
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

  // The span taken is the account's, in Temporal, not this bridge's: any bridge logged in as
  // the account answers, and an event taken through one is not taken again through another.
  // The events are read from this bridge's copy of the queue, brought up to the span first.
  dispatcher.addMethod('matrix.receive', async (params) => {
    parseParams(noParams, params);
    const userId = matrix.userId;
    if (!userId) return { events: [], count: 0 };
    try {
      const { after, upTo } = await takeMatrixEvents(
        deps.client,
        userId,
        RECEIVE_CONSUMER,
        RECEIVE_BATCH,
      );
      if (upTo > after) await deps.copyQueue(userId, upTo);
      const events = deps.store.queuedEvents(userId, after, upTo).map(publicEvent);
      return { events, count: events.length };
    } catch (err) {
      deps.log.warn(
        { err: (err as Error).message },
        'matrix.receive: the sync workflow did not answer',
      );
      throw internalError('Internal error: Matrix events unavailable (Temporal did not answer)');
    }
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
