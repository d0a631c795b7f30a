/**
 * Authentication and roles (docs/gateway.md, "Auth modes" and "Roles"). Who the caller is comes
 * from the credential; what it may do comes from where it connects from:
 *
 * | mode            | loopback peer | other peer | through a trusted proxy |
 * | --------------- | ------------- | ---------- | ----------------------- |
 * | token, password | admin         | remote     | remote                  |
 * | none            | local         | refused    | remote                  |
 *
 * A trusted proxy's clients are never loopback, whatever the proxy's own address: a proxy on the
 * same host would otherwise make everyone behind it admin.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { GatewayTokenStore } from '../services/gateway-tokens';
import { GatewayError, type GatewayRole } from './protocol';
import { isLoopbackAddress, normalizeAddress } from './address';

export interface GatewayAuthConfig {
  authMode: 'token' | 'password' | 'none';
  /** SHA-256 (hex) of the password of mode `password`. */
  passwordSha256?: string;
  /** Lower-case header name; when set, every request must come through a trusted proxy. */
  trustedIdentityHeader?: string;
  trustedProxyIps: readonly string[];
}

export interface AuthResult {
  role: GatewayRole;
  subject: string;
  address: string;
}

export const PASSWORD_HEADER = 'x-gateway-password';
const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]{1,512})$/;
// Printable ASCII without separators a log reader could be fooled by; bounded.
const IDENTITY = /^[\x21-\x7e]{1,256}$/;

/** Resolves who is calling, or throws AUTH_MISSING / AUTH_INVALID. */
export function authenticate(
  headers: IncomingHttpHeaders,
  peerAddress: string | undefined,
  config: GatewayAuthConfig,
  tokens: Pick<GatewayTokenStore, 'verify'>,
): AuthResult {
  const address = normalizeAddress(peerAddress);
  let identity: string | undefined;
  if (config.trustedIdentityHeader) {
    if (!config.trustedProxyIps.some((ip) => normalizeAddress(ip) === address)) {
      throw new GatewayError(
        'AUTH_INVALID',
        'this gateway accepts requests only through its trusted proxies (gateway.trusted_proxy_ips)',
      );
    }
    const value = single(headers[config.trustedIdentityHeader]);
    if (value === undefined || value === '') {
      throw new GatewayError(
        'AUTH_MISSING',
        `the trusted identity header ${config.trustedIdentityHeader} is required`,
      );
    }
    if (!IDENTITY.test(value)) {
      throw new GatewayError(
        'AUTH_INVALID',
        `the trusted identity header ${config.trustedIdentityHeader} must be 1-256 printable characters`,
      );
    }
    identity = value;
  }

  let subject: string;
  switch (config.authMode) {
    case 'token': {
      const header = single(headers.authorization);
      if (header === undefined) {
        throw new GatewayError(
          'AUTH_MISSING',
          'an Authorization: Bearer <token> header is required',
        );
      }
      const bearer = BEARER.exec(header);
      if (!bearer) {
        throw new GatewayError('AUTH_INVALID', 'the Authorization header must be "Bearer <token>"');
      }
      const found = tokens.verify(bearer[1]!);
      if (!found.ok) {
        throw new GatewayError(
          'AUTH_INVALID',
          found.reason === 'revoked' ? 'the token has been revoked' : 'the token is not valid',
        );
      }
      subject = `token:${found.record.id}`;
      break;
    }
    case 'password': {
      const given = single(headers[PASSWORD_HEADER]);
      if (given === undefined) {
        throw new GatewayError('AUTH_MISSING', `an ${PASSWORD_HEADER} header is required`);
      }
      if (!config.passwordSha256 || !passwordMatches(given, config.passwordSha256)) {
        throw new GatewayError('AUTH_INVALID', 'the password is not valid');
      }
      subject = 'password';
      break;
    }
    case 'none':
      if (identity === undefined && !isLoopbackAddress(address)) {
        // The configuration refuses a public bind in this mode; this holds if it ever slips.
        throw new GatewayError('AUTH_MISSING', 'auth mode "none" serves loopback clients only');
      }
      subject = 'local';
      break;
  }
  if (identity !== undefined) return { role: 'remote', subject: `identity:${identity}`, address };
  const loopback = isLoopbackAddress(address);
  const role: GatewayRole = !loopback ? 'remote' : config.authMode === 'none' ? 'local' : 'admin';
  return { role, subject, address };
}

/** Compares digests, so the compare is constant-time whatever the lengths. */
function passwordMatches(given: string, expectedSha256: string): boolean {
  const digest = createHash('sha256').update(given, 'utf8').digest();
  const expected = Buffer.from(expectedSha256, 'hex');
  return expected.length === digest.length && timingSafeEqual(digest, expected);
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
