/**
 * The approval machine without Temporal, driven by XState's pure functions exactly as
 * `approvalWorkflow` drives it: every path (pending → approved → used up / expired; denied;
 * expired unanswered), every event in every state, and the invariants the workflow relies on
 * (a grant never goes below zero uses, a use is allowed only while Approved).
 */
import { getSimplePaths } from '@xstate/graph';
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import {
  APPROVAL_STATUS,
  approvalMachine,
  refusalAfterEnd,
  type ApprovalEvent,
  type ApprovalMachineInput,
  type ApprovalState,
} from '../../machines/approval.machine';

type Snapshot = SnapshotFrom<typeof approvalMachine>;
type Action = { type: string; params?: unknown };

const INPUT: ApprovalMachineInput = {
  createdAtMs: 1_000,
  requestTimeoutMs: 900_000,
  defaultGrantTtlMs: 600_000,
  defaultGrantUses: 2,
  maxGrantTtlMs: 86_400_000,
  maxGrantUses: 1_000,
};
const REQUEST_TIMEOUT_ID = 'xstate.after.requestTimeout.approval.Pending';
const GRANT_TTL_ID = 'xstate.after.grantTtl.approval.Approved';
const REQUEST_TIMED_OUT = { type: REQUEST_TIMEOUT_ID } as unknown as ApprovalEvent;
const GRANT_TIMED_OUT = { type: GRANT_TTL_ID } as unknown as ApprovalEvent;
const APPROVE: ApprovalEvent = {
  type: 'RESOLVE',
  decision: 'approve',
  by: 'gateway:admin',
  atMs: 2_000,
};
const DENY: ApprovalEvent = {
  type: 'RESOLVE',
  decision: 'deny',
  by: 'matrix:@ops:example.org',
  reason: 'not now',
  atMs: 2_000,
};
const USE: ApprovalEvent = { type: 'USE', atMs: 3_000 };

const start = () => initialTransition(approvalMachine, INPUT) as [Snapshot, Action[]];
const step = (s: Snapshot, e: ApprovalEvent) =>
  transition(approvalMachine, s, e) as [Snapshot, Action[]];
const run = (...events: ApprovalEvent[]) => {
  let [s, actions] = start();
  for (const e of events) [s, actions] = step(s, e);
  return { s, actions, state: s.value as ApprovalState };
};
const announced = (actions: Action[]) =>
  actions.filter((a) => a.type === 'announce').map((a) => (a.params as { what: string }).what);

