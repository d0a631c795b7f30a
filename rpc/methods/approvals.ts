/**
 * An agent's approval methods on its own socket (rpc/container-socket.ts): it asks before a
 * high-risk action (`approval.request`), follows its request (`approval.status`) and spends its
 * grant one use at a time (`approval.use`). The container is the socket's, never a parameter: an
 * agent sees and spends only its own requests and grants.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { scopeAllows } from '../../formats/device-scopes';
import { CAPABILITY_NAMES, isCapability } from '../../formats/capabilities';
import { REQUEST_ID_PATTERN } from '../../services/approval-reply';
import {
  ApprovalError,
  listActiveGrants,
  readApproval,
  startApprovalRequest,
  useGrant,
  type ApprovalSettings,
} from '../../sessions/approvals';
import type { IncidentControl } from '../../sessions/incident';
import type { ApprovalRecord } from '../../workflows/definitions';
import type { RpcDispatcher } from '../dispatcher';
import { ErrorCode, RpcError, internalError, invalidParams } from '../errors';
import { parseParams } from '../params';

export interface AgentApprovalDeps {
  settings: ApprovalSettings;
  incident: Pick<IncidentControl, 'toolIsolationEnabled' | 'log'>;
  audit(entry: { event_type: string; session_id: string; details: Record<string, unknown> }): void;
  /** Throws when the params hold a stored credential (the hub's leak guard). */
  refuseLeaks?(method: string, params: unknown): void;
  /**
   * The scope of the paired device this agent serves (its container runs a device's session),
   * or undefined: such an agent gets no capability its device's scope does not allow.
   */
  deviceScope?(containerName: string): string | undefined;
  log: Logger;
}

/** Requests one agent may make in a minute: an operator's attention is the scarce thing. */
const REQUESTS_PER_MINUTE = 10;
/** Request ids one socket remembers for `approval.use` (the oldest are found through visibility). */
const MAX_REMEMBERED = 100;

const capability = z.string().refine(isCapability, {
  message: `unknown capability (one of ${CAPABILITY_NAMES.join(', ')})`,
});
const requestId = z.string().regex(REQUEST_ID_PATTERN, 'a request id is 12 hex digits');
const requestParams = z.strictObject({
  capability,
  reason: z.string().min(1).max(500),
  /** The same key always means the same request: a retry gets the first one back. */
  idempotency_key: z
    .string()
    .regex(/^[A-Za-z0-9._:$=+-]{1,128}$/)
    .optional(),
});
const statusParams = z.strictObject({ request_id: requestId });
const useParams = z.strictObject({ capability, request_id: requestId.optional() });

/** A record as agents see it: the socket API's snake_case. */
export function agentView(r: ApprovalRecord) {
  return {
    request_id: r.requestId,
    capability: r.capability,
    reason: r.reason,
    status: r.status,
    created_at: r.createdAt,
    ...(r.resolvedAt ? { resolved_at: r.resolvedAt } : {}),
    ...(r.resolutionReason ? { resolution_reason: r.resolutionReason } : {}),
    ...(r.grant
      ? {
          grant: {
            ttl_ms: r.grant.ttlMs,
            uses: r.grant.uses,
            uses_left: r.grant.usesLeft,
            expires_at: r.grant.expiresAt,
            active: r.grant.active,
            ...(r.grant.endReason ? { end_reason: r.grant.endReason } : {}),
          },
        }
      : {}),
  };
}

