/**
 * The relay (`armorclaw relay serve`): a small process on a public host for a bridge behind NAT.
 * It serves the device endpoints of docs/devices.md — `POST /api/bridge/pair/complete`,
 * `POST /api/bridge/revoke`, the device WebSocket `GET /api/bridge/ws` and the `/pair` page — and
 * forwards all of it over the one WebSocket the bridge dials out to it, `GET /api/relay/bridge`
 * with `Authorization: Bearer acrl_…` (frames: formats/relay-frames.ts). It holds no device
 * registry and no device token: the bridge decides everything, the relay only carries.
 *
 * - `GET /health` → `{ok: true, bridge: "connected" | "disconnected"}`.
 * - The bridge link: the credential is compared by SHA-256 in constant time; a newer link with a
 *   valid credential replaces the older one (closed with RELAY_CLOSE.replaced). The bridge pings;
 *   a link silent for `heartbeatTimeoutMs` is dropped. A dropped link takes its device sockets
 *   with it (RELAY_CLOSE.bridgeGone) and answers its waiting requests 503.
 * - The device socket: with a token in the Authorization header, upgraded only once the bridge
 *   admits it (or refused with the bridge's status); without one, upgraded at once (the bridge
 *   waits for the device's `auth` message). Never a query string: a token must not be in a URL.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import {
  RELAY_BRIDGE_PATH,
  RELAY_CLOSE,
  RELAY_CREDENTIAL_PREFIX,
  RELAY_FORWARDED_PATHS,
  type RelayForwardedPath,
} from '../formats/relay-frames';
import { devicePageRoutes } from '../devices/pages';
import { BridgeLink, NO_BRIDGE_MESSAGE, newId } from './link';
import { queryNamesCredential, refuseUpgrade } from '../services/http-wire';
import {
  BodyTooLarge,
  normalizeAddress,
  readBody,
  sendError,
  sendJson,
  sendJsonText,
  splitUrl,
} from './wire';
import { credentialSha256 } from './credential';

export const DEVICE_WS_PATH = '/api/bridge/ws';
/** The page files the relay serves: `/pair` and what it loads, not the operator's `/devices`. */
export const RELAY_PAGE_PATHS = ['/pair', '/pair.js', '/devices.css'] as const;
/** Pairing and revocation bodies are small; anything bigger is not one. */
const BODY_LIMIT = 16 * 1024;
/** A device message is a request, not a file. */
const MAX_DEVICE_FRAME_BYTES = 1024 * 1024;
/** The bridge's frames carry device messages (≤ 1 MiB) as JSON text: room for escaping. */
const MAX_LINK_FRAME_BYTES = 16 * 1024 * 1024;
const MAX_AUTHORIZATION = 1024;
const DEVICE_BEARER = /^Bearer (acdv_[A-Za-z0-9_-]{1,120})$/;
const BRIDGE_BEARER = new RegExp(`^Bearer (${RELAY_CREDENTIAL_PREFIX}[A-Za-z0-9_-]{1,200})$`);
const HEX64 = /^[0-9a-f]{64}$/;

export interface RelayServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  tls?: { certFile: string; keyFile: string };
  /** Hex SHA-256 of the bridge's `acrl_` credential (relay/credential.ts). */
  credentialSha256: string;
  log: Logger;
  /** A link that sends nothing for this long is dropped (default 45 s). */
  heartbeatTimeoutMs?: number;
  /** WebSocket ping period of device sockets; a device missing one pong is dropped (15 s). */
  devicePingMs?: number;
  /** How long a forwarded request waits for the bridge's answer before a 504 (30 s). */
  requestTimeoutMs?: number;
  /** How long a device upgrade with a token waits for the bridge's admit (10 s). */
  admitTimeoutMs?: number;
}

