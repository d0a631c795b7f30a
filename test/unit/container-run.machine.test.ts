/**
 * The container-run machine without Temporal: XState's pure `initialTransition`/`transition`,
 * exactly as `containerRunWorkflow` drives it. Every event is sent in every state, and every
 * simple path (from @xstate/graph) is replayed to check the invariants the workflow relies on.
 */
import { getSimplePaths } from '@xstate/graph';
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import {
  containerRunMachine,
  type ContainerRunContext,
  type ContainerRunEvent,
  type ContainerRunInput,
} from '../../machines/container-run.machine';
import { LIFECYCLE_STATES, TERMINAL_STATES, type LifecycleState } from '../../machines/lifecycle';

type Snapshot = SnapshotFrom<typeof containerRunMachine>;
type Action = ReturnType<typeof transition>[1][number];

const TTL_MS = 3_600_000;
const SECRETS_DEADLINE_MS = 10_000;
const INPUT: ContainerRunInput = {
  ttlMs: TTL_MS,
  secretsDeadlineMs: SECRETS_DEADLINE_MS,
  limitMicroUsd: 0,
};
const NO_SPEND = { requests: 0, inputTokens: 0, outputTokens: 0, costMicroUsd: 0 };

// XState names delayed events `xstate.after.<delay>.<state id>`; the workflow keys its Temporal
// timers by these ids and feeds the events back when the timers fire.
const TTL_ID = 'xstate.after.ttl.containerRun.Active';
const DEADLINE_ID = 'xstate.after.secretsDeadline.containerRun.Active';
// Delayed events are internal to XState, not members of ContainerRunEvent.
const TTL_FIRED = { type: TTL_ID } as unknown as ContainerRunEvent;
const DEADLINE_FIRED = { type: DEADLINE_ID } as unknown as ContainerRunEvent;

const STARTED: ContainerRunEvent = { type: 'STARTED', containerId: 'c0ffee' };
const START_FAILED: ContainerRunEvent = { type: 'START_FAILED', message: 'image not found' };
const STOP: ContainerRunEvent = { type: 'STOP_REQUESTED', reason: 'rpc_stop' };
const ACK: ContainerRunEvent = { type: 'SECRETS_ACKED' };
const EXIT_0: ContainerRunEvent = { type: 'CONTAINER_EXITED', exitCode: 0, oomKilled: false };
const EXIT_137: ContainerRunEvent = { type: 'CONTAINER_EXITED', exitCode: 137, oomKilled: false };
const OOM: ContainerRunEvent = { type: 'CONTAINER_EXITED', exitCode: 137, oomKilled: true };
// Exit code 0 but OOM-killed still counts as OOM (the guard order matters).
const OOM_EXIT_0: ContainerRunEvent = { type: 'CONTAINER_EXITED', exitCode: 0, oomKilled: true };
const HEALTH: ContainerRunEvent = { type: 'HEALTH_FAILED', message: 'inspect failed' };
const BUDGET: ContainerRunEvent = { type: 'BUDGET_EXCEEDED' };
const HOST_LOST: ContainerRunEvent = { type: 'HOST_LOST', detail: 'host h1 did not come back' };

const ALL_EVENTS: Array<[string, ContainerRunEvent]> = [
  ['STARTED', STARTED],
  ['START_FAILED', START_FAILED],
  ['STOP_REQUESTED', STOP],
  ['SECRETS_ACKED', ACK],
  ['CONTAINER_EXITED 0', EXIT_0],
  ['CONTAINER_EXITED 137', EXIT_137],
  ['CONTAINER_EXITED oom', OOM],
  ['CONTAINER_EXITED 0 oom', OOM_EXIT_0],
  ['HEALTH_FAILED', HEALTH],
  ['BUDGET_EXCEEDED', BUDGET],
  ['HOST_LOST', HOST_LOST],
  ['ttl timer', TTL_FIRED],
  ['secrets deadline timer', DEADLINE_FIRED],
];

const start = () => initialTransition(containerRunMachine, INPUT);

