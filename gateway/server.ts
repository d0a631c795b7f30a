/**
 * The HTTP gateway (docs/gateway.md): `POST /rpc` with the spec's envelope, `GET /health` and
 * `GET /status`, over HTTP or HTTPS. Every `/rpc` request passes the spec's guards in the spec's
 * order before its method runs:
 *
 *  1. envelope validation (JSON object, `method`, `version`, optional `id` and `params`)
 *  2. protocol version (`PROTO_VERSION_UNSUPPORTED`)
 *  3. authentication, then the method's scope for the caller's role (gateway/auth.ts,
 *     gateway/scopes.ts); an unknown method is NOT_FOUND here, after authentication, so an
 *     anonymous client learns nothing about which methods exist
 *  4. the per-method, per-subject rate limit (gateway/rate-limit.ts)
 *  5. inbound risk scoring (gateway/risk.ts), blocked at 90
 *
 * Before any of them the transport is checked: verb, no credential in the query string, content
 * type, the body limit (413). Every answer carries `auditId` (also the `x-audit-id` header) and
 * leaves a `gateway_request` audit entry.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { loadTlsMaterial, type SignalingTlsOptions } from '../media/signaling-tls';
import type { GatewayTokenStore } from '../services/gateway-tokens';
import type { GatewayAuditWriter } from './audit';
import { CREDENTIAL_QUERY_NAMES, readBody as readLimitedBody } from '../services/http-wire';
import { authenticate, type GatewayAuthConfig } from './auth';
import { normalizeAddress } from './address';
import {
  GATEWAY_HTTP_STATUS,
  GATEWAY_PROTOCOL_VERSION,
  GatewayError,
  type GatewayCaller,
  type GatewayErrorCode,
  type GatewayMethods,
  type GatewayResponse,
  type GatewayRole,
} from './protocol';
import { MethodRateLimiter, type RateLimitConfig } from './rate-limit';
import { AuthFailureTracker, RISK_BLOCK_THRESHOLD, scoreInboundRisk } from './risk';
import { GATEWAY_SCOPES, roleMayCall } from './scopes';
import { composeStatus, PolicyDecisionCounter, RuntimeMetrics, type StatusPart } from './status';

export interface GatewayServerOptions {
  host: string;
  /** 0: a free port. */
  port: number;
  /** Absent: plain HTTP. */
  tls?: SignalingTlsOptions;
  bodyLimitBytes: number;
  auth: GatewayAuthConfig;
  rateLimits: RateLimitConfig;
  tokens: Pick<GatewayTokenStore, 'verify'>;
  methods: GatewayMethods;
  audit: GatewayAuditWriter;
  /** Named parts of `GET /status` besides the gateway's own (read when /status is asked). */
  statusParts?: Readonly<Record<string, StatusPart>>;
  /** Further paths served beside /rpc, /health and /status (the device endpoints). */
  routes?: Readonly<Record<string, GatewayRoute>>;
  /** WebSocket upgrades (the device socket); without it every upgrade is refused. */
  upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  log: Logger;
}

/** A further path's handler: it answers the request itself (sendJson, readBody help). */
export type GatewayRoute = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

const MAX_METHOD_CHARS = 128;

/** An error answered with an HTTP status of its own (405, 413) rather than its code's. */
class TransportError extends GatewayError {
  constructor(
    code: GatewayErrorCode,
    message: string,
    readonly httpStatus: number,
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message);
  }
}

/** The HTTP status an error is answered with (a transport error's own, or its code's). */
export function errorHttpStatus(err: GatewayError): number {
  return err instanceof TransportError ? err.httpStatus : GATEWAY_HTTP_STATUS[err.code];
}

/** What the audit entry and the answer need to know about a request as it goes. */
interface RequestFacts {
  auditId: string;
  id: string | number | null;
  method: string | null;
  role: GatewayRole | null;
  subject: string | null;
  address: string;
}

