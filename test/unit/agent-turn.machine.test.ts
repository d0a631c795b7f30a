// The agent-turn machine alone (no Temporal): every path through its lifecycle, the actions it
// asks the workflow for, and its one timer.
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import { agentTurnMachine, type AgentTurnEvent } from '../../machines/agent-turn.machine';

type Snapshot = SnapshotFrom<typeof agentTurnMachine>;
const TIMEOUT = { type: 'xstate.after.turnTimeout.agentTurn' } as unknown as AgentTurnEvent;

const start = () => initialTransition(agentTurnMachine, { timeoutMs: 300_000 });
const step = (s: Snapshot, e: AgentTurnEvent) => transition(agentTurnMachine, s, e);
const names = (actions: Array<{ type: string }>) => actions.map((a) => a.type);

test('starts Pending: asks to bind and sets the turn timer', () => {
  const [s, actions] = start();
  expect(s.value).toBe('Pending');
  expect(names(actions)).toEqual(['xstate.raise', 'bind']);
  expect((actions[0] as { params?: { delay?: number } }).params?.delay).toBe(300_000);
});

test('Pending → Active → Ended: bound, delivered, answered', () => {
  const [pending] = start();
  const [active, a1] = step(pending, { type: 'BOUND', containerName: 'c1', containerId: 'id1' });
  expect(active.value).toBe('Active');
  expect(names(a1)).toEqual(['deliver']);
  expect(active.context).toMatchObject({ containerName: 'c1', containerId: 'id1' });
  const [ended, a2] = step(active, { type: 'ANSWERED', text: 'hi', model: 'm' });
  expect(ended.value).toBe('Ended');
  expect(ended.status).toBe('done');
  expect(names(a2)).toContain('cleanup');
  expect(names(a2)).toContain('xstate.cancel');
  expect(ended.context).toMatchObject({ assistantText: 'hi', model: 'm', endReason: 'answered' });
});

test('Failed from Pending (bind) and from Active (delivery)', () => {
  const [pending] = start();
  const [f1] = step(pending, { type: 'BIND_FAILED', message: 'no key' });
  expect(f1.value).toBe('Failed');
  expect(f1.context).toMatchObject({ endReason: 'bind_failed', endDetail: 'no key' });
  const [active] = step(pending, { type: 'BOUND', containerName: 'c1' });
  const [f2, actions] = step(active, { type: 'DELIVERY_FAILED', message: 'closed' });
  expect(f2.value).toBe('Failed');
  expect(f2.context).toMatchObject({ endReason: 'delivery_failed', endDetail: 'closed' });
  expect(names(actions)).toContain('cleanup');
});

test('Expired from Pending and from Active when the timer fires', () => {
  const [pending] = start();
  const [e1] = step(pending, TIMEOUT);
  expect(e1.value).toBe('Expired');
  expect(e1.context).toMatchObject({
    endReason: 'turn_timeout',
    endDetail: 'no answer within 300 s',
  });
  const [active] = step(pending, { type: 'BOUND', containerName: 'c1' });
  const [e2, actions] = step(active, TIMEOUT);
  expect(e2.value).toBe('Expired');
  expect(names(actions)).toContain('cleanup');
});

test('events out of their state change nothing', () => {
  const [pending] = start();
  const [still] = step(pending, { type: 'ANSWERED', text: 'early' });
  expect(still.value).toBe('Pending');
  expect(still.context.assistantText).toBeUndefined();
  const [active] = step(pending, { type: 'BOUND', containerName: 'c1' });
  const [again] = step(active, { type: 'BOUND', containerName: 'c2' });
  expect(again.value).toBe('Active');
  expect(again.context.containerName).toBe('c1');
  const [ended] = step(active, { type: 'ANSWERED', text: 'a' });
  const [after] = step(ended, { type: 'DELIVERY_FAILED', message: 'late' });
  expect(after.value).toBe('Ended');
});
