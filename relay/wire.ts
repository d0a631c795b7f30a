/**
 * The relay's own HTTP helpers: JSON answers and refusals in the gateway's error shape
 * (`{ok: false, error: {code, message}}`), bodies with its size limit, URLs and peer addresses.
 * What it shares with the gateway and the device socket is in services/http-wire.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorCodeForStatus, readBody as readLimitedBody } from '../services/http-wire';

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

export function sendJsonText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}

export function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(
    res,
    status,
    { ok: false, error: { code: errorCodeForStatus(status), message } },
    headers,
  );
}

/** A body too big for the relay's limit. */
export class BodyTooLarge extends Error {}

/** The request's body as UTF-8, at most `limit` bytes (BodyTooLarge past it). */
export const readBody = (req: IncomingMessage, limit: number): Promise<string> =>
  readLimitedBody(req, limit, () => new BodyTooLarge());

/** The path and whether a query string came with it (even an empty `?`). */
export function splitUrl(url: string | undefined): { pathname: string; query: string | null } {
  const u = url ?? '/';
  const q = u.indexOf('?');
  return q >= 0 ? { pathname: u.slice(0, q), query: u.slice(q + 1) } : { pathname: u, query: null };
}

/** `::ffff:a.b.c.d` → `a.b.c.d`; anything else lower case as it is. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return '';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address.toLowerCase();
}
