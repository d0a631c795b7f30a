// The budget tracker (docs/budget.md) on the real bridge, real Docker and the bridge's embedded
// Temporal: usage reported over an agent's own socket (the test connects to the container's
// endpoint as the agent would), thresholds audited once, the hard limit refusing `start` with
// -32006 and ending the running session, and the totals surviving a bridge restart.
// Matrix is not configured here, so alerts are audited with alert_room null and not sent; the
// Matrix alert itself is proven in test/workflows/budget.test.ts.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import {
  auditEntries,
  removeTestContainers,
  rpc,
  runStatus,
  temporalClient,
  waitFor,
} from '../support/containers';
import { ensureAgentImage, ensureDocker } from '../support/docker';
import { freePort } from '../support/ports';

jest.setTimeout(180_000);

const hex = (n: number) => randomBytes(n).toString('hex');
const KEY_ID = `budget-key-${hex(4)}`;
// 10,000 in × $0.01/1k + 10,000 out × $0.02/1k = $0.30 a report; the daily limit is $1.
const MODELS = { 'test-model': { input_per_1k_usd: 0.01, output_per_1k_usd: 0.02 } };
const USAGE = { model: 'test-model', input_tokens: 10_000, output_tokens: 10_000 };

interface Setup {
  dir: string;
  secretsDir: string;
  env: NodeJS.ProcessEnv;
  temporalPort: number;
  uiPort: number;
}

let s: Setup;
let bridge: BridgeProcess | undefined;
const names = new Set<string>();

const spawn = (env: NodeJS.ProcessEnv = {}) =>
  spawnBridge({
    dir: s.dir,
    env: { ...s.env, ...env },
    temporalPort: s.temporalPort,
    uiPort: s.uiPort,
  });
const call = (method: string, params?: unknown) => rpc(bridge!.socketPath, method, params, 120_000);
const status = async () => {
  const res = await call('budget.status');
  expect(res.error).toBeUndefined();
  return res.result;
};
const budgetAudit = (type: string) =>
  auditEntries(bridge!.stateDir, { event_type: type }).reverse();

beforeAll(async () => {
  await ensureDocker();
  await ensureAgentImage();
  s = {
    dir: mkdtempSync(path.join(os.tmpdir(), 'armorclaw-budget-')),
    secretsDir: mkdtempSync('/dev/shm/armorclaw-budget-secrets-'),
    env: {
      ARMORCLAW_MASTER_KEY: hex(32),
      ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '1',
      ARMORCLAW_BUDGET_MODELS: JSON.stringify(MODELS),
    },
    temporalPort: await freePort(),
    uiPort: await freePort(),
  };
  s.env.ARMORCLAW_SECRETS_DIR = s.secretsDir;
  bridge = await spawn();
  const stored = await call('store_key', { id: KEY_ID, provider: 'openai', token: `sk-${hex(8)}` });
  expect(stored.error).toBeUndefined();
}, 180_000);

afterAll(async () => {
  await bridge?.stop();
  await removeTestContainers(names, [s.dir, s.secretsDir]);
  removeDir(s.dir);
  removeDir(s.secretsDir);
}, 120_000);

