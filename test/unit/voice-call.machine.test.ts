/**
 * The voice-call machine without Temporal: XState's pure `initialTransition`/`transition`,
 * exactly as `voiceCallWorkflow` drives it (through the MachineDriver). Scenarios first, then
 * every simple path (from @xstate/graph) replayed to check the invariants the workflow relies on.
 */
import { getSimplePaths } from '@xstate/graph';
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import { LIFECYCLE_STATES, TERMINAL_STATES } from '../../machines/lifecycle';
import {
  callStates,
  isReady,
  MAX_ICE_RESTARTS,
  userStateOf,
  voiceCallMachine,
  type VoiceCallEvent,
  type VoiceCallInput,
} from '../../machines/voice-call.machine';

type Snap = SnapshotFrom<typeof voiceCallMachine>;
type Action = ReturnType<typeof transition>[1][number];

const input: VoiceCallInput = {
  ttlMs: 600_000,
  connectTimeoutMs: 30_000,
  budgetWarningMs: 480_000,
  maxDurationMs: 540_000,
  maxTokens: 1000,
  tokenWarningAt: 800,
};
const existing: VoiceCallInput = { ...input, existingAgent: 'armorclaw-standing-agent' };

// XState names delayed events `xstate.after.<delay>.<state id>`; the workflow keys its Temporal
// timers by these ids and feeds the events back when the timers fire.
const TIMER = {
  ttl: 'xstate.after.ttl.voiceCall.Open',
  connectTimeout: 'xstate.after.connectTimeout.voiceCall.Open.Pending',
  reconnectTimeout: 'xstate.after.connectTimeout.voiceCall.Open.Active.Reconnecting',
  budgetWarning: 'xstate.after.budgetWarning.voiceCall.Open.Active',
  maxDuration: 'xstate.after.maxDuration.voiceCall.Open.Active',
} as const;
const fired = (name: keyof typeof TIMER) => ({ type: TIMER[name] }) as unknown as VoiceCallEvent;

const ev = <T extends VoiceCallEvent['type']>(type: T) => ({ type }) as VoiceCallEvent;
const ROOM_OK = ev('ROOM_OK');
const ADMITTED = ev('ADMITTED');
const AGENT_STARTED: VoiceCallEvent = { type: 'AGENT_STARTED', containerName: 'agent-1' };
const AGENT_OK = ev('AGENT_OK');
const MEDIA_READY = ev('MEDIA_READY');
const CONNECTED = ev('PEER_CONNECTED');
const DISCONNECTED = ev('PEER_DISCONNECTED');
const PEER_FAILED = ev('PEER_FAILED');
const HANGUP: VoiceCallEvent = { type: 'HANGUP', reason: 'user' };
const START_FAILED: VoiceCallEvent = { type: 'START_FAILED', message: 'no agent' };
const REFUSED: VoiceCallEvent = {
  type: 'REJECTED',
  failureType: 'RateLimited',
  reason: 'rate_limited',
  message: 'too many calls',
};
/** Pending's steps for a call that starts its agent, up to Ready. */
const READY = [ROOM_OK, ADMITTED, AGENT_STARTED, MEDIA_READY];
const LIVE = [...READY, CONNECTED];

function run(events: VoiceCallEvent[], from: VoiceCallInput = input): [Snap, Action[]] {
  let [snap, actions] = initialTransition(voiceCallMachine, from);
  const all: Action[] = [...actions];
  for (const event of events) {
    [snap, actions] = transition(voiceCallMachine, snap, event);
    all.push(...actions);
  }
  return [snap, all];
}

const states = (snap: Snap) => callStates(snap.value);
const types = (actions: Action[]) => actions.map((a) => a.type as string);
const count = (actions: Action[], type: string) => types(actions).filter((t) => t === type).length;
/** The machine's own actions (XState's raise/cancel left out): what the workflow performs. */
const own = (actions: Action[]) => types(actions).filter((t) => !t.startsWith('xstate.'));

