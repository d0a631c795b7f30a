/**
 * Replays recorded `budgetWorkflow` histories (scripts/record-budget-history.ts) against today's
 * workflow code. The budget workflow never ends, so every deploy meets one in flight: a change
 * that would take other decisions over the same history fails here, before it ships.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { replayBundle, withBundles } from '../support/replay';
import { BUDGET_WORKFLOW_ID } from '../../workflows/definitions';

const HISTORIES = path.join(__dirname, 'histories');
const files = readdirSync(HISTORIES).filter((f) => f.startsWith('budget-') && f.endsWith('.json'));

jest.setTimeout(120_000);

test('there is a recorded budget history', () => {
  expect(files.length).toBeGreaterThan(0);
});

test.each(withBundles(files))('%s replays against the %s workflow code', async (file, kind) => {
  const history = JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8'));
  await Worker.runReplayHistory(
    { workflowBundle: await replayBundle(kind) },
    history,
    BUDGET_WORKFLOW_ID, // alert ids derive from it
  );
});
