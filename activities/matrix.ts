import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import type { Logger } from 'pino';
import {
  isPermanentMatrixError,
  messageContent,
  NotLoggedInError,
  type MatrixConnection,
  type RawEvent,
} from '../matrix/client';
import { DECRYPTION_ERROR_KEY, type MatrixE2ee } from '../matrix/crypto';
import type { MatrixInbox } from '../matrix/inbox';
import type { AuditLog } from '../services/audit-log';
import type { IncomingEvent, MatrixStore } from '../services/matrix-store';
import { judge, type TrustPolicy } from '../services/matrix-trust';

export interface MatrixActivityDeps {
  matrix: MatrixConnection;
  store: MatrixStore;
  inbox: MatrixInbox;
  auditLog: AuditLog;
  trust: TrustPolicy;
  rejectNotice: boolean;
  syncTimeoutMs: number;
  /** End-to-end encryption (matrix/crypto.ts); without it encrypted events stay encrypted. */
  e2ee?: Pick<MatrixE2ee, 'onSync' | 'decryptEvents'>;
  log: Logger;
}

export interface SendMatrixMessageArgs {
  roomId: string;
  msgtype: string;
  body: string;
  /** The thread root's event id (m.thread relation, with a reply fallback for older clients). */
  threadId?: string;
  /** Derived from the workflow id: a retry after a timeout or a crash never posts twice. */
  txnId: string;
}

/** Only these reach agents and clients; state and ephemeral events stay in the homeserver. */
const DELIVERED_TYPES = ['m.room.message', 'm.room.encrypted'];

/** The first sync takes no history: a bridge that (re)joins must not flood agents with the past. */
const INITIAL_FILTER = JSON.stringify({
  room: { timeline: { limit: 0 }, state: { lazy_load_members: true }, ephemeral: { types: [] } },
  presence: { types: [] },
  account_data: { types: [] },
});
const FILTER = JSON.stringify({
  room: { timeline: { limit: 100 }, state: { lazy_load_members: true }, ephemeral: { types: [] } },
  presence: { types: [] },
  account_data: { types: [] },
});

/** A device catching up with its own to-device messages (room keys) takes no timeline. */
const DEVICE_FILTER = JSON.stringify({
  room: { timeline: { limit: 0 }, state: { types: [] }, ephemeral: { types: [] } },
  presence: { types: [] },
  account_data: { types: [] },
});
/** To-device catch-up syncs at most, before the owner's timeline sync. */
const DEVICE_CATCH_UP_ROUNDS = 5;
/** How often a sync call tells Temporal its host is alive during the long poll. */
const HEARTBEAT_EVERY_MS = 5_000;

export interface SyncBatchArgs {
  /** The account the sync belongs to: a host logged in as another one refuses the call. */
  userId: string;
  /** Where the account's sync stands (null before its first sync). */
  since: string | null;
  /**
   * Answer at once instead of long-polling: the first call after a failure or a move, so
   * `matrix.status` says connected as soon as the homeserver answers and a backlog comes at once.
   */
  quick?: boolean;
}

export interface SyncBatch {
  next_batch: string;
  events: IncomingEvent[];
}

/**
 * One /sync of the account on this host, for `matrixSyncWorkflow`: its accepted events and its
 * `next_batch` go back to the workflow, which queues them and keeps the position. They are also
 * stored and pushed here at once, so this host's listeners do not wait for the copy every bridge
 * makes of the queue (the store ignores an event it has, so nothing is pushed twice).
 */