/** Feeds events in order; returns the last snapshot and every action, in order. */
function run(events: ContainerRunEvent[], from?: Snapshot): [Snapshot, Action[]] {
  let [snapshot, actions] = from ? [from, [] as Action[]] : start();
  const all: Action[] = [...actions];
  for (const event of events) {
    [snapshot, actions] = transition(containerRunMachine, snapshot, event);
    all.push(...actions);
  }
  return [snapshot, all];
}

const stateOf = (s: Snapshot) => s.value as LifecycleState;
const types = (actions: Action[]) => actions.map((a) => a.type as string);
const count = (actions: Action[], type: string) => types(actions).filter((t) => t === type).length;

/** Delayed raises as `{ id: delayMs }`: what the workflow turns into Temporal timers. */
function delayedRaises(actions: Action[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of actions) {
    if ((a.type as string) !== 'xstate.raise') continue;
    const p = a.params as { id: string; delay?: number; event: { type: string } };
    expect(p.event.type).toBe(p.id);
    if (p.delay !== undefined) out[p.id] = p.delay;
  }
  return out;
}

const cancels = (actions: Action[]) =>
  actions
    .filter((a) => (a.type as string) === 'xstate.cancel')
    .map((a) => (a.params as { sendId: string }).sendId)
    .sort();

const pending = () => start()[0];
const active = () => run([STARTED])[0];
const activeSecretsRemoved = () => run([STARTED, ACK])[0];

/** `[name, event, target, ...]` rows titled `name → target`. */
const titled = <R extends [string, ContainerRunEvent, LifecycleState, ...unknown[]]>(
  rows: R[],
): R[] => rows.map((r) => [`${r[0]} → ${r[2]}`, ...r.slice(1)] as R);

/** The context a path should end with, beyond what input sets. */
const ctx = (extra: Partial<ContainerRunContext>): ContainerRunContext => ({
  ...INPUT,
  secretsRemoved: false,
  ackedWhilePending: false,
  spend: NO_SPEND,
  ...extra,
});

describe('initial state', () => {
  test('starts Pending with nothing scheduled and nothing to do', () => {
    const [snapshot, actions] = start();
    expect(stateOf(snapshot)).toBe('Pending');
    expect(snapshot.context).toEqual(ctx({}));
    expect(actions).toEqual([]);
  });
});

describe('every event in Pending', () => {
  const cases: Array<[string, ContainerRunEvent, LifecycleState, Partial<ContainerRunContext>]> = [
    ['STARTED', STARTED, 'Active', { containerId: 'c0ffee' }],
    [
      'START_FAILED',
      START_FAILED,
      'Failed',
      { endReason: 'start_failed', endDetail: 'image not found' },
    ],
    ['STOP_REQUESTED', STOP, 'Ended', { endReason: 'stop_requested' }],
    // A budget stop that reaches a run still starting ends it before it becomes Active.
    ['BUDGET_EXCEEDED', BUDGET, 'Ended', { endReason: 'budget_exceeded' }],
    // The start waited a grace for the host; a reaped host ends a starting run too.
    [
      'HOST_LOST',
      HOST_LOST,
      'Failed',
      { endReason: 'host_lost', endDetail: 'host h1 did not come back' },
    ],
  ];
  test.each(titled(cases))('%s', (_name, event, target, extra) => {
    const [next, actions] = transition(containerRunMachine, pending(), event);
    expect(stateOf(next)).toBe(target);
    expect(next.context).toEqual(ctx(extra));
    if (target === 'Active') {
      expect(types(actions)).toEqual(['xstate.raise', 'xstate.raise']);
    } else {
      // Nothing was scheduled in Pending, so nothing to cancel; cleanup still runs (the secrets
      // file may already be written).
      expect(types(actions)).toEqual(['cleanup']);
    }
  });

  // The agent's ack can overtake the start result (it reads the file as soon as it runs):
  // remembered, acted on when Active.
  test('SECRETS_ACKED stays Pending and remembers the ack, nothing to do yet', () => {
    const [next, actions] = transition(containerRunMachine, pending(), ACK);
    expect(stateOf(next)).toBe('Pending');
    expect(next.context).toEqual(ctx({ ackedWhilePending: true }));
    expect(actions).toEqual([]);
  });

  // Facts about a running container cannot arrive before it runs; timers do not exist yet.
  const ignored = ALL_EVENTS.filter(
    ([name]) => name !== 'SECRETS_ACKED' && !cases.some(([c]) => c === name),
  );
  test.each(ignored)('%s is ignored', (_name, event) => {
    const before = pending();
    const [next, actions] = transition(containerRunMachine, before, event);
    expect(stateOf(next)).toBe('Pending');
    expect(next.context).toEqual(before.context);
    expect(actions).toEqual([]);
  });
});

