/**
 * Incident containment for the operator on this host (`armorclaw incident status|lift`): the same
 * durable state the gateway's `incident.*` methods read and change (sessions/incident.ts). Over
 * the socket, whoever can reach it is the operator; bundling stays a gateway method, since it
 * revokes gateway tokens presented to it.
 */
import type { IncidentControl } from '../../sessions/incident';
import type { IncidentStatus } from '../../workflows/definitions';
import type { RpcDispatcher } from '../dispatcher';
import { internalError } from '../errors';
import { noParams, parseParams } from '../params';

/** The incident's state in the socket API's snake_case. */
export function incidentView(s: IncidentStatus) {
  return {
    active: s.active,
    since: s.since,
    bundled_by: s.bundledBy,
    lifted_at: s.liftedAt,
    lifted_by: s.liftedBy,
    proactive_disabled: s.proactiveDisabled,
    tool_isolation: s.toolIsolation,
    revoked_token_hashes: s.revokedTokenHashes,
    policy_logs: s.policyLogs,
  };
}

export function registerIncidentMethods(
  dispatcher: RpcDispatcher,
  incident: Pick<IncidentControl, 'status' | 'lift'>,
): void {
  const guarded = async (fn: () => Promise<IncidentStatus>) => {
    try {
      return incidentView(await fn());
    } catch {
      throw internalError('Internal error: incident state unavailable');
    }
  };
  dispatcher.addMethod('incident.status', (params) => {
    parseParams(noParams, params);
    return guarded(() => incident.status());
  });
  dispatcher.addMethod('incident.lift', (params) => {
    parseParams(noParams, params);
    return guarded(() => incident.lift('socket'));
  });
}