export class RelayServer {
  private readonly server: http.Server | https.Server;
  private readonly devices = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_DEVICE_FRAME_BYTES,
  });
  private readonly bridges = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_LINK_FRAME_BYTES,
  });
  private readonly pages: Record<string, (req: IncomingMessage, res: ServerResponse) => unknown>;
  private readonly expected: Buffer;
  private link: BridgeLink | undefined;
  private closing = false;

  constructor(private readonly options: RelayServerOptions) {
    if (!HEX64.test(options.credentialSha256)) {
      throw new Error('credentialSha256 must be a hex SHA-256 (64 lower-case hex digits)');
    }
    this.expected = Buffer.from(options.credentialSha256, 'hex');
    const all = devicePageRoutes();
    this.pages = Object.fromEntries(RELAY_PAGE_PATHS.map((p) => [p, all[p]!] as const));
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      this.route(req, res).catch((err: unknown) => {
        options.log.error({ err }, 'relay request failed');
        if (!res.headersSent) sendError(res, 500, 'Internal error');
        else res.destroy();
      });
    };
    this.server = options.tls
      ? https.createServer(
          { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) },
          onRequest,
        )
      : http.createServer(onRequest);
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // A peer resetting mid-handshake must not take the process down.
      socket.on('error', () => socket.destroy());
      this.upgrade(req, socket, head).catch((err: unknown) => {
        options.log.error({ err }, 'relay upgrade failed');
        socket.destroy();
      });
    });
  }

  get bridgeConnected(): boolean {
    return this.link?.open === true;
  }

  listen(): Promise<{ url: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        const { port } = this.server.address() as AddressInfo;
        const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
        resolve({ url: `${this.options.tls ? 'https' : 'http'}://${host}:${port}`, port });
      });
    });
  }

  /** Drops the link and every device socket (1001), refuses new work and stops listening. */
  async close(): Promise<void> {
    this.closing = true;
    this.link?.drop(1001, 'the relay is stopping', 1001, 'the relay is stopping');
    this.link = undefined;
    this.devices.close();
    this.bridges.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { pathname, query } = splitUrl(req.url);
    if ((RELAY_FORWARDED_PATHS as readonly string[]).includes(pathname)) {
      return this.forward(req, res, pathname as RelayForwardedPath, query);
    }
    const page = this.pages[pathname];
    if (page) return void (await page(req, res));
    req.resume();
    if (pathname === '/health') {
      return sendJson(res, 200, {
        ok: true,
        bridge: this.bridgeConnected ? 'connected' : 'disconnected',
      });
    }
    if (pathname === DEVICE_WS_PATH || pathname === RELAY_BRIDGE_PATH) {
      return sendError(res, 426, 'this path is a WebSocket', { upgrade: 'websocket' });
    }
    sendError(res, 404, 'no such path');
  }

  /** A device's POST, forwarded to the bridge and answered with the bridge's answer. */
  private async forward(
    req: IncomingMessage,
    res: ServerResponse,
    path: RelayForwardedPath,
    query: string | null,
  ): Promise<void> {
    if (req.method !== 'POST') {
      req.resume();
      return sendError(res, 405, 'use POST', { allow: 'POST' });
    }
    if (query !== null) {
      req.resume();
      if (queryNamesCredential(query)) {
        return sendError(
          res,
          401,
          'credentials are never accepted in a URL query string; send them in the body or a header',
        );
      }
      return sendError(res, 400, 'this path takes no query string');
    }
    if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
      req.resume();
      return sendError(res, 400, 'content-type must be application/json');
    }
    const authorization = req.headers.authorization;
    if (authorization !== undefined && authorization.length > MAX_AUTHORIZATION) {
      req.resume();
      return sendError(res, 400, 'the Authorization header is too long');
    }
    if (!this.bridgeConnected) {
      req.resume();
      return sendError(res, 503, NO_BRIDGE_MESSAGE);
    }
    let body: string;
    try {
      body = await readBody(req, BODY_LIMIT);
    } catch (err) {
      if (!(err instanceof BodyTooLarge)) throw err;
      return sendError(res, 413, `the body exceeds the limit of ${BODY_LIMIT} bytes`, {
        connection: 'close',
      });
    }
    const link = this.link;
    if (!link?.open) return sendError(res, 503, NO_BRIDGE_MESSAGE);
    const answer = await link.request(
      path,
      normalizeAddress(req.socket.remoteAddress),
      authorization,
      body,
    );
    const retryAfter = answer.headers['retry-after'];
    sendJsonText(
      res,
      answer.status,
      answer.body,
      retryAfter !== undefined ? { 'retry-after': retryAfter } : {},
    );
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { pathname, query } = splitUrl(req.url);
    if (this.closing) return refuseUpgrade(socket, 503, 'the relay is stopping');
    if (pathname === RELAY_BRIDGE_PATH) return this.linkUpgrade(req, socket, head, query);
    if (pathname !== DEVICE_WS_PATH) return refuseUpgrade(socket, 404, 'no such path');
    if (query !== null) {
      return refuseUpgrade(
        socket,
        400,
        'the device socket takes no query string: send the token in an Authorization header or an auth message, never in the URL',
      );
    }
    const link = this.link;
    if (!link?.open) return refuseUpgrade(socket, 503, NO_BRIDGE_MESSAGE);
    const address = normalizeAddress(req.socket.remoteAddress);
    const header = req.headers.authorization;
    const conn = newId('c_');
    if (header === undefined) {
      // No token yet: the bridge expects the device's `auth` message as its first.
      return this.devices.handleUpgrade(req, socket, head, (ws) =>
        link.attach(conn, ws, address, false),
      );
    }
    const bearer = DEVICE_BEARER.exec(header);
    if (!bearer) return refuseUpgrade(socket, 401, 'Authorization must be "Bearer acdv_…"');
    let peerGone = false;
    const gone = () => (peerGone = true);
    socket.once('end', gone);
    socket.once('close', gone);
    const verdict = await link.admit(conn, address, bearer[1]!);
    socket.off('end', gone);
    socket.off('close', gone);
    if (peerGone || socket.destroyed) {
      // The device gave up while the bridge decided: whatever it said, the socket is gone.
      socket.destroy();
      if (verdict.ok) link.gone(conn);
      return;
    }
    if (!verdict.ok) return refuseUpgrade(socket, verdict.status, verdict.message);
    // The bridge has admitted it: if the handshake fails after all, the bridge must hear so.
    let upgraded = false;
    socket.once('close', () => {
      if (!upgraded) link.gone(conn);
    });
    this.devices.handleUpgrade(req, socket, head, (ws) => {
      upgraded = true;
      link.attach(conn, ws, address, true);
    });
  }

  /** The bridge dialing in: authenticated before the upgrade, then it replaces any older link. */
  private linkUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    query: string | null,
  ): void {
    if (query !== null) return refuseUpgrade(socket, 400, 'the link takes no query string');
    if (!this.credentialMatches(req.headers.authorization)) {
      this.options.log.warn(
        { address: normalizeAddress(req.socket.remoteAddress) },
        'bridge link refused: wrong or missing credential',
      );
      return refuseUpgrade(
        socket,
        401,
        'the bridge link needs "Authorization: Bearer acrl_…" with this relay\'s credential',
      );
    }
    this.bridges.handleUpgrade(req, socket, head, (ws) => {
      const old = this.link;
      const link = new BridgeLink(ws, {
        heartbeatTimeoutMs: this.options.heartbeatTimeoutMs ?? 45_000,
        devicePingMs: this.options.devicePingMs ?? 15_000,
        requestTimeoutMs: this.options.requestTimeoutMs ?? 30_000,
        admitTimeoutMs: this.options.admitTimeoutMs ?? 10_000,
        log: this.options.log,
        onDropped: (gone) => {
          if (this.link === gone) this.link = undefined;
          if (!this.closing) this.options.log.info('the bridge link dropped');
        },
      });
      this.link = link;
      if (old) this.options.log.info('a new bridge link replaces the previous one');
      old?.drop(RELAY_CLOSE.replaced, 'replaced by a newer link of the same bridge');
      this.options.log.info(
        { address: normalizeAddress(req.socket.remoteAddress) },
        'the bridge linked',
      );
    });
  }

  private credentialMatches(header: string | undefined): boolean {
    const bearer = header !== undefined ? BRIDGE_BEARER.exec(header) : null;
    if (!bearer) return false;
    const presented = Buffer.from(credentialSha256(bearer[1]!), 'hex');
    return timingSafeEqual(presented, this.expected);
  }
}
