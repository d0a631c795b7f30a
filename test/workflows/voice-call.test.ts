/**
 * `voiceCallWorkflow` on the time-skipping test server, with in-memory media, agent, audit and
 * Matrix activities (test/support/fake-voice-activities.ts) and the REAL admission: the
 * `admitCall`/`releaseCall` activities against `callAdmissionWorkflow` on the same worker.
 * Every ending is driven through the real workflow (timers, updates, signals, queries, search
 * attributes, history) and checked for its cleanup: the peer closed with the user's state, the
 * agent stopped as configured, the admission slot released, the audit trail written.
 *
 * Time on this server is locked (wall-clock speed) except while a workflow result is awaited or
 * `env.sleep` runs: tests that need workflow time to pass use one of those.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import {
  admissionStatusQuery,
  budgetExceededSignal,
  CALL_ADMISSION_WORKFLOW_ID,
  CallFailureType,
  callHangupSignal,
  callMediaLostSignal,
  callPeerSignal,
  callReadyUpdate,
  callStatusQuery,
  callUsageSignal,
  endCallUpdate,
  type AdmitCallResult,
  type VoiceCallInput,
} from '../../workflows/definitions';
import {
  ArmorclawKind,
  ArmorclawState,
  ArmorclawUserState,
} from '../../workflows/search-attributes';
import {
  agentNameOf,
  eventually,
  historyText,
  testPolicy,
  withVoiceEnv,
  type CallHandle,
  type FakeVoiceHost,
  type VoiceEnv,
  type VoiceFakeBehaviour,
} from '../support/fake-voice-activities';
import { bundleWorkflows } from '../support/temporal';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;

let workflowBundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  workflowBundle = await bundleWorkflows();
}, 120_000);

interface Call extends VoiceEnv {
  handle: CallHandle;
  input: VoiceCallInput;
}

/** One call on its own test server (time skipping is global to a server). */
function withCall<T>(
  opts: { behaviour?: VoiceFakeBehaviour; input?: Partial<VoiceCallInput> },
  fn: (c: Call) => Promise<T>,
): Promise<T> {
  return withVoiceEnv({ workflowBundle, behaviour: opts.behaviour }, async (v) => {
    const { handle, input } = await v.start(opts.input);
    return fn({ ...v, handle, input });
  });
}

const status = (handle: CallHandle) => handle.query(callStatusQuery);

/** Ready (admitted, agent running, media prepared), then the peer connects: Live. */
async function connect(c: Call): Promise<void> {
  await c.handle.executeUpdate(callReadyUpdate);
  await c.handle.signal(callPeerSignal, { event: 'connected' });
  await eventually(async () => expect((await status(c.handle)).user_state).toBe('Live'));
}

