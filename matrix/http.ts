/**
 * The bridge's HTTP client of the Matrix client-server API: the access token, JSON, a local
 * timeout, redirects and the homeserver's error answers. All the bridge asks of a homeserver is a
 * handful of requests (login, /sync, send, join, room state, the E2EE key requests), so it does
 * not carry a client SDK for them (matrix-js-sdk held about 30 MB for as long as it ran), nor
 * `fetch`: Node's fetch loads its own HTTP stack (undici and web streams) beside the one the
 * bridge already runs for its gateway and signaling, a few MB held for the life of the process.
 * Requests go through Node's http/https with their default keep-alive agents.
 */
import http from 'node:http';
import https from 'node:https';

export type HttpMethod = 'GET' | 'PUT' | 'POST' | 'DELETE';

export interface RequestOpts {
  abortSignal?: AbortSignal;
  /** Give up after this long (default 60 s). */
  localTimeoutMs?: number;
  /** Before the path; default `/_matrix/client/v3`. */
  prefix?: string;
  /** false: the body is sent as it is and the answer returned as text. */
  json?: boolean;
  headers?: Record<string, string>;
}

const DEFAULT_PREFIX = '/_matrix/client/v3';
const DEFAULT_TIMEOUT_MS = 60_000;
/** Redirects followed before a request gives up (fetch follows 20; a homeserver needs few). */
const MAX_REDIRECTS = 5;

/** A definite answer from the homeserver: its HTTP status and Matrix error code. */
export class MatrixHttpError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly errcode: string | undefined,
    readonly data: Record<string, unknown>,
  ) {
    const text = typeof data.error === 'string' ? data.error : `HTTP ${httpStatus}`;
    super(`${errcode ?? 'M_UNKNOWN'}: ${text} [${httpStatus}]`);
    this.name = 'MatrixHttpError';
  }
}

/** The homeserver could not be reached, or did not answer in time. */
export class MatrixConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MatrixConnectionError';
  }
}

export interface MatrixIdentity {
  userId: string;
  deviceId: string;
}

export class MatrixHttp {
  constructor(
    private readonly baseUrl: string,
    private readonly accessToken?: string,
    private readonly identity?: MatrixIdentity,
  ) {}

  getUserId(): string | undefined {
    return this.identity?.userId;
  }

  getDeviceId(): string | undefined {
    return this.identity?.deviceId;
  }

  /** A request with the access token (any request before login goes without one). */
  async authedRequest<T>(
    method: HttpMethod,
    path: string,
    query?: Record<string, string>,
    body?: unknown,
    opts: RequestOpts = {},
  ): Promise<T> {
    const url = new URL(this.baseUrl.replace(/\/$/, '') + (opts.prefix ?? DEFAULT_PREFIX) + path);
    for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
    const json = opts.json ?? true;
    const headers: Record<string, string> = { ...opts.headers };
    if (this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = json ? JSON.stringify(body) : (body as string);
      if (json) headers['Content-Type'] ??= 'application/json';
    }
    if (json) headers.Accept ??= 'application/json';
    const timeout = AbortSignal.timeout(opts.localTimeoutMs ?? DEFAULT_TIMEOUT_MS);
    const signal = opts.abortSignal ? AbortSignal.any([timeout, opts.abortSignal]) : timeout;
    let res: { status: number; text: string };
    try {
      res = await send(url, { method, headers, body: payload, signal });
    } catch (err) {
      // The caller's own abort stays an abort; a timeout or a network failure is a connection error.
      if (opts.abortSignal?.aborted) throw err;
      const why = timeout.aborted ? 'no answer in time' : (err as Error).message;
      throw new MatrixConnectionError(`${method} ${url.pathname}: ${why}`, { cause: err });
    }
    const { text } = res;
    if (res.status < 200 || res.status > 299) {
      let data: Record<string, unknown> = {};
      try {
        const parsed: unknown = JSON.parse(text);
        if (parsed && typeof parsed === 'object') data = parsed as Record<string, unknown>;
      } catch {
        data = { error: text.slice(0, 200) };
      }
      throw new MatrixHttpError(
        res.status,
        typeof data.errcode === 'string' ? data.errcode : undefined,
        data,
      );
    }
    return (json ? (text === '' ? {} : JSON.parse(text)) : text) as T;
  }

  /** A room's state event; MatrixHttpError 404 when the room has none. */
  getStateEvent(roomId: string, type: string, stateKey: string): Promise<Record<string, unknown>> {
    const path = `/rooms/${encodeURIComponent(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`;
    return this.authedRequest('GET', path);
  }
}

interface Outgoing {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}

/**
 * One request and its whole answer as text, following redirects as fetch does: 307 and 308
 * repeat the request, the others become a GET without a body, and the token is not carried to
 * another origin.
 */
async function send(url: URL, req: Outgoing): Promise<{ status: number; text: string }> {
  for (let redirects = 0; ; redirects++) {
    const res = await once(url, req);
    const location = res.location;
    if (res.status < 300 || res.status > 399 || res.status === 304 || !location) return res;
    if (redirects === MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`);
    const next = new URL(location, url);
    if (next.protocol !== 'http:' && next.protocol !== 'https:')
      throw new Error(`redirected to ${next.protocol}`);
    const headers = { ...req.headers };
    if (next.origin !== url.origin) delete headers.Authorization;
    if (res.status === 307 || res.status === 308) req = { ...req, headers };
    else {
      delete headers['Content-Type'];
      req = { method: req.method === 'HEAD' ? 'HEAD' : 'GET', headers, signal: req.signal };
    }
    url = next;
  }
}

function once(
  url: URL,
  req: Outgoing,
): Promise<{ status: number; text: string; location?: string }> {
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const headers = { ...req.headers };
    if (req.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(req.body));
    const request = transport.request(url, { method: req.method, headers, signal: req.signal });
    request.on('error', reject);
    request.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          text: Buffer.concat(chunks).toString('utf8'),
          location: res.headers.location,
        }),
      );
    });
    request.end(req.body);
  });
}