describe('an ack that overtook the start', () => {
  test('removes the secrets on entering Active, with the timers scheduled as usual', () => {
    const [acked] = transition(containerRunMachine, pending(), ACK);
    const [next, actions] = transition(containerRunMachine, acked, STARTED);
    expect(stateOf(next)).toBe('Active');
    expect(next.context).toEqual(
      ctx({ containerId: 'c0ffee', ackedWhilePending: true, secretsRemoved: true }),
    );
    expect(types(actions).sort()).toEqual(['removeSecrets', 'xstate.raise', 'xstate.raise']);
    expect(delayedRaises(actions)).toEqual({
      [TTL_ID]: TTL_MS,
      [DEADLINE_ID]: SECRETS_DEADLINE_MS,
    });
  });

  test('neither the deadline nor a second ack removes again', () => {
    const [snapshot, actions] = run([ACK, STARTED, DEADLINE_FIRED, ACK]);
    expect(stateOf(snapshot)).toBe('Active');
    expect(count(actions, 'removeSecrets')).toBe(1);
  });

  test('a stop before the start still ends with one cleanup and no separate removal', () => {
    const [snapshot, actions] = run([ACK, STOP]);
    expect(stateOf(snapshot)).toBe('Ended');
    expect(types(actions)).toEqual(['cleanup']);
  });
});

describe('entering Active', () => {
  test('schedules the TTL and the secrets deadline with the configured delays', () => {
    const [, actions] = transition(containerRunMachine, pending(), STARTED);
    expect(delayedRaises(actions)).toEqual({
      [TTL_ID]: TTL_MS,
      [DEADLINE_ID]: SECRETS_DEADLINE_MS,
    });
  });

  test('delays follow the input, not constants', () => {
    const [s0] = initialTransition(containerRunMachine, {
      ttlMs: 20_000,
      secretsDeadlineMs: 3_000,
      limitMicroUsd: 0,
    });
    const [, actions] = transition(containerRunMachine, s0, STARTED);
    expect(delayedRaises(actions)).toEqual({ [TTL_ID]: 20_000, [DEADLINE_ID]: 3_000 });
  });
});

