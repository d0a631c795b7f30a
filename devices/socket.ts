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
 * answered the previous one is dropped. A revoked (4403) or rotated (4409) device's connections
 * are closed at once (devices/service.ts), and every invoke re-checks its token anyway. What a
 * connection says is handled by devices/conversation.ts, as for a socket held by the relay.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { closeSoon, rawText, refuseUpgrade } from '../services/http-wire';
import { refusalHttpStatus } from '../formats/device-frames';
import { DEVICE_TOKEN_PREFIX } from '../services/device-registry';
import { normalizeAddress } from '../gateway/address';
import { DeviceConversation } from './conversation';
import type { DeviceService } from './service';

export const DEVICE_WS_PATH = '/api/bridge/ws';
/** A device message is a request, not a file. */
const MAX_FRAME_BYTES = 1024 * 1024;
const MAX_UNAUTHENTICATED_PER_ADDRESS = 8;
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
      if (refusal)
        return refuseUpgrade(socket, refusalHttpStatus(refusal.closeCode), refusal.message);
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
    this.alive.set(ws, true);
    ws.on('pong', () => this.alive.set(ws, true));
    if (headerToken === undefined) {
      this.unauthenticated.set(address, (this.unauthenticated.get(address) ?? 0) + 1);
    }
    const conversation = new DeviceConversation(
      this.options.service,
      {
        send: (text) => {
          if (ws.readyState === ws.OPEN) ws.send(text);
        },
        close: (code, reason) => closeSoon(ws, code, reason),
      },
      address,
      this.options.log,
      () => {
        const left = (this.unauthenticated.get(address) ?? 1) - 1;
        if (left > 0) this.unauthenticated.set(address, left);
        else this.unauthenticated.delete(address);
      },
    );
    conversation.start(headerToken);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) conversation.onBinary();
      else conversation.onText(rawText(data));
    });
    ws.on('close', () => conversation.onClosed());
    ws.on('error', (err) => this.options.log.debug({ err: err.message }, 'device socket error'));
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
