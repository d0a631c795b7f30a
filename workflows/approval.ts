import {
  allHandlersFinished,
  condition,
  executeChild,
  log,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import type { SharedActivities } from '../activities/container-types';
import {
  APPROVAL_STATUS,
  approvalMachine,
  refusalAfterEnd,
  type ApprovalEvent,
  type ApprovalState,
} from '../machines/approval.machine';
import {
  APPROVAL_MEMO_KEY,
  approvalResolveUpdate,
  approvalStatusQuery,
  approvalUseUpdate,
  type ApprovalRecord,
  type ApprovalUseResult,
  type ApprovalWorkflowInput,
} from './definitions';
import { MachineTimers } from './machine-timers';
import type { matrixSendWorkflow } from './matrix-send';
import { ArmorclawKind, ArmorclawState } from './search-attributes';

type Snapshot = SnapshotFrom<typeof approvalMachine>;
type Announcement = 'requested' | 'approved' | 'denied' | 'expired' | 'spent';

/**
 * One approval request (workflow id `approval-<request id>`) and the grant it becomes. The
 * machine decides (machines/approval.machine.ts); this function acts.
 *
 * Every event is decided synchronously inside the handler that receives it: `approval-resolve`
 * and `approval-use` run their transition before they return, so no two of them interleave and
 * a grant's last use goes to exactly one caller. What the decisions call for (audit entries, the
 * admin-room notices) runs afterwards in the main loop, in order, and never holds a decision up.
 *
 * The record is kept in the workflow's memo on every change, so `approval.list` and the active
 * grants read Temporal's visibility store (kind `approval`, state = the machine's state)
 * instead of querying each run.
 */
export async function approvalWorkflow(input: ApprovalWorkflowInput): Promise<ApprovalRecord> {
  const shared = proxyActivities<SharedActivities>({
    startToCloseTimeout: '30s',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });
  const workflowId = workflowInfo().workflowId;
  const announcements: Announcement[] = [];
  let published: string | undefined;

  const [first, firstActions] = initialTransition(approvalMachine, {
    createdAtMs: Date.now(),
    requestTimeoutMs: input.requestTimeoutMs,
    defaultGrantTtlMs: input.defaultGrantTtlMs,
    defaultGrantUses: input.defaultGrantUses,
    maxGrantTtlMs: input.maxGrantTtlMs,
    maxGrantUses: input.maxGrantUses,
  });
  let snapshot: Snapshot = first;
  const state = () => snapshot.value as ApprovalState;
  const done = () => snapshot.status === 'done';
  const timers = new MachineTimers<ApprovalEvent>((event) => step(event));

  const record = (): ApprovalRecord => {
    const c = snapshot.context;
    const iso = (ms: number | undefined) =>
      ms === undefined ? undefined : new Date(ms).toISOString();
    return {
      requestId: input.requestId,
      capability: input.capability,
      reason: input.reason,
      containerName: input.containerName,
      status: APPROVAL_STATUS[state()],
      state: state(),
      createdAt: new Date(c.createdAtMs).toISOString(),
      ...(c.resolvedAtMs !== undefined ? { resolvedAt: iso(c.resolvedAtMs) } : {}),
      ...(c.resolvedBy !== undefined ? { resolvedBy: c.resolvedBy } : {}),
      ...(c.reason !== undefined ? { resolutionReason: c.reason } : {}),
      ...(c.grant
        ? {
            grant: {
              ttlMs: c.grant.ttlMs,
              uses: c.grant.uses,
              usesLeft: c.grant.usesLeft,
              expiresAt: iso(c.grant.expiresAtMs)!,
              active: state() === 'Approved',
              ...(c.grantEnd ? { endReason: c.grantEnd } : {}),
            },
          }
        : {}),
      ...(c.endedAtMs !== undefined ? { endedAt: iso(c.endedAtMs) } : {}),
    };
  };

  const publish = () => {
    const key = `${state()}/${snapshot.context.grant?.usesLeft ?? ''}`;
    if (key === published) return;
    published = key;
    upsertSearchAttributes([
      { key: ArmorclawKind, value: 'approval' },
      { key: ArmorclawState, value: state() },
    ]);
    upsertMemo({ [APPROVAL_MEMO_KEY]: record() });
  };

  const perform = (actions: Array<{ type: string; params?: unknown }>) => {
    for (const action of actions) {
      if (timers.handle(action)) continue;
      if (action.type === 'announce') {
        announcements.push((action.params as { what: Announcement }).what);
      }
    }
  };

  /** Feeds one event to the machine, synchronously, and performs what it decided. */
  function step(event: ApprovalEvent): void {
    if (done()) return;
    const [next, actions] = transition(approvalMachine, snapshot, event);
    snapshot = next;
    publish();
    perform(actions as Array<{ type: string; params?: unknown }>);
  }

  setHandler(approvalStatusQuery, record);
  setHandler(
    approvalResolveUpdate,
    (resolution) => {
      step({ type: 'RESOLVE', ...resolution, atMs: Date.now() });
      return record();
    },
    {
      // Rejected updates leave no trace in history: a late answer changes nothing.
      validator: (resolution) => {
        if (state() !== 'Pending') {
          throw new Error(
            `approval request ${input.requestId} is not pending: it is ${APPROVAL_STATUS[state()]}`,
          );
        }
        if (resolution.decision !== 'approve' && resolution.decision !== 'deny') {
          throw new Error('decision must be approve or deny');
        }
      },
    },
  );
  setHandler(
    approvalUseUpdate,
    (): ApprovalUseResult => {
      if (done()) return { allowed: false, reason: refusalAfterEnd(state(), snapshot.context) };
      step({ type: 'USE', atMs: Date.now() });
      return snapshot.context.lastUse ?? { allowed: false, reason: 'not_approved' };
    },
    {
      validator: ({ containerName }) => {
        if (containerName !== input.containerName) {
          throw new Error(`approval request ${input.requestId} belongs to another agent`);
        }
      },
    },
  );

  const notify = async (what: Announcement, body: string) => {
    if (!input.adminRoomId) return;
    try {
      await executeChild<typeof matrixSendWorkflow>('matrixSendWorkflow', {
        workflowId: `${workflowId}-${what}`,
        args: [{ hostId: input.hostId, roomId: input.adminRoomId, msgtype: 'm.notice', body }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
    } catch (err) {
      // Audited already; Matrix being down must not hold the request up (the gateway answers it).
      log.warn('approval notice not delivered', { what, error: String(err) });
    }
  };

  const announce = async (what: Announcement) => {
    const r = record();
    await shared.recordAudit({
      event_type: what === 'spent' ? 'approval_grant_ended' : `approval_${what}`,
      dedupe_key: `${workflowId}/${what}`,
      session_id: input.containerName,
      ...(r.resolvedBy?.startsWith('matrix:') ? { user_id: r.resolvedBy.slice(7) } : {}),
      details: {
        request_id: input.requestId,
        capability: input.capability,
        ...(r.resolvedBy ? { resolved_by: r.resolvedBy } : {}),
        ...(r.resolutionReason ? { reason: r.resolutionReason } : {}),
        ...(r.grant
          ? { grant_ttl_ms: r.grant.ttlMs, grant_uses: r.grant.uses, uses_left: r.grant.usesLeft }
          : {}),
        ...(r.grant?.endReason ? { grant_end: r.grant.endReason } : {}),
      },
    });
    const id = input.requestId;
    if (what === 'requested') {
      await notify(
        what,
        `Approval request ${id}: agent run ${input.containerName} asks for ${input.capability}.\n` +
          `Reason: ${input.reason}\n` +
          `Reply "approve ${id} [ttl] [uses]" (e.g. "approve ${id} 30m 3") or ` +
          `"deny ${id} [reason]". Unanswered, it expires in ${minutes(input.requestTimeoutMs)}.`,
      );
    } else if (what === 'approved') {
      await notify(
        what,
        `Approval ${id} (${input.capability} for ${input.containerName}) approved by ` +
          `${r.resolvedBy}: ${r.grant!.uses} use(s) within ${minutes(r.grant!.ttlMs)}.`,
      );
    } else if (what === 'denied') {
      await notify(
        what,
        `Approval ${id} (${input.capability} for ${input.containerName}) denied by ` +
          `${r.resolvedBy}${r.resolutionReason ? `: ${r.resolutionReason}` : '.'}`,
      );
    } else if (what === 'expired') {
      await notify(what, `Approval ${id} (${input.capability}) expired unanswered.`);
    }
  };

  publish();
  perform(firstActions as Array<{ type: string; params?: unknown }>);

  for (;;) {
    await condition(() => announcements.length > 0 || done());
    const what = announcements.shift();
    if (what) {
      await announce(what);
      continue;
    }
    if (done()) break;
  }
  timers.cancelAll();
  await condition(allHandlersFinished);
  return record();
}

const minutes = (ms: number): string =>
  ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`;
