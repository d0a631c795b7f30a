/**
 * The devices' HTTP endpoints on the gateway (docs/devices.md):
 *
 * - `POST /api/bridge/pair/complete` `{pairCode, device: {name, os, bridgeVersion}, pubKey}` →
 *   `{bridgeId, wsToken, scope}`. No credential: the code is the credential, and the registry's
 *   lockout bounds guessing per address and overall (429 with Retry-After).
 * - `POST /api/bridge/revoke` `{bridgeId}` → `{ok: true}`, by the device itself (its own token in
 *   `Authorization: Bearer`) or by a gateway admin (an authenticated loopback caller, or `local`).
 *
 * Errors are `{ok: false, error: {code, message}}` with a gateway error code (pairing adds
 * `reason`: invalid_code, expired, used, locked_out, invalid_request). Nothing is read from a
 * query string; one naming a credential is refused as such.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { DEVICE_TOKEN_PREFIX, DeviceRegistryError } from '../services/device-registry';
import type { DeviceRegistry } from '../services/device-registry';
import type { GatewayTokenStore } from '../services/gateway-tokens';
import { normalizeAddress } from '../gateway/address';
import { authenticate, type GatewayAuthConfig } from '../gateway/auth';
import { CREDENTIAL_QUERY_NAMES } from '../services/http-wire';
import { parseGatewayParams } from '../gateway/params';
import { GatewayError, badRequest } from '../gateway/protocol';
import { errorHttpStatus, readBody, sendJson, type GatewayRoute } from '../gateway/server';
import type { DeviceService } from './service';

export const PAIR_COMPLETE_PATH = '/api/bridge/pair/complete';
export const REVOKE_PATH = '/api/bridge/revoke';
/** Pairing and revocation bodies are small; anything bigger is not one. */
const BODY_LIMIT = 16 * 1024;
const DEVICE_BEARER = new RegExp(`^Bearer (${DEVICE_TOKEN_PREFIX}[A-Za-z0-9_-]{1,120})$`);

export interface DeviceHttpOptions {
  service: DeviceService;
  registry: DeviceRegistry;
  auth: GatewayAuthConfig;
  tokens: Pick<GatewayTokenStore, 'verify'>;
}

const revokeBody = z.strictObject({
  bridgeId: z.string().regex(/^br_[0-9a-f]{16}$/, 'must be a device id (br_ + 16 hex digits)'),
});

/** An answer of a device endpoint, whichever transport carries it (the gateway or the relay). */
export interface DeviceHttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

export function deviceRoutes(options: DeviceHttpOptions): Record<string, GatewayRoute> {
  const send = (res: ServerResponse, a: DeviceHttpAnswer) =>
    sendJson(res, a.status, a.body, a.headers);
  return {
    [PAIR_COMPLETE_PATH]: async (req, res) => {
      const read = await readJsonPost(req).then(
        (body) => ({ body }),
        (err: unknown) => ({ err }),
      );
      if ('err' in read) return send(res, errorAnswer(read.err));
      send(res, pairCompleteAnswer(options, read.body, normalizeAddress(req.socket.remoteAddress)));
    },
    [REVOKE_PATH]: async (req, res) => {
      const read = await readJsonPost(req).then(
        (body) => ({ body }),
        (err: unknown) => ({ err }),
      );
      if ('err' in read) return send(res, errorAnswer(read.err));
      send(
        res,
        revokeAnswer(options, read.body, req.headers.authorization, () => {
          // No device token: a gateway admin (or `local`) may revoke any device.
          const who = authenticate(
            req.headers,
            req.socket.remoteAddress,
            options.auth,
            options.tokens,
          );
          if (who.role !== 'admin' && who.role !== 'local') {
            throw new GatewayError(
              'AUTH_ROLE_MISMATCH',
              'revoking a device takes the device itself or a gateway admin (loopback)',
            );
          }
        }),
      );
    },
  };
}

/** `POST /api/bridge/pair/complete` with its parsed body, from `address`. */
export function pairCompleteAnswer(
  options: Pick<DeviceHttpOptions, 'service'>,
  body: unknown,
  address: string,
): DeviceHttpAnswer {
  const paired = options.service.pairComplete(body, address);
  if (paired.ok) return { status: 200, headers: {}, body: paired.body };
  return {
    status: paired.status,
    headers:
      paired.retryAfterSeconds !== undefined
        ? { 'retry-after': String(paired.retryAfterSeconds) }
        : {},
    body: paired.body,
  };
}

/**
 * `POST /api/bridge/revoke` with its parsed body and Authorization header: by the device itself
 * (its own token), or else as `authorizeOther` allows (throwing a GatewayError to refuse).
 */
export function revokeAnswer(
  options: Pick<DeviceHttpOptions, 'registry'>,
  body: unknown,
  authorization: string | undefined,
  authorizeOther: () => void,
): DeviceHttpAnswer {
  try {
    const { bridgeId } = parseGatewayParams(revokeBody, body);
    const bearer = authorization !== undefined ? DEVICE_BEARER.exec(authorization) : null;
    if (bearer) authorizeDevice(options.registry, bearer[1]!, bridgeId);
    else authorizeOther();
    try {
      options.registry.revoke(bridgeId);
    } catch (err) {
      if (err instanceof DeviceRegistryError && err.code === 'not_found') {
        throw new GatewayError('NOT_FOUND', err.message);
      }
      throw err;
    }
    return { status: 200, headers: {}, body: { ok: true } };
  } catch (err) {
    return errorAnswer(err);
  }
}

/** A device token may revoke its own device only. */
function authorizeDevice(registry: DeviceRegistry, token: string, bridgeId: string): void {
  const verdict = registry.verifyDeviceToken(token);
  if (!verdict.ok) {
    // A revoked device revoking itself again: done already. Its token names no one else.
    if (verdict.reason === 'revoked' && verdict.bridgeId === bridgeId) return;
    throw new GatewayError(
      'AUTH_INVALID',
      verdict.reason === 'revoked' ? 'this device token is revoked' : 'unknown device token',
    );
  }
  if (verdict.device.bridgeId !== bridgeId) {
    throw new GatewayError('AUTH_ROLE_MISMATCH', 'a device may revoke only itself');
  }
}

/** A GatewayError as an answer (its status, code and Retry-After); anything else is thrown. */
export function errorAnswer(err: unknown): DeviceHttpAnswer {
  if (!(err instanceof GatewayError)) throw err;
  return {
    status: errorHttpStatus(err),
    headers:
      err.retryAfterSeconds !== undefined ? { 'retry-after': String(err.retryAfterSeconds) } : {},
    body: { ok: false, error: { code: err.code, message: err.message } },
  };
}

async function readJsonPost(req: IncomingMessage): Promise<unknown> {
  if (req.method !== 'POST') {
    req.resume();
    throw badRequest('use POST');
  }
  const url = req.url ?? '';
  const q = url.indexOf('?');
  if (q >= 0) {
    req.resume();
    const names = [...new URLSearchParams(url.slice(q + 1)).keys()];
    if (names.some((n) => CREDENTIAL_QUERY_NAMES.test(n))) {
      throw new GatewayError(
        'AUTH_INVALID',
        'credentials are never accepted in a URL query string; send them in the body or a header',
      );
    }
    throw badRequest('this path takes no query string');
  }
  if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
    req.resume();
    throw badRequest('content-type must be application/json');
  }
  const text = await readBody(req, BODY_LIMIT);
  try {
    return JSON.parse(text);
  } catch {
    throw badRequest('the body is not valid JSON');
  }
}
