/**
 * The device WebSocket, `/api/bridge/ws` on the gateway (frames: formats/device-frames.ts).
 *
 * Authentication: `Authorization: Bearer acdv_…` on the upgrade (checked before upgrading: an
 * unknown token gets 401, a revoked device 403, no WebSocket at all), or, for browsers that
 * cannot set the header, `{type: "auth", token}` as the first message within 10 s (at most 8
 * such sockets waiting per address). A token in the URL is refused before the upgrade (400): a
 * leaked URL must not leak a token.
 *
 * Liveness: a WebSocket ping every `devices.ping_interval` (15 s); a device that has not
 * answered the previous one is dropped. A revoked or rotated device's connections are closed
 * with 4403 at once (devices/service.ts), and every invoke re-checks its token anyway.
 *
 * Invokes run concurrently (up to `MAX_IN_FLIGHT` per connection; more are answered
 * RATE_LIMITED), each answered with a result frame carrying its id.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  DEVICE_AUTH_TIMEOUT_MS,
  DEVICE_CLOSE,
  isFrameProblem,
  parseDeviceFrame,
  type DeviceFrameId,
} from '../formats/device-frames';
import { DEVICE_TOKEN_PREFIX } from '../services/device-registry';
import { normalizeAddress } from '../gateway/address';
import { GatewayError } from '../gateway/protocol';
import { DeviceRefusal, type DeviceService, type DeviceSession } from './service';

export const DEVICE_WS_PATH = '/api/bridge/ws';
/** A device message is a request, not a file. */
const MAX_FRAME_BYTES = 1024 * 1024;
const MAX_IN_FLIGHT = 16;
const MAX_UNAUTHENTICATED_PER_ADDRESS = 8;
/** A closing connection that does not finish its close handshake is cut after this. */
const CLOSE_GRACE_MS = 1_000;
const DEVICE_BEARER = new RegExp(`^Bearer (${DEVICE_TOKEN_PREFIX}[A-Za-z0-9_-]{1,120})$`);

export interface DeviceSocketOptions {
  service: DeviceService;
  pingIntervalMs: number;
  log: Logger;
}

export class DeviceSocketServer {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  private readonly pingTimer: NodeJS.Timeout;
  private readonly alive = new WeakMap<WebSocket, boolean>();
  /** address → sockets upgraded without a header, not yet authenticated. */
  private readonly unauthenticated = new Map<string, number>();

  constructor(private readonly options: DeviceSocketOptions) {
    this.pingTimer = setInterval(() => this.pingAll(), options.pingIntervalMs);
    this.pingTimer.unref();
  }

  /** The gateway's `upgrade` handler for the device path; other paths are 404. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const pathname = q >= 0 ? url.slice(0, q) : url;
    if (pathname !== DEVICE_WS_PATH) return refuseUpgrade(socket, 404, 'no such path');
    if (q >= 0) {
      return refuseUpgrade(
        socket,
        400,
        'the device socket takes no query string: send the token in an Authorization header or an auth message, never in the URL',
      );
    }
    const address = normalizeAddress(req.socket.remoteAddress);
    const header = req.headers.authorization;
    let token: string | undefined;
    if (header !== undefined) {
      const bearer = typeof header === 'string' ? DEVICE_BEARER.exec(header) : null;
      if (!bearer) return refuseUpgrade(socket, 401, 'Authorization must be "Bearer acdv_…"');
      token = bearer[1]!;
    }
    // With a header, the device is checked before the upgrade: a refused one gets no socket.
    if (token !== undefined) {
      const refusal = this.options.service.refusal(token);
      if (refusal) return refuseUpgrade(socket, upgradeStatus(refusal.closeCode), refusal.message);
    }
    if (token === undefined) {
      // Unauthenticated sockets wait up to 10 s for their auth message: a few per address.
      const waiting = this.unauthenticated.get(address) ?? 0;
      if (waiting >= MAX_UNAUTHENTICATED_PER_ADDRESS) {
        return refuseUpgrade(socket, 429, 'too many connections waiting to authenticate');
      }
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.serve(ws, address, token));
  }

  /** Closes every device connection and stops pinging. */
  close(): void {
    clearInterval(this.pingTimer);
    for (const ws of this.wss.clients) closeSoon(ws, 1001, 'the bridge is stopping');
    this.wss.close();
  }

