/**
 * Approval requests as sessions: starting one, reading, resolving and using its grant, and
 * listing them from Temporal's visibility store. Shared by the agent's socket methods
 * (rpc/methods/approvals.ts), the gateway's `approval.*` methods and the admin room's replies,
 * so it sits below all of them.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure, WorkflowIdReusePolicy } from '@temporalio/common';
import {
  CAPABILITIES,
  MAX_GRANT_TTL_MS,
  MAX_GRANT_USES,
  type Capability,
} from '../formats/capabilities';
import type { approvalWorkflow } from '../workflows/approval';
import {
  APPROVAL_MEMO_KEY,
  approvalResolveUpdate,
  approvalStatusQuery,
  approvalUseUpdate,
  approvalWorkflowId,
  type ApprovalRecord,
  type ApprovalResolution,
  type ApprovalStatusName,
  type ApprovalUseResult,
  type ApprovalWorkflowInput,
} from '../workflows/definitions';
import { isClosedWorkflowError } from './workflow-errors';
import { approvalsQuery, ArmorclawKind, ArmorclawState } from '../workflows/search-attributes';

export interface ApprovalSettings {
  client: Client;
  taskQueue: string;
  hostId: string;
  /** How long a request waits for an answer before it expires. */
  requestTimeoutMs: number;
  /** Where requests are announced (and answered); absent: the gateway only. */
  adminRoomId?: string;
}

/** A refusal the caller maps to its own error codes (gateway, socket). */
export class ApprovalError extends Error {
  constructor(
    readonly code: 'not_found' | 'not_pending' | 'unavailable',
    message: string,
  ) {
    super(message);
    this.name = 'ApprovalError';
  }
}

/** 12 lower-case hex digits: short enough to type in a Matrix reply, unique in practice. */
export const newRequestId = (): string => randomBytes(6).toString('hex');

/**
 * The request id an agent's idempotency key stands for: the same container and key always name
 * the same request, so an agent that retries after losing the answer (its bridge was killed
 * after the request started) gets the first request back instead of asking twice.
 */
export const keyedRequestId = (containerName: string, key: string): string =>
  createHash('sha256').update(`${containerName}\n${key}`).digest('hex').slice(0, 12);

/** The record a request starts as (also its first memo, so lists see it at once). */
function pendingRecord(input: ApprovalWorkflowInput, nowMs: number): ApprovalRecord {
  return {
    requestId: input.requestId,
    capability: input.capability,
    reason: input.reason,
    containerName: input.containerName,
    status: 'pending',
    state: 'Pending',
    createdAt: new Date(nowMs).toISOString(),
  };
}

/** Starts the request's workflow; it is announced in the admin room by the workflow itself. */
export async function startApprovalRequest(
  s: ApprovalSettings,
  req: { capability: Capability; reason: string; containerName: string; idempotencyKey?: string },
): Promise<ApprovalRecord> {
  const spec = CAPABILITIES[req.capability];
  const input: ApprovalWorkflowInput = {
    requestId: req.idempotencyKey
      ? keyedRequestId(req.containerName, req.idempotencyKey)
      : newRequestId(),
    capability: req.capability,
    reason: req.reason,
    containerName: req.containerName,
    hostId: s.hostId,
    ...(s.adminRoomId ? { adminRoomId: s.adminRoomId } : {}),
    requestTimeoutMs: s.requestTimeoutMs,
    defaultGrantTtlMs: spec.defaultGrantTtlMs,
    defaultGrantUses: spec.defaultGrantUses,
    maxGrantTtlMs: MAX_GRANT_TTL_MS,
    maxGrantUses: MAX_GRANT_USES,
  };
  const record = pendingRecord(input, Date.now());
  try {
    await s.client.workflow.start<typeof approvalWorkflow>('approvalWorkflow', {
      taskQueue: s.taskQueue,
      workflowId: approvalWorkflowId(input.requestId),
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      typedSearchAttributes: [
        { key: ArmorclawKind, value: 'approval' },
        { key: ArmorclawState, value: 'Pending' },
      ],
      memo: { [APPROVAL_MEMO_KEY]: record },
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError) || !req.idempotencyKey) throw err;
    // The same key again: the first request, whatever has become of it since.
    const first = await readApproval(s.client, input.requestId);
    if (first.containerName !== req.containerName || first.capability !== req.capability) {
      throw new ApprovalError('not_pending', 'idempotency key already used for another request');
    }
    return first;
  }
  return record;
}

