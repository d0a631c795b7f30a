/**
 * Agent turns and cron jobs through a real bridge's HTTP gateway, on real containers of the
 * reference agent, whose model is the provider stub behind the bridge's real provider proxy:
 * agent.run → agent.wait (consumptive), the message limits, a kill -9 of the bridge mid-turn,
 * cron jobs firing on time, removed, surviving a restart, and a long interval proved by
 * backfilling its schedule on the real Temporal server (the time-skipping test server has no
 * Schedules).
 */
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import { removeTestContainers, sleep, temporalClient, waitFor } from '../support/containers';
import { ensureAgentImage, ensureDocker } from '../support/docker';
import { gatewayClient, type GatewayClient } from '../support/gateway-client';
import { freePort } from '../support/ports';
import { ProviderStub } from '../support/provider-stub';
import { call } from '../support/socket-clients';

jest.setTimeout(300_000);

const KEY = `sk-turns-${randomBytes(12).toString('hex')}`;
const STUB_ANSWER = 'tok0 tok1 tok2 ';

let stub: ProviderStub;
let bridge: BridgeProcess;
let gw: GatewayClient;
let temporal: { client: Client; close(): Promise<void> };
let temporalPort: number;
let uiPort: number;
const dirs: string[] = [];

const env = () => ({
  ARMORCLAW_MASTER_KEY: 'e5'.repeat(32),
  ARMORCLAW_PROXY_BASE_URLS: JSON.stringify({ openai: stub.url }),
  ARMORCLAW_SECRETS_MODE: 'proxy',
  ARMORCLAW_GATEWAY_AGENT_KEY_ID: 'gw',
  ARMORCLAW_GATEWAY_MAX_MESSAGES_PER_TURN: '4',
  ARMORCLAW_GATEWAY_MAX_MESSAGE_CHARS: '2000',
  ARMORCLAW_GATEWAY_TURN_RETENTION: '10m',
});

async function startBridge(dir?: string): Promise<void> {
  bridge = await spawnBridge({ dir, env: env(), temporalPort, uiPort });
  if (!dir) dirs.push(bridge.dir);
  gw = await gatewayClient(bridge);
  temporal = await temporalClient(temporalPort);
}

beforeAll(async () => {
  await ensureDocker();
  await ensureAgentImage();
  stub = await ProviderStub.start({});
  temporalPort = await freePort();
  uiPort = await freePort();
  await startBridge();
  const stored = await call(bridge.socketPath, 'store_key', {
    id: 'gw',
    provider: 'openai',
    token: KEY,
  });
  expect(stored.error).toBeUndefined();
});

afterAll(async () => {
  await temporal?.close();
  await bridge?.stop('SIGKILL');
  await removeTestContainers([], dirs);
  for (const d of dirs) removeDir(d);
  await stub?.close();
});

const session = (id: string) => ({ sessionId: id, channelId: `web-${id}`, channelKind: 'web' });

/** agent.wait until the turn is over (RUN_UNAVAILABLE "still running" means: wait again). */
async function waitTurn(runId: string): Promise<{ status: number; body: any }> {
  for (;;) {
    const r = await gw.rpc('agent.wait', { runId, timeoutMs: 20_000 });
    if (r.body.ok || !/still running/.test(r.body.error?.message ?? '')) return r;
  }
}

test('agent.run → agent.wait on a real agent, once; the session keeps its agent', async () => {
  const messages = [
    { role: 'system', content: 'answer briefly' },
    { role: 'user', content: 'what is on today?' },
  ];
  const { runId } = await gw.result('agent.run', { session: session('s1'), messages });
  expect(runId).toMatch(/^[0-9a-f-]{36}$/);
  const first = await waitTurn(runId);
  expect(first.body).toMatchObject({ ok: true, result: { runId, assistantText: STUB_ANSWER } });
  expect(first.body.result.events.map((e: any) => e.type)).toEqual([
    'queued',
    'bound',
    'delivering',
    'answered',
  ]);
  // The whole conversation reached the model, through the proxy with the real key.
  const sent = stub.requests.at(-1)!;
  expect(JSON.parse(sent.body).messages).toEqual(messages);
  expect(sent.headers.authorization).toBe(`Bearer ${KEY}`);

  const second = await gw.rpc('agent.wait', { runId });
  expect(second.status).toBe(404);
  expect(second.body.error.code).toBe('NOT_FOUND');

  // The next turn of the session runs on the same agent container.
  const next = await gw.result('agent.run', {
    session: session('s1'),
    messages: [{ role: 'user', content: 'and tomorrow?' }],
  });
  const again = await waitTurn(next.runId);
  expect(again.body.result.containerName).toBe(first.body.result.containerName);
  expect(first.body.result.containerName).toMatch(/^armorclaw-openclaw-session-[0-9a-f]{12}-1$/);
  // The turn is visible in Temporal with its kind and state.
  const desc = await temporal.client.workflow.getHandle(`turn-${runId}`).describe();
  expect(desc.searchAttributes.ArmorclawKind).toEqual(['turn']);
  expect(desc.searchAttributes.ArmorclawState).toEqual(['Ended']);
});