/** What `call-ready` threw. */
async function readyFailure(handle: CallHandle): Promise<ApplicationFailure> {
  const err = await handle.executeUpdate(callReadyUpdate).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  const cause = (err as WorkflowUpdateFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

/**
 * What must hold after every call that was admitted, however it ended: the peer closed with the
 * state the user saw, the agent's run stopped (when the call owns it), the slot released (the
 * real admission entity holds nothing), `call_ended` written once with the ending.
 */
async function expectCleanedUp(
  c: Call,
  end: { state: string; user: string; reason: string; stopAgent?: boolean },
): Promise<void> {
  const { fake, input, handle } = c;
  expect(fake.callsOf('closeCallMedia').map((x) => x.args)).toEqual([
    { sessionId: input.sessionId, reason: end.reason, state: end.user },
  ]);
  expect(fake.media.has(input.sessionId)).toBe(false);
  const stops = fake.callsOf('stopAgentRun').map((x) => x.args);
  if (end.stopAgent ?? true) {
    expect(stops).toEqual([{ containerName: agentNameOf(input) }]);
    expect(fake.agents.has(agentNameOf(input))).toBe(false);
  } else {
    expect(stops).toEqual([]);
  }
  expect(fake.callsOf('releaseCall').map((x) => x.args)).toEqual([{ sessionId: input.sessionId }]);
  await eventually(async () => {
    const admission = c.env.client.workflow.getHandle(CALL_ADMISSION_WORKFLOW_ID);
    expect((await admission.query(admissionStatusQuery)).active).toEqual([]);
  });
  const ended = fake.audit.filter((a) => a.event_type === 'call_ended');
  expect(ended).toHaveLength(1);
  expect(ended[0]).toMatchObject({
    session_id: input.sessionId,
    room_id: input.roomId,
    details: { reason: end.reason, state: end.state },
  });
  expect(ended[0]!.details!.duration).toMatch(/^\d+m\d+s$/);
  const final = await status(handle);
  expect(final).toMatchObject({
    state: end.state,
    user_state: end.user,
    end_reason: end.reason,
    cleanup_done: true,
  });
  expect(final.ended_at).toEqual(expect.any(String));
  const { typedSearchAttributes } = await handle.describe();
  expect(typedSearchAttributes.get(ArmorclawKind)).toBe('call');
  expect(typedSearchAttributes.get(ArmorclawState)).toBe(end.state);
  expect(typedSearchAttributes.get(ArmorclawUserState)).toBe(end.user);
}

const auditOf = (fake: FakeVoiceHost, type: string) =>
  fake.audit.filter((a) => a.event_type === type);

describe('ready and hangup', () => {
  test('call-ready answers the session; connect, 5 s, end-call → Ended user_hangup, "0m5s"-style duration', () =>
    withCall({}, async (c) => {
      const { handle, input, fake } = c;
      expect((await status(handle)).user_state).toBe('Connecting');
      const ready = await handle.executeUpdate(callReadyUpdate);
      expect(ready).toEqual({
        session_id: input.sessionId,
        room_id: input.roomId,
        container_name: agentNameOf(input),
        host_id: input.hostId,
        expires_at_ms: expect.any(Number),
      });
      const info = await handle.describe();
      expect(ready.expires_at_ms).toBe(info.startTime.getTime() + input.ttlMs);
      // Admitted by the real entity, agent started, media prepared, in that order.
      const admission = c.env.client.workflow.getHandle(CALL_ADMISSION_WORKFLOW_ID);
      expect((await admission.query(admissionStatusQuery)).active).toMatchObject([
        { sessionId: input.sessionId, roomId: input.roomId, userKey: input.userId },
      ]);
      expect(fake.calls.map((x) => x.name).slice(0, 4)).toEqual([
        'checkCallRoom',
        'admitCall',
        'startAgentRun',
        'prepareCallMedia',
      ]);
      expect(fake.callsOf('prepareCallMedia')[0]!.args).toEqual({
        sessionId: input.sessionId,
        containerName: agentNameOf(input),
      });
      expect(auditOf(fake, 'call_created')).toHaveLength(1);
      expect(auditOf(fake, 'call_created')[0]).toMatchObject({
        session_id: input.sessionId,
        container_id: agentNameOf(input),
        details: { ttl_s: 600, agent_started_for_call: true },
      });

      await handle.signal(callPeerSignal, { event: 'connected' });
      await eventually(async () =>
        expect(await status(handle)).toMatchObject({ state: 'Active', user_state: 'Live' }),
      );
      expect((await status(handle)).connected_at).toEqual(expect.any(String));
      await c.env.sleep(5 * SECOND);
      const ended = await handle.executeUpdate(endCallUpdate, { args: [{}] });
      // The update answered after cleanup: everything is already done.
      expect(fake.callsOf('closeCallMedia')).toHaveLength(1);
      // Counted from the call's start (workflow time): the 5 s of talk plus the moments the
      // setup took in wall time (the test server's clock runs at wall speed between skips).
      const { created_at, ended_at } = await status(handle);
      const elapsed = Math.floor((Date.parse(ended_at!) - Date.parse(created_at)) / 1000);
      expect(elapsed).toBeGreaterThanOrEqual(5);
      expect(elapsed).toBeLessThan(8);
      expect(ended).toEqual({
        state: 'Ended',
        end_reason: 'user_hangup',
        duration_s: elapsed,
        duration: `0m${elapsed}s`,
      });
      expect(await handle.result()).toEqual(ended);
      await expectCleanedUp(c, { state: 'Ended', user: 'Ended', reason: 'user_hangup' });
      expect(fake.auditTypes()).toEqual(['call_created', 'call_ended']);
      expect(auditOf(fake, 'call_ended')[0]!.details).toMatchObject({
        duration: `0m${elapsed}s`,
      });
    }));

  test('call-hangup signal → Ended user_hangup; the agent watch is cancelled', () =>
    // The watch holds its attempt like the real activity: the call's end must cancel it.
    withCall({ behaviour: { agentWatchHoldMs: Infinity } }, async (c) => {
      await connect(c);
      const name = agentNameOf(c.input);
      await eventually(() => expect(c.fake.pendingAgentWatches(name)).toBe(1));
      await c.handle.signal(callHangupSignal, { reason: 'user' });
      expect(await c.handle.result()).toMatchObject({ state: 'Ended', end_reason: 'user_hangup' });
      await expectCleanedUp(c, { state: 'Ended', user: 'Ended', reason: 'user_hangup' });
      expect(c.fake.auditTypes()).toEqual(['call_created', 'call_ended']);
      await eventually(() => expect(c.fake.pendingAgentWatches(name)).toBe(0));
      expect(c.fake.watchesCancelled + c.fake.callsOf('stopAgentRun').length).toBeGreaterThan(0);
    }));

  test('an existing agent, stopAgentOnEnd false: checked, never stopped', () =>
    withCall(
      {
        input: {
          agent: { kind: 'existing', containerName: 'armorclaw-standing-agent' },
          stopAgentOnEnd: false,
        },
      },
      async (c) => {
        await connect(c);
        expect(c.fake.callsOf('checkAgentRun').map((x) => x.args)).toEqual([
          { containerName: 'armorclaw-standing-agent' },
        ]);
        expect(c.fake.callsOf('startAgentRun')).toHaveLength(0);
        await c.handle.signal(callHangupSignal, { reason: 'user' });
        await c.handle.result();
        await expectCleanedUp(c, {
          state: 'Ended',
          user: 'Ended',
          reason: 'user_hangup',
          stopAgent: false,
        });
        expect(c.fake.agents.has('armorclaw-standing-agent')).toBe(true);
      },
    ));

  test('an existing agent with stopAgentOnEnd: stopped at the end', () =>
    withCall(
      {
        input: {
          agent: { kind: 'existing', containerName: 'armorclaw-standing-agent' },
          stopAgentOnEnd: true,
        },
      },
      async (c) => {
        await connect(c);
        await c.handle.signal(callHangupSignal, { reason: 'user' });
        await c.handle.result();
        await expectCleanedUp(c, { state: 'Ended', user: 'Ended', reason: 'user_hangup' });
      },
    ));
});

describe('timers', () => {
  test('a 10-minute TTL expires in moments of wall time → Expired', () =>
    withCall({}, async (c) => {
      await connect(c);
      const wallStart = Date.now();
      const result = await c.handle.result();
      expect(Date.now() - wallStart).toBeLessThan(20 * SECOND);
      expect(result).toMatchObject({
        state: 'Expired',
        end_reason: 'ttl_expired',
        duration_s: 600,
        duration: '10m0s',
      });
      await expectCleanedUp(c, { state: 'Expired', user: 'Ended', reason: 'ttl_expired' });
      expect(c.fake.auditTypes()).toEqual(['call_created', 'call_ended']);
    }));

  test('never connected → Failed connect_timeout', () =>
    withCall({}, async (c) => {
      await c.handle.executeUpdate(callReadyUpdate);
      const result = await c.handle.result();
      expect(result).toMatchObject({
        state: 'Failed',
        end_reason: 'connect_timeout',
        duration: '0m30s',
      });
      await expectCleanedUp(c, { state: 'Failed', user: 'Failed', reason: 'connect_timeout' });
      expect((await status(c.handle)).connected_at).toBeUndefined();
    }));
});

describe('budget', () => {
  test('talk time: one budget_warning (audit + Matrix notice), then Ended budget_exceeded', () =>
    withCall(
      { input: { budget: { maxDurationMs: 2 * MINUTE, maxTokens: 0, warningFraction: 0.75 } } },
      async (c) => {
        const { fake, input, handle } = c;
        await connect(c);
        const result = await handle.result();
        expect(result).toMatchObject({ state: 'Ended', end_reason: 'budget_exceeded' });
        await expectCleanedUp(c, { state: 'Ended', user: 'Ended', reason: 'budget_exceeded' });
        expect(fake.auditTypes()).toEqual(['call_created', 'budget_warning', 'call_ended']);
        expect(auditOf(fake, 'budget_warning')[0]).toMatchObject({
          session_id: input.sessionId,
          room_id: input.roomId,
          details: { fraction: 0.75, max_duration_s: 120 },
        });
        // Warned at 90 s of talk time (75 % of 2 min), ended at 2 min.
        const warnedAt = fake
          .callsOf('recordAudit')
          .find(
            (x) => (x.args as { event_type: string }).event_type === 'budget_warning',
          )!.scheduledMs;
        const connectedAt = Date.parse((await status(handle)).connected_at!);
        expect(warnedAt - connectedAt).toBeGreaterThanOrEqual(90 * SECOND);
        expect(warnedAt - connectedAt).toBeLessThan(95 * SECOND);
        // The notice went through the matrixSendWorkflow child, on the call's host queue.
        const sends = fake.callsOf('sendMatrixMessage').map((x) => x.args);
        expect(sends).toEqual([
          {
            roomId: input.roomId,
            msgtype: 'm.notice',
            body: expect.stringContaining('75% of its budget'),
            txnId: `call-${input.sessionId}-budget-warning`,
          },
        ]);
        const child = c.env.client.workflow.getHandle(`call-${input.sessionId}-budget-warning`);
        expect(await child.result()).toMatchObject({ room_id: input.roomId });
      },
    ));

  test('per-call tokens: usage crossing the warning, then the max → Ended budget_exceeded', () =>
    withCall(
      { input: { budget: { maxDurationMs: MINUTE * 60, maxTokens: 1000, warningFraction: 0.8 } } },
      async (c) => {
        const { fake, handle } = c;
        await connect(c);
        await handle.signal(callUsageSignal, { tokens: 500 });
        await eventually(async () => expect((await status(handle)).tokens_used).toBe(500));
        expect(auditOf(fake, 'budget_warning')).toHaveLength(0);
        await handle.signal(callUsageSignal, { tokens: 350 }); // 850 ≥ 800: warn
        await eventually(() => expect(auditOf(fake, 'budget_warning')).toHaveLength(1));
        expect(auditOf(fake, 'budget_warning')[0]!.details).toMatchObject({ tokens_used: 850 });
        await handle.signal(callUsageSignal, { tokens: 100 }); // 950: no second warning
        await handle.signal(callUsageSignal, { tokens: -5 }); // ignored
        await eventually(async () => expect((await status(handle)).tokens_used).toBe(950));
        await handle.signal(callUsageSignal, { tokens: 60 }); // 1010 ≥ 1000: stop
        expect(await handle.result()).toMatchObject({
          state: 'Ended',
          end_reason: 'budget_exceeded',
        });
        await expectCleanedUp(c, { state: 'Ended', user: 'Ended', reason: 'budget_exceeded' });
        expect(fake.auditTypes()).toEqual(['call_created', 'budget_warning', 'call_ended']);
        expect(auditOf(fake, 'call_ended')[0]!.details).toMatchObject({ tokens_used: 1010 });
        expect((await status(handle)).tokens_used).toBe(1010);
      },
    ));

  test('the global budget: budget-exceeded signal → Ended budget_exceeded', () =>
    withCall({}, async (c) => {
      await connect(c);
      await c.handle.signal(budgetExceededSignal);
      expect(await c.handle.result()).toMatchObject({
        state: 'Ended',
        end_reason: 'budget_exceeded',
      });
      await expectCleanedUp(c, { state: 'Ended', user: 'Ended', reason: 'budget_exceeded' });
      expect(c.fake.auditTypes()).toEqual(['call_created', 'call_ended']);
    }));
});

describe('ICE', () => {
  test('failed → one ICE restart, Reconnecting; failed again → Failed ice_failed', () =>
    withCall({}, async (c) => {
      const { fake, input, handle } = c;
      await connect(c);
      await handle.signal(callPeerSignal, { event: 'failed' });
      await eventually(() => expect(fake.callsOf('restartCallIce')).toHaveLength(1));
      expect(fake.callsOf('restartCallIce')[0]!.args).toEqual({ sessionId: input.sessionId });
      expect(await status(handle)).toMatchObject({
        state: 'Active',
        user_state: 'Reconnecting',
        ice_restarts: 1,
      });
      expect((await handle.describe()).typedSearchAttributes.get(ArmorclawUserState)).toBe(
        'Reconnecting',
      );
      await handle.signal(callPeerSignal, { event: 'failed' });
      expect(await handle.result()).toMatchObject({ state: 'Failed', end_reason: 'ice_failed' });
      expect(fake.callsOf('restartCallIce')).toHaveLength(1);
      await expectCleanedUp(c, { state: 'Failed', user: 'Failed', reason: 'ice_failed' });
      expect(auditOf(fake, 'call_ended')[0]!.details).toMatchObject({ ice_restarts: 1 });
    }));

  test('Reconnecting → connected again → Live; a second failure after that ends it', () =>
    withCall({}, async (c) => {
      const { fake, handle } = c;
      await connect(c);
      await handle.signal(callPeerSignal, { event: 'disconnected' });
      await eventually(async () => expect((await status(handle)).user_state).toBe('Reconnecting'));
      await handle.signal(callPeerSignal, { event: 'connected' });
      await eventually(async () =>
        expect(await status(handle)).toMatchObject({ user_state: 'Live', ice_restarts: 1 }),
      );
      // One restart per call: the next failure is final.
      await handle.signal(callPeerSignal, { event: 'failed' });
      expect(await handle.result()).toMatchObject({ state: 'Failed', end_reason: 'ice_failed' });
      expect(fake.callsOf('restartCallIce')).toHaveLength(1);
      await expectCleanedUp(c, { state: 'Failed', user: 'Failed', reason: 'ice_failed' });
    }));

  test('an ICE restart the host cannot do → Failed ice_failed', () =>
    withCall(
      {
        behaviour: {
          restartCallIce: () => {
            throw ApplicationFailure.nonRetryable('no such peer', 'IceRestartFailed');
          },
        },
      },
      async (c) => {
        await connect(c);
        await c.handle.signal(callPeerSignal, { event: 'failed' });
        expect(await c.handle.result()).toMatchObject({
          state: 'Failed',
          end_reason: 'ice_failed',
        });
        await expectCleanedUp(c, { state: 'Failed', user: 'Failed', reason: 'ice_failed' });
      },
    ));

  test('Reconnecting that never reconnects → Failed ice_failed after the connect timeout', () =>
    withCall({}, async (c) => {
      await connect(c);
      await c.handle.signal(callPeerSignal, { event: 'disconnected' });
      await eventually(async () =>
        expect((await status(c.handle)).user_state).toBe('Reconnecting'),
      );
      expect(await c.handle.result()).toMatchObject({ state: 'Failed', end_reason: 'ice_failed' });
      await expectCleanedUp(c, { state: 'Failed', user: 'Failed', reason: 'ice_failed' });
    }));
});

describe('the agent and the media die', () => {
  test('the agent run ends (container died) → Failed agent_died', () =>
    withCall({}, async (c) => {
      const { fake, input, handle } = c;
      await connect(c);
      const name = agentNameOf(input);
      await eventually(() => expect(fake.callsOf('awaitAgentRunEnd').length).toBeGreaterThan(0));
      fake.killAgent(name);
      expect(await handle.result()).toMatchObject({
        state: 'Failed',
        end_reason: 'agent_died',
      });
      await expectCleanedUp(c, { state: 'Failed', user: 'Failed', reason: 'agent_died' });
      expect(fake.callsOf('awaitAgentRunEnd')[0]!.args).toEqual({ containerName: name });
    }));

  test('a media check that finds no peer → Failed media_lost, at the configured interval', () =>
    withCall(
      {
        input: { mediaCheckIntervalMs: 20 * SECOND },
        behaviour: { checkCallMedia: (attempt) => ({ alive: attempt > 100 }) },
      },
      async (c) => {
        await connect(c);
        const result = await c.handle.result();
        expect(result).toMatchObject({
          state: 'Failed',
          end_reason: 'media_lost',
          end_detail: `host ${c.hostId} no longer holds the call`,
        });
        const checks = c.fake.callsOf('checkCallMedia');
        expect(checks).toHaveLength(1);
        const prepared = c.fake.callsOf('prepareCallMedia')[0]!.scheduledMs;
        expect(checks[0]!.scheduledMs - prepared).toBeGreaterThanOrEqual(20 * SECOND);
        await expectCleanedUp(c, { state: 'Failed', user: 'Failed', reason: 'media_lost' });
      },
    ));

  test('a healthy peer keeps the call; the call-media-lost signal ends it', () =>
    withCall({ input: { mediaCheckIntervalMs: 20 * SECOND } }, async (c) => {
      await connect(c);
      await c.env.sleep(45 * SECOND);
      await eventually(() => expect(c.fake.callsOf('checkCallMedia')).toHaveLength(2));
      expect((await status(c.handle)).user_state).toBe('Live');
      await c.handle.signal(callMediaLostSignal, { detail: 'bridge restarted' });
      expect(await c.handle.result()).toMatchObject({
        state: 'Failed',
        end_reason: 'media_lost',
        end_detail: 'bridge restarted',
      });
      await expectCleanedUp(c, { state: 'Failed', user: 'Failed', reason: 'media_lost' });
    }));
});

describe('rejections before ready', () => {
  const refuse =
    (reason: 'rate_limited' | 'max_concurrent' | 'budget_exceeded') => (): AdmitCallResult => ({
      admitted: false,
      reason,
      message: `refused: ${reason}`,
    });
  test.each([
    [
      'room denied',
      {
        checkCallRoom: () => ({
          ok: false as const,
          type: CallFailureType.RoomDenied,
          reason: 'room_not_allowed',
          message: 'Room access denied',
        }),
      },
      CallFailureType.RoomDenied,
      'room_not_allowed',
      'call_rejected',
    ],
    [
      'security violation',
      {
        checkCallRoom: () => ({
          ok: false as const,
          type: CallFailureType.SecurityViolation,
          reason: 'room_not_encrypted',
          message: 'Security policy violation: not encrypted',
        }),
      },
      CallFailureType.SecurityViolation,
      'room_not_encrypted',
      'security_violation',
    ],
    [
      'rate limited',
      { admitCall: refuse('rate_limited') },
      CallFailureType.RateLimited,
      'rate_limited',
      'call_rejected',
    ],
    [
      'max concurrent',
      { admitCall: refuse('max_concurrent') },
      CallFailureType.MaxConcurrent,
      'max_concurrent',
      'call_rejected',
    ],
    [
      'budget exceeded',
      { admitCall: refuse('budget_exceeded') },
      CallFailureType.BudgetExceeded,
      'budget_exceeded',
      'call_rejected',
    ],
  ] as const)(
    '%s → call-ready fails with its type, Failed rejected',
    (_n, behaviour, type, reason, event) =>
      withCall({ behaviour: behaviour as VoiceFakeBehaviour }, async (c) => {
        const { fake, input, handle } = c;
        const failure = await readyFailure(handle);
        expect(failure.type).toBe(type);
        const result = await handle.result();
        expect(result).toMatchObject({
          state: 'Failed',
          end_reason: 'rejected',
          end_detail: reason,
        });
        expect(await status(handle)).toMatchObject({
          state: 'Failed',
          user_state: 'Failed',
          end_reason: 'rejected',
          cleanup_done: true,
        });
        expect(fake.auditTypes()).toEqual([event]);
        expect(fake.audit[0]).toMatchObject({
          session_id: input.sessionId,
          room_id: input.roomId,
          details: { reason, code: type },
        });
        expect(fake.callsOf('startAgentRun')).toHaveLength(0);
        expect(fake.callsOf('stopAgentRun')).toHaveLength(0);
        expect(fake.callsOf('prepareCallMedia')).toHaveLength(0);
        // Never admitted: nothing to release.
        expect(fake.callsOf('releaseCall')).toHaveLength(0);
        expect((await handle.describe()).typedSearchAttributes.get(ArmorclawState)).toBe('Failed');
      }),
  );

  test('the real admission entity: a second call over max_concurrent_calls 1 is refused', () =>
    withVoiceEnv({ workflowBundle }, async (v) => {
      const policy = testPolicy;
      const first = await v.start({ policy: policy({ maxConcurrentCalls: 1 }) });
      await first.handle.executeUpdate(callReadyUpdate);
      const second = await v.start({
        userId: '@bob:test.local',
        policy: policy({ maxConcurrentCalls: 1 }),
      });
      expect((await readyFailure(second.handle)).type).toBe(CallFailureType.MaxConcurrent);
      expect(await second.handle.result()).toMatchObject({
        state: 'Failed',
        end_reason: 'rejected',
        end_detail: 'max_concurrent',
      });
      // The first call's end frees the slot; the same user calling again is then rate limited
      // (1 call per window), a third user is admitted.
      await first.handle.executeUpdate(endCallUpdate, { args: [{}] });
      const again = await v.start({
        userId: first.input.userId,
        policy: policy({ maxConcurrentCalls: 1, rateLimitCalls: 1 }),
      });
      expect((await readyFailure(again.handle)).type).toBe(CallFailureType.RateLimited);
      const third = await v.start({
        userId: '@carol:test.local',
        policy: policy({ maxConcurrentCalls: 1 }),
      });
      await third.handle.executeUpdate(callReadyUpdate);
      await third.handle.executeUpdate(endCallUpdate, { args: [{}] });
      expect(v.fake.auditTypes().sort()).toEqual(
        [
          'call_created',
          'call_ended',
          'call_rejected',
          'call_rejected',
          'call_created',
          'call_ended',
        ].sort(),
      );
    }));
});

describe('an ending that overtakes the admission', () => {
  test.each([
    ['admitted', undefined, 1],
    ['refused', { admitted: false, reason: 'max_concurrent', message: 'full' } as const, 0],
  ] as const)(
    'hangup while admitCall runs, which then answers %s: no slot is left held',
    async (_n, answer, releases) => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const behaviour: VoiceFakeBehaviour = {
        admitCall: async () => {
          await gate;
          return answer;
        },
      };
      await withCall({ behaviour }, async (c) => {
        try {
          await eventually(() => expect(c.fake.callsOf('admitCall')).toHaveLength(1));
          await c.handle.signal(callHangupSignal, { reason: 'user' });
          // The call ends at once (the peer is closed), the admit is left to answer.
          await eventually(() => expect(c.fake.callsOf('closeCallMedia')).toHaveLength(1));
          expect((await status(c.handle)).state).toBe('Ended');
          release();
          expect(await c.handle.result()).toMatchObject({
            state: 'Ended',
            end_reason: 'user_hangup',
          });
          const admission = c.env.client.workflow.getHandle(CALL_ADMISSION_WORKFLOW_ID);
          if (answer === undefined) {
            expect((await admission.query(admissionStatusQuery)).active).toEqual([]);
          }
          expect(c.fake.callsOf('releaseCall')).toHaveLength(releases);
          expect(c.fake.callsOf('startAgentRun')).toHaveLength(0);
          expect(c.fake.auditTypes()).toEqual(['call_ended']);
        } finally {
          release();
        }
      });
    },
  );
});

describe('an ending that overtakes the agent start', () => {
  test('hangup while the agent run is starting: the start settles, then the run is stopped', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const behaviour: VoiceFakeBehaviour = { startAgentRun: () => gate };
    await withCall({ behaviour }, async (c) => {
      try {
        await eventually(() => expect(c.fake.callsOf('startAgentRun')).toHaveLength(1));
        await c.handle.signal(callHangupSignal, { reason: 'user' });
        await eventually(() => expect(c.fake.callsOf('closeCallMedia')).toHaveLength(1));
        // The stop waits for the start (stopping first would let the start create the run after).
        expect(c.fake.callsOf('stopAgentRun')).toHaveLength(0);
        release();
        expect(await c.handle.result()).toMatchObject({
          state: 'Ended',
          end_reason: 'user_hangup',
        });
        const [started] = c.fake.callsOf('startAgentRun');
        const [stopped] = c.fake.callsOf('stopAgentRun');
        expect(stopped).toBeDefined();
        await started!.settled;
        const { run } = started!.args as { run: { containerName: string } };
        expect(stopped!.args).toEqual({ containerName: run.containerName });
        expect(c.fake.callsOf('prepareCallMedia')).toHaveLength(0);
        expect(c.fake.callsOf('releaseCall')).toHaveLength(1);
      } finally {
        release();
      }
    });
  });
});