describe('Pending, step by step', () => {
  test('each step is entered with its action; Ready starts the watches; the peer makes it Live', () => {
    const [start, initial] = initialTransition(voiceCallMachine, input);
    expect(start.value).toEqual({ Open: { Pending: 'CheckingRoom' } });
    expect(own(initial)).toEqual(['checkRoom']);
    const steps: Array<[VoiceCallEvent, string, string[]]> = [
      [ROOM_OK, 'Admitting', ['admit']],
      [ADMITTED, 'StartingAgent', ['startAgent']],
      [AGENT_STARTED, 'PreparingMedia', ['prepareMedia']],
      [MEDIA_READY, 'Ready', ['watchAgent', 'watchMedia']],
    ];
    let snap = start;
    for (const [event, state, actions] of steps) {
      const [next, acts] = transition(voiceCallMachine, snap, event);
      expect(next.value).toEqual({ Open: { Pending: state } });
      expect(own(acts)).toEqual(actions);
      expect(states(next)).toEqual({ lifecycle: 'Pending', user: 'Connecting' });
      snap = next;
    }
    expect(snap.context).toMatchObject({
      admission: 'done',
      agentStart: 'done',
      containerName: 'agent-1',
    });
    expect(isReady(snap.value)).toBe(true);
    const [live, acts] = transition(voiceCallMachine, snap, CONNECTED);
    expect(states(live)).toEqual({ lifecycle: 'Active', user: 'Live' });
    expect(isReady(live.value)).toBe(true);
    expect(own(acts)).toEqual([]);
  });

  test('an existing agent is checked, not started; its name is known from the start', () => {
    const [snap, actions] = run([ROOM_OK, ADMITTED, AGENT_OK], existing);
    expect(snap.value).toEqual({ Open: { Pending: 'PreparingMedia' } });
    expect(own(actions)).toEqual(['checkRoom', 'admit', 'checkAgent', 'prepareMedia']);
    expect(snap.context).toMatchObject({
      containerName: 'armorclaw-standing-agent',
      agentStart: 'none',
    });
  });

  test('an activity answer out of its step is ignored', () => {
    for (const event of [ADMITTED, AGENT_STARTED, AGENT_OK, MEDIA_READY, CONNECTED]) {
      const [snap, actions] = run([event]);
      expect(snap.value).toEqual({ Open: { Pending: 'CheckingRoom' } });
      expect(own(actions)).toEqual(['checkRoom']);
    }
  });

  test.each([
    ['the room check', [] as VoiceCallEvent[]],
    ['the admission', [ROOM_OK]],
  ])('refused at %s → Failed rejected, the refusal audited, no slot held', (_n, before) => {
    const [snap, actions] = run([...before, REFUSED]);
    expect(states(snap)).toEqual({ lifecycle: 'Failed', user: 'Failed' });
    expect(snap.context).toMatchObject({
      endReason: 'rejected',
      endDetail: 'rate_limited',
      rejection: { type: 'RateLimited', message: 'too many calls' },
      admission: 'none',
    });
    expect(own(actions).slice(-2)).toEqual(['auditRejection', 'cleanup']);
  });

  test('a start failure at any step → Failed start_failed', () => {
    for (const before of [[], [ROOM_OK], [ROOM_OK, ADMITTED], READY.slice(0, 3), READY]) {
      const [snap] = run([...before, START_FAILED]);
      expect(states(snap).lifecycle).toBe('Failed');
      expect(snap.context).toMatchObject({ endReason: 'start_failed', endDetail: 'no agent' });
    }
  });

  test('an ending while admitting or starting the agent leaves it in flight for cleanup', () => {
    const [admitting] = run([ROOM_OK, HANGUP]);
    expect(admitting.context).toMatchObject({ admission: 'inFlight', agentStart: 'none' });
    const [starting] = run([ROOM_OK, ADMITTED, HANGUP]);
    expect(starting.context).toMatchObject({ admission: 'done', agentStart: 'inFlight' });
    // A start that failed is settled: nothing to wait for.
    const [failed] = run([ROOM_OK, ADMITTED, START_FAILED]);
    expect(failed.context).toMatchObject({ admission: 'done', agentStart: 'done' });
  });
});

