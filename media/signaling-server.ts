/**
 * The WSS signaling server of voice calls, and the browser call page.
 *
 * HTTPS on one port: `GET /call` (+ `/call.js`, `/call-audio.js`, `/call.css`) serves the page, `/healthz`
 * answers `ok`, and `/webrtc` upgrades to a WebSocket that speaks for exactly one call session —
 * the one its `hello` token names (media/signaling-types.ts, docs/signaling.md). Nothing is ever
 * broadcast: each socket gets only the messages of its own session, through the backend's sink.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { SignalingConnection } from './signaling-connection';
import { SignalingCloseCode as Close, SignalingErrorCode as Code } from './signaling-messages';
import { loadTlsMaterial, type SignalingTlsOptions } from './signaling-tls';
import type { SignalingAuditEntry, SignalingBackend } from './signaling-types';

export type { SignalingAuditEntry } from './signaling-types';

export interface SignalingServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The URL clients reach the server at (behind a proxy or NAT), e.g. `https://bridge.example:8443`. */
  publicUrl?: string;
  tls: SignalingTlsOptions;
  /** The key call tokens are signed with (services/call-tokens.ts). */
  tokenKey: Buffer;
  backend: SignalingBackend;
  /** Origins (`https://app.example`) allowed besides the server's own; native apps send none. */
  allowedOrigins: string[];
  /** Larger frames close the socket with 1009. */
  maxMessageBytes: number;
  /** Token bucket per socket; a burst of the same size is allowed. */
  messagesPerSecond: number;
  pingIntervalMs?: number;
  helloTimeoutMs?: number;
  audit(entry: SignalingAuditEntry): void;
  log: Logger;
}

export const SIGNALING_PATH = '/webrtc';
export const CALL_PAGE_PATH = '/call';

/** The page may talk to its own host only; `wss:` because not every browser counts it as 'self'. */
export const CALL_PAGE_CSP =
  "default-src 'self'; connect-src 'self' wss:; media-src 'self' blob: mediastream:; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const PAGE_DIR = path.join(__dirname, 'call-page');

/** Serves signaling over WSS and the call page over HTTPS. */
export class SignalingServer {
  private server?: https.Server;
  private wss?: WebSocketServer;
  private pingTimer?: NodeJS.Timeout;
  /** The authenticated socket of each session (a newer hello replaces an older socket). */
  private readonly bySession = new Map<string, SignalingConnection>();
  private readonly connections = new Set<SignalingConnection>();
  private readonly pages: Record<string, { body: Buffer; type: string }>;
  private fingerprint?: string;

  constructor(private readonly options: SignalingServerOptions) {
    this.pages = {
      [CALL_PAGE_PATH]: {
        body: readFileSync(path.join(PAGE_DIR, 'index.html')),
        type: 'text/html; charset=utf-8',
      },
      [`${CALL_PAGE_PATH}.js`]: {
        body: readFileSync(path.join(PAGE_DIR, 'call.js')),
        type: 'text/javascript; charset=utf-8',
      },
      [`${CALL_PAGE_PATH}-audio.js`]: {
        body: readFileSync(path.join(PAGE_DIR, 'call-audio.js')),
        type: 'text/javascript; charset=utf-8',
      },
      [`${CALL_PAGE_PATH}.css`]: {
        body: readFileSync(path.join(PAGE_DIR, 'call.css')),
        type: 'text/css; charset=utf-8',
      },
    };
  }

  /** SHA-256 fingerprint of the served certificate (after `listen`), for pinning in native apps. */
  get certificateFingerprint(): string | undefined {
    return this.fingerprint;
  }

