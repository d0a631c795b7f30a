/**
 * Which headers cross the proxy. Upstream gets the agent's headers minus anything that is a
 * credential, a session or about the agent's own connection, plus the real key; the agent gets
 * the provider's headers minus the provider's connection and cookie headers.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { CREDENTIAL_HEADERS, PROVIDER_SPECS, type Provider } from './providers';

/** Headers about one connection, never forwarded (RFC 9110, section 7.6.1). */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];

/** Named in a `Connection` header: hop-by-hop for this message too. */
function connectionListed(headers: IncomingHttpHeaders): string[] {
  const value = headers.connection;
  if (typeof value !== 'string') return [];
  return value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
}

const dropFromRequest = new Set([
  ...HOP_BY_HOP,
  ...CREDENTIAL_HEADERS,
  'host',
  // Node answers `Expect: 100-continue` itself; upstream sees the body straight away.
  'expect',
]);

/**
 * The headers to send upstream: the agent's, cleaned, with the provider's defaults under them
 * and the real credential over them. `bodyLength` replaces the agent's length when the proxy
 * rewrote the body.
 */
export function upstreamHeaders(
  provider: Provider,
  incoming: IncomingHttpHeaders,
  token: string,
  bodyLength?: number,
): OutgoingHttpHeaders {
  const spec = PROVIDER_SPECS[provider];
  const drop = new Set([...dropFromRequest, ...connectionListed(incoming)]);
  const out: OutgoingHttpHeaders = { ...spec.defaultHeaders };
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || drop.has(name)) continue;
    out[name] = value;
  }
  // The meter reads plain bytes; compression to the agent is a local socket's worth of nothing.
  out['accept-encoding'] = 'identity';
  if (bodyLength !== undefined) {
    delete out['transfer-encoding'];
    out['content-length'] = String(bodyLength);
  }
  return { ...out, ...spec.credentialHeaders(token) };
}

const dropFromResponse = new Set([...HOP_BY_HOP, 'set-cookie']);

/** The provider's response headers as the agent gets them. */
export function downstreamHeaders(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  const drop = new Set([...dropFromResponse, ...connectionListed(incoming)]);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || drop.has(name)) continue;
    out[name] = value;
  }
  return out;
}
