/**
 * OpenClaw, armoured, end to end: a real bridge (embedded Temporal, real Docker) logged in to a
 * real Synapse starts the spec's default agent type, `openclaw`, bound to a room. A person writes
 * in the room; OpenClaw, in its hardened network-`none` container, asks its model through the
 * bridge's provider proxy (the provider stub is the far end) and its answer appears in the room
 * once. The real key is nowhere in the container; the stub saw it; the usage reached the budget;
 * a kill -9 of the bridge mid-conversation loses and repeats nothing.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import { OPENCLAW_IMAGE, OPENCLAW_MEMORY_BYTES } from '../../config/settings';
import { removeDir, type BridgeProcess } from '../support/bridge-process';
import { runStatus, temporalClient } from '../support/containers';
import { docker } from '../support/docker';
import { containerPids, memoryHolds } from '../support/leak-scan';
import {
  bridgeSlot,
  nonce,
  roomMessages,
  rpc,
  setupMatrixWorld,
  sleep,
  startBridge,
  stopAgents,
  teardownMatrixWorld,
  waitFor,
  type BridgeSlot,
  type MatrixWorld,
} from '../support/matrix-scenario';
import { ProviderStub } from '../support/provider-stub';

jest.setTimeout(420_000);

const TOKEN = `sk-proj-${randomBytes(24).toString('hex')}`;
/** What the stub's model says to anything (streamed in three pieces). */
const ANSWER = 'tok0 tok1 tok2';

let w: MatrixWorld;
let slot: BridgeSlot;
let bridge: BridgeProcess;
let stub: ProviderStub;
let client: Client;
let closeClient: () => Promise<void>;
const names = new Set<string>();
let name: string;

const say = (body: string) => w.syn.client.sendText(w.alice.accessToken, w.rooms.agent, body);

/** The bot's messages in the agent room that answer with the stub's text. */
const answers = async () =>
  (await roomMessages(w, w.rooms.agent)).filter(
    (e) => e.sender === w.bot.userId && String(e.content.body).trim() === ANSWER,
  ).length;

async function connect(): Promise<void> {
  ({ client, close: closeClient } = await temporalClient(bridge.temporalPort));
}

beforeAll(async () => {
  const built = await docker(['image', 'inspect', OPENCLAW_IMAGE]);
  if (built.code !== 0) throw new Error(`${OPENCLAW_IMAGE} is missing; run bash scripts/docker.sh`);
  stub = await ProviderStub.start();
  w = await setupMatrixWorld();
  slot = await bridgeSlot(w, {
    ARMORCLAW_AGENT_TYPES: JSON.stringify({
      openclaw: { image: OPENCLAW_IMAGE, memory_bytes: OPENCLAW_MEMORY_BYTES },
    }),
    ARMORCLAW_PROXY_BASE_URLS: JSON.stringify({ openai: stub.url }),
    ARMORCLAW_BUDGET_MODELS: JSON.stringify({
      'gpt-4o-mini': { input_per_1k_usd: 0.15, output_per_1k_usd: 0.6 },
    }),
    ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '100',
  });
  bridge = await startBridge(slot);
  await connect();
  const stored = await rpc(bridge.socketPath, 'store_key', {
    id: 'openclaw-key',
    provider: 'openai',
    token: TOKEN,
  });
  expect(stored.error).toBeUndefined();
  // The spec's `start` with the default agent type: OpenClaw.
  const started = await rpc(bridge.socketPath, 'start', {
    key_id: 'openclaw-key',
    room_id: w.rooms.agent,
    ttl: '30m',
  });
  expect(started.error).toBeUndefined();
  name = started.result.container_name;
  names.add(name);
  await waitFor(
    'OpenClaw to be ready',
    async () =>
      (await runStatus(client, name)).notifications.some((n) => n.message === 'ready') || false,
    { timeoutMs: 120_000, intervalMs: 500 },
  );
});

afterAll(async () => {
  await closeClient?.().catch(() => undefined);
  await stopAgents(
    bridge?.socketPath,
    names,
    [slot?.dir, w?.secretsDir].filter(Boolean) as string[],
  );
  await bridge?.stop();
  await stub?.close();
  if (slot) removeDir(slot.dir);
  await teardownMatrixWorld(w);
});

test('OpenClaw runs in a container hardened like every run, with its own memory limit', async () => {
  const info = JSON.parse((await docker(['inspect', name])).stdout)[0];
  expect(info.Config.Image).toBe(OPENCLAW_IMAGE);
  expect(info.Config.User).toBe('10001:10001');
  const hc = info.HostConfig;
  expect(hc.ReadonlyRootfs).toBe(true);
  expect(hc.CapDrop).toEqual(['ALL']);
  expect(hc.SecurityOpt).toContain('no-new-privileges:true');
  expect(hc.NetworkMode).toBe('none');
  expect(hc.Privileged).toBe(false);
  expect(hc.Memory).toBe(OPENCLAW_MEMORY_BYTES);
  expect(hc.PidsLimit).toBeGreaterThan(0);
  expect(Object.keys(hc.Tmpfs)).toEqual(['/tmp']);
});

test('a person writes in the room; OpenClaw answers through the proxy, once; the stub saw the real key; usage reached the budget', async () => {
  const before = (await rpc(bridge.socketPath, 'budget.status')).result;
  stub.reset();
  await say(`Hello OpenClaw, what is new? ${nonce()}`);
  await waitFor('the answer in the room', async () => (await answers()) >= 1, {
    timeoutMs: 120_000,
    intervalMs: 500,
  });
  await sleep(6_000); // past the agent's redelivery period: a second answer would show
  expect(await answers()).toBe(1);
  const asked = stub.requests.filter((r) => r.url === '/v1/chat/completions');
  expect(asked.length).toBeGreaterThanOrEqual(1);
  for (const r of asked) expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
  const after = await waitFor('the budget to count it', async () => {
    const b = (await rpc(bridge.socketPath, 'budget.status')).result;
    return b.day.metered_usd > before.day.metered_usd && b;
  });
  expect(after.day.reports).toBeGreaterThan(before.day.reports);
  expect((await runStatus(client, name)).usage.requests).toBeGreaterThanOrEqual(1);
});

test('the real key is nowhere in the container: inspect, environment, memory of every process', async () => {
  const inspect = (await docker(['inspect', name])).stdout;
  expect(inspect.includes(TOKEN)).toBe(false);
  const pids = await containerPids(name);
  expect(pids.length).toBeGreaterThanOrEqual(2); // the shim and OpenClaw's gateway
  for (const pid of pids) {
    const environ = readFileSync(`/proc/${pid}/environ`);
    expect(environ.includes(Buffer.from(TOKEN))).toBe(false);
    expect({ pid, memoryHoldsKey: memoryHolds(pid, TOKEN) }).toEqual({
      pid,
      memoryHoldsKey: false,
    });
  }
});

test('kill -9 of the bridge mid-conversation: the run survives, each message is answered once', async () => {
  const first = await answers();
  await say(`A question while the bridge dies ${nonce()}`);
  await sleep(300);
  await closeClient();
  await bridge.stop('SIGKILL');
  bridge = await startBridge(slot);
  await connect();
  expect((await runStatus(client, name)).state).toBe('Active');
  await waitFor('the answer to the interrupted question', async () => (await answers()) > first, {
    timeoutMs: 120_000,
    intervalMs: 500,
  });
  await say(`And the next one ${nonce()}`);
  await waitFor('the answer to the next question', async () => (await answers()) > first + 1, {
    timeoutMs: 120_000,
    intervalMs: 500,
  });
  await sleep(6_000);
  expect(await answers()).toBe(first + 2);
});
