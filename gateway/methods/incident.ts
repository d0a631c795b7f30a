/**
 * `incident.bundle` and `incident.lift`: containment when a credential or an agent is suspected.
 * A bundle revokes the gateway tokens it is given (in the token store, at once: the next request
 * with one is AUTH_INVALID), then records the incident in its workflow (workflows/incident.ts),
 * which disables proactive sends and isolates tools until an admin lifts it, across restarts.
 * The answer is the forensic bundle; a token's text is never echoed, stored or logged, only its
 * SHA-256.
 */
import { z } from 'zod';
import { CAPABILITY_NAMES } from '../../formats/capabilities';
import type { IncidentControl } from '../../sessions/incident';
import type { IncidentStatus } from '../../workflows/definitions';
import { parseGatewayParams } from '../params';
import type { GatewayMethods } from '../protocol';

export interface IncidentMethodsDeps {
  incident: Pick<IncidentControl, 'bundle' | 'lift' | 'status'>;
  /** Revokes presented gateway tokens; returns the SHA-256 of each (services/gateway-tokens.ts). */
  revokeTokens(tokens: readonly string[]): string[];
}

const MAX_TOKENS = 100;
const bundleParams = z.strictObject({
  tokens: z.array(z.string().min(1).max(512)).max(MAX_TOKENS).optional(),
});
const noParams = z.strictObject({});

/** The spec's forensic bundle, with the bridge's incident facts beside it. */
export function forensicBundle(s: IncidentStatus) {
  return {
    revokedTokenHashes: s.revokedTokenHashes,
    proactiveDisabled: s.proactiveDisabled,
    isolatedTools: s.toolIsolation ? [...CAPABILITY_NAMES] : [],
    policyLogs: s.policyLogs,
    active: s.active,
    since: s.since,
  };
}

export function registerIncidentMethods(methods: GatewayMethods, deps: IncidentMethodsDeps): void {
  methods.add('incident.bundle', async (params, caller) => {
    const p = parseGatewayParams(bundleParams, params);
    // Revoked first: if recording the incident fails, the tokens are cut off all the same.
    const hashes = deps.revokeTokens(p.tokens ?? []);
    const status = await deps.incident.bundle(hashes, `gateway:${caller.subject}`);
    return forensicBundle(status);
  });

  methods.add('incident.lift', async (params, caller) => {
    parseGatewayParams(noParams, params);
    const status = await deps.incident.lift(`gateway:${caller.subject}`);
    return { ...forensicBundle(status), liftedAt: status.liftedAt, liftedBy: status.liftedBy };
  });

  methods.add('incident.status', async (params) => {
    parseGatewayParams(noParams, params);
    return forensicBundle(await deps.incident.status());
  });
}
