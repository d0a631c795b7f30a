import { assign, setup } from 'xstate';

/**
 * One approval request of an agent for a high-risk capability, and the grant it becomes:
 *
 *   Pending ──approve──▶ Approved ──last use / grant TTL──▶ Spent
 *      │ └────deny────▶ Denied
 *      └──request timeout──▶ Expired
 *
 * The machine decides; `approvalWorkflow` acts. A grant is `uses` uses within `ttlMs` of the
 * approval: each USE either takes one (and says how many are left) or is refused with a reason,
 * and the decision is the machine's alone, so two uses racing for the last one get one `allowed`
 * between them (the workflow feeds events one at a time). Times come in on the events (workflow
 * time), never from a clock here.
 *
 * Actions the workflow performs: `announce` (params `{ what }`: audit entry, admin-room notice).
 * Delayed events (`requestTimeout`, `grantTtl`) come back as `xstate.raise` actions with a delay
 * and are cancelled with `xstate.cancel`; the workflow turns them into Temporal timers.
 */

export interface ApprovalMachineInput {
  createdAtMs: number;
  requestTimeoutMs: number;
  defaultGrantTtlMs: number;
  defaultGrantUses: number;
  maxGrantTtlMs: number;
  maxGrantUses: number;
}

export interface Grant {
  ttlMs: number;
  uses: number;
  usesLeft: number;
  expiresAtMs: number;
}

/** Why a use was refused; stable strings, answered to agents. */
export type UseRefusal = 'not_approved' | 'denied' | 'request_expired' | 'exhausted' | 'expired';

export type UseDecision =
  { allowed: true; usesLeft: number } | { allowed: false; reason: UseRefusal };

export interface ApprovalContext extends ApprovalMachineInput {
  resolvedAtMs?: number;
  resolvedBy?: string;
  reason?: string;
  grant?: Grant;
  /** How the grant ended (Spent). */
  grantEnd?: 'exhausted' | 'expired';
  endedAtMs?: number;
  /** The decision on the latest USE event, read by the update that sent it. */
  lastUse?: UseDecision;
}

export type ApprovalEvent =
  | {
      type: 'RESOLVE';
      decision: 'approve' | 'deny';
      by: string;
      atMs: number;
      reason?: string;
      grantTtlMs?: number;
      grantUses?: number;
    }
  | { type: 'USE'; atMs: number };

/** Stable machine state names: also the `ArmorclawState` search attribute. */
export type ApprovalState = 'Pending' | 'Approved' | 'Denied' | 'Expired' | 'Spent';

/** The public status of a request (the spec's `approval.list` filter values). */
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired';

export const APPROVAL_STATUS: Record<ApprovalState, ApprovalStatus> = {
  Pending: 'pending',
  Approved: 'approved',
  // A grant used up or timed out was still approved: its grant says how it ended.
  Spent: 'approved',
  Denied: 'denied',
  Expired: 'expired',
};

const within = (n: number | undefined, fallback: number, max: number): number =>
  Math.min(Math.max(1, Math.floor(n ?? fallback)), max);

export const approvalMachine = setup({
  types: {
    input: {} as ApprovalMachineInput,
    context: {} as ApprovalContext,
    events: {} as ApprovalEvent,
  },
  actions: {
    // Performed by the workflow; here it is a name (and params) in the transition's list.
    announce: (_, _params: { what: 'requested' | 'approved' | 'denied' | 'expired' | 'spent' }) =>
      undefined,
    refuseNotApproved: assign({
      lastUse: (): UseDecision => ({ allowed: false, reason: 'not_approved' }),
    }),
  },
  guards: {
    approving: ({ event }) => event.type === 'RESOLVE' && event.decision === 'approve',
    lastUse: ({ context }) => (context.grant?.usesLeft ?? 0) <= 1,
  },
  delays: {
    requestTimeout: ({ context }) => context.requestTimeoutMs,
    grantTtl: ({ context }) => context.grant?.ttlMs ?? 0,
  },
}).createMachine({
  id: 'approval',
  initial: 'Pending',
  context: ({ input }) => ({ ...input }),
  states: {
    Pending: {
      entry: { type: 'announce', params: { what: 'requested' } },
      after: {
        requestTimeout: {
          target: 'Expired',
          actions: assign({
            endedAtMs: ({ context }) => context.createdAtMs + context.requestTimeoutMs,
          }),
        },
      },
      on: {
        USE: { actions: 'refuseNotApproved' },
        RESOLVE: [
          {
            guard: 'approving',
            target: 'Approved',
            actions: assign(({ context, event }) => {
              if (event.type !== 'RESOLVE') return {};
              const ttlMs = within(
                event.grantTtlMs,
                context.defaultGrantTtlMs,
                context.maxGrantTtlMs,
              );
              const uses = within(event.grantUses, context.defaultGrantUses, context.maxGrantUses);
              return {
                resolvedAtMs: event.atMs,
                resolvedBy: event.by,
                reason: event.reason,
                grant: { ttlMs, uses, usesLeft: uses, expiresAtMs: event.atMs + ttlMs },
              };
            }),
          },
          {
            target: 'Denied',
            actions: assign(({ event }) =>
              event.type === 'RESOLVE'
                ? { resolvedAtMs: event.atMs, resolvedBy: event.by, reason: event.reason }
                : {},
            ),
          },
        ],
      },
    },
    Approved: {
      entry: { type: 'announce', params: { what: 'approved' } },
      after: {
        grantTtl: {
          target: 'Spent',
          actions: assign({
            grantEnd: 'expired' as const,
            endedAtMs: ({ context }) => context.grant!.expiresAtMs,
            lastUse: undefined,
          }),
        },
      },
      on: {
        USE: [
          {
            guard: 'lastUse',
            target: 'Spent',
            actions: assign(({ context, event }) => ({
              grant: { ...context.grant!, usesLeft: 0 },
              grantEnd: 'exhausted' as const,
              endedAtMs: event.atMs,
              lastUse: { allowed: true, usesLeft: 0 } as UseDecision,
            })),
          },
          {
            actions: assign(({ context }) => {
              const usesLeft = context.grant!.usesLeft - 1;
              return {
                grant: { ...context.grant!, usesLeft },
                lastUse: { allowed: true, usesLeft } as UseDecision,
              };
            }),
          },
        ],
      },
    },
    Denied: { type: 'final', entry: { type: 'announce', params: { what: 'denied' } } },
    Expired: { type: 'final', entry: { type: 'announce', params: { what: 'expired' } } },
    Spent: { type: 'final', entry: { type: 'announce', params: { what: 'spent' } } },
  },
});

/** What a USE is answered once the request is over (the machine no longer takes events). */
export function refusalAfterEnd(state: ApprovalState, ctx: ApprovalContext): UseRefusal {
  if (state === 'Denied') return 'denied';
  if (state === 'Expired') return 'request_expired';
  if (state === 'Spent') return ctx.grantEnd === 'expired' ? 'expired' : 'exhausted';
  return 'not_approved';
}