describe('every event in Active (secrets still present)', () => {
  const toFinal: Array<[string, ContainerRunEvent, LifecycleState, Partial<ContainerRunContext>]> =
    [
      ['STOP_REQUESTED', STOP, 'Ended', { endReason: 'stop_requested' }],
      ['BUDGET_EXCEEDED', BUDGET, 'Ended', { endReason: 'budget_exceeded' }],
      ['CONTAINER_EXITED 0', EXIT_0, 'Ended', { endReason: 'container_exited', exitCode: 0 }],
      [
        'CONTAINER_EXITED 137',
        EXIT_137,
        'Failed',
        { endReason: 'container_exited', exitCode: 137, endDetail: 'exit code 137' },
      ],
      ['CONTAINER_EXITED oom', OOM, 'Failed', { endReason: 'oom_killed', exitCode: 137 }],
      ['CONTAINER_EXITED 0 oom', OOM_EXIT_0, 'Failed', { endReason: 'oom_killed', exitCode: 0 }],
      [
        'HEALTH_FAILED',
        HEALTH,
        'Failed',
        { endReason: 'health_check_failed', endDetail: 'inspect failed' },
      ],
      [
        'HOST_LOST',
        HOST_LOST,
        'Failed',
        { endReason: 'host_lost', endDetail: 'host h1 did not come back' },
      ],
      ['ttl timer', TTL_FIRED, 'Expired', { endReason: 'ttl_expired' }],
    ];

  test.each(titled(toFinal))(
    '%s; cancels both timers, then cleanup once',
    (_n, event, target, extra) => {
      const [next, actions] = transition(containerRunMachine, active(), event);
      expect(stateOf(next)).toBe(target);
      expect(next.status).toBe('done');
      expect(next.context).toEqual(ctx({ containerId: 'c0ffee', ...extra }));
      // Exit actions (cancel the pending timers) come before the final state's entry (cleanup).
      expect(types(actions)).toEqual(['xstate.cancel', 'xstate.cancel', 'cleanup']);
      expect(cancels(actions)).toEqual([DEADLINE_ID, TTL_ID].sort());
      expect(count(actions, 'removeSecrets')).toBe(0);
    },
  );

  test('SECRETS_ACKED removes the secrets and stays Active, timers untouched', () => {
    const [next, actions] = transition(containerRunMachine, active(), ACK);
    expect(stateOf(next)).toBe('Active');
    expect(next.context).toEqual(ctx({ containerId: 'c0ffee', secretsRemoved: true }));
    expect(types(actions)).toEqual(['removeSecrets']);
  });

  test('secrets deadline removes the secrets and stays Active', () => {
    const [next, actions] = transition(containerRunMachine, active(), DEADLINE_FIRED);
    expect(stateOf(next)).toBe('Active');
    expect(next.context).toEqual(ctx({ containerId: 'c0ffee', secretsRemoved: true }));
    expect(types(actions)).toEqual(['removeSecrets']);
  });

  test.each([
    ['STARTED', STARTED],
    ['START_FAILED', START_FAILED],
  ])('%s is ignored', (_n, event) => {
    const before = active();
    const [next, actions] = transition(containerRunMachine, before, event);
    expect(stateOf(next)).toBe('Active');
    expect(next.context).toEqual(before.context);
    expect(actions).toEqual([]);
  });

  test('the table above covers every event', () => {
    const covered = new Set([
      ...toFinal.map(([n]) => n),
      'SECRETS_ACKED',
      'secrets deadline timer',
      'STARTED',
      'START_FAILED',
    ]);
    expect([...covered].sort()).toEqual(ALL_EVENTS.map(([n]) => n).sort());
  });
});

describe('secrets are removed once only', () => {
  test.each([
    ['ack, then deadline', [ACK, DEADLINE_FIRED]],
    ['deadline, then ack', [DEADLINE_FIRED, ACK]],
    ['ack twice', [ACK, ACK]],
    ['ack, deadline, ack', [ACK, DEADLINE_FIRED, ACK]],
  ])('%s', (_n, events) => {
    const [snapshot, actions] = run([STARTED, ...events]);
    expect(stateOf(snapshot)).toBe('Active');
    expect(snapshot.context.secretsRemoved).toBe(true);
    expect(count(actions, 'removeSecrets')).toBe(1);
  });

  test('after removal, Active still reaches every final state with a single cleanup', () => {
    for (const event of [STOP, BUDGET, EXIT_0, EXIT_137, OOM, HEALTH, TTL_FIRED]) {
      const [snapshot, actions] = run([event], activeSecretsRemoved());
      expect(TERMINAL_STATES).toContain(stateOf(snapshot));
      expect(snapshot.context.secretsRemoved).toBe(true);
      expect(types(actions)).toEqual(['xstate.cancel', 'xstate.cancel', 'cleanup']);
    }
  });
});

describe('final states', () => {
  const finals: Array<[LifecycleState, ContainerRunEvent[]]> = [
    ['Ended', [STARTED, STOP]],
    ['Failed', [START_FAILED]],
    ['Expired', [STARTED, TTL_FIRED]],
  ];
  test.each(finals)('%s ignores every event', (state, path) => {
    const [final] = run(path);
    expect(stateOf(final)).toBe(state);
    for (const [, event] of ALL_EVENTS) {
      const [next, actions] = transition(containerRunMachine, final, event);
      expect(stateOf(next)).toBe(state);
      expect(next.context).toEqual(final.context);
      expect(actions).toEqual([]);
    }
  });
});