export function createMatrixActivities(deps: MatrixActivityDeps) {
  const { matrix, store, inbox, auditLog, log } = deps;

  async function syncMatrixBatch(args: SyncBatchArgs): Promise<SyncBatch> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const beat = setInterval(() => heartbeat(), HEARTBEAT_EVERY_MS);
    heartbeat();
    try {
      if (!matrix.loggedIn) throw new NotLoggedInError();
      if (matrix.userId !== args.userId) {
        throw ApplicationFailure.nonRetryable(
          `this bridge is logged in as ${matrix.userId}, not ${args.userId}`,
          'NotLoggedIn',
        );
      }
      const { since } = args;
      // A sync that was running elsewhere continues here from its position, not from this
      // device's own: first this device's own to-device messages (the room keys sent to it
      // while another host synced), or it could not decrypt what follows.
      if (deps.e2ee && since && store.syncToken() !== since) await catchUpDevice(signal);
      const res = await matrix.sync({
        since: since ?? undefined,
        timeoutMs: since && !args.quick ? deps.syncTimeoutMs : 0,
        filter: since ? FILTER : INITIAL_FILTER,
        signal,
      });
      await deps.e2ee?.onSync(res);
      let accepted = since ? screen(res) : [];
      if (deps.e2ee) accepted = await deps.e2ee.decryptEvents(accepted, DELIVERED_TYPES);
      await joinTrustedInvites(res);
      const fresh = store.commitSync(accepted, res.next_batch);
      store.set('device_position', res.next_batch);
      matrix.markSynced();
      inbox.publish(fresh);
      return { next_batch: res.next_batch, events: accepted.map(forQueue) };
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      if (err instanceof NotLoggedInError) {
        throw ApplicationFailure.nonRetryable(err.message, 'NotLoggedIn');
      }
      if (signal.aborted) {
        matrix.markDisconnected('stopped');
        throw ApplicationFailure.retryable('Matrix sync interrupted', 'SyncInterrupted');
      }
      const reason = err instanceof Error ? err.message : String(err);
      matrix.markDisconnected(reason);
      log.warn({ err: reason }, 'Matrix sync failed; the sync workflow retries');
      throw ApplicationFailure.retryable(`Matrix sync failed: ${reason}`, 'MatrixSyncFailed');
    } finally {
      clearInterval(beat);
    }
  }

  /** This device's own stream, from its own position, for its to-device messages only. */
  async function catchUpDevice(signal: AbortSignal): Promise<void> {
    for (let round = 0; round < DEVICE_CATCH_UP_ROUNDS; round++) {
      const own = store.get('device_position');
      const res = await matrix.sync({
        since: own,
        timeoutMs: 0,
        filter: DEVICE_FILTER,
        signal,
      });
      await deps.e2ee?.onSync(res);
      store.set('device_position', res.next_batch);
      const toDevice = (res as { to_device?: { events?: unknown[] } }).to_device?.events ?? [];
      if (toDevice.length === 0) return;
    }
  }

  /**
   * The timeline of a room the bot has just joined starts with the room's past (up to the
   * filter's limit): like the first sync, a join must not flood agents and clients with history.
   * Only what follows the bot's own join event counts; a profile change (join → join) is no join.
   */
  function sinceOwnJoin(events: RawEvent[]): RawEvent[] {
    for (let i = events.length - 1; i >= 0; i--) {
      const e = events[i]! as RawEvent & { unsigned?: { prev_content?: { membership?: unknown } } };
      if (
        e.type === 'm.room.member' &&
        e.state_key === matrix.userId &&
        e.content?.membership === 'join' &&
        e.unsigned?.prev_content?.membership !== 'join'
      ) {
        return events.slice(i + 1);
      }
    }
    return events;
  }

  /** Zero trust: drops untrusted events (audited) before anything stores or delivers them. */
  function screen(res: {
    rooms?: { join?: Record<string, { timeline?: { events?: RawEvent[] } }> };
  }): IncomingEvent[] {
    const out: IncomingEvent[] = [];
    for (const [roomId, room] of Object.entries(res.rooms?.join ?? {})) {
      for (const e of sinceOwnJoin(room.timeline?.events ?? [])) {
        if (!e.event_id || !DELIVERED_TYPES.includes(e.type) || e.sender === matrix.userId)
          continue;
        const verdict = judge(deps.trust, e.sender, roomId);
        if (!verdict.trusted) {
          auditLog.append({
            event_type: 'security_violation',
            room_id: roomId,
            user_id: e.sender,
            dedupe_key: `matrix-drop/${e.event_id}`,
            details: { reason: verdict.reason, event_id: e.event_id, event_type: e.type },
          });
          log.warn(
            { roomId, sender: e.sender, reason: verdict.reason },
            'dropped an untrusted Matrix event',
          );
          if (deps.rejectNotice && verdict.reason === 'untrusted_sender') {
            void matrix
              .send(
                roomId,
                { msgtype: 'm.notice', body: 'This bridge does not accept messages from you.' },
                `reject-${e.event_id}`,
              )
              .catch(() => undefined);
          }
          continue;
        }
        out.push({
          event_id: e.event_id,
          type: e.type,
          room_id: roomId,
          sender: e.sender,
          content: e.content ?? {},
          origin_server_ts: e.origin_server_ts ?? 0,
        });
      }
    }
    return out;
  }

  async function joinTrustedInvites(res: {
    rooms?: { invite?: Record<string, { invite_state?: { events?: RawEvent[] } }> };
  }): Promise<void> {
    for (const [roomId, invite] of Object.entries(res.rooms?.invite ?? {})) {
      const inviter = invite.invite_state?.events?.find(
        (e) => e.type === 'm.room.member' && e.state_key === matrix.userId,
      )?.sender;
      if (inviter && judge(deps.trust, inviter, roomId).trusted) {
        await matrix
          .join(roomId)
          .catch((err) => log.warn({ err, roomId }, 'could not join a room'));
      }
    }
  }

  async function sendMatrixMessage(args: SendMatrixMessageArgs): Promise<{ event_id: string }> {
    try {
      const content = messageContent(args.msgtype, args.body, args.threadId);
      const eventId = await matrix.send(args.roomId, content, args.txnId);
      return { event_id: eventId };
    } catch (err) {
      if (err instanceof NotLoggedInError)
        throw ApplicationFailure.nonRetryable(err.message, 'NotLoggedIn');
      if (isPermanentMatrixError(err)) {
        throw ApplicationFailure.nonRetryable(
          `the homeserver refused the message: ${(err as Error).message}`,
          'MatrixSendRejected',
        );
      }
      throw err;
    }
  }

  return { syncMatrixBatch, sendMatrixMessage };
}

export type MatrixActivities = ReturnType<typeof createMatrixActivities>;

/**
 * An event as the account's queue in Temporal keeps it. One this bridge could not decrypt keeps
 * only why, and its session: its ciphertext stays out of workflow history (this host's own store
 * and listeners have it whole).
 */
function forQueue(e: IncomingEvent): IncomingEvent {
  if (e.type !== 'm.room.encrypted') return e;
  const { session_id: sessionId, [DECRYPTION_ERROR_KEY]: why } = e.content;
  return { ...e, content: { session_id: sessionId, [DECRYPTION_ERROR_KEY]: why } };
}
