import {
  admissionStatus,
  decideAdmission,
  emptyAdmissionState,
  releaseAdmission,
} from '../../workflows/admission';
import {
  CALL_ADMISSION_EXPIRY_GRACE_MS,
  type AdmitCallArgs,
  type CallAdmissionLimits,
  type CallAdmissionState,
} from '../../workflows/definitions';

const T0 = Date.UTC(2025, 0, 1, 12);
const MIN = 60_000;
const HOUR = 3_600_000;

const limits = (l: Partial<CallAdmissionLimits> = {}): CallAdmissionLimits => ({
  rateLimitCalls: 10,
  rateLimitWindowMs: MIN,
  maxConcurrentCalls: 50,
  ...l,
});

const admit = (
  sessionId: string,
  a: Partial<Omit<AdmitCallArgs, 'limits'>> & { limits?: Partial<CallAdmissionLimits> } = {},
): AdmitCallArgs => ({
  sessionId,
  roomId: '!room:test.local',
  userKey: '@alice:test.local',
  hostId: 'h1',
  expiresAtMs: T0 + HOUR,
  ...a,
  limits: limits(a.limits),
});

/** Runs admits in order (each at its own time), returning the decisions and the final state. */
function run(steps: Array<[AdmitCallArgs, number]>, state = emptyAdmissionState()) {
  const decisions = [];
  for (const [args, now] of steps) {
    const out = decideAdmission(state, args, now);
    state = out.state;
    decisions.push(out.decision);
  }
  return { state, decisions };
}

