import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import type { Logger } from 'pino';
import {
  isPermanentMatrixError,
  NotLoggedInError,
  type MatrixConnection,
  type RawEvent,
} from '../matrix/client';
import type { MatrixE2ee } from '../matrix/crypto';
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

/**
 * The Matrix sync loop, as a long-running heartbeating activity owned by `matrixSyncWorkflow`,
 * and the send activity. The sync position is committed with each batch's events in the
 * MatrixStore, so a restart resumes exactly after the last committed batch.
 */
export function createMatrixActivities(deps: MatrixActivityDeps) {
  const { matrix, store, inbox, auditLog, log } = deps;

  async function runMatrixSync(): Promise<void> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    let backoffMs = 500;
    // The first sync of an attempt, and the first after a failure, does not long-poll: it
    // catches up at once, so `matrix.status` says connected as soon as the homeserver answers
    // (not a whole sync timeout later) and a backlog is delivered without waiting.
    let catchUp = true;
    while (!signal.aborted) {
      heartbeat({ next_batch: store.syncToken() ?? null });
      try {
        const since = store.syncToken();
        const res = await matrix.sync({
          since,
          timeoutMs: since && !catchUp ? deps.syncTimeoutMs : 0,
          filter: since ? FILTER : INITIAL_FILTER,
          signal,
        });
        await deps.e2ee?.onSync(res);
        let accepted = since ? screen(res) : [];
        if (deps.e2ee) accepted = await deps.e2ee.decryptEvents(accepted, DELIVERED_TYPES);
        await joinTrustedInvites(res);
        const fresh = store.commitSync(accepted, res.next_batch);
        matrix.markSynced();
        catchUp = false;
        backoffMs = 500;
        inbox.publish(fresh);
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof NotLoggedInError) {
          throw ApplicationFailure.nonRetryable(err.message, 'NotLoggedIn');
        }
        const reason = err instanceof Error ? err.message : String(err);
        matrix.markDisconnected(reason);
        catchUp = true;
        log.warn({ err: reason, retryInMs: backoffMs }, 'Matrix sync failed; retrying');
        await sleepAbortable(backoffMs, signal);
        backoffMs = Math.min(backoffMs * 2, 30_000);
      }
    }
    matrix.markDisconnected('stopped');
    // Interrupted (worker shutdown, cancellation): never "complete", so the workflow keeps
    // owning the loop and Temporal runs it again when a worker is back.
    throw ApplicationFailure.retryable('Matrix sync interrupted', 'SyncInterrupted');
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
      const content: Record<string, unknown> = { msgtype: args.msgtype, body: args.body };
      if (args.threadId !== undefined) {
        content['m.relates_to'] = {
          rel_type: 'm.thread',
          event_id: args.threadId,
          is_falling_back: true,
          'm.in_reply_to': { event_id: args.threadId },
        };
      }
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

  return { runMatrixSync, sendMatrixMessage };
}

export type MatrixActivities = ReturnType<typeof createMatrixActivities>;

function sleepAbortable(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