test('the message limits and bad params are BAD_REQUEST; an unknown run NOT_FOUND', async () => {
  const many = Array.from({ length: 5 }, () => ({ role: 'user', content: 'x' }));
  const tooMany = await gw.rpc('agent.run', { session: session('s2'), messages: many });
  expect(tooMany.status).toBe(400);
  expect(tooMany.body.error).toMatchObject({ code: 'BAD_REQUEST' });
  expect(tooMany.body.error.message).toContain('gateway.session.max_messages_per_turn');
  const tooLong = await gw.rpc('agent.run', {
    session: session('s2'),
    messages: [{ role: 'user', content: 'y'.repeat(2001) }],
  });
  expect(tooLong.body.error.message).toContain('gateway.session.max_message_chars');
  const badKind = await gw.rpc('agent.run', {
    session: { ...session('s2'), channelKind: 'fax' },
    messages: [{ role: 'user', content: 'x' }],
  });
  expect(badKind.body.error.code).toBe('BAD_REQUEST');
  const unknown = await gw.rpc('agent.wait', { runId: '00000000-0000-4000-8000-000000000000' });
  expect(unknown.body.error.code).toBe('NOT_FOUND');
});

test('kill -9 of the bridge mid-turn: after the restart the turn completes, collectable once', async () => {
  // A slow model: the bridge dies while the agent waits for it.
  stub.options = { ...stub.options, delayMs: 1_500 };
  const before = stub.requests.length;
  const { runId } = await gw.result('agent.run', {
    session: session('s3'),
    messages: [{ role: 'user', content: 'survive this' }],
  });
  await waitFor('the model call', () => stub.requests.length > before, { timeoutMs: 60_000 });
  await temporal.close();
  await bridge.stop('SIGKILL');
  stub.options = { ...stub.options, delayMs: 0 };
  await startBridge(bridge.dir);
  const got = await waitTurn(runId);
  expect(got.body).toMatchObject({ ok: true, result: { runId, assistantText: STUB_ANSWER } });
  expect((await gw.rpc('agent.wait', { runId })).body.error.code).toBe('NOT_FOUND');
});

/** Run ids of the turns a job has fired so far (the visibility store may trail by a moment). */
async function firedTurns(jobId: string): Promise<string[]> {
  const ids: string[] = [];
  const query = `WorkflowId STARTS_WITH 'turn-cron-${jobId}'`;
  for await (const wf of temporal.client.workflow.list({ query })) ids.push(wf.workflowId);
  return ids;
}

test('cron.add every "2s" fires turns on time; their answers are collectable; remove stops it', async () => {
  const added = await gw.result('cron.add', {
    type: 'every',
    expression: '2s',
    isolated: false,
    message: 'tick',
  });
  const job = added.job;
  expect(job).toMatchObject({
    type: 'every',
    expression: '2s',
    isolated: false,
    maxRetries: 3,
    backoffMs: 1000,
  });
  expect(job.nextRunAt).toBeGreaterThan(Date.now() - 2_000);
  expect(job.nextRunAt).toBeLessThanOrEqual(Date.now() + 2_000);
  const listed = await waitFor('the job in cron.list', async () => {
    const { jobs } = await gw.result('cron.list');
    return jobs.find((j: any) => j.id === job.id);
  });
  expect(listed).toMatchObject({ id: job.id, type: 'every', message: 'tick' });

  const started = Date.now();
  await sleep(10_000);
  const fired = await firedTurns(job.id);
  const elapsedS = (Date.now() - started) / 1000;
  // One firing per 2 s: generous bounds for a busy machine and the visibility store's lag.
  expect(fired.length).toBeGreaterThanOrEqual(Math.floor(elapsedS / 2) - 2);
  expect(fired.length).toBeLessThanOrEqual(Math.ceil(elapsedS / 2) + 2);

  const runId = fired[0]!.slice('turn-'.length);
  const answer = await waitTurn(runId);
  expect(answer.body).toMatchObject({ ok: true, result: { assistantText: STUB_ANSWER } });

  expect(await gw.result('cron.remove', { id: job.id })).toEqual({ removed: true });
  await sleep(3_000);
  const atRemoval = (await firedTurns(job.id)).length;
  await sleep(6_000);
  expect((await firedTurns(job.id)).length).toBe(atRemoval);
  expect((await gw.rpc('cron.remove', { id: job.id })).body.error.code).toBe('NOT_FOUND');
});

test('a long interval fires at its times (backfilled on the real server); a job survives a restart', async () => {
  const { job } = await gw.result('cron.add', {
    type: 'every',
    expression: '30m',
    isolated: false,
    sessionId: 'cron-long',
  });
  // Firings of the past two hours, as Temporal would have taken them: every 30 minutes.
  const end = new Date(Math.floor(Date.now() / 1_800_000) * 1_800_000 - 1);
  const start = new Date(end.getTime() - 2 * 3_600_000);
  await temporal.client.schedule
    .getHandle(`cron-${job.id}`)
    .backfill({ start, end, overlap: 'ALLOW_ALL' });
  const fired = await waitFor(
    'four backfilled firings',
    async () => {
      const ids = await firedTurns(job.id);
      return ids.length >= 4 && ids;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  const times = fired.map((id) => Date.parse(id.slice(`turn-cron-${job.id}-`.length))).sort();
  expect(times).toHaveLength(4);
  for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBe(1_800_000);

  await temporal.close();
  await bridge.stop();
  await startBridge(bridge.dir);
  const { jobs } = await gw.result('cron.list');
  expect(jobs.find((j: any) => j.id === job.id)).toMatchObject({
    type: 'every',
    expression: '30m',
    sessionId: 'cron-long',
  });
  expect(await gw.result('cron.remove', { id: job.id })).toEqual({ removed: true });
});