/** The request's record, live or over; NOT_FOUND-class ApprovalError when there is none. */
export async function readApproval(client: Client, requestId: string): Promise<ApprovalRecord> {
  const handle = client.workflow.getHandle(approvalWorkflowId(requestId));
  try {
    return await handle.query(approvalStatusQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw notFound(requestId);
    // A closed run with no worker to replay it: its last memo is the record.
    const memo = await memoRecord(client, requestId);
    if (memo) return memo;
    throw err;
  }
}

/** Resolves a pending request; `not_pending` (with its status) or `not_found` otherwise. */
export async function resolveApproval(
  client: Client,
  requestId: string,
  resolution: ApprovalResolution,
): Promise<ApprovalRecord> {
  const handle = client.workflow.getHandle(approvalWorkflowId(requestId));
  try {
    return await handle.executeUpdate(approvalResolveUpdate, { args: [resolution] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
      if (err.cause.type !== 'AcceptedUpdateCompletedWorkflow') {
        throw new ApprovalError('not_pending', err.cause.message);
      }
    }
    if (isClosedWorkflowError(err)) {
      const memo = await memoRecord(client, requestId);
      if (!memo) throw notFound(requestId);
      throw new ApprovalError(
        'not_pending',
        `approval request ${requestId} is not pending: it is ${memo.status}`,
      );
    }
    throw err;
  }
}

/**
 * Takes one use of the grant `requestId`, for `containerName` only. Whatever the reason a use
 * cannot be taken (another agent's request, a request that is over), the answer is a refusal.
 */
export async function useGrant(
  client: Client,
  requestId: string,
  containerName: string,
): Promise<ApprovalUseResult> {
  const handle = client.workflow.getHandle(approvalWorkflowId(requestId));
  try {
    return await handle.executeUpdate(approvalUseUpdate, { args: [{ containerName }] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
      if (err.cause.type !== 'AcceptedUpdateCompletedWorkflow') {
        return { allowed: false, reason: 'not_yours' };
      }
    }
    if (isClosedWorkflowError(err)) {
      const memo = await memoRecord(client, requestId);
      if (!memo || memo.containerName !== containerName)
        return { allowed: false, reason: 'unknown' };
      return { allowed: false, reason: memo.grant?.endReason ?? memo.status };
    }
    throw err;
  }
}

/** Requests from the visibility store, newest first (it trails changes by about a second). */
export async function listApprovals(
  client: Client,
  opts: { status?: ApprovalStatusName; grantActive?: boolean; limit?: number } = {},
): Promise<ApprovalRecord[]> {
  const limit = opts.limit ?? 500;
  const out: ApprovalRecord[] = [];
  for await (const wf of client.workflow.list({ query: approvalsQuery(opts) })) {
    const record = asRecord(wf.memo?.[APPROVAL_MEMO_KEY]);
    if (record) out.push(record);
    if (out.length >= limit) break;
  }
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** The grants usable now (approved, open, with uses left and time to run). */
export async function listActiveGrants(client: Client): Promise<ApprovalRecord[]> {
  const now = Date.now();
  return (await listApprovals(client, { grantActive: true })).filter(
    (r) => r.grant && r.grant.usesLeft > 0 && Date.parse(r.grant.expiresAt) > now,
  );
}

async function memoRecord(client: Client, requestId: string): Promise<ApprovalRecord | undefined> {
  try {
    const desc = await client.workflow.getHandle(approvalWorkflowId(requestId)).describe();
    return asRecord(desc.memo?.[APPROVAL_MEMO_KEY]);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

function asRecord(value: unknown): ApprovalRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as ApprovalRecord;
  return typeof r.requestId === 'string' && typeof r.status === 'string' ? r : undefined;
}

const notFound = (requestId: string) =>
  new ApprovalError('not_found', `no approval request ${requestId}`);