describe('approval machine', () => {
  it('starts Pending, announces the request and arms the request timeout', () => {
    const [s, actions] = start();
    expect(s.value).toBe('Pending');
    expect(announced(actions)).toEqual(['requested']);
    expect(actions).toContainEqual(
      expect.objectContaining({
        type: 'xstate.raise',
        params: expect.objectContaining({ id: REQUEST_TIMEOUT_ID, delay: 900_000 }),
      }),
    );
  });

  it('approve: a grant of the default uses and TTL, the request timer cancelled, the TTL armed', () => {
    const { s, actions, state } = run(APPROVE);
    expect(state).toBe('Approved');
    expect(s.context.grant).toEqual({
      ttlMs: 600_000,
      uses: 2,
      usesLeft: 2,
      expiresAtMs: 602_000,
    });
    expect(s.context.resolvedBy).toBe('gateway:admin');
    expect(actions).toContainEqual(
      expect.objectContaining({ type: 'xstate.cancel', params: { sendId: REQUEST_TIMEOUT_ID } }),
    );
    expect(actions).toContainEqual(
      expect.objectContaining({
        type: 'xstate.raise',
        params: expect.objectContaining({ id: GRANT_TTL_ID, delay: 600_000 }),
      }),
    );
    expect(announced(actions)).toEqual(['approved']);
  });

  it('approve with explicit TTL and uses; values past the caps are capped', () => {
    expect(
      run({ ...APPROVE, grantTtlMs: 5_000, grantUses: 7 } as ApprovalEvent).s.context.grant,
    ).toMatchObject({ ttlMs: 5_000, uses: 7, usesLeft: 7 });
    expect(
      run({ ...APPROVE, grantTtlMs: 10 ** 12, grantUses: 10 ** 9 } as ApprovalEvent).s.context
        .grant,
    ).toMatchObject({ ttlMs: INPUT.maxGrantTtlMs, uses: INPUT.maxGrantUses });
  });

  it('uses count down to exactly zero: the last use is allowed and ends the grant', () => {
    let { s } = run(APPROVE);
    [s] = step(s, USE);
    expect(s.context.lastUse).toEqual({ allowed: true, usesLeft: 1 });
    expect(s.value).toBe('Approved');
    const [last, actions] = step(s, USE);
    expect(last.context.lastUse).toEqual({ allowed: true, usesLeft: 0 });
    expect(last.value).toBe('Spent');
    expect(last.status).toBe('done');
    expect(last.context.grantEnd).toBe('exhausted');
    expect(actions).toContainEqual(
      expect.objectContaining({ type: 'xstate.cancel', params: { sendId: GRANT_TTL_ID } }),
    );
    expect(announced(actions)).toEqual(['spent']);
    // A done machine takes no more uses: the workflow answers them with refusalAfterEnd.
    expect(refusalAfterEnd('Spent', last.context)).toBe('exhausted');
  });

  it('a use before the answer is refused and changes nothing', () => {
    const { s, state } = run(USE);
    expect(state).toBe('Pending');
    expect(s.context.lastUse).toEqual({ allowed: false, reason: 'not_approved' });
  });

  it('the grant TTL ends an approved grant as expired', () => {
    const { s, state } = run(APPROVE, GRANT_TIMED_OUT);
    expect(state).toBe('Spent');
    expect(s.context.grantEnd).toBe('expired');
    expect(s.context.endedAtMs).toBe(602_000);
    expect(refusalAfterEnd('Spent', s.context)).toBe('expired');
  });

  it('deny and request timeout are final', () => {
    const denied = run(DENY);
    expect(denied.state).toBe('Denied');
    expect(denied.s.context).toMatchObject({
      resolvedBy: 'matrix:@ops:example.org',
      reason: 'not now',
    });
    expect(denied.s.context.grant).toBeUndefined();
    expect(refusalAfterEnd('Denied', denied.s.context)).toBe('denied');
    const expired = run(REQUEST_TIMED_OUT);
    expect(expired.state).toBe('Expired');
    expect(announced(expired.actions)).toEqual(['expired']);
    expect(refusalAfterEnd('Expired', expired.s.context)).toBe('request_expired');
  });

  it('a second resolution is ignored once resolved', () => {
    const { s } = run(APPROVE, DENY);
    expect(s.value).toBe('Approved');
    expect(s.context.resolvedBy).toBe('gateway:admin');
  });

  it('maps every state to a public status', () => {
    expect(APPROVAL_STATUS).toEqual({
      Pending: 'pending',
      Approved: 'approved',
      Spent: 'approved',
      Denied: 'denied',
      Expired: 'expired',
    });
  });

  it('on every path, uses never go negative and only Approved allows a use', () => {
    const events = [APPROVE, DENY, USE, REQUEST_TIMED_OUT, GRANT_TIMED_OUT];
    const paths = getSimplePaths(approvalMachine, { input: INPUT, events } as never);
    expect(paths.length).toBeGreaterThan(4);
    for (const path of paths) {
      let [s] = start();
      for (const { event } of path.steps.slice(1)) {
        const before = s.value;
        [s] = step(s, event as ApprovalEvent);
        if ((event as ApprovalEvent).type === 'USE' && s.context.lastUse?.allowed) {
          expect(before).toBe('Approved');
        }
        expect(s.context.grant?.usesLeft ?? 0).toBeGreaterThanOrEqual(0);
      }
    }
  });
});
