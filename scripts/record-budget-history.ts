/**
 * Records a `budgetWorkflow` history from a real run for the replay tests: the real bridge (its
 * embedded Temporal, real Docker), one agent container, usage reported over the container's own
 * socket past two thresholds and the daily limit, the run stopped by the budget, an alert to an
 * admin room the bridge is not logged in to (so the child send fails and is absorbed). Saves
 * `temporal workflow show --output json` under test/replay/histories/budget-exceeded-v<version>.json.
 *
 *   node --import tsx scripts/record-budget-history.ts
 *
 * The budget workflow never ends, so the history is of an open run: replay proves today's code
 * takes the same decisions over it, which is what a bridge upgraded under a live budget needs.
 * Keep old files when the workflow changes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import {
  BUDGET_WORKFLOW_ID,
  budgetStatusQuery,
  containerStatusQuery,
  containerWorkflowId,
} from '../workflows/definitions';
import { PROJECT_ROOT, removeDir, spawnBridge } from '../test/support/bridge-process';
import { removeTestContainers, rpc, waitFor } from '../test/support/containers';

const VERSION: string = require('../package.json').version;
const OUT = path.join(PROJECT_ROOT, 'test', 'replay', 'histories');
const TEMPORAL = path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'temporal');

async function main(): Promise<void> {
  const secretsDir = mkdtempSync(path.join('/dev/shm', 'armorclaw-record-'));
  const bridge = await spawnBridge({
    env: {
      ARMORCLAW_MASTER_KEY: 'd5'.repeat(32),
      ARMORCLAW_SECRETS_DIR: secretsDir,
      ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '1',
      ARMORCLAW_BUDGET_MODELS: JSON.stringify({
        'test-model': { input_per_1k_usd: 0.01, output_per_1k_usd: 0.02 },
      }),
      ARMORCLAW_MATRIX_ADMIN_ROOM: '!admin:example.org',
    },
  });
  const connection = await Connection.connect({ address: `127.0.0.1:${bridge.temporalPort}` });
  const client = new Client({ connection });
  const budget = client.workflow.getHandle(BUDGET_WORKFLOW_ID);
  const names: string[] = [];
  try {
    const sock = bridge.socketPath;
    await rpc(sock, 'store_key', { id: 'rec', provider: 'openai', token: 'sk-recording-only' });
    const started = (await rpc(sock, 'start', { key_id: 'rec', ttl: '10m' })).result;
    names.push(started.container_name);
    const usage = { model: 'test-model', input_tokens: 10_000, output_tokens: 10_000 };
    for (let i = 1; i <= 4; i++) {
      await rpc(started.endpoint, 'budget.report', usage);
      await waitFor(
        `report ${i}`,
        async () => (await budget.query(budgetStatusQuery)).day.reports === i,
      );
    }
    await waitFor(
      'the run to end over budget',
      async () => {
        const st = await client.workflow
          .getHandle(containerWorkflowId(started.container_name))
          .query(containerStatusQuery);
        return st.cleanup_done;
      },
      { timeoutMs: 60_000 },
    );
    // Let the alerts' child sends fail (not logged in) and the workflow settle.
    await waitFor(
      'the budget workflow to go idle',
      async () => {
        const { raw } = await budget.describe();
        return (
          !raw.pendingWorkflowTask && !raw.pendingActivities?.length && !raw.pendingChildren?.length
        );
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const json = execFileSync(
      TEMPORAL,
      [
        'workflow',
        'show',
        '--output',
        'json',
        '--address',
        `127.0.0.1:${bridge.temporalPort}`,
        '--workflow-id',
        BUDGET_WORKFLOW_ID,
      ],
      { encoding: 'utf8' },
    );
    const file = path.join(OUT, `budget-exceeded-v${VERSION}.json`);
    writeFileSync(file, json);
    console.log(`budget -> ${path.relative(PROJECT_ROOT, file)}`);
  } finally {
    await connection.close();
    await bridge.stop();
    await removeTestContainers(names, [bridge.dir, secretsDir]);
    removeDir(bridge.dir);
    removeDir(secretsDir);
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