export class GatewayServer {
  private server: http.Server | undefined;
  private listeningUrl: string | undefined;
  private readonly limiter: MethodRateLimiter;
  private readonly authFailures = new AuthFailureTracker();
  readonly decisions = new PolicyDecisionCounter();
  private readonly metrics = new RuntimeMetrics();

  constructor(private readonly options: GatewayServerOptions) {
    const unscoped = options.methods.names().filter((m) => !(m in GATEWAY_SCOPES));
    if (unscoped.length > 0) {
      throw new Error(
        `gateway methods without a scope (add them to gateway/scopes.ts): ${unscoped.join(', ')}`,
      );
    }
    this.limiter = new MethodRateLimiter(options.rateLimits);
  }

  /** The URL the gateway answers at (after `listen`). */
  get url(): string {
    if (!this.listeningUrl) throw new Error('the gateway is not listening');
    return this.listeningUrl;
  }

  async listen(): Promise<{ port: number; url: string }> {
    const { host, port, tls, log } = this.options;
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.route(req, res).catch((err: unknown) => {
        log.error({ err }, 'gateway request failed');
        if (!res.headersSent) res.writeHead(500).end();
      });
    };
    let server: http.Server;
    if (tls) {
      const material = await loadTlsMaterial(tls, [host], log);
      server = https.createServer({ cert: material.cert, key: material.key }, handler);
      server.on('tlsClientError', (err) => log.debug({ err: err.message }, 'TLS handshake failed'));
    } else {
      server = http.createServer(handler);
    }
    const upgrade = this.options.upgrade;
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (upgrade) upgrade(req, socket, head);
      else socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
    // A slow client cannot hold a connection open by trickling a request.
    server.requestTimeout = 60_000;
    server.headersTimeout = 20_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const bound = (server.address() as AddressInfo).port;
    const shownHost = host.includes(':') ? `[${host}]` : host;
    this.listeningUrl = `${tls ? 'https' : 'http'}://${shownHost}:${bound}`;
    return { port: bound, url: this.listeningUrl };
  }

  /** Stops accepting, lets requests in flight finish (up to 5 s), writes the queued audit. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) {
      server.closeIdleConnections();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const timer = setTimeout(() => server.closeAllConnections(), 5_000);
      await closed;
      clearTimeout(timer);
    }
    this.options.audit.flush();
    this.metrics.close();
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const pathname = (req.url ?? '/').split('?', 1)[0] ?? '/';
    switch (pathname) {
      case '/rpc':
        return this.rpc(req, res);
      case '/health':
        if (req.method !== 'GET' && req.method !== 'HEAD') return this.wrongVerb(res, 'GET');
        return sendJson(res, 200, { ok: true, time: new Date().toISOString() });
      case '/status':
        if (req.method !== 'GET') return this.wrongVerb(res, 'GET');
        return this.status(req, res);
      default: {
        const route = this.options.routes?.[pathname];
        if (route) return route(req, res);
        req.resume();
        const paths = [
          'POST /rpc',
          'GET /health',
          'GET /status',
          ...Object.keys(this.options.routes ?? {}),
        ];
        return sendJson(res, 404, {
          ok: false,
          error: {
            code: 'NOT_FOUND',
            message: `no such path; the gateway serves ${paths.join(', ')}`,
          },
        });
      }
    }
  }

  private wrongVerb(res: ServerResponse, allow: string): void {
    res.setHeader('allow', allow);
    sendJson(res, 405, { ok: false, error: { code: 'BAD_REQUEST', message: `use ${allow}` } });
  }

  private async status(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume();
    try {
      this.checkQuery(req);
      authenticate(req.headers, req.socket.remoteAddress, this.options.auth, this.options.tokens);
    } catch (err) {
      const e = err as GatewayError;
      if (e.code === 'AUTH_INVALID' || e.code === 'AUTH_MISSING') {
        this.authFailures.record(normalizeAddress(req.socket.remoteAddress));
      }
      return sendJson(res, GATEWAY_HTTP_STATUS[e.code], {
        ok: false,
        error: { code: e.code, message: e.message },
      });
    }
    const { host, tls, auth, bodyLimitBytes } = this.options;
    const body = await composeStatus(
      {
        gateway: {
          url: this.listeningUrl,
          host,
          tls: tls !== undefined,
          authMode: auth.authMode,
          protocolVersion: GATEWAY_PROTOCOL_VERSION,
          bodyLimitBytes,
          methods: this.options.methods.names().sort(),
        },
        runtimeMetrics: this.metrics.snapshot(),
        policyDecisions: this.decisions.snapshot(),
      },
      this.options.statusParts ?? {},
    );
    sendJson(res, 200, body);
  }

  private async rpc(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const facts: RequestFacts = {
      auditId: `req_${randomUUID()}`,
      id: null,
      method: null,
      role: null,
      subject: null,
      address: normalizeAddress(req.socket.remoteAddress),
    };
    let answer: GatewayResponse;
    let httpStatus = 200;
    const headers: Record<string, string> = { 'x-audit-id': facts.auditId };
    try {
      const result = await this.guardAndRun(req, facts);
      answer = { id: facts.id, auditId: facts.auditId, ok: true, result: result ?? null };
    } catch (err) {
      let e: GatewayError;
      if (err instanceof GatewayError) {
        e = err;
      } else {
        this.options.log.error(
          { err, method: facts.method, auditId: facts.auditId },
          'gateway method failed',
        );
        e = new GatewayError('INTERNAL', 'Internal error');
      }
      if (e.code === 'AUTH_MISSING' || e.code === 'AUTH_INVALID')
        this.authFailures.record(facts.address);
      httpStatus = e instanceof TransportError ? e.httpStatus : GATEWAY_HTTP_STATUS[e.code];
      if (e instanceof TransportError) Object.assign(headers, e.headers);
      if (e.retryAfterSeconds !== undefined) headers['retry-after'] = String(e.retryAfterSeconds);
      answer = {
        id: facts.id,
        auditId: facts.auditId,
        ok: false,
        error: { code: e.code, message: e.message },
      };
    }
    const outcome = answer.ok ? 'ok' : answer.error.code;
    this.decisions.count(outcome);
    let text: string;
    try {
      text = JSON.stringify(answer);
    } catch (err) {
      this.options.log.error({ err, method: facts.method }, 'gateway result is not JSON');
      httpStatus = 500;
      text = JSON.stringify({
        id: facts.id,
        auditId: facts.auditId,
        ok: false,
        error: { code: 'INTERNAL', message: 'Internal error' },
      });
    }
    sendText(res, httpStatus, text, headers);
    this.options.audit.record({
      auditId: facts.auditId,
      method: facts.method,
      role: facts.role,
      subject: facts.subject,
      address: facts.address,
      outcome: answer.ok ? 'ok' : answer.error.code,
      latencyMs: performance.now() - started,
    });
  }

  /** The transport checks and the five guards, then the method. */
  private async guardAndRun(req: IncomingMessage, facts: RequestFacts): Promise<unknown> {
    if (req.method !== 'POST') {
      req.resume();
      throw new TransportError('BAD_REQUEST', 'use POST /rpc', 405, { allow: 'POST' });
    }
    this.checkQuery(req);
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      req.resume();
      throw new GatewayError('BAD_REQUEST', 'content-type must be application/json');
    }
    const body = await readBody(req, this.options.bodyLimitBytes);

    // 1. Envelope.
    let envelope: unknown;
    try {
      envelope = JSON.parse(body);
    } catch {
      throw new GatewayError('BAD_REQUEST', 'the body is not valid JSON');
    }
    if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) {
      throw new GatewayError(
        'BAD_REQUEST',
        'the body must be a JSON object {id, version, method, params}',
      );
    }
    const env = envelope as Record<string, unknown>;
    if (typeof env.id === 'string' || (typeof env.id === 'number' && Number.isFinite(env.id))) {
      facts.id = env.id;
    } else if (env.id !== undefined && env.id !== null) {
      throw new GatewayError('BAD_REQUEST', 'id must be a string, a number or absent');
    }
    if (
      typeof env.method !== 'string' ||
      env.method === '' ||
      env.method.length > MAX_METHOD_CHARS
    ) {
      throw new GatewayError(
        'BAD_REQUEST',
        `method must be a string of 1-${MAX_METHOD_CHARS} characters`,
      );
    }
    facts.method = env.method;
    if (typeof env.version !== 'string') {
      throw new GatewayError('BAD_REQUEST', `version is required ("${GATEWAY_PROTOCOL_VERSION}")`);
    }
    const params = env.params;
    if (
      params !== undefined &&
      params !== null &&
      (typeof params !== 'object' || Array.isArray(params))
    ) {
      throw new GatewayError('BAD_REQUEST', 'params must be an object');
    }

    // 2. Protocol version: strict.
    if (env.version !== GATEWAY_PROTOCOL_VERSION) {
      throw new GatewayError(
        'PROTO_VERSION_UNSUPPORTED',
        `protocol version "${env.version.slice(0, 32)}" is not supported; this gateway speaks "${GATEWAY_PROTOCOL_VERSION}"`,
      );
    }

    // 3. Authentication, then the method's scope.
    const who = authenticate(
      req.headers,
      req.socket.remoteAddress,
      this.options.auth,
      this.options.tokens,
    );
    facts.role = who.role;
    facts.subject = who.subject;
    facts.address = who.address;
    const handler = this.options.methods.get(env.method);
    if (!handler) throw new GatewayError('NOT_FOUND', `unknown method ${env.method}`);
    if (!roleMayCall(env.method, who.role)) {
      throw new GatewayError(
        'AUTH_ROLE_MISMATCH',
        `${env.method} is not open to the ${who.role} role (allowed: ${GATEWAY_SCOPES[env.method]!.join(', ')})`,
      );
    }

    // 4. Rate limit.
    const rate = this.limiter.take(env.method, who.subject);
    if (!rate.ok) {
      throw new GatewayError(
        'RATE_LIMITED',
        `too many ${env.method} requests; retry after ${rate.retryAfterSeconds} s`,
        rate.retryAfterSeconds,
      );
    }

    // 5. Inbound risk.
    const risk = scoreInboundRisk(env.method, params, {
      recentAuthFailures: this.authFailures.count(who.address),
    });
    if (risk.score >= RISK_BLOCK_THRESHOLD) {
      throw new GatewayError(
        'RISK_BLOCKED',
        `request blocked by inbound risk scoring (score ${risk.score} ≥ ${RISK_BLOCK_THRESHOLD}: ${risk.rules.join(', ')})`,
      );
    }

    const caller: GatewayCaller = {
      role: who.role,
      subject: who.subject,
      auditId: facts.auditId,
      address: who.address,
    };
    return handler(params ?? {}, caller);
  }

  /** `/rpc` and `/status` take no query string; one naming a credential is refused as such. */
  private checkQuery(req: IncomingMessage): void {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if (q < 0) return;
    const names = [...new URLSearchParams(url.slice(q + 1)).keys()];
    if (names.some((n) => CREDENTIAL_QUERY_NAMES.test(n))) {
      req.resume();
      throw new GatewayError(
        'AUTH_INVALID',
        'credentials are never accepted in a URL query string; send them in a header',
      );
    }
    if (names.length > 0) {
      req.resume();
      throw new GatewayError('BAD_REQUEST', 'this path takes no query string');
    }
  }
}

/** Reads the body as UTF-8 up to `limit` bytes; more is a 413 and the connection is closed. */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return readLimitedBody(
    req,
    limit,
    () =>
      new TransportError(
        'BAD_REQUEST',
        `the body exceeds the gateway's limit of ${limit} bytes`,
        413,
        { connection: 'close' },
      ),
  );
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendText(res, status, JSON.stringify(body), headers);
}

function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string>,
): void {
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}
