/**
 * `chat.send`: a remote client's message into a Matrix room (the spec's channel is a room),
 * through `matrixSendWorkflow`, so it is posted exactly once however often the bridge restarts.
 *
 * Three policies stand between the client and the room, in this order:
 * 1. the room must be one the bridge trusts (`matrix.trusted_rooms`, zero trust when empty):
 *    the gateway is not a way to post into any room the bridge's account has joined;
 * 2. a `proactive` send is refused (FORBIDDEN) while incident containment has disabled them;
 * 3. pacing: each room takes a bounded number of sends a minute; a send over it is not an error
 *    but `{delivered: false, reason: "paced", retryAfterMs}`, unless it is `urgent`.
 */
import { z } from 'zod';
import { isRoomId } from '../../services/matrix-trust';
import { parseGatewayParams } from '../params';
import { GatewayError, badRequest, type GatewayMethods } from '../protocol';

/** The longest text one `chat.send` takes (the socket API's `matrix.send` limit). */
export const MAX_CHAT_CHARS = 32 * 1024;

const sendParams = z.strictObject({
  channelId: z.string(),
  text: z.string(),
  threadId: z.string().min(1).max(255).optional(),
  proactive: z.boolean().optional(),
  urgent: z.boolean().optional(),
  isNewThread: z.boolean().optional(),
  /** Names the send: a retry with the same key (same caller) gets the first receipt, no second post. */
  idempotencyKey: z
    .string()
    .regex(
      /^[A-Za-z0-9._-]{1,128}$/,
      'must be 1 to 128 letters, digits, dots, dashes or underscores',
    )
    .optional(),
});

export type ChatSendResult =
  | { delivered: true; channelId: string; eventId: string }
  | { delivered: false; reason: 'paced'; retryAfterMs: number };

/** Which sends a room may take now: a sliding window per room. */
export class ChannelPacer {
  private readonly sent = new Map<string, number[]>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts a send to `channel` and returns 0, or returns how many ms until one is allowed. */
  take(channel: string): number {
    const now = this.now();
    const recent = (this.sent.get(channel) ?? []).filter((t) => t > now - 60_000);
    if (recent.length >= this.perMinute) {
      this.sent.set(channel, recent);
      return recent[0]! + 60_000 - now;
    }
    recent.push(now);
    this.sent.set(channel, recent);
    return 0;
  }
}

export interface ChatMethodsDeps {
  /** Whether the bridge is logged in to Matrix (otherwise nothing can be sent). */
  matrixReady(): boolean;
  /** Whether remote clients may post into this room (the bridge's zero-trust room list). */
  roomTrusted(roomId: string): boolean;
  /** Whether incident containment has disabled proactive sends (durable, see incident.bundle). */
  proactiveDisabled(): Promise<boolean>;
  /** Writes a policy event (a refused proactive send) into the incident's policy log. */
  recordPolicy?(event: { kind: string; detail: string }): void;
  pacer: ChannelPacer;
  /** Sends exactly once through matrixSendWorkflow. */
  send(
    roomId: string,
    body: string,
    idempotencyKey?: string,
    threadId?: string,
  ): Promise<{ event_id: string; room_id: string }>;
}

export function registerChatMethods(methods: GatewayMethods, deps: ChatMethodsDeps): void {
  methods.add('chat.send', async (params, caller): Promise<ChatSendResult> => {
    const p = parseGatewayParams(sendParams, params);
    if (!isRoomId(p.channelId)) {
      throw badRequest('channelId must be a Matrix room id (!opaque:server)');
    }
    if (p.text.length === 0 || p.text.length > MAX_CHAT_CHARS) {
      throw badRequest(`text must be 1 to ${MAX_CHAT_CHARS} characters`);
    }
    if (!deps.roomTrusted(p.channelId)) {
      throw new GatewayError(
        'FORBIDDEN',
        'the bridge does not post into this room: it is not one of matrix.trusted_rooms',
      );
    }
    if (p.proactive === true && (await deps.proactiveDisabled())) {
      deps.recordPolicy?.({
        kind: 'proactive_send_refused',
        detail: `${caller.subject} → ${p.channelId}`,
      });
      throw new GatewayError(
        'FORBIDDEN',
        'proactive sends are disabled by incident containment until an admin lifts it',
      );
    }
    if (!deps.matrixReady()) {
      throw new GatewayError('RUN_UNAVAILABLE', 'the bridge is not logged in to Matrix');
    }
    if (p.urgent !== true) {
      const retryAfterMs = deps.pacer.take(p.channelId);
      if (retryAfterMs > 0) return { delivered: false, reason: 'paced', retryAfterMs };
    }
    try {
      const sent = await deps.send(
        p.channelId,
        p.text,
        p.idempotencyKey === undefined ? undefined : `gw-${caller.subject}-${p.idempotencyKey}`,
        p.threadId,
      );
      return { delivered: true, channelId: sent.room_id, eventId: sent.event_id };
    } catch (err) {
      const reason = err instanceof Error ? err.message.replace(/^Internal error: /, '') : '';
      throw new GatewayError('INTERNAL', `the message was not sent: ${reason || 'send failed'}`);
    }
  });
}
