/**
 * One signaling WebSocket (media/signaling-server.ts accepts it): unauthenticated until its
 * `hello` token is verified, then bound to that one session for its life — it forwards the
 * client's messages to the backend for that session only and sends back only that session's.
 */
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { verifyCallToken } from '../services/call-tokens';
import {
  MessageRateLimiter,
  SignalingCloseCode as Close,
  SignalingErrorCode as Code,
  isEndOfCandidates,
  parseClientMessage,
  type SignalingErrorCode,
} from './signaling-messages';
import type {
  ClientMessage,
  ServerMessage,
  SignalingAuditEntry,
  SignalingBackend,
} from './signaling-types';

/** What one connection needs of its server's options. */
export interface ConnectionOptions {
  tokenKey: Buffer;
  backend: SignalingBackend;
  messagesPerSecond: number;
  helloTimeoutMs?: number;
  audit(entry: SignalingAuditEntry): void;
  log: Logger;
}

export interface ConnectionEvents {
  authenticated(conn: SignalingConnection, sessionId: string): void;
  closed(conn: SignalingConnection): void;
}

/** One WebSocket: unauthenticated until `hello`, then bound to one session for its life. */
export class SignalingConnection {
  sessionId?: string;
  private roomId?: string;
  private detach?: () => void;
  private alive = true;
  private helloSeen = false;
  private closing = false;
  private readonly limiter: MessageRateLimiter;
  private readonly helloTimer: NodeJS.Timeout;
  /** Messages are handled one at a time, in order: a candidate must not overtake its offer. */
  private queue: Promise<void> = Promise.resolve();
  private log: Logger;

  constructor(
    private readonly ws: WebSocket,
    private readonly remoteAddress: string | undefined,
    private readonly options: ConnectionOptions,
    private readonly events: ConnectionEvents,
  ) {
    this.log = options.log.child({ remoteAddress });
    this.limiter = new MessageRateLimiter(options.messagesPerSecond);
    this.helloTimer = setTimeout(
      () => this.fail(Code.HelloTimeout, 'no hello in time', Close.HelloTimeout),
      options.helloTimeoutMs ?? 5000,
    );
    ws.on('pong', () => (this.alive = true));
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('error', (err) => {
      // ws reports an oversized frame here and closes with 1009 itself.
      this.log.debug({ err: err.message }, 'signaling socket error');
    });
    ws.on('close', (code) => this.onClose(code));
  }

  heartbeat(): void {
    if (!this.alive) {
      this.log.info({ sessionId: this.sessionId }, 'signaling socket missed a pong; terminated');
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  /** Sends `error` and closes with `closeCode`. */
  fail(code: SignalingErrorCode, message: string, closeCode: number): void {
    this.sendError(code, message);
    this.close(closeCode, code);
  }

  terminate(): void {
    this.ws.terminate();
  }

  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.helloTimer);
    this.ws.close(code, reason);
    // A peer that never completes the closing handshake must not hold the socket open.
    setTimeout(() => this.ws.terminate(), 5000).unref();
  }

  private receive(data: RawData, isBinary: boolean): void {
    if (this.closing) return;
    switch (this.limiter.take()) {
      case 'limited':
        this.sendError(Code.RateLimited, 'too many messages; this one was dropped');
        return;
      case 'flood':
        this.audit({ reason: 'message_flood', limit_per_second: this.options.messagesPerSecond });
        this.close(Close.PolicyViolation, 'rate limit exceeded');
        return;
      case 'ok':
        break;
    }
    if (isBinary) return this.sendError(Code.BadMessage, 'messages are JSON text');
    const parsed = parseClientMessage(rawText(data));
    if (!this.helloSeen) {
      // Before authentication only a well-formed hello is worth an answer. Messages right
      // behind the hello queue up and run once it is verified (or are dropped if it fails).
      if (!parsed.ok || parsed.message.type !== 'hello') {
        return this.fail(Code.Unauthorized, 'the first message must be hello', Close.Unauthorized);
      }
      this.helloSeen = true;
    } else if (!parsed.ok) {
      return this.sendError(Code.BadMessage, parsed.problem);
    }
    const message = parsed.message;
    this.queue = this.queue
      .then(() => (this.closing ? undefined : this.handle(message)))
      .catch((err: unknown) => this.log.error({ err }, 'signaling handler failed'));
  }

