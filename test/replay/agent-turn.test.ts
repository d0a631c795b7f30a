/**
 * Replays recorded `agentTurnWorkflow` histories (scripts/record-turn-histories.ts) against
 * today's workflow code: turns last up to `gateway.turn.timeout` and their answers wait up to
 * `gateway.turn.retention` for `agent.wait`, so a deploy meets turns in flight; a change that
 * would take other decisions over one fails here, before it ships.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { replayBundle, withBundles } from '../support/replay';
import { TURN_WORKFLOW_PREFIX } from '../../workflows/definitions';

const HISTORIES = path.join(__dirname, 'histories');
const files = readdirSync(HISTORIES).filter(
  (f) => f.startsWith('agent-turn-') && f.endsWith('.json'),
);

interface HistoryJson {
  events: Array<{ workflowExecutionStartedEventAttributes?: { workflowId?: string } }>;
}

const load = (file: string): HistoryJson =>
  JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8'));

/**
 * The recorded turn's workflow id (`turn-<runId>`): the workflow takes its run id, its isolated
 * agent's name and its audit dedupe key from it, so replay must use the same one.
 */
function workflowIdOf(history: HistoryJson): string {
  const id = history.events[0]?.workflowExecutionStartedEventAttributes?.workflowId;
  if (!id?.startsWith(TURN_WORKFLOW_PREFIX)) throw new Error(`not a turn's history: ${id}`);
  return id;
}

jest.setTimeout(120_000);

test('there is a recorded history for every ending of a turn', () => {
  for (const end of [
    'ended',
    'ended-uncollected',
    'ended-isolated',
    'expired',
    'failed-bind',
    'failed-delivery',
  ]) {
    expect(files.some((f) => f.startsWith(`agent-turn-${end}-v`))).toBe(true);
  }
});

test.each(files)('%s carries no token in any payload', (file) => {
  // Payload data is base64 in the file: decoded, a token anywhere would show.
  const text = JSON.stringify(load(file), function (this: Record<string, unknown>, key, value) {
    const raw = this[key];
    return key === 'data' && typeof raw === 'string'
      ? Buffer.from(raw, 'base64').toString('utf8')
      : value;
  });
  // Positive control: decoded arguments show (the key's id, and every turn's end audited).
  expect(text).toContain('\\"keyId\\":');
  expect(text).toContain('\\"dedupe_key\\":\\"turn-');
  expect(text).not.toMatch(/acgw_|sk-recording-only/);
});

test.each(withBundles(files))('%s replays against the %s workflow code', async (file, kind) => {
  const history = load(file);
  await Worker.runReplayHistory(
    { workflowBundle: await replayBundle(kind) },
    history,
    workflowIdOf(history),
  );
});

test('a changed workflow is caught as nondeterministic', async () => {
  const changed = await bundleWorkflowCode({
    workflowsPath: require.resolve('./fixtures/changed-agent-turn'),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
  });
  const history = load(files.find((f) => f.startsWith('agent-turn-ended-v'))!);
  await expect(
    Worker.runReplayHistory({ workflowBundle: changed }, history, workflowIdOf(history)),
  ).rejects.toMatchObject({ name: 'DeterminismViolationError' });
});