  /** Loads (or creates) the certificate and listens; `url` is the `wss://…/webrtc` to hand out. */
  async listen(): Promise<{ port: number; url: string }> {
    const { host, publicUrl, log } = this.options;
    const sanHosts = [host, ...(publicUrl ? [new URL(publicUrl).hostname] : [])];
    const tls = await loadTlsMaterial(this.options.tls, sanHosts, log);
    this.fingerprint = tls.fingerprint256;

    const server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) =>
      this.serveHttp(req, res),
    );
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.options.maxMessageBytes,
      // Compression buys little for SDP and opens the door to compression-bomb memory use.
      perMessageDeflate: false,
    });
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    server.on('tlsClientError', (err) => log.debug({ err: err.message }, 'TLS handshake failed'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.pingTimer = setInterval(() => this.pingAll(), this.options.pingIntervalMs ?? 15_000);
    this.pingTimer.unref();

    const port = (server.address() as AddressInfo).port;
    const url = signalingUrl(publicUrl, host, port);
    log.info(
      { url, fingerprint256: tls.fingerprint256, selfSigned: 'selfSignedDir' in this.options.tls },
      tls.generated ? 'signaling listening (new self-signed certificate)' : 'signaling listening',
    );
    return { port, url };
  }

  /** Closes every socket (1001 going away) and stops listening. Calls themselves go on. */
  async close(): Promise<void> {
    if (this.pingTimer) clearInterval(this.pingTimer);
    for (const conn of this.connections) conn.close(1001, 'server shutting down');
    // Give clients a moment for the closing handshake, then cut whoever is left.
    for (let waited = 0; this.connections.size > 0 && waited < 1000; waited += 20) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const conn of this.connections) conn.terminate();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Keep-alive page requests would hold close() open.
      server.closeAllConnections();
    });
    this.wss?.close();
  }

  private serveHttp(req: IncomingMessage, res: ServerResponse): void {
    const pathname = (req.url ?? '/').split(/[?#]/, 1)[0] ?? '/';
    const common = {
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      // The token lives in the fragment, which no browser sends in Referer; belt and braces.
      'Referrer-Policy': 'no-referrer',
    };
    const page = this.pages[pathname];
    if (req.method === 'GET' && page) {
      res.writeHead(200, {
        ...common,
        'Content-Type': page.type,
        'Content-Security-Policy': CALL_PAGE_CSP,
      });
      res.end(page.body);
    } else if (req.method === 'GET' && pathname === '/favicon.ico') {
      // Browsers ask for it on every page; an empty answer keeps their consoles clean.
      res.writeHead(204, common);
      res.end();
    } else if (req.method === 'GET' && pathname === '/healthz') {
      res.writeHead(200, { ...common, 'Content-Type': 'text/plain' });
      res.end('ok');
    } else {
      res.writeHead(404, { ...common, 'Content-Type': 'text/plain' });
      res.end('not found');
    }
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const pathname = (req.url ?? '/').split(/[?#]/, 1)[0];
    if (pathname !== SIGNALING_PATH) return refuseUpgrade(socket, 404, 'Not Found');
    const origin = req.headers.origin;
    if (!this.originAllowed(origin, req.headers.host)) {
      this.options.audit({
        event_type: 'security_violation',
        details: {
          reason: 'origin_not_allowed',
          origin,
          remote_address: req.socket.remoteAddress,
        },
      });
      this.options.log.warn({ origin }, 'signaling upgrade refused: origin not allowed');
      return refuseUpgrade(socket, 403, 'Forbidden');
    }
    this.wss!.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
  }

  /**
   * Browsers always send Origin on a WebSocket upgrade and cannot forge it; native apps send
   * none. So: no Origin, our own origin, or one the operator listed.
   */
  private originAllowed(origin: string | undefined, hostHeader: string | undefined): boolean {
    if (origin === undefined) return true;
    const given = normalizeOrigin(origin);
    if (given === undefined) return false;
    const own = this.options.publicUrl
      ? normalizeOrigin(this.options.publicUrl)
      : hostHeader
        ? normalizeOrigin(`https://${hostHeader}`)
        : undefined;
    if (given === own) return true;
    return this.options.allowedOrigins.some((o) => normalizeOrigin(o) === given);
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const conn = new SignalingConnection(ws, req.socket.remoteAddress, this.options, {
      authenticated: (c, sessionId) => {
        const previous = this.bySession.get(sessionId);
        this.bySession.set(sessionId, c);
        if (previous && previous !== c) {
          previous.fail(Code.Replaced, 'another connection took over this session', Close.Replaced);
        }
      },
      closed: (c) => {
        this.connections.delete(c);
        if (c.sessionId && this.bySession.get(c.sessionId) === c)
          this.bySession.delete(c.sessionId);
      },
    });
    this.connections.add(conn);
  }

  /** A socket that has not answered the previous ping by now is dead (NAT timeout, sleeping laptop). */
  private pingAll(): void {
    for (const conn of this.connections) conn.heartbeat();
  }
}

function normalizeOrigin(value: string): string | undefined {
  try {
    const origin = new URL(value).origin;
    return origin === 'null' ? undefined : origin.toLowerCase();
  } catch {
    return undefined;
  }
}

function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** The `wss://…/webrtc` URL clients dial: from `publicUrl` if set, else the bind address. */
export function signalingUrl(publicUrl: string | undefined, host: string, port: number): string {
  if (publicUrl) {
    const url = new URL(SIGNALING_PATH, publicUrl);
    url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
    return url.toString();
  }
  const dialHost = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
  const hostPart = dialHost.includes(':') ? `[${dialHost}]` : dialHost;
  return `wss://${hostPart}:${port}${SIGNALING_PATH}`;
}