describe('connected', () => {
  test('hangup → Ended with cleanup once', () => {
    const [snap, actions] = run([...LIVE, HANGUP]);
    expect(states(snap)).toEqual({ lifecycle: 'Ended', user: 'Ended' });
    expect(snap.context.endReason).toBe('user_hangup');
    expect(count(actions, 'cleanup')).toBe(1);
  });

  test('no connection within the connect timeout → Failed', () => {
    const [snap] = run([...READY, fired('connectTimeout')]);
    expect(states(snap)).toEqual({ lifecycle: 'Failed', user: 'Failed' });
    expect(snap.context.endReason).toBe('connect_timeout');
  });

  test.each([
    ['disconnected', DISCONNECTED],
    ['failed', PEER_FAILED],
  ])('a path that %s gets one ICE restart; a second failure → Failed', (_n, lost) => {
    const [first, acts] = run([...LIVE, lost]);
    expect(states(first).user).toBe('Reconnecting');
    expect(own(acts)).toContain('startIceRestart');
    const [recovered] = run([...LIVE, lost, CONNECTED]);
    expect(states(recovered).user).toBe('Live');
    const [failed, all] = run([...LIVE, lost, CONNECTED, lost]);
    expect(states(failed).lifecycle).toBe('Failed');
    expect(failed.context.endReason).toBe('ice_failed');
    expect(count(all, 'startIceRestart')).toBe(MAX_ICE_RESTARTS);
  });

  test('reconnecting that never reconnects fails at the connect timeout', () => {
    const [snap] = run([...LIVE, PEER_FAILED, fired('reconnectTimeout')]);
    expect(snap.context.endReason).toBe('ice_failed');
    expect(states(snap).lifecycle).toBe('Failed');
  });

  test('TTL expires the call from any state', () => {
    expect(states(run([fired('ttl')])[0]).lifecycle).toBe('Expired');
    const [live] = run([...LIVE, fired('ttl')]);
    expect(states(live)).toEqual({ lifecycle: 'Expired', user: 'Ended' });
    expect(live.context.endReason).toBe('ttl_expired');
  });

  test('budget: one warning, then the hard stop ends the call', () => {
    const [snap, actions] = run([...LIVE, fired('budgetWarning'), ev('BUDGET_EXCEEDED')]);
    expect(count(actions, 'warnBudget')).toBe(1);
    expect(snap.context.endReason).toBe('budget_exceeded');
    expect(states(snap).lifecycle).toBe('Ended');
  });

  test('agent container death fails the call', () => {
    const [snap] = run([...LIVE, ev('AGENT_DIED')]);
    expect(snap.context.endReason).toBe('agent_died');
    expect(states(snap).lifecycle).toBe('Failed');
  });

  test('per-call tokens: a warning at the fraction, once; the limit ends the call', () => {
    const usage = (tokens: number): VoiceCallEvent => ({ type: 'USAGE', tokens });
    const [snap, actions] = run([...LIVE, usage(500), usage(350), usage(100), usage(50)]);
    expect(count(actions, 'warnBudget')).toBe(1);
    expect(states(snap).lifecycle).toBe('Ended');
    expect(snap.context.endReason).toBe('budget_exceeded');
    expect(snap.context.tokensUsed).toBe(1000);
  });

  test('talk-time budget: maxDuration after connect ends the call', () => {
    const [snap] = run([...LIVE, fired('maxDuration')]);
    expect(states(snap)).toEqual({ lifecycle: 'Ended', user: 'Ended' });
    expect(snap.context.endReason).toBe('budget_exceeded');
  });

  test('media lost (bridge restarted) → Failed, from Pending or Live', () => {
    for (const before of [[], LIVE]) {
      const [snap, actions] = run([...before, { type: 'MEDIA_LOST', detail: 'restart' }]);
      expect(states(snap)).toEqual({ lifecycle: 'Failed', user: 'Failed' });
      expect(snap.context.endReason).toBe('media_lost');
      expect(actions.map((a) => a.type)).toContain('cleanup');
    }
  });
});

