/**
 * The frames of the device WebSocket (`/api/bridge/ws`, docs/devices.md): JSON text messages.
 *
 * From a device:
 *  - `{type: "auth", token}`: its token, as the first message when the upgrade carried no
 *    `Authorization` header (browsers cannot set one). Never in the URL.
 *  - `{id, type: "invoke", payload: {kind, body}}`: one operation; `id` a string or number of the
 *    device's choosing, echoed in the result.
 *  - `{type: "ping"}`: an application-level ping, answered `{type: "pong"}` (the bridge also
 *    pings at the WebSocket level).
 *
 * From the bridge:
 *  - `{type: "ready", bridgeId, scope, operations}` once the device is authenticated;
 *  - `{id, type: "result", ok: true, payload}` or `{id, type: "result", ok: false, error: {code,
 *    message}}`, `code` one of the gateway's error codes;
 *  - `{type: "pong"}`.
 * Pure parsing, shared by every transport that carries these frames.
 */

/** Close codes the bridge uses on a device WebSocket, besides the standard ones. */
export const DEVICE_CLOSE = {
  /** The token is unknown (never issued, or replaced by a rotation). */
  unauthorized: 4401,
  /** The device is revoked. */
  revoked: 4403,
  /** The device's token was replaced (`devices.rotate`): the old one is refused from now on. */
  rotated: 4409,
  /** No `auth` frame came in time. */
  authTimeout: 4408,
  /** The device already holds its maximum of open connections. */
  tooManyConnections: 4429,
} as const;

/** The HTTP status refusing an upgrade for a reason that would close a socket with `closeCode`. */
export function refusalHttpStatus(closeCode: number): number {
  if (closeCode === DEVICE_CLOSE.revoked) return 403;
  if (closeCode === DEVICE_CLOSE.tooManyConnections) return 429;
  return 401;
}

/** How long a connection without an `Authorization` header has to send its `auth` frame. */
export const DEVICE_AUTH_TIMEOUT_MS = 10_000;

const MAX_ID_CHARS = 128;
const KIND = /^[A-Za-z][A-Za-z0-9._]{0,63}$/;

export type DeviceFrameId = string | number;

export type DeviceFrame =
  | { type: 'auth'; token: string }
  | { type: 'invoke'; id: DeviceFrameId; kind: string; body: unknown }
  | { type: 'ping' };

/** A frame the bridge cannot take; `id` when the frame had a usable one (to answer it). */
export interface DeviceFrameProblem {
  problem: string;
  id: DeviceFrameId | null;
}

/** Parses one text message from a device. */
export function parseDeviceFrame(text: string): DeviceFrame | DeviceFrameProblem {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: 'the message is not valid JSON', id: null };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { problem: 'a message is a JSON object with a "type"', id: null };
  }
  const f = value as Record<string, unknown>;
  const id = frameId(f.id);
  switch (f.type) {
    case 'auth':
      if (typeof f.token !== 'string' || f.token === '') {
        return { problem: 'an auth message carries {"type": "auth", "token": "…"}', id: null };
      }
      return { type: 'auth', token: f.token };
    case 'ping':
      return { type: 'ping' };
    case 'invoke': {
      if (id === null) {
        return {
          problem: `an invoke carries an "id": a string of 1-${MAX_ID_CHARS} characters or a number`,
          id: null,
        };
      }
      const payload = f.payload;
      if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
        return { problem: 'an invoke carries "payload": {"kind": "…", "body": {…}}', id };
      }
      const { kind, body } = payload as Record<string, unknown>;
      if (typeof kind !== 'string' || !KIND.test(kind)) {
        return { problem: 'payload.kind must name an operation (chatCompletions, status, …)', id };
      }
      if (
        body !== undefined &&
        body !== null &&
        (typeof body !== 'object' || Array.isArray(body))
      ) {
        return { problem: 'payload.body must be an object when given', id };
      }
      return { type: 'invoke', id, kind, body: body ?? {} };
    }
    default:
      return {
        problem: 'unknown message type: a device sends "auth", "invoke" or "ping"',
        id,
      };
  }
}

function frameId(value: unknown): DeviceFrameId | null {
  if (typeof value === 'string' && value.length > 0 && value.length <= MAX_ID_CHARS) return value;
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  return null;
}

export function isFrameProblem(f: DeviceFrame | DeviceFrameProblem): f is DeviceFrameProblem {
  return 'problem' in f;
}
