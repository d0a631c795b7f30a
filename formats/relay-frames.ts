/**
 * The link between a bridge and its relay (`armorclaw relay`, docs/devices.md "The relay"): one
 * WebSocket the bridge dials out to `wss://<relay>/api/relay/bridge` with
 * `Authorization: Bearer acrl_…`, carrying the relay's device traffic as JSON text frames. The
 * relay holds no registry and no token of any device: it forwards, the bridge decides.
 *
 * Relay → bridge:
 *  - `{type: "http", id, path, address, authorization?, body}`: a device's POST to
 *    `/api/bridge/pair/complete` or `/api/bridge/revoke` (`body` its text, `address` the device's
 *    address as the relay saw it);
 *  - `{type: "open", conn, address, token?}`: a device socket; with `token` (it came in the
 *    upgrade's Authorization header) the relay upgrades only after an `admit`;
 *  - `{type: "frame", conn, text}`: a message of a device socket;
 *  - `{type: "gone", conn}`: the device socket closed;
 *  - `{type: "pong"}`: the answer to the bridge's heartbeat.
 *
 * Bridge → relay:
 *  - `{type: "response", id, status, headers, body}`: the answer to an `http`;
 *  - `{type: "admit", conn, ok, status?, message?}`: the answer to an `open` that had a token;
 *  - `{type: "send", conn, text}`: a message to a device socket;
 *  - `{type: "close", conn, code, reason}`: close a device socket;
 *  - `{type: "ping"}`: the heartbeat, every 15 s; a relay that hears nothing for 45 s drops the
 *    link (and so its devices' sockets), a bridge that hears no pong for 30 s reconnects.
 *
 * Pure parsing, shared by both ends.
 */

export const RELAY_BRIDGE_PATH = '/api/relay/bridge';
export const RELAY_CREDENTIAL_PREFIX = 'acrl_';
/** The relay's paths a device may POST to, forwarded to the bridge. */
export const RELAY_FORWARDED_PATHS = ['/api/bridge/pair/complete', '/api/bridge/revoke'] as const;
export type RelayForwardedPath = (typeof RELAY_FORWARDED_PATHS)[number];

/** Heartbeat period of the link (the bridge's ping). */
export const RELAY_HEARTBEAT_MS = 15_000;
/** Close codes on the relay's device sockets when the bridge is not there. */
export const RELAY_CLOSE = {
  /** The bridge's link dropped (the device should reconnect later). */
  bridgeGone: 1012,
  /** A second link with the same credential replaced this one. */
  replaced: 4000,
} as const;

const MAX_ID = 64;
const MAX_TEXT = 2 * 1024 * 1024;

export type RelayToBridge =
  | {
      type: 'http';
      id: string;
      path: RelayForwardedPath;
      address: string;
      authorization?: string;
      body: string;
    }
  | { type: 'open'; conn: string; address: string; token?: string }
  | { type: 'frame'; conn: string; text: string }
  | { type: 'gone'; conn: string }
  | { type: 'pong' };

export type BridgeToRelay =
  | {
      type: 'response';
      id: string;
      status: number;
      headers: Record<string, string>;
      body: string;
    }
  | { type: 'admit'; conn: string; ok: boolean; status?: number; message?: string }
  | { type: 'send'; conn: string; text: string }
  | { type: 'close'; conn: string; code: number; reason: string }
  | { type: 'ping' };

const isId = (v: unknown): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= MAX_ID;
const isText = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_TEXT;
const isShort = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;

