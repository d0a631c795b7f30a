/**
 * The bridge's outbound link to its relay (`relay.link`; docs/devices.md "The relay"): a bridge
 * behind NAT dials `wss://<relay>/api/relay/bridge` with its own credential and serves, over that
 * one socket, the device traffic the relay forwards (frames: formats/relay-frames.ts). Nothing
 * listens on the bridge's machine for it.
 *
 * The relay decides nothing: a pairing or revocation it forwards is answered by the same code as
 * on the gateway (devices/http.ts), a device socket it holds is one DeviceConversation, checked
 * by the same device service. The bridge pings every 15 s and reconnects when a pong is 30 s
 * late or the socket drops, after 1 s doubling to 30 s, each wait drawn between half and all of
 * it (so many bridges do not come back in step).
 */
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { refusalHttpStatus } from '../formats/device-frames';
import {
  parseRelayToBridge,
  RELAY_HEARTBEAT_MS,
  type BridgeToRelay,
  type RelayToBridge,
} from '../formats/relay-frames';
import { badRequest } from '../gateway/protocol';
import { DeviceConversation } from './conversation';
import {
  errorAnswer,
  pairCompleteAnswer,
  revokeAnswer,
  type DeviceHttpAnswer,
  type DeviceHttpOptions,
} from './http';
import type { DeviceService } from './service';

const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

export interface RelayLinkOptions {
  /** ws:// (loopback only) or wss:// base URL of the relay, its link path included. */
  url: string;
  credential: string;
  service: DeviceService;
  http: Pick<DeviceHttpOptions, 'service' | 'registry'>;
  log: Logger;
  heartbeatMs?: number;
}

export interface RelayLinkStatus {
  url: string;
  connected: boolean;
  connectedSince?: string;
  reconnects: number;
  lastError?: string;
}

export class RelayLink {
  private ws: WebSocket | undefined;
  private readonly conversations = new Map<string, DeviceConversation>();
  private stopped = false;
  private attempts = 0;
  private reconnects = 0;
  private connectedSince: Date | undefined;
  private lastError: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private lastPong = 0;

  constructor(private readonly options: RelayLinkOptions) {}

  start(): void {
    this.stopped = false;
    this.dial();
  }

  /** Closes the link for good (the bridge stops, or `relay.unlink`). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.dropConversations();
    this.ws?.close(1001, 'the bridge is stopping');
    this.ws = undefined;
    this.connectedSince = undefined;
  }

  status(): RelayLinkStatus {
    return {
      url: this.options.url,
      connected: this.connectedSince !== undefined,
      ...(this.connectedSince ? { connectedSince: this.connectedSince.toISOString() } : {}),
      reconnects: this.reconnects,
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  private dial(): void {
    const { url, credential, log } = this.options;
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${credential}` },
      handshakeTimeout: 10_000,
      maxPayload: 4 * 1024 * 1024,
    });
    this.ws = ws;
    ws.on('unexpected-response', (_req, res) => {
      this.lastError = `the relay refused the link: HTTP ${res.statusCode}`;
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      this.attempts = 0;
      this.connectedSince = new Date();
      this.lastError = undefined;
      this.lastPong = Date.now();
      log.info({ url }, 'relay link up');
      const every = this.options.heartbeatMs ?? RELAY_HEARTBEAT_MS;
      this.heartbeat = setInterval(() => {
        if (Date.now() - this.lastPong > 2 * every) {
          this.lastError = 'the relay stopped answering';
          ws.terminate();
          return;
        }
        this.send({ type: 'ping' });
      }, every);
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const frame = parseRelayToBridge(data.toString());
      if (!frame) {
        log.warn('a malformed frame from the relay was dropped');
        return;
      }
      this.handle(frame);
    });
    ws.on('error', (err) => {
      this.lastError = err.message;
    });
    ws.on('close', () => {
      clearInterval(this.heartbeat);
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (this.connectedSince) log.warn({ url, err: this.lastError }, 'relay link down');
      this.connectedSince = undefined;
      // The relay closes its device sockets when the link drops; forget them here too.
      this.dropConversations();
      if (!this.stopped) this.scheduleRetry();
    });
  }

  private scheduleRetry(): void {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempts);
    this.attempts += 1;
    this.reconnects += 1;
    const wait = ceiling / 2 + Math.random() * (ceiling / 2);
    this.retryTimer = setTimeout(() => this.dial(), wait);
  }

  private handle(frame: RelayToBridge): void {
    switch (frame.type) {
      case 'pong':
        this.lastPong = Date.now();
        return;
      case 'http': {
        const answer = this.answerHttp(frame);
        this.send({
          type: 'response',
          id: frame.id,
          status: answer.status,
          headers: { 'content-type': 'application/json', ...answer.headers },
          body: JSON.stringify(answer.body),
        });
        return;
      }
      case 'open':
        return this.open(frame.conn, frame.address, frame.token);
      case 'frame':
        this.conversations.get(frame.conn)?.onText(frame.text);
        return;
      case 'gone': {
        const c = this.conversations.get(frame.conn);
        this.conversations.delete(frame.conn);
        c?.onClosed();
        return;
      }
    }
  }

  private answerHttp(frame: Extract<RelayToBridge, { type: 'http' }>): DeviceHttpAnswer {
    let body: unknown;
    try {
      body = JSON.parse(frame.body);
    } catch {
      return errorAnswer(badRequest('the body is not valid JSON'));
    }
    if (frame.path === '/api/bridge/pair/complete') {
      return pairCompleteAnswer(this.options.http, body, frame.address);
    }
    return revokeAnswer(this.options.http, body, frame.authorization, () => {
      throw badRequest(
        'through the relay a device revokes itself only (Authorization: Bearer <its token>)',
      );
    });
  }

  /** A device socket the relay holds; with a header token, the relay waits for `admit`. */
  private open(conn: string, address: string, token: string | undefined): void {
    const { service, log } = this.options;
    if (token !== undefined) {
      const refusal = service.refusal(token);
      if (refusal) {
        this.send({
          type: 'admit',
          conn,
          ok: false,
          status: refusalHttpStatus(refusal.closeCode),
          message: refusal.message,
        });
        return;
      }
      this.send({ type: 'admit', conn, ok: true });
    }
    const conversation = new DeviceConversation(
      service,
      {
        send: (text) => this.send({ type: 'send', conn, text }),
        close: (code, reason) => {
          this.send({ type: 'close', conn, code, reason: reason.slice(0, 120) });
          if (this.conversations.get(conn) === conversation) {
            this.conversations.delete(conn);
            conversation.onClosed();
          }
        },
      },
      address,
      log,
    );
    this.conversations.set(conn, conversation);
    conversation.start(token);
  }

  private dropConversations(): void {
    for (const c of this.conversations.values()) c.onClosed();
    this.conversations.clear();
  }

  private send(frame: BridgeToRelay): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }
}
