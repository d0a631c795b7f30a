/**
 * Replays histories recorded from real runs (scripts/record-histories.ts) against today's
 * workflow code: a change that would break runs in flight fails here, in CI, before it ships.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { replayBundle, withBundles } from '../support/replay';

const HISTORIES = path.join(__dirname, 'histories');
const files = readdirSync(HISTORIES).filter(
  (f) => f.startsWith('container-run-') && f.endsWith('.json'),
);

const load = (file: string) => JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8'));

jest.setTimeout(120_000);

test('there is a recorded history for every terminal state', () => {
  for (const state of ['ended', 'failed', 'expired', 'start-failed']) {
    expect(files.some((f) => f.startsWith(`container-run-${state}-`))).toBe(true);
  }
});

test.each(withBundles(files))('%s replays against the %s workflow code', async (file, kind) => {
  await Worker.runReplayHistory(
    { workflowBundle: await replayBundle(kind) },
    load(file),
    `replay-${file}`,
  );
});

test('a changed workflow is caught as nondeterministic', async () => {
  const changed = await bundleWorkflowCode({
    workflowsPath: require.resolve('./fixtures/changed-workflow'),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
  });
  const file = files.find((f) => f.startsWith('container-run-ended-'))!;
  await expect(
    Worker.runReplayHistory({ workflowBundle: changed }, load(file), 'replay-changed'),
  ).rejects.toMatchObject({ name: 'DeterminismViolationError' });
});