  private async handle(message: ClientMessage): Promise<void> {
    if (message.type === 'hello') {
      if (this.sessionId) return this.sendError(Code.BadMessage, 'already authenticated');
      return this.hello(message.session_id, message.payload.token);
    }
    const sessionId = this.sessionId!;
    if (message.session_id !== sessionId) {
      this.audit({ reason: 'wrong_session', claimed_session_id: message.session_id });
      return this.sendError(Code.WrongSession, 'this socket speaks for another session');
    }
    const { backend } = this.options;
    switch (message.type) {
      case 'offer': {
        const sdp = await this.negotiate('offer', () =>
          backend.offer(sessionId, message.payload.sdp),
        );
        if (sdp !== undefined)
          this.send({ type: 'answer', session_id: sessionId, payload: { sdp } });
        return;
      }
      case 'answer':
        await this.negotiate('answer', () => backend.answer(sessionId, message.payload.sdp));
        return;
      case 'ice':
        if (isEndOfCandidates(message)) return; // werift needs no end-of-candidates signal
        await this.negotiate('ice', () => backend.addIceCandidate(sessionId, message.payload!));
        return;
      case 'bye':
        try {
          await backend.hangup(sessionId, message.payload.reason ?? 'caller hung up');
        } catch (err) {
          this.log.warn({ err }, 'hangup failed');
        }
        this.close(Close.Normal, 'bye');
        return;
    }
  }

  private async hello(sessionId: string, token: string): Promise<void> {
    const verdict = verifyCallToken(this.options.tokenKey, token, { sessionId });
    if (!verdict.valid) {
      // Never the token itself: the claimed session and why it failed are enough to trace it.
      this.audit({ reason: 'invalid_call_token', token_problem: verdict.reason }, sessionId);
      this.log.warn({ sessionId, problem: verdict.reason }, 'signaling hello refused');
      return verdict.reason === 'expired'
        ? this.fail(Code.TokenExpired, 'the call token has expired', Close.Unauthorized)
        : this.fail(
            Code.Unauthorized,
            'the call token is not valid for this session',
            Close.Unauthorized,
          );
    }
    if (!this.options.backend.has(sessionId)) {
      return this.fail(Code.SessionNotFound, 'no such call on this bridge', Close.NotFound);
    }
    clearTimeout(this.helloTimer);
    this.sessionId = sessionId;
    this.roomId = verdict.claims.room_id;
    this.log = this.log.child({ sessionId });
    this.events.authenticated(this, sessionId);
    // The backend sends the current state at once through the sink: that is the hello's answer.
    this.detach = this.options.backend.attach(sessionId, (out) => this.fromBackend(out));
  }

  private fromBackend(message: ServerMessage): void {
    // The sink is this session's own; a message for another session is a bug, never forwarded.
    if (message.session_id !== this.sessionId) {
      this.log.error({ type: message.type }, 'backend sent another session’s message; dropped');
      return;
    }
    this.send(message);
    if (message.type === 'bye') this.close(Close.Normal, 'call ended');
  }

  /** Runs one backend step; a failure becomes `negotiation_failed` (details stay in the log). */
  private async negotiate<T>(what: string, step: () => Promise<T>): Promise<T | undefined> {
    try {
      return await step();
    } catch (err) {
      this.log.warn({ err, what }, 'signaling step failed');
      this.sendError(Code.NegotiationFailed, `the bridge could not apply the ${what}`);
      return undefined;
    }
  }

  private sendError(code: SignalingErrorCode, message: string): void {
    this.send({ type: 'error', session_id: this.sessionId ?? null, payload: { code, message } });
  }

  private send(message: ServerMessage): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(message));
  }

  private audit(details: Record<string, unknown>, claimedSessionId?: string): void {
    const sessionId = this.sessionId ?? claimedSessionId;
    this.options.audit({
      event_type: 'security_violation',
      ...(sessionId !== undefined && { session_id: sessionId }),
      ...(this.roomId !== undefined && { room_id: this.roomId }),
      details: { ...details, remote_address: this.remoteAddress },
    });
  }

  private onClose(code: number): void {
    this.closing = true;
    clearTimeout(this.helloTimer);
    this.detach?.();
    this.detach = undefined;
    this.log.debug({ code }, 'signaling socket closed');
    this.events.closed(this);
  }
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
