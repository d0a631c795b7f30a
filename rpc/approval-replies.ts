/**
 * Operators answer approval requests in the admin room (`matrix.admin_room`): a message
 * "approve <id> [ttl] [uses]" or "deny <id> [reason]" (formats/approval-reply.ts) from one of
 * `approvals.admins` resolves the request through its workflow, exactly as `approval.resolve`
 * does over the gateway. A reply from anyone else is ignored and audited; anything that is not a
 * reply is ordinary conversation and left alone.
 *
 * The room's events come from the bridge's durable Matrix store through its own consumer
 * cursor: live through the inbox, and on start whatever arrived while no watcher ran (a reply
 * stored just before a crash is still answered). The cursor moves past an event only once it is
 * handled, and handling is idempotent: the workflow accepts one resolution, and the bridge's
 * answers in the room are sends keyed by the reply's event id.
 */
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { parseApprovalReply, type ApprovalReply } from '../services/approval-reply';
import type { MatrixInbox } from '../matrix/inbox';
import type { MatrixStore, StoredEvent } from '../services/matrix-store';
import { ApprovalError, resolveApproval } from '../sessions/approvals';
import type { IncidentControl } from '../sessions/incident';

const CONSUMER = 'approval-replies';
const BATCH = 100;

export interface ApprovalReplyDeps {
  store: MatrixStore;
  inbox: MatrixInbox;
  client: Client;
  adminRoomId: string;
  /** Matrix user ids whose replies count. */
  admins: readonly string[];
  incident: Pick<IncidentControl, 'toolIsolationEnabled' | 'log'>;
  audit(entry: {
    event_type: string;
    user_id?: string;
    room_id?: string;
    details: Record<string, unknown>;
  }): void;
  /** Answers in the room, exactly once per key (matrixSendWorkflow). */
  send(roomId: string, body: string, msgtype: string, key: string): Promise<unknown>;
  log: Logger;
}

export class ApprovalReplyWatcher {
  private unsubscribe?: () => void;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly deps: ApprovalReplyDeps) {}

  /** Handles what arrived while no watcher ran, then every new event of the admin room. */
  start(): void {
    // A first start sees only what comes next, never the room's past.
    this.deps.store.startConsumerAtEnd(CONSUMER);
    this.unsubscribe = this.deps.inbox.subscribe({ roomIds: [this.deps.adminRoomId] }, () =>
      this.drain(),
    );
    this.drain();
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    return this.chain;
  }

  /** Resolves once everything queued so far is handled (tests). */
  idle(): Promise<void> {
    return this.chain;
  }

  private drain(): void {
    this.chain = this.chain.then(async () => {
      while (!this.stopped) {
        const events = this.deps.store.pending(CONSUMER, {
          roomId: this.deps.adminRoomId,
          limit: BATCH,
        });
        if (events.length === 0) return;
        for (const e of events) {
          if (this.stopped) return;
          try {
            await this.handle(e);
          } catch (err) {
            // Temporal unreachable: leave the cursor; the next event or start retries it.
            this.deps.log.warn({ err: (err as Error).message }, 'approval reply not handled yet');
            return;
          }
          this.deps.store.advance(CONSUMER, e.seq);
        }
      }
    });
  }

  private async handle(e: StoredEvent): Promise<void> {
    if (e.type !== 'm.room.message' || typeof e.content.body !== 'string') return;
    const reply = parseApprovalReply(e.content.body);
    if (!reply) return;
    const { audit, adminRoomId } = this.deps;
    if (!this.deps.admins.includes(e.sender)) {
      audit({
        event_type: 'approval_reply_ignored',
        user_id: e.sender,
        room_id: adminRoomId,
        details: { request_id: reply.requestId, decision: reply.decision, event_id: e.event_id },
      });
      this.deps.log.warn(
        { sender: e.sender, requestId: reply.requestId },
        'approval reply from a non-admin ignored',
      );
      return;
    }
    const answer = await this.resolve(e, reply);
    if (answer) await this.tell(e, answer);
  }

  /** Resolves the request; what the room should be told when it could not be (else undefined). */
  private async resolve(e: StoredEvent, reply: ApprovalReply): Promise<string | undefined> {
    if (reply.decision === 'approve' && (await this.deps.incident.toolIsolationEnabled())) {
      await this.deps.incident.log({
        kind: 'grant_refused',
        detail: { request_id: reply.requestId, by: `matrix:${e.sender}` },
      });
      return `Approval ${reply.requestId} not granted: incident mode isolates tools until it is lifted.`;
    }
    try {
      // The workflow posts the confirmation and writes the audit entry.
      const { requestId, ...resolution } = reply;
      await resolveApproval(this.deps.client, requestId, {
        ...resolution,
        by: `matrix:${e.sender}`,
      });
      return undefined;
    } catch (err) {
      if (err instanceof ApprovalError && err.code !== 'unavailable') {
        return `Approval ${reply.requestId}: ${err.message}.`;
      }
      throw err;
    }
  }

  private async tell(e: StoredEvent, body: string): Promise<void> {
    await this.deps
      .send(this.deps.adminRoomId, body, 'm.notice', `approval-reply-${keyOf(e.event_id)}`)
      .catch((err: Error) => this.deps.log.warn({ err: err.message }, 'approval answer not sent'));
  }
}

/** Event ids carry `$` and `:`; send keys take a narrower alphabet. */
const keyOf = (eventId: string) => eventId.replace(/[^A-Za-z0-9._-]/g, '_');
