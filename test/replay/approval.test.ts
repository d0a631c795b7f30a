/**
 * Replays recorded `approvalWorkflow` and `incidentWorkflow` histories
 * (scripts/record-approval-histories.ts) against today's workflow code: a request in flight or a
 * live incident during a deploy must take the same decisions after it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { replayBundle, withBundles } from '../support/replay';
import { INCIDENT_WORKFLOW_ID } from '../../workflows/definitions';

const HISTORIES = path.join(__dirname, 'histories');
const files = readdirSync(HISTORIES).filter(
  (f) => (f.startsWith('approval-') || f.startsWith('incident-')) && f.endsWith('.json'),
);

jest.setTimeout(120_000);

test('every ending of a request and a lifted incident are recorded', () => {
  for (const end of ['spent', 'grant-expired', 'denied', 'expired']) {
    expect(files.some((f) => f.startsWith(`approval-${end}-v`))).toBe(true);
  }
  expect(files.some((f) => f.startsWith('incident-lifted-v'))).toBe(true);
});

test.each(withBundles(files))('%s replays against the %s workflow code', async (file, kind) => {
  const history = JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8'));
  const text = JSON.stringify(history);
  // Hashes only: a gateway token or the recording's key never reaches history.
  expect(text).not.toMatch(/acgw_|sk-recording-only/);
  // Child ids derive from the workflow id (`approval-<request id>`, `incident`).
  const workflowId = file.startsWith('incident-')
    ? INCIDENT_WORKFLOW_ID
    : /approval-[0-9a-f]{12}/.exec(text)![0];
  await Worker.runReplayHistory({ workflowBundle: await replayBundle(kind) }, history, workflowId);
});
