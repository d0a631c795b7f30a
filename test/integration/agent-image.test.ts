/**
 * The reference agent image (`armorclaw/agent:v1`, built by scripts/build-agent-image.sh) on a
 * real Docker engine, run with the hardening the bridge uses. The test plays the bridge: it
 * serves JSON-RPC on `sock/bridge.sock`, a socket in a directory bind-mounted into the container,
 * and, for proxy mode, the real provider proxy on `sock/provider.sock` in front of a provider stub.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import {
  CONTAINER_SOCKET_DIR,
  PROXY_LOOPBACK_PORT,
  PROXY_PLACEHOLDER_TOKEN,
  PROXY_SOCKET_NAME,
  proxyBaseUrl,
} from '../../formats/secrets-file';
import { ProviderProxy } from '../../proxy/provider-proxy';
import { AGENT_IMAGE, DOCKER, docker, ensureAgentImage } from '../support/docker';
import { FakeBridge } from '../support/fake-bridge';
import { ProviderStub } from '../support/provider-stub';

const AGENT_UID = 10001;
const HEARTBEAT_MS = 200;

async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function sh(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', command], { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

interface AgentHome {
  /** Bind-mounted read-only at /run/secrets: 0400 credentials owned by the agent's uid, or none. */
  secrets: string;
  /** Bind-mounted at /run/armorclaw: the directory of the agent's bridge socket. */
  sock: string;
  bridge: FakeBridge;
}

/** One agent's secrets directory and socket directory, with a bridge listening. */
async function makeHome(root: string, what: string, credentials?: object): Promise<AgentHome> {
  const home = path.join(root, what);
  mkdirSync(home);
  const secrets = path.join(home, 'secrets');
  mkdirSync(secrets);
  if (credentials) {
    const file = path.join(secrets, 'credentials.json');
    writeFileSync(file, JSON.stringify(credentials), { mode: 0o400 });
    chownSync(file, AGENT_UID, AGENT_UID);
  }
  chownSync(secrets, AGENT_UID, AGENT_UID);
  chmodSync(secrets, 0o500);
  const sock = path.join(home, 'sock');
  mkdirSync(sock);
  chownSync(sock, AGENT_UID, AGENT_UID);
  chmodSync(sock, 0o770);
  const bridge = new FakeBridge(path.join(sock, 'bridge.sock'));
  await bridge.listen();
  return { secrets, sock, bridge };
}

/** The hardened `docker run` the bridge will use. */
function runArgs(opts: {
  name: string;
  home: AgentHome;
  detach: boolean;
  env?: Record<string, string>;
}): string[] {
  const env = { ARMORCLAW_HEARTBEAT_MS: String(HEARTBEAT_MS), ...opts.env };
  return [
    'run',
    ...(opts.detach ? ['-d'] : []),
    '--rm',
    '--name',
    opts.name,
    '--read-only',
    '--cap-drop',
    'ALL',
    '--security-opt',
    'no-new-privileges',
    '--network',
    'none',
    '--init',
    '--pids-limit',
    '64',
    '--memory',
    '256m',
    '--tmpfs',
    '/tmp:rw,noexec,nosuid,size=16m',
    '--user',
    `${AGENT_UID}:${AGENT_UID}`,
    '-v',
    `${opts.home.secrets}:/run/secrets:ro`,
    '-v',
    `${opts.home.sock}:/run/armorclaw`,
    ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    AGENT_IMAGE,
  ];
}