  private serve(ws: WebSocket, address: string, headerToken: string | undefined): void {
    const { service, log } = this.options;
    let session: DeviceSession | undefined;
    let token: string | undefined;
    let inFlight = 0;
    this.alive.set(ws, true);
    ws.on('pong', () => this.alive.set(ws, true));
    const sink = { close: (code: number, reason: string) => closeSoon(ws, code, reason) };
    const send = (frame: unknown) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
    };
    const sendError = (id: DeviceFrameId | null, err: GatewayError) =>
      send({ id, type: 'result', ok: false, error: { code: err.code, message: err.message } });
    /** Admits the connection with `presented`, or closes it with the refusal's code. */
    const admit = (presented: string): void => {
      try {
        session = service.connect(presented, address, sink);
        token = presented;
        send(service.ready(session));
      } catch (err) {
        if (!(err instanceof DeviceRefusal)) throw err;
        closeSoon(ws, err.closeCode, err.message);
      }
    };

    let waitingForAuth = headerToken === undefined;
    const stopWaitingForAuth = () => {
      if (!waitingForAuth) return;
      waitingForAuth = false;
      clearTimeout(authTimer);
      const left = (this.unauthenticated.get(address) ?? 1) - 1;
      if (left > 0) this.unauthenticated.set(address, left);
      else this.unauthenticated.delete(address);
    };
    if (waitingForAuth) {
      this.unauthenticated.set(address, (this.unauthenticated.get(address) ?? 0) + 1);
    }
    const authTimer = waitingForAuth
      ? setTimeout(
          () => closeSoon(ws, DEVICE_CLOSE.authTimeout, 'no auth message in time'),
          DEVICE_AUTH_TIMEOUT_MS,
        )
      : undefined;
    if (headerToken !== undefined) admit(headerToken);

    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        return sendError(null, new GatewayError('BAD_REQUEST', 'messages are JSON text'));
      }
      const frame = parseDeviceFrame(rawText(data));
      if (isFrameProblem(frame)) {
        return sendError(frame.id, new GatewayError('BAD_REQUEST', frame.problem));
      }
      if (frame.type === 'ping') return send({ type: 'pong' });
      if (frame.type === 'auth') {
        if (session) {
          return sendError(null, new GatewayError('BAD_REQUEST', 'already authenticated'));
        }
        stopWaitingForAuth();
        return admit(frame.token);
      }
      if (!session || token === undefined) {
        return closeSoon(
          ws,
          DEVICE_CLOSE.unauthorized,
          'authenticate first: {"type":"auth","token":"…"}',
        );
      }
      if (inFlight >= MAX_IN_FLIGHT) {
        return sendError(
          frame.id,
          new GatewayError(
            'RATE_LIMITED',
            `at most ${MAX_IN_FLIGHT} requests in flight per connection`,
            1,
          ),
        );
      }
      inFlight += 1;
      const current = session;
      service
        .invoke(current, token, frame.kind, frame.body)
        .then(
          (payload) => send({ id: frame.id, type: 'result', ok: true, payload: payload ?? null }),
          (err: unknown) =>
            sendError(
              frame.id,
              err instanceof GatewayError ? err : new GatewayError('INTERNAL', 'Internal error'),
            ),
        )
        .finally(() => (inFlight -= 1))
        .catch((err: unknown) => log.warn({ err }, 'device answer failed'));
    });
    ws.on('close', () => {
      stopWaitingForAuth();
      session?.release();
    });
    ws.on('error', (err) => log.debug({ err: err.message }, 'device socket error'));
  }

  /** Drops connections that missed the last ping, pings the rest. */
  private pingAll(): void {
    for (const ws of this.wss.clients) {
      if (this.alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      this.alive.set(ws, false);
      ws.ping();
    }
  }
}

/** Closes with `code`; a peer that does not complete the handshake is cut after a second. */
function closeSoon(ws: WebSocket | undefined, code: number, reason: string): void {
  if (!ws || ws.readyState === ws.CLOSED) return;
  ws.close(code, reason.slice(0, 120));
  setTimeout(() => {
    if (ws.readyState !== ws.CLOSED) ws.terminate();
  }, CLOSE_GRACE_MS).unref();
}

function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  const { reason, code } = STATUS[status] ?? { reason: 'Error', code: 'BAD_REQUEST' };
  const body = JSON.stringify({ ok: false, error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

function upgradeStatus(closeCode: number): number {
  if (closeCode === DEVICE_CLOSE.revoked) return 403;
  if (closeCode === DEVICE_CLOSE.tooManyConnections) return 429;
  return 401;
}

const STATUS: Record<number, { reason: string; code: string }> = {
  400: { reason: 'Bad Request', code: 'BAD_REQUEST' },
  401: { reason: 'Unauthorized', code: 'AUTH_INVALID' },
  403: { reason: 'Forbidden', code: 'AUTH_INVALID' },
  404: { reason: 'Not Found', code: 'NOT_FOUND' },
  429: { reason: 'Too Many Requests', code: 'RATE_LIMITED' },
};

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
