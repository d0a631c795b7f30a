/**
 * Armoured agents on a real bridge (its embedded Temporal, real Docker, the real agent image in
 * a network-`none` container): the agent reaches its model only through the bridge's provider
 * proxy, and the key never enters the container; what the proxy meters is recorded per run and
 * in the budget, a run's limit cuts its streams and refuses further requests, and the totals
 * still equal what the provider reported after the bridge is killed with SIGKILL mid-stream.
 *
 * The provider is test/support/provider-stub.ts on the host (paid APIs cannot be reached here):
 * the one fake, and only the far end. Every chat answer it gives costs the same: 11 input and
 * 7 output tokens of `stub-model`, at $1 and $2 per 1k tokens, $0.025 a request.
 */
import { mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import {
  auditEntries,
  removeTestContainers,
  rpc,
  runStatus,
  temporalClient,
  waitFor,
} from '../support/containers';
import { docker, ensureAgentImage, ensureDocker } from '../support/docker';
import { containerPids, memoryHolds } from '../support/leak-scan';
import { freePort } from '../support/ports';
import { ProviderStub, timedRequest } from '../support/provider-stub';

jest.setTimeout(240_000);

const TOKEN = `sk-proj-${randomBytes(24).toString('hex')}`;
const MASTER_KEY = randomBytes(32).toString('hex');
const COST_USD = 0.025;
const CHAT = { model: 'stub-model', messages: [{ role: 'user', content: 'hello' }] };

let stub: ProviderStub;
let bridge: BridgeProcess;
let secretsDir: string;
let dir: string;
let client: Client;
let closeClient: () => Promise<void>;
const started: string[] = [];

async function spawn(): Promise<BridgeProcess> {
  const b = await spawnBridge({
    dir,
    temporalPort: bridge?.temporalPort ?? (await freePort()),
    uiPort: bridge?.uiPort ?? (await freePort()),
    env: {
      ARMORCLAW_MASTER_KEY: MASTER_KEY,
      ARMORCLAW_SECRETS_DIR: secretsDir,
      ARMORCLAW_PROXY_BASE_URLS: JSON.stringify({ openai: stub.url, anthropic: stub.url }),
      ARMORCLAW_BUDGET_MODELS: JSON.stringify({
        'stub-model': { input_per_1k_usd: 1, output_per_1k_usd: 2 },
      }),
      ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '1000',
    },
  });
  ({ client, close: closeClient } = await temporalClient(b.temporalPort));
  return b;
}

beforeAll(async () => {
  await ensureDocker();
  await ensureAgentImage();
  stub = await ProviderStub.start();
  dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-it-armour-'));
  secretsDir = mkdtempSync('/dev/shm/armorclaw-it-armour-');
  bridge = await spawn();
  const stored = await rpc(bridge.socketPath, 'store_key', {
    id: 'openai-1',
    provider: 'openai',
    token: TOKEN,
  });
  expect(stored.error).toBeUndefined();
});

afterAll(async () => {
  await closeClient?.().catch(() => undefined);
  await bridge?.stop();
  await stub?.close();
  await removeTestContainers(started, [dir, secretsDir].filter(Boolean));
  if (dir) removeDir(dir);
  if (secretsDir) removeDir(secretsDir);
});

/** Starts a run; returns its name and the host path of its provider socket. */
async function startRun(params: Record<string, unknown> = {}) {
  const res = await rpc(bridge.socketPath, 'start', { key_id: 'openai-1', ...params }, 60_000);
  expect(res.error).toBeUndefined();
  const name: string = res.result.container_name;
  started.push(name);
  const providerSock = path.join(path.dirname(realpathSync(res.result.endpoint)), 'provider.sock');
  return { name, containerId: res.result.container_id as string, providerSock };
}

const chat = (socketPath: string, body: unknown = CHAT) =>
  timedRequest({ socketPath }, 'POST', '/v1/chat/completions', body, {
    authorization: 'Bearer whatever-the-agent-says',
  });

/** What the stub reported in full: chat answers it finished sending (a dropped one never did). */
const stubReportedUsd = () =>
  stub.requests.filter((r) => r.url === '/v1/chat/completions' && !r.dropped && r.finishedAt)
    .length * COST_USD;

const round = (usd: number) => Math.round(usd * 1e6) / 1e6;

async function budgetStatus() {
  const res = await rpc(bridge.socketPath, 'budget.status');
  expect(res.error).toBeUndefined();
  return res.result;
}

/** Runs `script` with node inside the container, as the agent's user. */
async function inContainer(name: string, script: string): Promise<string> {
  const r = await docker(['exec', name, 'node', '-e', script], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`docker exec failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

describe('proxy mode (the default)', () => {
  let run: Awaited<ReturnType<typeof startRun>>;
  beforeAll(async () => {
    run = await startRun();
    await waitFor('the agent to acknowledge its secrets', async () => {
      const s = await runStatus(client, run.name);
      return s.secrets_removed && s;
    });
  });

  test('the agent in its network-none container gets answers through the proxy; the stub saw the real key', async () => {
    expect((await runStatus(client, run.name)).secrets_mode).toBe('proxy');
    const info = JSON.parse((await docker(['inspect', run.name])).stdout)[0];
    expect(info.HostConfig.NetworkMode).toBe('none');
    stub.requests.length = 0;
    const out = await inContainer(
      run.name,
      `const http=require('http');const r=http.request({socketPath:'/run/armorclaw/provider.sock',method:'POST',path:'/v1/chat/completions',headers:{'content-type':'application/json',authorization:'Bearer armorclaw-proxy-placeholder'}},res=>{let b='';res.on('data',d=>b+=d);res.on('end',()=>console.log(JSON.stringify({status:res.statusCode,body:b})))});r.end(JSON.stringify(${JSON.stringify(CHAT)}));`,
    );
    const reply = JSON.parse(out);
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body).choices[0].message.content).toEqual(expect.any(String));
    expect(stub.requests).toHaveLength(1);
    expect(stub.requests[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  test('the real key is nowhere in the container: inspect, filesystem, environment, memory', async () => {
    const encodings = [
      TOKEN,
      Buffer.from(TOKEN).toString('base64'),
      Buffer.from(TOKEN).toString('hex'),
    ];
    const inspect = (await docker(['inspect', run.name])).stdout;
    for (const e of encodings) expect(inspect.includes(e)).toBe(false);

    const tar = path.join(dir, `${run.name}.tar`);
    expect((await docker(['export', '-o', tar, run.name], { timeoutMs: 120_000 })).code).toBe(0);
    const exported = readFileSync(tar);
    expect(exported.length).toBeGreaterThan(1_000_000);
    for (const e of encodings) expect(exported.includes(Buffer.from(e))).toBe(false);

    const pids = await containerPids(run.name);
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) {
      const environ = readFileSync(`/proc/${pid}/environ`);
      expect(environ.length).toBeGreaterThan(0);
      for (const e of encodings) expect(environ.includes(Buffer.from(e))).toBe(false);
      expect({ pid, memoryHoldsKey: memoryHolds(pid, TOKEN) }).toEqual({
        pid,
        memoryHoldsKey: false,
      });
    }
    // What the proxy mode gave it instead.
    const secretsOut = await inContainer(
      run.name,
      `console.log(process.env.ARMORCLAW_CONTAINER_NAME)`,
    );
    expect(secretsOut.trim()).toBe(run.name);
  });

  test('another provider’s path and a path off the allowlist are refused in the provider’s format, and audited', async () => {
    const before = stub.requests.length;
    const anthropic = await timedRequest({ socketPath: run.providerSock }, 'POST', '/v1/messages', {
      model: 'claude',
      max_tokens: 10,
      messages: [],
    });
    expect(anthropic.status).toBe(403);
    expect(JSON.parse(anthropic.body).error.message).toMatch(/this run's key is for openai/);
    const files = await timedRequest({ socketPath: run.providerSock }, 'GET', '/v1/files');
    expect(files.status).toBe(404);
    expect(JSON.parse(files.body).error).toMatchObject({ type: expect.any(String) });
    expect(stub.requests.length).toBe(before);
    const refused = await waitFor('the refusals audited', () => {
      const e = auditEntries(bridge.stateDir, { event_type: 'provider_request_refused' }).filter(
        (x) => x.session_id === run.name,
      );
      return e.length >= 2 && e;
    });
    expect(refused.map((e) => e.details.kind).sort()).toEqual(['not_found', 'wrong_provider']);
  });

  test('metered usage lands in the run’s status and in the budget as metered, not self-reported', async () => {
    const before = await budgetStatus();
    const reply = await chat(run.providerSock);
    expect(reply.status).toBe(200);
    const stream = await chat(run.providerSock, { ...CHAT, stream: true });
    expect(stream.status).toBe(200);
    expect(stream.body).toContain('data: [DONE]');
    // The in-container request of the first test and these two: each usage record reaches the
    // run as a signal, so wait for all three rather than read the status half-way.
    const s = await waitFor('two more requests metered', async () => {
      const st = await runStatus(client, run.name);
      return st.usage.requests >= 3 && st;
    });
    expect(s.usage).toEqual({
      requests: 3,
      input_tokens: 33,
      output_tokens: 21,
      cost_usd: round(3 * COST_USD),
      limit_usd: null,
    });
    const after = await waitFor('the budget to count them', async () => {
      const b = await budgetStatus();
      return b.day.reports >= before.day.reports + 2 && b;
    });
    expect(round(after.day.metered_usd - before.day.metered_usd)).toBe(round(2 * COST_USD));
    expect(after.day.self_reported_usd).toBe(before.day.self_reported_usd);
  });

  test('after stop the proxy socket is gone: held connections and new ones are refused', async () => {
    const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });
    const warm = await timedRequest(
      { socketPath: run.providerSock },
      'POST',
      '/v1/chat/completions',
      CHAT,
      {},
      undefined,
      agent,
    );
    expect(warm.status).toBe(200);
    const stopped = await rpc(bridge.socketPath, 'stop', { container_id: run.name });
    expect(stopped.error).toBeUndefined();
    const before = stub.requests.length;
    await expect(
      timedRequest(
        { socketPath: run.providerSock },
        'POST',
        '/v1/chat/completions',
        CHAT,
        {},
        undefined,
        agent,
      ),
    ).rejects.toThrow();
    await expect(chat(run.providerSock)).rejects.toThrow(/ENOENT|ECONNREFUSED/);
    expect(stub.requests.length).toBe(before);
    agent.destroy();
  });
});

describe('a run’s spending limit', () => {
  test('cuts the stream in flight, refuses with 429 in the provider’s format, ends the run; totals equal the stub’s', async () => {
    const reportedBefore = stubReportedUsd();
    const budgetBefore = await budgetStatus();
    // Three answers reach $0.075, past a $0.06 limit.
    const run = await startRun({ budget_usd: 0.06 });
    stub.options = { ...stub.options, chunks: 60, delayMs: 100 };
    const pieces: string[] = [];
    const streaming = timedRequest(
      { socketPath: run.providerSock },
      'POST',
      '/v1/chat/completions',
      { ...CHAT, stream: true },
      {},
      (t) => pieces.push(t),
    );
    await waitFor('the stream to flow', () => pieces.length > 0, { timeoutMs: 20_000 });
    for (let i = 0; i < 3; i++) expect((await chat(run.providerSock)).status).toBe(200);
    const cut = await streaming;
    stub.options = { ...stub.options, chunks: 3, delayMs: 0 };
    expect(cut.status).toBe(200);
    expect(cut.body).not.toContain('data: [DONE]');
    expect(cut.body).toMatch(/spending limit/);

    const refused = await chat(run.providerSock).catch((err: Error) => err);
    // Refused by the proxy (429), or the run already ended and its socket is gone.
    if (refused instanceof Error) expect(refused.message).toMatch(/ENOENT|ECONNREFUSED/);
    else {
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.body).error.message).toMatch(/spending limit/);
    }

    const ended = await waitFor(
      'the run to end',
      async () => {
        const s = await runStatus(client, run.name);
        return s.cleanup_done && s;
      },
      { timeoutMs: 30_000 },
    );
    expect(ended.end_reason).toBe('budget_exceeded');
    const reported = round(stubReportedUsd() - reportedBefore);
    expect(reported).toBe(round(3 * COST_USD));
    expect(ended.usage.cost_usd).toBe(reported);
    const budget = await waitFor('the budget to count the run', async () => {
      const b = await budgetStatus();
      return round(b.day.metered_usd - budgetBefore.day.metered_usd) === reported && b;
    });
    expect(budget.day.metered_usd).toBeGreaterThan(0);
    const audited = auditEntries(bridge.stateDir, { event_type: 'budget_exceeded' }).filter(
      (e) => e.session_id === run.name,
    );
    expect(audited).toHaveLength(1);
    expect(audited[0]!.details).toMatchObject({ scope: 'run', limit_usd: 0.06 });
  });
});

describe('kill -9 of the bridge mid-stream', () => {
  test('the run keeps its proxy after the restart and the totals still equal the stub’s', async () => {
    const reportedBefore = stubReportedUsd();
    const budgetBefore = await budgetStatus();
    const run = await startRun();
    expect((await chat(run.providerSock)).status).toBe(200);
    stub.options = { ...stub.options, chunks: 100, delayMs: 100 };
    const pieces: string[] = [];
    const streaming = timedRequest(
      { socketPath: run.providerSock },
      'POST',
      '/v1/chat/completions',
      { ...CHAT, stream: true },
      {},
      (t) => pieces.push(t),
    ).catch((err: Error) => err);
    await waitFor('the stream to flow', () => pieces.length > 0, { timeoutMs: 20_000 });
    await closeClient();
    await bridge.stop('SIGKILL');
    const broken = await streaming;
    expect(broken instanceof Error || broken.broken).toBe(true);
    await waitFor('the stub to see the stream dropped', () => stub.requests.at(-1)?.dropped, {
      timeoutMs: 20_000,
    });
    stub.options = { ...stub.options, chunks: 3, delayMs: 0 };

    bridge = await spawn();
    const again = await waitFor(
      'the restarted bridge to serve the run’s proxy',
      async () => (await chat(run.providerSock)).status === 200,
      { timeoutMs: 30_000 },
    );
    expect(again).toBe(true);
    // A freshly restarted bridge on a busy machine may take a while to deliver its signals.
    const s = await waitFor(
      'both answers metered',
      async () => {
        const st = await runStatus(client, run.name);
        return st.usage.requests >= 2 && st;
      },
      { timeoutMs: 30_000 },
    );
    expect(s.state).toBe('Active');
    const reported = round(stubReportedUsd() - reportedBefore);
    expect(reported).toBe(round(2 * COST_USD));
    expect(s.usage.cost_usd).toBe(reported);
    expect(s.usage.requests).toBe(2);
    await waitFor('the budget to hold the same total', async () => {
      const b = await budgetStatus();
      return round(b.day.metered_usd - budgetBefore.day.metered_usd) === reported;
    });
  });
});

describe('file mode', () => {
  test('the agent holds the real key (the memory scan finds it: the scan above could fail)', async () => {
    const run = await startRun({ secrets_mode: 'file' });
    await waitFor('the agent to acknowledge its secrets', async () => {
      const s = await runStatus(client, run.name);
      return s.secrets_removed && s;
    });
    expect((await runStatus(client, run.name)).secrets_mode).toBe('file');
    const pids = await containerPids(run.name);
    expect(pids.some((pid) => memoryHolds(pid, TOKEN))).toBe(true);
    // No proxy for a file-mode run.
    await expect(chat(run.providerSock)).rejects.toThrow(/ENOENT|ECONNREFUSED/);
  });

  test('bad secrets_mode and budget_usd are refused with -32602', async () => {
    const mode = await rpc(bridge.socketPath, 'start', { key_id: 'openai-1', secrets_mode: 'env' });
    expect(mode.error).toEqual({
      code: -32602,
      message: 'Invalid params: secrets_mode must be one of proxy, file',
    });
    const budget = await rpc(bridge.socketPath, 'start', { key_id: 'openai-1', budget_usd: -1 });
    expect(budget.error.code).toBe(-32602);
    expect(budget.error.message).toMatch(/budget_usd/);
    const fileLimit = await rpc(bridge.socketPath, 'start', {
      key_id: 'openai-1',
      secrets_mode: 'file',
      budget_usd: 1,
    });
    expect(fileLimit.error).toEqual({
      code: -32602,
      message:
        'Invalid params: budget_usd needs secrets_mode "proxy" (only what passes the provider proxy is metered)',
    });
  });
});