describe('reference agent image (real Docker)', () => {
  const suffix = randomBytes(4).toString('hex');
  const token = `sk-test-${randomBytes(24).toString('hex')}`;
  const credentials = (keyId: string) => ({ key_id: keyId, provider: 'openai', token });
  const keyId = `key-${suffix}`;
  const names: string[] = [];
  const homes: AgentHome[] = [];
  let root: string;
  let main: AgentHome;
  let bridge: FakeBridge;
  let containerId: string;

  const name = (what: string) => {
    const n = `armorclaw-agent-it-${what}-${suffix}`;
    names.push(n);
    return n;
  };
  const home = async (what: string, creds?: object) => {
    const h = await makeHome(root, what, creds);
    homes.push(h);
    return h;
  };

  beforeAll(async () => {
    await ensureAgentImage();
    // tmpfs, like the bridge's secrets directory: the token never reaches a disk.
    root = mkdtempSync('/dev/shm/armorclaw-agent-it-');
    chmodSync(root, 0o711);
    main = await home('main', credentials(keyId));
    bridge = main.bridge;
  });

  afterAll(async () => {
    if (names.length) await docker(['rm', '-f', ...names]);
    for (const h of homes) await h.bridge.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('acks the secrets with its key id, says ready, heartbeats', async () => {
    const run = await docker(runArgs({ name: name('main'), home: main, detach: true }));
    expect({ code: run.code, stderr: run.stderr }).toMatchObject({ code: 0 });
    containerId = run.stdout.trim();

    const ack = await waitFor('secrets.ack', () => bridge.requests('secrets.ack')[0]);
    expect(ack.msg).toMatchObject({ jsonrpc: '2.0', params: { key_id: keyId } });
    expect(ack.msg.id).toBeDefined();
    await waitFor('notify ready', () =>
      bridge.requests('notify').find((r) => r.msg.params?.message === 'ready'),
    );
    const beats = await waitFor('3 heartbeats', () => {
      const hb = bridge.requests('heartbeat');
      return hb.length >= 3 && hb;
    });
    const seqs = beats.map((b) => b.msg.params.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(typeof beats[0]!.msg.params.uptime_ms).toBe('number');
    // The ack comes first, ready before the first heartbeat.
    const order = bridge.requests().map((r) => r.msg.method);
    expect(order[0]).toBe('secrets.ack');
    expect(order.indexOf('notify')).toBeLessThan(order.indexOf('heartbeat'));
    expect(bridge.framingErrors).toEqual([]);
  });

  test('answers calls from the bridge: agent.echo, ping, unknown methods', async () => {
    const echo = await bridge.call('agent.echo', { text: 'hello from the bridge ✓' });
    expect(echo).toEqual({
      jsonrpc: '2.0',
      id: echo.id,
      result: { text: 'hello from the bridge ✓' },
    });
    const ping = await bridge.call('ping');
    expect(ping.result).toEqual({ pong: true });
    const unknown = await bridge.call('no.such.method', {});
    expect(unknown.error.code).toBe(-32601);
    const bad = await bridge.call('agent.echo', { text: 42 });
    expect(bad.error.code).toBe(-32602);
  });

  test('agent.ask in file mode without a network: an answer saying the model is unreachable', async () => {
    const reply = await bridge.call('agent.ask', { question: 'anyone there?' }, 20_000);
    expect(reply.result.model).toBe('gpt-4o-mini');
    expect(reply.result.answer).toMatch(
      /^the model could not be reached \((EAI_AGAIN|ENOTFOUND|ENETUNREACH)\)$/,
    );
  });

  test('the token is nowhere in docker logs or docker inspect', async () => {
    const logs = await docker(['logs', containerId]);
    expect(logs.code).toBe(0);
    const output = logs.stdout + logs.stderr;
    expect(output).toContain('[agent] ready');
    expect(output).not.toContain(token.slice(8));
    // One-line status messages only.
    for (const line of output.trim().split('\n')) expect(line).toMatch(/^\[agent\] /);

    const inspect = await docker(['inspect', containerId]);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).not.toContain(token.slice(8));
    const [info] = JSON.parse(inspect.stdout);
    for (const field of [info.Config.Env, info.Config.Cmd, info.Config.Labels, info.Args]) {
      expect(JSON.stringify(field ?? null)).not.toContain(token.slice(8));
    }
    expect(info.Config.User).toBe(`${AGENT_UID}:${AGENT_UID}`);
    expect(info.HostConfig).toMatchObject({
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      NetworkMode: 'none',
      Init: true,
      SecurityOpt: ['no-new-privileges'],
    });
  });

  test('reconnects when the bridge recreates its socket at the same path', async () => {
    const before = bridge.requests('heartbeat');
    const lastSeq = before[before.length - 1]!.msg.params.seq;
    const connsBefore = bridge.connections;
    await bridge.close();
    await new Promise((r) => setTimeout(r, 500)); // the agent meets ENOENT and backs off
    await bridge.listen();
    const t0 = Date.now();
    const beat = await waitFor(
      'a heartbeat on the new socket',
      () =>
        bridge
          .requests('heartbeat')
          .find((r) => r.conn > connsBefore && r.msg.params.seq > lastSeq),
      5000,
    );
    expect(beat.at - t0).toBeLessThan(2500); // backoff is capped at 2 s
    // Secrets are acknowledged once per run, not per connection.
    expect(bridge.requests('secrets.ack')).toHaveLength(1);
    const echo = await bridge.call('agent.echo', { text: 'again' });
    expect(echo.result).toEqual({ text: 'again' });
  });

  test('docker stop: notify stopping, exit 0, in under 2 s', async () => {
    // --rm removes the container and its log with it: a last look at what it printed.
    const logs = await docker(['logs', containerId]);
    expect(logs.stdout + logs.stderr).not.toContain(token.slice(8));
    const exitCode = sh(`${DOCKER} wait ${containerId}`);
    await new Promise((r) => setTimeout(r, 100)); // let `docker wait` attach
    const t0 = Date.now();
    const stop = await docker(['stop', '-t', '10', containerId]);
    const took = Date.now() - t0;
    expect(stop.code).toBe(0);
    expect(took).toBeLessThan(2000);
    expect((await exitCode).stdout.trim()).toBe('0');
    expect(
      bridge.requests('notify').find((r) => r.msg.params?.message === 'stopping'),
    ).toBeDefined();
  });

  test('without a secrets file: error notify, exit 3', async () => {
    const empty = await home('nosecrets');
    const run = await docker(runArgs({ name: name('nosecrets'), home: empty, detach: false }));
    expect(run.code).toBe(3);
    const error = empty.bridge.requests('notify').find((r) => r.msg.params?.kind === 'error');
    expect(error?.msg.params.message).toMatch(/secrets/);
    expect(run.stdout).toContain('ENOENT');
    expect(empty.bridge.requests('secrets.ack')).toEqual([]);
  });

  test('modes for tests: no-ack never acks; crash-after-ms exits 1', async () => {
    const noAckHome = await home('noack', credentials(`noack-${suffix}`));
    const crashHome = await home('crash', credentials(`crash-${suffix}`));
    const noAckName = name('noack');
    const [noAck, crash] = await Promise.all([
      docker(
        runArgs({
          name: noAckName,
          home: noAckHome,
          detach: true,
          env: { ARMORCLAW_AGENT_MODE: 'no-ack' },
        }),
      ),
      docker(
        runArgs({
          name: name('crash'),
          home: crashHome,
          detach: false,
          env: { ARMORCLAW_AGENT_MODE: 'crash-after-ms:700' },
        }),
      ),
    ]);
    expect(noAck.code).toBe(0);
    expect(crash.code).toBe(1);
    expect(crashHome.bridge.requests('secrets.ack')).toHaveLength(1);

    await waitFor('no-ack heartbeats', () => noAckHome.bridge.requests('heartbeat').length >= 3);
    expect(
      noAckHome.bridge.requests('notify').find((r) => r.msg.params?.message === 'ready'),
    ).toBeDefined();
    expect(noAckHome.bridge.requests('secrets.ack')).toEqual([]);
    await docker(['rm', '-f', noAckName]);
  });

  test('the image holds no shell', async () => {
    const run = await docker(['run', '--rm', '--entrypoint', '/bin/sh', AGENT_IMAGE, '-c', 'true']);
    expect(run.code).not.toBe(0);
    const created = await docker(['create', AGENT_IMAGE]);
    expect(created.code).toBe(0);
    const id = created.stdout.trim();
    try {
      const listing = await sh(`${DOCKER} export ${id} | tar -t`);
      expect(listing.code).toBe(0);
      const files = listing.stdout.split('\n').filter(Boolean);
      expect(files).toContain('usr/local/bin/node');
      expect(files).toContain('opt/agent/main.js');
      const shells = files.filter((f) => /(^|\/)(sh|bash|dash|ash|busybox)$/.test(f));
      expect(shells).toEqual([]);
    } finally {
      await docker(['rm', '-f', id]);
    }
  });
});

describe('reference agent image in proxy mode (real Docker, real provider proxy)', () => {
  const suffix = randomBytes(4).toString('hex');
  const realToken = `sk-test-${randomBytes(24).toString('hex')}`;
  const question = `which colour is ${randomBytes(6).toString('hex')}?`;
  /** What the stub streams for a chat completion, in 3 pieces. */
  const stubAnswer = 'tok0 tok1 tok2 ';
  const containerName = `armorclaw-agent-it-proxy-${suffix}`;
  let root: string;
  let agentHome: AgentHome;
  let stub: ProviderStub;
  let proxy: ProviderProxy;
  let verdict: true | { reason: string } = true;

  beforeAll(async () => {
    await ensureAgentImage();
    root = mkdtempSync('/dev/shm/armorclaw-agent-it-');
    chmodSync(root, 0o711);
    agentHome = await makeHome(root, 'proxy', {
      mode: 'proxy',
      key_id: 'k',
      provider: 'openai',
      token: PROXY_PLACEHOLDER_TOKEN,
      proxy_socket: `${CONTAINER_SOCKET_DIR}/${PROXY_SOCKET_NAME}`,
      base_url: proxyBaseUrl('/v1'),
    });
    stub = await ProviderStub.start();
    proxy = new ProviderProxy({
      runs: { lookup: () => ({ active: true, provider: 'openai', keyId: 'k' }) },
      credentials: { tokenFor: () => realToken },
      baseUrls: { openai: stub.url },
      guard: { allow: () => verdict },
      log: pino({ level: 'silent' }),
    });
    // Group-owned by the agent's gid, as the bridge does it: the agent runs as 10001:10001.
    await proxy.listen('run', path.join(agentHome.sock, PROXY_SOCKET_NAME), {
      groupId: AGENT_UID,
    });
    const run = await docker(runArgs({ name: containerName, home: agentHome, detach: true }));
    expect({ code: run.code, stderr: run.stderr }).toMatchObject({ code: 0 });
    await waitFor('notify ready', () =>
      agentHome.bridge.requests('notify').find((r) => r.msg.params?.message === 'ready'),
    );
  });

  afterAll(async () => {
    await docker(['rm', '-f', containerName]);
    await proxy?.closeAll();
    await stub?.close();
    await agentHome?.bridge.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  beforeEach(() => {
    stub.reset();
    verdict = true;
  });

  test('agent.ask streams through the proxy; the provider gets the real key, not the placeholder', async () => {
    const reply = await agentHome.bridge.call('agent.ask', { question }, 20_000);
    expect(reply.result).toEqual({ answer: stubAnswer, model: 'gpt-4o-mini' });
    expect(stub.requests).toHaveLength(1);
    const seen = stub.requests[0]!;
    expect(seen.url).toBe('/v1/chat/completions');
    expect(seen.headers.authorization).toBe(`Bearer ${realToken}`);
    expect(JSON.stringify(seen.headers) + seen.body).not.toContain(PROXY_PLACEHOLDER_TOKEN);
    expect(JSON.parse(seen.body)).toMatchObject({
      model: 'gpt-4o-mini',
      stream: true,
      messages: [{ role: 'user', content: question }],
    });
  });

  test('a refusal of the proxy reaches the asker as a model error', async () => {
    verdict = { reason: 'the run has spent its budget' };
    const reply = await agentHome.bridge.call('agent.ask', { question: 'hi' }, 20_000);
    expect(reply.result).toEqual({
      answer: 'model error (429): the run has spent its budget',
      model: 'gpt-4o-mini',
    });
    expect(stub.requests).toEqual([]);
  });

  test('!ask in the room is answered with matrix.send, keyed by the event', async () => {
    const eventId = `$ask-${suffix}:example.org`;
    const ack = await agentHome.bridge.call(
      'matrix.event',
      {
        seq: 1,
        event: {
          event_id: eventId,
          sender: '@alice:example.org',
          content: { body: `!ask ${question}` },
        },
      },
      20_000,
    );
    expect(ack.error).toBeUndefined();
    const send = agentHome.bridge.requests('matrix.send');
    expect(send.map((r) => r.msg.params)).toEqual([
      { message: stubAnswer, idempotency_key: `reply-${eventId}` },
    ]);
    expect(agentHome.bridge.requests('matrix.ack').map((r) => r.msg.params)).toEqual([{ seq: 1 }]);
  });

  test('the loopback forwarder on 127.0.0.1:8089 reaches the proxy from inside the container', async () => {
    const script = `require('http').get('http://127.0.0.1:${PROXY_LOOPBACK_PORT}/v1/models', (r) => {
      let b = '';
      r.on('data', (c) => (b += c));
      r.on('end', () => process.stdout.write(r.statusCode + ' ' + b));
    }).on('error', (e) => { process.stdout.write('error ' + e.code); process.exit(1); });`;
    const exec = await docker(['exec', containerName, '/usr/local/bin/node', '-e', script]);
    expect({ code: exec.code, stdout: exec.stdout, stderr: exec.stderr }).toEqual({
      code: 0,
      stdout: '200 {"object":"list","data":[{"id":"stub-model","object":"model"}]}',
      stderr: '',
    });
    expect(stub.requests.map((r) => [r.method, r.url, r.headers.authorization])).toEqual([
      ['GET', '/v1/models', `Bearer ${realToken}`],
    ]);
  });

  test('the log says proxy mode and the forwarder, and holds no question, answer or key', async () => {
    const logs = await docker(['logs', containerName]);
    const output = logs.stdout + logs.stderr;
    expect(output).toContain('[agent] credential loaded (key_id k, provider openai, proxy mode)');
    expect(output).toContain(
      `[agent] forwarder: 127.0.0.1:${PROXY_LOOPBACK_PORT} → provider proxy`,
    );
    expect(output).toContain(`[agent] ask: answered ${stubAnswer.length} chars`);
    expect(output).not.toContain(question);
    expect(output).not.toContain('tok1');
    expect(output).not.toContain(realToken.slice(8));
    for (const line of output.trim().split('\n')) expect(line).toMatch(/^\[agent\] /);
  });
});
