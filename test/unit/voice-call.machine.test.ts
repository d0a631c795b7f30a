import { initialTransition, transition, type AnyMachineSnapshot } from 'xstate';
import {
  callStates,
  voiceCallMachine,
  type VoiceCallEvent,
} from '../../machines/voice-call.machine';

const input = {
  ttlMs: 600_000,
  connectTimeoutMs: 30_000,
  budgetWarningMs: 480_000,
  maxDurationMs: 540_000,
  maxTokens: 1000,
  tokenWarningAt: 800,
};
type Snap = ReturnType<typeof initialTransition<typeof voiceCallMachine>>[0];

function run(events: Array<VoiceCallEvent | { delayed: string }>): {
  snap: Snap;
  actions: string[];
} {
  let [snap, acts] = initialTransition(voiceCallMachine, input);
  const actions = acts.map((a) => a.type as string);
  const raised = new Map<string, VoiceCallEvent>();
  const collect = (list: typeof acts) => {
    for (const a of list) {
      const type = a.type as string;
      actions.push(type);
      if (type === 'xstate.raise') {
        const p = a.params as { id: string; event: VoiceCallEvent };
        raised.set(p.id, p.event);
      }
      if (type === 'xstate.cancel') raised.delete((a.params as { sendId: string }).sendId);
    }
  };
  collect(acts);
  for (const e of events) {
    let event: VoiceCallEvent;
    if ('delayed' in e) {
      const id = [...raised.keys()].find((k) => k.includes(`.${e.delayed}.`));
      if (!id)
        throw new Error(`no pending ${e.delayed} timer (have ${[...raised.keys()].join(', ')})`);
      event = raised.get(id)!;
      raised.delete(id);
    } else event = e;
    [snap, acts] = transition(voiceCallMachine, snap as AnyMachineSnapshot as Snap, event);
    collect(acts);
  }
  return { snap, actions };
}

const states = (snap: Snap) => callStates(snap.value);

describe('voice call machine', () => {
  test('connects: Pending/Connecting → Active/Live; hangup → Ended with cleanup', () => {
    const { snap, actions } = run([{ type: 'PEER_CONNECTED' }, { type: 'HANGUP' }]);
    expect(states(snap)).toEqual({ lifecycle: 'Ended', user: 'Ended' });
    expect(snap.context.endReason).toBe('user_hangup');
    expect(actions.filter((a) => a === 'cleanup')).toHaveLength(1);
    expect(callStates(initialTransition(voiceCallMachine, input)[0].value)).toEqual({
      lifecycle: 'Pending',
      user: 'Connecting',
    });
  });

  test('no connection within the connect timeout → Failed', () => {
    const { snap } = run([{ delayed: 'connectTimeout' }]);
    expect(states(snap)).toEqual({ lifecycle: 'Failed', user: 'Failed' });
    expect(snap.context.endReason).toBe('connect_timeout');
  });

  test('one ICE restart, then a second failure → Failed', () => {
    const first = run([{ type: 'PEER_CONNECTED' }, { type: 'PEER_DISCONNECTED' }]);
    expect(states(first.snap).user).toBe('Reconnecting');
    expect(first.actions).toContain('startIceRestart');
    const recovered = run([
      { type: 'PEER_CONNECTED' },
      { type: 'PEER_DISCONNECTED' },
      { type: 'PEER_CONNECTED' },
    ]);
    expect(states(recovered.snap).user).toBe('Live');
    const failed = run([
      { type: 'PEER_CONNECTED' },
      { type: 'PEER_DISCONNECTED' },
      { type: 'PEER_CONNECTED' },
      { type: 'PEER_FAILED' },
    ]);
    expect(states(failed.snap).lifecycle).toBe('Failed');
    expect(failed.snap.context.endReason).toBe('ice_failed');
    expect(failed.actions.filter((a) => a === 'startIceRestart')).toHaveLength(1);
  });

  test('reconnecting that never reconnects fails at the connect timeout', () => {
    const { snap } = run([
      { type: 'PEER_CONNECTED' },
      { type: 'PEER_FAILED' },
      { delayed: 'connectTimeout' },
    ]);
    expect(snap.context.endReason).toBe('ice_failed');
    expect(states(snap).lifecycle).toBe('Failed');
  });

  test('TTL expires the call from any state', () => {
    expect(states(run([{ delayed: 'ttl' }]).snap).lifecycle).toBe('Expired');
    const live = run([{ type: 'PEER_CONNECTED' }, { delayed: 'ttl' }]);
    expect(states(live.snap)).toEqual({ lifecycle: 'Expired', user: 'Ended' });
    expect(live.snap.context.endReason).toBe('ttl_expired');
  });

  test('budget: one warning, then the hard stop ends the call', () => {
    const { snap, actions } = run([
      { type: 'PEER_CONNECTED' },
      { delayed: 'budgetWarning' },
      { type: 'BUDGET_EXCEEDED' },
    ]);
    expect(actions.filter((a) => a === 'warnBudget')).toHaveLength(1);
    expect(snap.context.endReason).toBe('budget_exceeded');
    expect(states(snap).lifecycle).toBe('Ended');
  });

  test('agent container death fails the call', () => {
    const { snap } = run([{ type: 'PEER_CONNECTED' }, { type: 'AGENT_DIED' }]);
    expect(snap.context.endReason).toBe('agent_died');
    expect(states(snap).lifecycle).toBe('Failed');
  });

  test('leaving Active cancels its timers; final states ignore events', () => {
    const { snap, actions } = run([{ type: 'PEER_CONNECTED' }, { type: 'HANGUP' }]);
    expect(actions).toContain('xstate.cancel');
    const [after, acts] = transition(voiceCallMachine, snap, { type: 'PEER_CONNECTED' });
    expect(after.value).toBe('Ended');
    expect(acts).toEqual([]);
  });
  test('per-call tokens: a warning at the fraction, once; the limit ends the call', () => {
    const { snap, actions } = run([
      { type: 'PEER_CONNECTED' },
      { type: 'USAGE', tokens: 500 },
      { type: 'USAGE', tokens: 350 },
      { type: 'USAGE', tokens: 100 },
      { type: 'USAGE', tokens: 50 },
    ]);
    expect(actions.filter((a) => a === 'warnBudget')).toHaveLength(1);
    expect(states(snap).lifecycle).toBe('Ended');
    expect(snap.context.endReason).toBe('budget_exceeded');
    expect(snap.context.tokensUsed).toBe(1000);
  });

  test('talk-time budget: maxDuration after connect ends the call', () => {
    const { snap } = run([{ type: 'PEER_CONNECTED' }, { delayed: 'maxDuration' }]);
    expect(states(snap)).toEqual({ lifecycle: 'Ended', user: 'Ended' });
    expect(snap.context.endReason).toBe('budget_exceeded');
  });

  test('media lost (bridge restarted) → Failed, from Pending or Live', () => {
    for (const before of [[], [{ type: 'PEER_CONNECTED' } as VoiceCallEvent]]) {
      const { snap, actions } = run([...before, { type: 'MEDIA_LOST', detail: 'restart' }]);
      expect(states(snap)).toEqual({ lifecycle: 'Failed', user: 'Failed' });
      expect(snap.context.endReason).toBe('media_lost');
      expect(actions).toContain('cleanup');
    }
  });

  test('rejected while Pending → Failed with the reason', () => {
    const { snap } = run([{ type: 'REJECTED', detail: 'rate_limited' }]);
    expect(states(snap).lifecycle).toBe('Failed');
    expect(snap.context).toMatchObject({ endReason: 'rejected', endDetail: 'rate_limited' });
  });
});