function object(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** A frame from the relay, or null when it is not one (the bridge logs and drops it). */
export function parseRelayToBridge(text: string): RelayToBridge | null {
  const f = object(text);
  if (!f) return null;
  switch (f.type) {
    case 'http':
      if (
        !isId(f.id) ||
        !(RELAY_FORWARDED_PATHS as readonly unknown[]).includes(f.path) ||
        !isShort(f.address, 64) ||
        !isText(f.body) ||
        (f.authorization !== undefined && !isShort(f.authorization, 1024))
      ) {
        return null;
      }
      return {
        type: 'http',
        id: f.id,
        path: f.path as RelayForwardedPath,
        address: f.address,
        ...(f.authorization !== undefined ? { authorization: f.authorization as string } : {}),
        body: f.body,
      };
    case 'open':
      if (!isId(f.conn) || !isShort(f.address, 64)) return null;
      if (f.token !== undefined && !isShort(f.token, 256)) return null;
      return {
        type: 'open',
        conn: f.conn,
        address: f.address,
        ...(f.token !== undefined ? { token: f.token as string } : {}),
      };
    case 'frame':
      return isId(f.conn) && isText(f.text) ? { type: 'frame', conn: f.conn, text: f.text } : null;
    case 'gone':
      return isId(f.conn) ? { type: 'gone', conn: f.conn } : null;
    case 'pong':
      return { type: 'pong' };
    default:
      return null;
  }
}

/** A frame from the bridge, or null when it is not one (the relay logs and drops it). */
export function parseBridgeToRelay(text: string): BridgeToRelay | null {
  const f = object(text);
  if (!f) return null;
  switch (f.type) {
    case 'response': {
      if (!isId(f.id) || !Number.isInteger(f.status) || !isText(f.body)) return null;
      const status = f.status as number;
      if (status < 100 || status > 599) return null;
      const headers: Record<string, string> = {};
      if (typeof f.headers === 'object' && f.headers !== null) {
        for (const [k, v] of Object.entries(f.headers)) {
          // Only the headers a pairing answer carries: nothing the relay would act on.
          if (/^(retry-after|content-type)$/i.test(k) && isShort(v, 128)) {
            headers[k.toLowerCase()] = v;
          }
        }
      }
      return { type: 'response', id: f.id, status, headers, body: f.body };
    }
    case 'admit':
      if (!isId(f.conn) || typeof f.ok !== 'boolean') return null;
      return {
        type: 'admit',
        conn: f.conn,
        ok: f.ok,
        ...(Number.isInteger(f.status) ? { status: f.status as number } : {}),
        ...(isShort(f.message, 256) ? { message: f.message } : {}),
      };
    case 'send':
      return isId(f.conn) && isText(f.text) ? { type: 'send', conn: f.conn, text: f.text } : null;
    case 'close':
      if (!isId(f.conn) || !Number.isInteger(f.code) || !isShort(f.reason, 123)) return null;
      return { type: 'close', conn: f.conn, code: f.code as number, reason: f.reason };
    case 'ping':
      return { type: 'ping' };
    default:
      return null;
  }
}

/**
 * A relay's address as an operator gives it (`https://relay.example.com`, `wss://…`, with or
 * without the link path): the URL the bridge dials and the base URL devices use, or why not.
 * Plain ws:// or http:// is accepted for a loopback relay only (tests, a local TLS proxy).
 */
export function relayUrls(
  input: string,
): { linkUrl: string; publicUrl: string } | { problem: string } {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return { problem: `not a URL: ${input.slice(0, 200)}` };
  }
  const secure = url.protocol === 'https:' || url.protocol === 'wss:';
  if (!secure && url.protocol !== 'http:' && url.protocol !== 'ws:') {
    return { problem: 'the relay URL must be https:// or wss://' };
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (!secure && !loopback) {
    return {
      problem: 'the relay URL must be https:// or wss:// (plain only for a loopback relay)',
    };
  }
  if (url.username || url.password || url.search || url.hash) {
    return { problem: 'the relay URL carries no credentials, query or fragment' };
  }
  const path = url.pathname.replace(/\/+$/, '');
  if (path !== '' && path !== RELAY_BRIDGE_PATH) {
    return { problem: `the relay URL has no path (or ${RELAY_BRIDGE_PATH})` };
  }
  const origin = `${secure ? 'https' : 'http'}://${url.host}`;
  return {
    linkUrl: `${secure ? 'wss' : 'ws'}://${url.host}${RELAY_BRIDGE_PATH}`,
    publicUrl: origin,
  };
}