describe('decideAdmission', () => {
  test('admits and records: the slot, its times, the user window', () => {
    const { state, decision } = decideAdmission(emptyAdmissionState(), admit('s1'), T0);
    expect(decision).toEqual({ admitted: true, active: 1 });
    expect(state.active.s1).toEqual({
      sessionId: 's1',
      roomId: '!room:test.local',
      userKey: '@alice:test.local',
      hostId: 'h1',
      admittedAtMs: T0,
      expiresAtMs: T0 + HOUR,
    });
    expect(state.recent).toEqual({ '@alice:test.local': [T0] });
    expect(admissionStatus(state, T0)).toEqual({
      active: [state.active.s1],
      recent: { '@alice:test.local': 1 },
    });
  });

  test('is pure: the input state is left as it was', () => {
    const before = emptyAdmissionState();
    const snapshot = JSON.stringify(before);
    const { state } = decideAdmission(before, admit('s1'), T0);
    expect(JSON.stringify(before)).toBe(snapshot);
    const again = decideAdmission(state, admit('s2'), T0 + 1);
    expect(Object.keys(state.active)).toEqual(['s1']);
    expect(Object.keys(again.state.active)).toEqual(['s1', 's2']);
  });

  test('a retried admit of an admitted session is admitted without counting twice', () => {
    const l = { rateLimitCalls: 1, maxConcurrentCalls: 1 };
    const { state, decisions } = run([
      [admit('s1', { limits: l }), T0],
      [admit('s1', { limits: l }), T0 + 1_000],
      [admit('s1', { limits: l }), T0 + 2_000],
    ]);
    expect(decisions).toEqual([
      { admitted: true, active: 1 },
      { admitted: true, active: 1 },
      { admitted: true, active: 1 },
    ]);
    expect(state.recent['@alice:test.local']).toEqual([T0]);
    expect(state.active.s1!.admittedAtMs).toBe(T0);
  });

  test('the concurrency cap counts every user; a release frees a slot', () => {
    const l = { maxConcurrentCalls: 2 };
    const { state, decisions } = run([
      [admit('s1', { userKey: '@a:x', limits: l }), T0],
      [admit('s2', { userKey: '@b:x', limits: l }), T0],
      [admit('s3', { userKey: '@c:x', limits: l }), T0],
    ]);
    expect(decisions.map((d) => d.admitted)).toEqual([true, true, false]);
    expect(decisions[2]).toEqual({
      admitted: false,
      reason: 'max_concurrent',
      message: '2 calls in progress, the maximum is 2',
    });
    // The refusal was not recorded against @c.
    expect(state.recent['@c:x']).toBeUndefined();
    const released = releaseAdmission(state, 's1');
    expect(releaseAdmission(released, 'unknown')).toBe(released);
    expect(
      decideAdmission(released, admit('s3', { userKey: '@c:x', limits: l }), T0).decision,
    ).toEqual({ admitted: true, active: 2 });
  });

  test('the rate window slides: calls leave it one by one as they age past the window', () => {
    const l = { rateLimitCalls: 2, rateLimitWindowMs: MIN };
    const { state, decisions } = run([
      [admit('s1', { limits: l }), T0],
      [admit('s2', { limits: l }), T0 + 30_000],
      [admit('s3', { limits: l }), T0 + 59_999],
      // s1 is exactly one window old: out of (now - window, now].
      [admit('s4', { limits: l }), T0 + MIN],
      [admit('s5', { limits: l }), T0 + MIN + 1],
      // s2 ages out at T0 + 90 s.
      [admit('s6', { limits: l }), T0 + 90_000],
    ]);
    expect(decisions.map((d) => (d.admitted ? 'ok' : d.reason))).toEqual([
      'ok',
      'ok',
      'rate_limited',
      'ok',
      'rate_limited',
      'ok',
    ]);
    expect(decisions[2]).toMatchObject({
      message: '@alice:test.local started 2 calls in the last 60 s (limit 2)',
    });
    expect(state.recent['@alice:test.local']).toEqual([T0 + MIN, T0 + 90_000]);
  });

  test('users are rate limited independently; the room key is a user key like any other', () => {
    const l = { rateLimitCalls: 1 };
    const { decisions } = run([
      [admit('s1', { userKey: '@a:x', limits: l }), T0],
      [admit('s2', { userKey: '@a:x', limits: l }), T0],
      [admit('s3', { userKey: '@b:x', limits: l }), T0],
      [admit('s4', { userKey: 'room:!r:x', limits: l }), T0],
      [admit('s5', { userKey: 'room:!r:x', limits: l }), T0],
    ]);
    expect(decisions.map((d) => (d.admitted ? 'ok' : d.reason))).toEqual([
      'ok',
      'rate_limited',
      'ok',
      'ok',
      'rate_limited',
    ]);
  });

  test('rate limiting is checked before the cap', () => {
    const l = { rateLimitCalls: 1, maxConcurrentCalls: 1 };
    const { decisions } = run([
      [admit('s1', { limits: l }), T0],
      [admit('s2', { limits: l }), T0],
    ]);
    expect(decisions[1]).toMatchObject({ admitted: false, reason: 'rate_limited' });
  });

  test('a slot never released is dropped at the first admit past its expiry plus the grace', () => {
    const l = { maxConcurrentCalls: 1 };
    const expiresAtMs = T0 + 10_000;
    const { state, decisions } = run([
      [admit('s1', { expiresAtMs, limits: l }), T0],
      [admit('s2', { userKey: '@b:x', limits: l }), expiresAtMs + 1],
      [admit('s2', { userKey: '@b:x', limits: l }), expiresAtMs + CALL_ADMISSION_EXPIRY_GRACE_MS],
    ]);
    expect(decisions.map((d) => d.admitted)).toEqual([true, false, false]);
    // The query shows the slot until an admit drops it.
    expect(admissionStatus(state, expiresAtMs + HOUR).active.map((c) => c.sessionId)).toEqual([
      's1',
    ]);
    const later = decideAdmission(
      state,
      admit('s2', { userKey: '@b:x', limits: l }),
      expiresAtMs + CALL_ADMISSION_EXPIRY_GRACE_MS + 1,
    );
    expect(later.decision).toEqual({ admitted: true, active: 1 });
    expect(Object.keys(later.state.active)).toEqual(['s2']);
  });

  test('the status counts each user within the latest window and lists the oldest first', () => {
    let state: CallAdmissionState = emptyAdmissionState();
    for (const [id, user, at] of [
      ['s2', '@a:x', T0 + 5],
      ['s1', '@b:x', T0 + 10],
      ['s3', '@a:x', T0 + 20],
    ] as const) {
      state = decideAdmission(state, admit(id, { userKey: user }), at).state;
    }
    const s = admissionStatus(state, T0 + 30);
    expect(s.active.map((c) => c.sessionId)).toEqual(['s2', 's1', 's3']);
    expect(s.recent).toEqual({ '@a:x': 2, '@b:x': 1 });
    expect(admissionStatus(state, T0 + MIN + 6).recent).toEqual({ '@a:x': 1, '@b:x': 1 });
    expect(admissionStatus(state, T0 + 2 * MIN).recent).toEqual({});
  });
});
