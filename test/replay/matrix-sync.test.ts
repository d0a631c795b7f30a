/**
 * Replays recorded `matrixSyncWorkflow` histories (scripts/record-matrix-sync-history.ts)
 * against today's workflow code. An account's sync never ends, so every deploy meets one in
 * flight: a change that would take other decisions over the same history fails here first.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { replayBundle, withBundles } from '../support/replay';

const HISTORIES = path.join(__dirname, 'histories');
const files = readdirSync(HISTORIES).filter(
  (f) => f.startsWith('matrix-sync-') && f.endsWith('.json'),
);

jest.setTimeout(120_000);

test('there is a recorded Matrix sync history', () => {
  expect(files.length).toBeGreaterThan(0);
});

test.each(withBundles(files))('%s replays against the %s workflow code', async (file, kind) => {
  const history = JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8'));
  await Worker.runReplayHistory({ workflowBundle: await replayBundle(kind) }, history);
});
