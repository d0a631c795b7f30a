/**
 * `approval.list`, `approval.resolve`, `approval.capabilities`: operators see and answer the
 * requests agents make over their sockets (rpc/methods/approvals.ts). Each request is a durable
 * workflow (workflows/approval.ts); resolving it is that workflow's update, so a request resolved
 * here, in the admin room or by another bridge is resolved once, and the workflow writes the
 * audit entry. While incident mode isolates tools, approving is refused (denying is not).
 */
import { z } from 'zod';
import { MAX_GRANT_TTL_MS, MAX_GRANT_USES } from '../../formats/capabilities';
import { REQUEST_ID_PATTERN } from '../../services/approval-reply';
import {
  ApprovalError,
  listActiveGrants,
  listApprovals,
  resolveApproval,
} from '../../sessions/approvals';
import type { Client } from '@temporalio/client';
import type { IncidentControl } from '../../sessions/incident';
import type { ApprovalRecord } from '../../workflows/definitions';
import { parseGatewayParams } from '../params';
import { GatewayError, badRequest, notFound, type GatewayMethods } from '../protocol';

export interface ApprovalMethodsDeps {
  client: Client;
  incident: Pick<IncidentControl, 'toolIsolationEnabled' | 'log'>;
}

const listParams = z.strictObject({
  status: z.enum(['pending', 'approved', 'denied', 'expired']).optional(),
});
const resolveParams = z.strictObject({
  requestId: z.string().min(1).max(64),
  decision: z.enum(['approve', 'deny']),
  reason: z.string().max(500).optional(),
  grantTtlMs: z.number().int().positive().max(MAX_GRANT_TTL_MS).optional(),
  grantUses: z.number().int().positive().max(MAX_GRANT_USES).optional(),
});
const noParams = z.strictObject({});

/** A grant as `approval.capabilities` lists it. */
export function grantView(r: ApprovalRecord) {
  return {
    requestId: r.requestId,
    capability: r.capability,
    containerName: r.containerName,
    usesLeft: r.grant?.usesLeft ?? 0,
    uses: r.grant?.uses ?? 0,
    expiresAt: r.grant?.expiresAt ?? null,
    resolvedBy: r.resolvedBy ?? null,
  };
}

/** The ApprovalError of sessions/approvals.ts as the spec's codes. */
export function approvalGatewayError(err: unknown): unknown {
  if (!(err instanceof ApprovalError)) return err;
  if (err.code === 'not_found') return notFound(err.message);
  if (err.code === 'not_pending') return badRequest(err.message);
  return new GatewayError('RUN_UNAVAILABLE', err.message);
}

export function registerApprovalMethods(methods: GatewayMethods, deps: ApprovalMethodsDeps): void {
  methods.add('approval.list', async (params) => {
    const p = parseGatewayParams(listParams, params);
    return { requests: await listApprovals(deps.client, { status: p.status }) };
  });

  methods.add('approval.resolve', async (params, caller) => {
    const p = parseGatewayParams(resolveParams, params);
    if (!REQUEST_ID_PATTERN.test(p.requestId)) {
      throw notFound(`no approval request ${p.requestId} (request ids are 12 hex digits)`);
    }
    if (p.decision === 'deny' && (p.grantTtlMs !== undefined || p.grantUses !== undefined)) {
      throw badRequest('grantTtlMs and grantUses apply to decision "approve" only');
    }
    if (p.decision === 'approve' && (await deps.incident.toolIsolationEnabled())) {
      await deps.incident.log({
        kind: 'grant_refused',
        detail: { request_id: p.requestId, by: `gateway:${caller.subject}` },
      });
      throw new GatewayError(
        'FORBIDDEN',
        'incident mode isolates tools: no grants are given until incident.lift (deny is allowed)',
      );
    }
    try {
      const request = await resolveApproval(deps.client, p.requestId, {
        decision: p.decision,
        by: `gateway:${caller.subject}`,
        ...(p.reason !== undefined ? { reason: p.reason } : {}),
        ...(p.grantTtlMs !== undefined ? { grantTtlMs: p.grantTtlMs } : {}),
        ...(p.grantUses !== undefined ? { grantUses: p.grantUses } : {}),
      });
      return { request };
    } catch (err) {
      throw approvalGatewayError(err);
    }
  });

  methods.add('approval.capabilities', async (params) => {
    parseGatewayParams(noParams, params);
    return { grants: (await listActiveGrants(deps.client)).map(grantView) };
  });
}
