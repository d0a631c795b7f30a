// The budget alerts (docs/budget.md) through a real Synapse: the bridge logged in as its bot,
// matrix.admin_room set, usage reported over the agent's own socket (as in budget.test.ts), and
// the admin room read back over /messages as a person in it. Each threshold and the hard limit
// post exactly one m.notice, however many reports follow; `start` is then refused with -32006.
import { randomBytes } from 'node:crypto';
import { removeDir, type BridgeProcess } from '../support/bridge-process';
import { auditEntries } from '../support/containers';
import { ensureAgentImage, ensureDocker } from '../support/docker';
import {
  bridgeSlot,
  rpc,
  roomMessages,
  setupMatrixWorld,
  startBridge,
  stopAgents,
  teardownMatrixWorld,
  waitFor,
  type BridgeSlot,
  type MatrixWorld,
} from '../support/matrix-scenario';

jest.setTimeout(120_000);

const hex = (n: number) => randomBytes(n).toString('hex');
// 10,000 input tokens × $0.01/1k = $0.10 a report; the daily limit is $1.
const MODELS = { 'test-model': { input_per_1k_usd: 0.01, output_per_1k_usd: 0.02 } };
const USAGE = { model: 'test-model', input_tokens: 10_000, output_tokens: 0 };

let w: MatrixWorld | undefined;
let slot: BridgeSlot | undefined;
let bridge: BridgeProcess | undefined;
let adminRoom: string;
const names = new Set<string>();

const call = (method: string, params?: unknown) => rpc(bridge!.socketPath, method, params, 60_000);

/** m.notice bodies in the admin room, oldest first, as alice (a person in the room) reads them. */
const notices = async (): Promise<string[]> =>
  (await roomMessages(w!, adminRoom))
    .filter((e) => e.content.msgtype === 'm.notice')
    .map((e) => String(e.content.body))
    .reverse();

beforeAll(async () => {
  await ensureDocker();
  await ensureAgentImage();
  w = await setupMatrixWorld();
  // The operators' room: alice and the bot, not one of the trusted (agent) rooms.
  adminRoom = await w.syn.client.createRoom(w.alice.accessToken, {
    invite: [w.bot.userId],
    name: 'armorclaw admin',
  });
  await w.syn.client.join(w.bot.accessToken, adminRoom);
  slot = await bridgeSlot(w, {
    ARMORCLAW_MATRIX_ADMIN_ROOM: adminRoom,
    ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '1',
    ARMORCLAW_BUDGET_ALERT_THRESHOLDS: '0.5,0.8',
    ARMORCLAW_BUDGET_MODELS: JSON.stringify(MODELS),
  });
  bridge = await startBridge(slot);
}, 120_000);

afterAll(async () => {
  const dirs = [slot?.dir, w?.secretsDir].filter((d): d is string => !!d);
  await stopAgents(bridge?.socketPath, names, dirs);
  await bridge?.stop();
  await teardownMatrixWorld(w);
  if (slot) removeDir(slot.dir);
}, 120_000);

test('one notice per threshold and one for the limit in the admin room, then start is refused', async () => {
  const keyId = `budget-mx-key-${hex(4)}`;
  expect(
    (await call('store_key', { id: keyId, provider: 'openai', token: `sk-${hex(8)}` })).error,
  ).toBeUndefined();
  const initial = (await call('budget.status')).result;
  expect(initial).toMatchObject({ admin_room: adminRoom, alert_thresholds: [0.5, 0.8] });
  const period: string = initial.day.period;

  const started = await call('start', { key_id: keyId, ttl: '10m' });
  expect(started.error).toBeUndefined();
  const { container_name: name, endpoint } = started.result;
  names.add(name);
  const agent = (method: string, params?: unknown) => rpc(endpoint, method, params, 30_000);

  // Reports 1-4: $0.40; 5: 50 % ($0.50); 6-7; 8: 80 % ($0.80); 9; 10: the limit ($1.00).
  // Each is counted before the next, so every crossing belongs to one report.
  for (let i = 1; i <= 10; i++) {
    expect((await agent('budget.report', USAGE)).result).toEqual({
      status: 'recorded',
      cost_usd: 0.1,
    });
    await waitFor(
      `report ${i} counted`,
      async () => (await call('budget.status')).result.day.reports === i,
      { timeoutMs: 15_000, intervalMs: 50 },
    );
  }
  // Two more over the limit, while (or after) the sweep ends the run: counted or refused, they
  // must not announce anything again.
  for (let i = 0; i < 2; i++) await agent('budget.report', USAGE).catch(() => undefined);

  const warning = (pct: number, spent: string) =>
    `ArmorClaw budget: ${pct}% of the daily limit reached: ${spent} of $1.00 spent in ${period} (UTC).`;
  const all = await waitFor(
    'three notices in the admin room',
    async () => {
      const n = await notices();
      return n.length >= 3 && n;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  expect(all[0]).toBe(warning(50, '$0.50'));
  expect(all[1]).toBe(warning(80, '$0.80'));
  expect(all[2]).toMatch(/^ArmorClaw budget exceeded: \$1\.00 of the daily limit of \$1\.00 spent/);
  expect(all[2]).toContain('1 running agent session(s) stopped');

  const audited = (type: string) => auditEntries(bridge!.stateDir, { event_type: type }).reverse();
  const warnings = audited('budget_warning');
  expect(warnings.map((e) => [e.details?.threshold, e.details?.alert_room])).toEqual([
    [0.5, adminRoom],
    [0.8, adminRoom],
  ]);
  expect(audited('budget_exceeded')).toHaveLength(1);

  const refused = await call('start', { key_id: keyId });
  expect(refused.error).toMatchObject({ code: -32006 });
  expect(refused.error.message).toMatch(/^Budget exceeded: \$1\.\d\d of \$1\.00 spent in /);

  // Nothing more arrives later: still exactly one notice each.
  await new Promise((r) => setTimeout(r, 1_500));
  expect(await notices()).toEqual(all.slice(0, 3));
  expect(all).toHaveLength(3);
});