describe('start failures', () => {
  test('the agent cannot start (AgentUnavailable) → call-ready fails with it, Failed start_failed', () =>
    withCall(
      {
        behaviour: {
          startAgentRun: () => {
            throw ApplicationFailure.nonRetryable('the agent did not start', 'AgentUnavailable');
          },
        },
      },
      async (c) => {
        const { fake, handle } = c;
        const failure = await readyFailure(handle);
        expect(failure.type).toBe(CallFailureType.AgentUnavailable);
        expect(failure.message).toContain('the agent did not start');
        expect(await handle.result()).toMatchObject({
          state: 'Failed',
          end_reason: 'start_failed',
          end_detail: 'the agent did not start',
        });
        expect(fake.callsOf('startAgentRun')).toHaveLength(1);
        expect(fake.callsOf('prepareCallMedia')).toHaveLength(0);
        // Admitted, so released; the run the call owns is stopped (a no-op if it never began).
        await expectCleanedUp(c, { state: 'Failed', user: 'Failed', reason: 'start_failed' });
        expect(fake.auditTypes()).toEqual(['call_ended']);
      },
    ));
});

describe('secrets never reach Temporal history', () => {
  test('no call token or SDP in the input or anywhere in a whole call’s history', () =>
    withCall(
      { input: { budget: { maxDurationMs: MINUTE * 60, maxTokens: 1000, warningFraction: 0.5 } } },
      async (c) => {
        const { handle, input } = c;
        await connect(c);
        await handle.signal(callUsageSignal, { tokens: 600 });
        await eventually(() => expect(c.fake.sent.size).toBe(1));
        await handle.signal(callPeerSignal, { event: 'failed' });
        await eventually(() => expect(c.fake.callsOf('restartCallIce')).toHaveLength(1));
        await handle.signal(callPeerSignal, { event: 'connected' });
        await eventually(async () => expect((await status(handle)).user_state).toBe('Live'));
        await handle.executeUpdate(endCallUpdate, { args: [{ reason: 'user' }] });
        expect(await handle.result()).toMatchObject({ state: 'Ended' });
        const inputText = JSON.stringify(input);
        const text = await historyText(handle);
        // Positive control: payloads are decoded, so ids in the input and arguments show.
        expect(text).toContain(input.sessionId);
        expect(text).toContain('prepareCallMedia');
        for (const forbidden of ['a=fingerprint', 'eyJ', 'a=ice-pwd']) {
          expect(inputText).not.toContain(forbidden);
          expect(text).not.toContain(forbidden);
        }
      },
    ));
});
