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
import {
  BUDGET_WORKFLOW_ID,
  budgetStatusQuery,
  containerStatusQuery,
  containerWorkflowId,
} from '../workflows/definitions';
import { removeTestContainers, rpc, waitFor } from '../test/support/containers';
import { RECORDING_TOKEN, VERSION, recordingBridge, saveHistory } from './recording';

async function main(): Promise<void> {
  const recording = await recordingBridge({
    ARMORCLAW_MASTER_KEY: 'd5'.repeat(32),
    ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '1',
    ARMORCLAW_BUDGET_MODELS: JSON.stringify({
      'test-model': { input_per_1k_usd: 0.01, output_per_1k_usd: 0.02 },
    }),
    ARMORCLAW_MATRIX_ADMIN_ROOM: '!admin:example.org',
  });
  const { bridge, client, secretsDir } = recording;
  const budget = client.workflow.getHandle(BUDGET_WORKFLOW_ID);
  const names: string[] = [];
  try {
    const sock = bridge.socketPath;
    await rpc(sock, 'store_key', { id: 'rec', provider: 'openai', token: RECORDING_TOKEN });
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
    const file = saveHistory(bridge, BUDGET_WORKFLOW_ID, `budget-exceeded-v${VERSION}.json`);
    console.log(`budget -> ${file}`);
  } finally {
    await recording.close(() => removeTestContainers(names, [bridge.dir, secretsDir]));
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