describe('every simple path (@xstate/graph)', () => {
  const paths = getSimplePaths(containerRunMachine, {
    input: INPUT,
    events: ALL_EVENTS.map(([, e]) => e),
  });

  test('reaches every state, and every final state for every reason it can have', () => {
    const endings = new Set(
      paths.map(
        (p) => `${stateOf(p.state as Snapshot)}/${(p.state as Snapshot).context.endReason ?? '-'}`,
      ),
    );
    expect([...endings].sort()).toEqual(
      [
        'Pending/-',
        'Active/-',
        'Failed/start_failed',
        'Ended/stop_requested',
        'Ended/budget_exceeded',
        'Ended/container_exited',
        'Failed/container_exited',
        'Failed/oom_killed',
        'Failed/health_check_failed',
        'Failed/host_lost',
        'Expired/ttl_expired',
      ].sort(),
    );
    expect(new Set(paths.map((p) => stateOf(p.state as Snapshot)))).toEqual(
      new Set(LIFECYCLE_STATES),
    );
  });

  test('on every path: cleanup exactly once iff final, secrets removed at most once, reason set', () => {
    for (const path of paths) {
      // The first step is XState's own init event; the rest are ours (or a fired timer).
      const events = path.steps
        .map((s) => s.event)
        .filter((e) => (e.type as string) !== 'xstate.init');
      const [snapshot, actions] = run(events);
      const state = stateOf(snapshot);
      const label = `${events.map((e) => e.type).join(' → ')} ⇒ ${state}`;
      expect({ label, state }).toEqual({ label, state: stateOf(path.state as Snapshot) });
      const final = TERMINAL_STATES.includes(state);
      expect({ label, cleanup: count(actions, 'cleanup') }).toEqual({
        label,
        cleanup: final ? 1 : 0,
      });
      expect(count(actions, 'removeSecrets')).toBeLessThanOrEqual(1);
      expect(count(actions, 'removeSecrets') === 1).toBe(snapshot.context.secretsRemoved);
      if (final) {
        expect({ label, endReason: snapshot.context.endReason }).toEqual({
          label,
          endReason: expect.any(String),
        });
        // cleanup is the last thing a path does: nothing after it would run in a final state.
        expect(types(actions).at(-1)).toBe('cleanup');
      }
      // Every timer scheduled is either fired (its event is on the path) or cancelled on exit.
      const scheduled = Object.keys(delayedRaises(actions));
      const fired = new Set<string>(events.map((e) => e.type));
      const cancelled = new Set(cancels(actions));
      for (const id of scheduled) {
        if (final)
          expect({ label, id, gone: fired.has(id) || cancelled.has(id) }).toEqual({
            label,
            id,
            gone: true,
          });
      }
    }
  });
});

describe('metered usage and the run limit', () => {
  const usage = (costMicroUsd: number): ContainerRunEvent => ({
    type: 'USAGE',
    inputTokens: 100,
    outputTokens: 20,
    costMicroUsd,
  });
  const limited = (limitMicroUsd: number) =>
    initialTransition(containerRunMachine, { ...INPUT, limitMicroUsd });
  const feed = (from: Snapshot, events: ContainerRunEvent[]): [Snapshot, Action[]] =>
    run(events, from);

  test('usage adds up in every state before the end, without a limit nothing ends', () => {
    const [s] = run([usage(500), STARTED, usage(700), usage(800)]);
    expect(stateOf(s)).toBe('Active');
    expect(s.context.spend).toEqual({
      requests: 3,
      inputTokens: 300,
      outputTokens: 60,
      costMicroUsd: 2_000,
    });
  });

  test('an Active run ends with budget_exceeded when its spend reaches the limit', () => {
    const [s0] = limited(1_000);
    const [below] = feed(s0, [STARTED, usage(999)]);
    expect(stateOf(below)).toBe('Active');
    const [s, actions] = feed(below, [usage(1)]);
    expect(stateOf(s)).toBe('Ended');
    expect(s.context.endReason).toBe('budget_exceeded');
    expect(s.context.endDetail).toMatch(/spending limit/);
    expect(count(actions, 'cleanup')).toBe(1);
  });

  test('spend over the limit while Pending ends the run as soon as it becomes Active', () => {
    const [s0] = limited(1_000);
    const [pending] = feed(s0, [usage(5_000)]);
    expect(stateOf(pending)).toBe('Pending');
    const [s] = feed(pending, [STARTED]);
    expect(stateOf(s)).toBe('Ended');
    expect(s.context.endReason).toBe('budget_exceeded');
    expect(s.context.containerId).toBe('c0ffee');
  });
});
