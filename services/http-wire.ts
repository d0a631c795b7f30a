/**
 * HTTP and WebSocket plumbing shared by everything of the bridge that serves devices or remote
 * clients — the gateway, the device socket, the relay: bodies read with a size limit, upgrade
 * refusals in the gateway's error shape (`{ok: false, error: {code, message}}`), closing a
 * WebSocket that may never finish its handshake, and the query names that carry credentials.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';

/**
 * Query parameters whose name says they carry a credential. Never accepted: a URL ends up in
 * proxy logs, browser history and Referer headers.
 */
export const CREDENTIAL_QUERY_NAMES =
  /^(token|access_token|auth|authorization|bearer|password|pass|pwd|key|api_key|apikey|secret)$/i;

/** Whether a query string (without its `?`) names a credential (`token=…`, `key=…`). */
export const queryNamesCredential = (query: string): boolean =>
  [...new URLSearchParams(query).keys()].some((n) => CREDENTIAL_QUERY_NAMES.test(n));

/** A closing socket that does not finish its close handshake is cut after this. */
export const CLOSE_GRACE_MS = 1_000;

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  413: 'Payload Too Large',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** The gateway error code a refusal with HTTP `status` carries. */
export function errorCodeForStatus(status: number): string {
  if (status === 401 || status === 403) return 'AUTH_INVALID';
  if (status === 404) return 'NOT_FOUND';
  if (status === 429) return 'RATE_LIMITED';
  if (status === 503 || status === 504) return 'RUN_UNAVAILABLE';
  if (status >= 500) return 'INTERNAL';
  return 'BAD_REQUEST';
}

/** Answers an upgrade request with a plain HTTP refusal: no WebSocket at all. */
export function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ ok: false, error: { code: errorCodeForStatus(status), message } });
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nconnection: close\r\n` +
      `content-type: application/json; charset=utf-8\r\ncache-control: no-store\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** Closes with `code`; a peer that does not complete the handshake is cut after a second. */
export function closeSoon(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState === ws.CLOSED) return;
  try {
    // A reason is at most 123 bytes; cut by characters, then by bytes to be sure.
    let r = reason.slice(0, 123);
    while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
    ws.close(code, r);
  } catch {
    // A code the protocol does not allow on the wire (1005, 1006, …): no handshake, just cut.
    ws.terminate();
    return;
  }
  setTimeout(() => {
    if (ws.readyState !== ws.CLOSED) ws.terminate();
  }, CLOSE_GRACE_MS).unref();
}

/** A WebSocket message as text. */
export function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** The request's body as UTF-8, at most `limit` bytes; past it, rejects with `tooLarge()`. */
export function readBody(
  req: IncomingMessage,
  limit: number,
  tooLarge: () => Error,
): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        chunks.length = 0;
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (err) => {
      if (done) return;
      done = true;
      reject(err);
    });
  });
}