export function registerAgentApprovalMethods(
  dispatcher: RpcDispatcher,
  containerName: string,
  deps: AgentApprovalDeps,
): void {
  // Requests made through this socket since the bridge started: found at once by `approval.use`
  // without a request id (the visibility store trails a new grant by about a second).
  const mine = new Map<string, string>();
  let windowStart = 0;
  let inWindow = 0;

  /** Fail closed: a grant is never given or used while the incident state cannot be read. */
  const isolated = async () => {
    try {
      return await deps.incident.toolIsolationEnabled();
    } catch (err) {
      deps.log.warn({ err: (err as Error).message }, 'incident state unavailable');
      throw internalError('Internal error: incident state unavailable; try again');
    }
  };

  dispatcher.addMethod('approval.request', async (params) => {
    const p = parseParams(requestParams, params);
    deps.refuseLeaks?.('approval.request', p);
    const now = Date.now();
    if (now - windowStart >= 60_000) {
      windowStart = now;
      inWindow = 0;
    }
    if (++inWindow > REQUESTS_PER_MINUTE) {
      throw new RpcError(
        ErrorCode.RateLimitExceeded,
        `at most ${REQUESTS_PER_MINUTE} approval requests per minute`,
      );
    }
    if (await isolated()) {
      await deps.incident.log({
        kind: 'approval_refused',
        detail: { container: containerName, capability: p.capability },
      });
      deps.audit({
        event_type: 'approval_refused',
        session_id: containerName,
        details: { capability: p.capability, reason: 'tool_isolation' },
      });
      throw new RpcError(
        ErrorCode.SecurityPolicyViolation,
        'Security policy violation: incident mode isolates tools; no grants are given',
      );
    }
    const scope = deps.deviceScope?.(containerName);
    if (scope !== undefined && !scopeAllows(scope, p.capability)) {
      deps.audit({
        event_type: 'approval_refused',
        session_id: containerName,
        details: { capability: p.capability, reason: 'device_scope', scope },
      });
      throw new RpcError(
        ErrorCode.SecurityPolicyViolation,
        `Security policy violation: this agent serves a paired device with scope ${scope}, which does not allow ${p.capability}`,
      );
    }
    let record: ApprovalRecord;
    try {
      record = await startApprovalRequest(deps.settings, {
        capability: p.capability as never,
        reason: p.reason,
        containerName,
        ...(p.idempotency_key ? { idempotencyKey: p.idempotency_key } : {}),
      });
    } catch (err) {
      if (err instanceof ApprovalError && err.code === 'not_pending') {
        throw invalidParams(`Invalid params: idempotency_key: ${err.message}`);
      }
      deps.log.error({ err: (err as Error).message }, 'approval request not started');
      throw internalError('Internal error: approval request not recorded');
    }
    mine.set(record.requestId, p.capability);
    if (mine.size > MAX_REMEMBERED) mine.delete(mine.keys().next().value!);
    return {
      request_id: record.requestId,
      status: record.status,
      capability: record.capability,
      expires_at: new Date(
        Date.parse(record.createdAt) + deps.settings.requestTimeoutMs,
      ).toISOString(),
    };
  });

  dispatcher.addMethod('approval.status', async (params) => {
    const p = parseParams(statusParams, params);
    const record = await readApproval(deps.settings.client, p.request_id).catch((err) => {
      if (err instanceof ApprovalError) return undefined;
      throw internalError('Internal error: approval status unavailable');
    });
    // Another agent's request does not exist, as far as this one can tell.
    if (!record || record.containerName !== containerName) {
      throw invalidParams(`Invalid params: no approval request ${p.request_id}`);
    }
    return agentView(record);
  });

  dispatcher.addMethod('approval.use', async (params) => {
    const p = parseParams(useParams, params);
    if (await isolated()) {
      await deps.incident.log({
        kind: 'grant_use_refused',
        detail: { container: containerName, capability: p.capability },
      });
      return { allowed: false, reason: 'tool_isolation' };
    }
    const candidates = p.request_id
      ? [p.request_id]
      : await grantCandidates(deps, containerName, p.capability, mine);
    let refusal = 'no_grant';
    for (const id of candidates) {
      if (p.request_id) {
        const record = await readApproval(deps.settings.client, id).catch(() => undefined);
        if (!record || record.containerName !== containerName) break;
        if (record.capability !== p.capability) {
          refusal = 'wrong_capability';
          break;
        }
      }
      const result = await useGrant(deps.settings.client, id, containerName);
      if (result.allowed) {
        deps.audit({
          event_type: 'approval_grant_used',
          session_id: containerName,
          details: { request_id: id, capability: p.capability, uses_left: result.usesLeft },
        });
        return { allowed: true, request_id: id, uses_left: result.usesLeft };
      }
      refusal = result.reason;
      // Over for good: no later use needs to try it again.
      if (result.reason !== 'not_approved') mine.delete(id);
    }
    return { allowed: false, reason: refusal };
  });
}

/** This agent's grants for `capability`: its own recent requests first, then visibility's. */
async function grantCandidates(
  deps: AgentApprovalDeps,
  containerName: string,
  capability: string,
  mine: Map<string, string>,
): Promise<string[]> {
  const ids = [...mine].filter(([, c]) => c === capability).map(([id]) => id);
  const listed = await listActiveGrants(deps.settings.client).catch(() => [] as ApprovalRecord[]);
  for (const r of listed) {
    if (
      r.containerName === containerName &&
      r.capability === capability &&
      !ids.includes(r.requestId)
    )
      ids.push(r.requestId);
  }
  return ids;
}