describe('the caller-visible state', () => {
  test('the peer’s connection states map through the machine’s states', () => {
    const fresh = { everConnected: false, iceRestartsLeft: 1 };
    const live = { everConnected: true, iceRestartsLeft: 1 };
    const spent = { everConnected: true, iceRestartsLeft: 0 };
    expect(userStateOf('new', fresh)).toBe('Connecting');
    expect(userStateOf('connected', fresh)).toBe('Live');
    expect(userStateOf('connecting', live)).toBe('Reconnecting');
    expect(userStateOf('failed', live)).toBe('Reconnecting');
    expect(userStateOf('failed', spent)).toBe('Failed');
    expect(userStateOf('closed', live)).toBe('Ended');
  });
});

// --- every simple path --------------------------------------------------------------------

const ALL_EVENTS: VoiceCallEvent[] = [
  ROOM_OK,
  ADMITTED,
  AGENT_STARTED,
  AGENT_OK,
  MEDIA_READY,
  REFUSED,
  START_FAILED,
  CONNECTED,
  DISCONNECTED,
  PEER_FAILED,
  HANGUP,
  ev('AGENT_DIED'),
  ev('BUDGET_EXCEEDED'),
  { type: 'MEDIA_LOST', detail: 'gone' },
  ...(Object.keys(TIMER) as Array<keyof typeof TIMER>).map(fired),
];
// With a warning at 800 and a limit at 1000, 900 tokens warn and a second report ends the call.
const USAGE: VoiceCallEvent = { type: 'USAGE', tokens: 900 };

const PENDING_STEPS = ['checkRoom', 'admit', 'startAgent', 'checkAgent', 'prepareMedia'];