test('usage over the agent socket, thresholds once, the hard stop, and totals across a restart', async () => {
  const initial = await status();
  expect(initial).toMatchObject({
    exceeded: false,
    alert_thresholds: [0.5, 0.8, 0.95],
    admin_room: null,
    day: { spent_usd: 0, limit_usd: 1, exceeded: false, thresholds_alerted: [], reports: 0 },
    month: { spent_usd: 0, limit_usd: null, exceeded: false },
  });
  expect(initial.day.period).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  expect(initial.month.period).toBe(initial.day.period.slice(0, 7));

  const started = await call('start', { key_id: KEY_ID });
  expect(started.error).toBeUndefined();
  const { container_name: name, endpoint } = started.result;
  names.add(name);

  // The agent's side: its own socket, as the container reaches it.
  const agent = (method: string, params?: unknown) => rpc(endpoint, method, params, 30_000);
  const bad = [
    { ...USAGE, model: 'gpt-unknown' },
    { ...USAGE, input_tokens: -1 },
    { ...USAGE, output_tokens: 1.5 },
    { ...USAGE, container_name: 'someone-else' },
    { model: 'test-model' },
  ];
  for (const params of bad) {
    expect((await agent('budget.report', params)).error).toMatchObject({ code: -32602 });
  }
  expect((await agent('budget.report', { ...USAGE, model: 'gpt-unknown' })).error.message).toBe(
    'Invalid params: no price configured for model gpt-unknown',
  );

  // Three reports: $0.30, $0.60 (0.5 reached), $0.90 (0.8 reached). Each is counted before the
  // next, so each threshold is reached by a report of its own.
  for (let i = 1; i <= 3; i++) {
    const res = await agent('budget.report', USAGE);
    expect(res).toEqual({ jsonrpc: '2.0', id: 1, result: { status: 'recorded', cost_usd: 0.3 } });
    await waitFor(`report ${i} counted`, async () => (await status()).day.reports === i);
  }
  const warned = await status();
  expect(warned.day).toMatchObject({ thresholds_alerted: [0.5, 0.8], exceeded: false });
  expect(warned.day.spent_usd).toBeCloseTo(0.9, 9);
  const warnings = await waitFor('two budget warnings', () => {
    const w = budgetAudit('budget_warning');
    return w.length === 2 && w;
  });
  expect(warnings.map((w) => w.details)).toEqual([
    expect.objectContaining({ scope: 'day', threshold: 0.5, limit_usd: 1, alert_room: null }),
    expect.objectContaining({ scope: 'day', threshold: 0.8, limit_usd: 1, alert_room: null }),
  ]);
  expect(warnings[0]!.dedupe_key).toBe(`budget-${initial.day.period}-0.5`);

  // The fourth report passes $1: the running session is ended, new ones are refused.
  expect((await agent('budget.report', USAGE)).result).toEqual({
    status: 'recorded',
    cost_usd: 0.3,
  });
  const { client, close } = await temporalClient(s.temporalPort);
  try {
    const ended = await waitFor(
      'the run to end over budget',
      async () => {
        const st = await runStatus(client, name);
        return st.cleanup_done && st;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(ended).toMatchObject({ state: 'Ended', end_reason: 'budget_exceeded' });
  } finally {
    await close();
  }
  const over = await status();
  expect(over.exceeded).toBe(true);
  expect(over.day).toMatchObject({
    exceeded: true,
    reports: 4,
    thresholds_alerted: [0.5, 0.8, 0.95],
  });
  expect(over.day.spent_usd).toBeCloseTo(1.2, 9);
  const refused = await call('start', { key_id: KEY_ID });
  expect(refused.result).toBeUndefined();
  expect(refused.error).toEqual({
    code: -32006,
    message: `Budget exceeded: $1.20 of $1.00 spent in ${initial.day.period}`,
  });
  const exceeded = await waitFor('one budget_exceeded entry', () => {
    const e = budgetAudit('budget_exceeded');
    return e.length === 1 && e;
  });
  expect(exceeded[0]!.details).toEqual({
    scope: 'day',
    period: initial.day.period,
    spent_usd: 1.2,
    limit_usd: 1,
    alert_room: null,
  });
  // 0.95 was passed by the report that exceeded the limit: marked, not announced.
  expect(budgetAudit('budget_warning')).toHaveLength(2);

  // A restart keeps everything: the totals live in the workflow, not in the process.
  expect(await bridge!.stop()).toBe(0);
  bridge = await spawn();
  const after = await status();
  expect(after).toEqual(over);
  expect((await call('start', { key_id: KEY_ID })).error).toMatchObject({ code: -32006 });

  // A bridge started with a higher limit applies it to the same totals: starts are allowed.
  expect(await bridge.stop()).toBe(0);
  bridge = await spawn({ ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '5' });
  const raised = await status();
  expect(raised.exceeded).toBe(false);
  expect(raised.day).toMatchObject({ limit_usd: 5, reports: 4 });
  expect(raised.day.spent_usd).toBeCloseTo(1.2, 9);
  const again = await call('start', { key_id: KEY_ID });
  expect(again.error).toBeUndefined();
  names.add(again.result.container_name);
  expect((await call('stop', { container_id: again.result.container_name })).error).toBeUndefined();
});