describe.each([
  // The token reports multiply the paths: walked once, with an agent started for the call.
  ['an agent started for the call', input, [...ALL_EVENTS, USAGE]],
  ['an existing agent', existing, ALL_EVENTS],
] as const)('every simple path (@xstate/graph), %s', (_n, from, events) => {
  const paths = getSimplePaths(voiceCallMachine, { input: from, events: [...events] });
  const replayed = paths.map((path) => {
    // The first step is XState's own init event; the rest are ours (or a fired timer).
    const steps = path.steps
      .map((s) => s.event)
      .filter((e) => (e.type as string) !== 'xstate.init');
    const [snap, actions] = run(steps, from);
    const label = `${steps.map((e) => e.type).join(' → ')} ⇒ ${JSON.stringify(snap.value)}`;
    return { path, steps, snap, actions, label };
  });

  test('reaches every lifecycle state, and every ending for every reason it can have', () => {
    const endings = new Set(
      replayed.map(({ snap }) => `${states(snap).lifecycle}/${snap.context.endReason ?? '-'}`),
    );
    expect([...endings].sort()).toEqual(
      [
        'Pending/-',
        'Active/-',
        'Ended/user_hangup',
        'Ended/budget_exceeded',
        'Failed/rejected',
        'Failed/start_failed',
        'Failed/connect_timeout',
        'Failed/ice_failed',
        'Failed/agent_died',
        'Failed/media_lost',
        'Expired/ttl_expired',
      ].sort(),
    );
    expect(new Set(replayed.map(({ snap }) => states(snap).lifecycle))).toEqual(
      new Set(LIFECYCLE_STATES),
    );
  });

  test('a final state ignores every event (cleanup never runs twice)', () => {
    for (const { snap, label } of replayed.filter(({ snap }) => snap.status === 'done')) {
      for (const event of [...events, USAGE]) {
        const [next, actions] = transition(voiceCallMachine, snap, event);
        expect({ label, event: event.type, value: next.value, actions: types(actions) }).toEqual({
          label,
          event: event.type,
          value: snap.value,
          actions: [],
        });
        expect(next.context).toEqual(snap.context);
      }
    }
  });

  test('on every path: cleanup exactly once iff final, and last; endReason set when final', () => {
    for (const { snap, actions, label, path } of replayed) {
      expect({ label, value: snap.value }).toEqual({ label, value: path.state.value });
      const final = TERMINAL_STATES.includes(states(snap).lifecycle);
      expect({ label, cleanup: count(actions, 'cleanup') }).toEqual({
        label,
        cleanup: final ? 1 : 0,
      });
      expect({ label, final }).toEqual({ label, final: snap.status === 'done' });
      if (!final) continue;
      expect({ label, endReason: snap.context.endReason }).toEqual({
        label,
        endReason: expect.any(String),
      });
      // Nothing the workflow performs comes after cleanup (XState may still cancel timers).
      expect({ label, last: own(actions).at(-1) }).toEqual({ label, last: 'cleanup' });
    }
  });

  test('Pending’s steps run once each, in order; the watches only once Ready', () => {
    const order = from.existingAgent ? ['checkAgent'] : ['startAgent'];
    for (const { actions, path, label } of replayed) {
      const steps = own(actions).filter((t) => PENDING_STEPS.includes(t));
      const expected = ['checkRoom', 'admit', ...order, 'prepareMedia'].slice(0, steps.length);
      expect({ label, steps }).toEqual({ label, steps: expected });
      // Started together when Ready, after the media is prepared; a call never connected
      // without them.
      const all = own(actions);
      const watches = all.filter((t) => t === 'watchAgent' || t === 'watchMedia');
      expect({ label, watches }).toEqual({
        label,
        watches: watches.length ? ['watchAgent', 'watchMedia'] : [],
      });
      if (watches.length)
        expect(all.indexOf('prepareMedia')).toBeLessThan(all.indexOf('watchAgent'));
      const wasActive = path.steps.some((s) => states(s.state as Snap).lifecycle === 'Active');
      if (wasActive) expect({ label, watches: watches.length }).toEqual({ label, watches: 2 });
    }
  });

  test('cleanup knows what to undo: the admission, the agent start, a rejection', () => {
    for (const { snap, actions, label } of replayed) {
      const { admission, agentStart, rejection, endReason } = snap.context;
      const asked = own(actions);
      // A slot is held or may be (in flight) iff it was asked for and not refused.
      const refusedAtAdmission = asked.includes('admit') && endReason === 'rejected';
      expect({ label, holds: admission !== 'none' }).toEqual({
        label,
        holds: asked.includes('admit') && !refusedAtAdmission,
      });
      // Admitted: the agent's step follows at once.
      expect({ label, admitted: admission === 'done' }).toEqual({
        label,
        admitted: asked.some((t) => t === 'startAgent' || t === 'checkAgent'),
      });
      expect({ label, starts: agentStart !== 'none' }).toEqual({
        label,
        starts: asked.includes('startAgent'),
      });
      // A rejection is audited once, before cleanup, and never follows an admission or a start.
      expect({ label, rejected: rejection !== undefined }).toEqual({
        label,
        rejected: endReason === 'rejected',
      });
      expect({ label, audits: count(actions, 'auditRejection') }).toEqual({
        label,
        audits: rejection ? 1 : 0,
      });
      if (rejection) {
        expect({ label, admission, agentStart }).toEqual({
          label,
          admission: 'none',
          agentStart: 'none',
        });
      }
    }
  });

  test('ICE restarts and budget warnings are bounded; timers are fired or cancelled', () => {
    for (const { snap, actions, steps, label } of replayed) {
      expect({ label, n: count(actions, 'startIceRestart') }).toEqual({
        label,
        n: snap.context.iceRestarts,
      });
      expect(snap.context.iceRestarts).toBeLessThanOrEqual(MAX_ICE_RESTARTS);
      expect({ label, warned: count(actions, 'warnBudget') }).toEqual({
        label,
        warned: snap.context.warned ? 1 : 0,
      });
      if (snap.status !== 'done') continue;
      const fired = new Set<string>(steps.map((e) => e.type));
      const cancelled = new Set(
        actions
          .filter((a) => a.type === 'xstate.cancel')
          .map((a) => (a.params as { sendId: string }).sendId),
      );
      for (const a of actions.filter((x) => x.type === 'xstate.raise')) {
        const { id } = a.params as { id: string };
        expect({ label, id, gone: fired.has(id) || cancelled.has(id) }).toEqual({
          label,
          id,
          gone: true,
        });
      }
    }
  });
});
