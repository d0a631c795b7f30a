/**
 * The OpenClaw image (`armorclaw/openclaw:<version>`, scripts/build-openclaw-image.sh) on a real
 * Docker engine: its entrypoint is the reference agent in OpenClaw backend mode (agent/openclaw.ts),
 * which runs OpenClaw's gateway behind the bridge. Hardened exactly like containerSpec
 * (activities/docker.ts) with memory 2 GiB and network none. The test plays the bridge: JSON-RPC
 * on `sock/bridge.sock` and the real provider proxy on `sock/provider.sock` in front of the
 * provider stub, which answers every chat completion with "tok0 tok1 tok2 " (streamed).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import {
  CONTAINER_SOCKET_DIR,
  PROXY_PLACEHOLDER_TOKEN,
  PROXY_SOCKET_NAME,
  proxyBaseUrl,
} from '../../formats/secrets-file';
import { ProviderProxy } from '../../proxy/provider-proxy';
import { DOCKER, docker, ensureDocker } from '../support/docker';
import { FakeBridge } from '../support/fake-bridge';
import { ProviderStub } from '../support/provider-stub';

const PROJECT_ROOT = path.join(__dirname, '..', '..');
const AGENT_UID = 10001;
const HEARTBEAT_MS = 500;
const MEMORY = String(2 * 1024 * 1024 * 1024);
/** OpenClaw is ready in ~20 s on 2 cores, its first answer takes ~10 s: generous bounds. */
const READY_TIMEOUT_MS = 150_000;
const ANSWER_TIMEOUT_MS = 120_000;
/** What the stub streams for a chat completion. */
const STUB_ANSWER = 'tok0 tok1 tok2 ';

jest.setTimeout(600_000);

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
    await new Promise((r) => setTimeout(r, 50));
  }
}

function sh(
  command: string,
  timeoutMs = 900_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-c', command],
      { maxBuffer: 64 << 20, timeout: timeoutMs, cwd: PROJECT_ROOT },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('OpenClaw image behind the bridge (real Docker, real provider proxy)', () => {
  const suffix = randomBytes(4).toString('hex');
  const realToken = `sk-test-${randomBytes(24).toString('hex')}`;
  const containerName = `armorclaw-openclaw-it-${suffix}`;
  const roomA = `!room-a-${suffix}:example.org`;
  const roomB = `!room-b-${suffix}:example.org`;
  const firstQuestion = `which colour is ${randomBytes(6).toString('hex')}?`;
  let image: string;
  let root: string;
  let secrets: string;
  let sock: string;
  let bridge: FakeBridge;
  let stub: ProviderStub;
  let proxy: ProviderProxy;
  let containerId = '';
  let seq = 0;

  /** Pushes a room message and waits for the agent's matrix.ack (after its reply). */
  const push = async (room: string, body: string, msgtype = 'm.text') => {
    const eventId = `$ev-${++seq}-${suffix}:example.org`;
    const ack = await bridge.call(
      'matrix.event',
      {
        seq,
        event: {
          type: 'm.room.message',
          room_id: room,
          sender: '@alice:example.org',
          content: { msgtype, body },
          origin: String(Date.now()),
          event_id: eventId,
        },
      },
      ANSWER_TIMEOUT_MS,
    );
    expect(ack.error).toBeUndefined();
    const sends = bridge
      .requests('matrix.send')
      .filter((r) => r.msg.params?.idempotency_key === `reply-${eventId}`);
    return { eventId, sends, thisSeq: seq };
  };

  beforeAll(async () => {
    await ensureDocker();
    const build = await sh('bash scripts/build-openclaw-image.sh');
    if (build.code !== 0) throw new Error(`build-openclaw-image.sh failed: ${build.stderr}`);
    image = build.stdout.trim().split('\n').pop()!;

    root = mkdtempSync('/dev/shm/armorclaw-openclaw-it-');
    chmodSync(root, 0o711);
    secrets = path.join(root, 'secrets');
    mkdirSync(secrets);
    const file = path.join(secrets, 'credentials.json');
    writeFileSync(
      file,
      JSON.stringify({
        mode: 'proxy',
        key_id: 'k-openclaw',
        provider: 'openai',
        token: PROXY_PLACEHOLDER_TOKEN,
        proxy_socket: `${CONTAINER_SOCKET_DIR}/${PROXY_SOCKET_NAME}`,
        base_url: proxyBaseUrl('/v1'),
      }),
      { mode: 0o400 },
    );
    chownSync(file, AGENT_UID, AGENT_UID);
    chownSync(secrets, AGENT_UID, AGENT_UID);
    chmodSync(secrets, 0o500);
    sock = path.join(root, 'sock');
    mkdirSync(sock);
    chownSync(sock, AGENT_UID, AGENT_UID);
    chmodSync(sock, 0o770);
    bridge = new FakeBridge(path.join(sock, 'bridge.sock'));
    await bridge.listen();

    stub = await ProviderStub.start();
    proxy = new ProviderProxy({
      runs: { lookup: () => ({ active: true, provider: 'openai', keyId: 'k-openclaw' }) },
      credentials: { tokenFor: () => realToken },
      baseUrls: { openai: stub.url },
      guard: { allow: () => true },
      log: pino({ level: 'silent' }),
    });
    await proxy.listen('run', path.join(sock, PROXY_SOCKET_NAME), { groupId: AGENT_UID });

    // containerSpec (activities/docker.ts), with 2 GiB of memory.
    const run = await docker([
      'run',
      '-d',
      '--name',
      containerName,
      '--user',
      `${AGENT_UID}:${AGENT_UID}`,
      '--read-only',
      '--cap-drop',
      'ALL',
      '--security-opt',
      'no-new-privileges:true',
      '--pids-limit',
      '128',
      '--memory',
      MEMORY,
      '--memory-swap',
      MEMORY,
      '--tmpfs',
      '/tmp:rw,noexec,nosuid,nodev,size=64m',
      '--init',
      '--network',
      'none',
      '--restart',
      'no',
      '--log-driver',
      'json-file',
      '--log-opt',
      'max-size=10m',
      '--log-opt',
      'max-file=2',
      '-e',
      `ARMORCLAW_CONTAINER_NAME=${containerName}`,
      '-e',
      `ARMORCLAW_HEARTBEAT_MS=${HEARTBEAT_MS}`,
      '-v',
      `${secrets}:/run/secrets:ro`,
      '-v',
      `${sock}:/run/armorclaw:rw`,
      image,
    ]);
    expect({ code: run.code, stderr: run.stderr }).toMatchObject({ code: 0 });
    containerId = run.stdout.trim();
  });

  afterAll(async () => {
    if (containerId && process.env.OPENCLAW_IT_KEEP_LOGS === '1') {
      const logs = await docker(['logs', containerId]);
      console.log(logs.stdout + logs.stderr);
    }
    await docker(['rm', '-f', containerName]);
    await proxy?.closeAll();
    await stub?.close();
    await bridge?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('acks the secrets at once, heartbeats while OpenClaw starts, says ready once it is up', async () => {
    const ack = await waitFor('secrets.ack', () => bridge.requests('secrets.ack')[0], 20_000);
    expect(ack.msg.params).toEqual({ key_id: 'k-openclaw' });
    const ready = await waitFor(
      'notify ready',
      () => bridge.requests('notify').find((r) => r.msg.params?.message === 'ready'),
      READY_TIMEOUT_MS,
    );
    // Ready came after heartbeats: the agent was alive and connected while OpenClaw started.
    const beatsBefore = bridge.requests('heartbeat').filter((r) => r.at < ready.at);
    expect(beatsBefore.length).toBeGreaterThanOrEqual(2);
    expect(bridge.requests('notify').filter((r) => r.msg.params?.kind === 'error')).toEqual([]);
    expect(bridge.framingErrors).toEqual([]);
    const logs = await docker(['logs', containerId]);
    expect(logs.stdout).toContain('[agent] openclaw: gateway ready after');
  });

  test('a room message goes to OpenClaw and its answer comes back with matrix.send', async () => {
    stub.reset();
    const { eventId, sends, thisSeq } = await push(roomA, firstQuestion);
    expect(sends).toHaveLength(1);
    expect(sends[0]!.msg.params.message.trim()).toBe(STUB_ANSWER.trim());
    expect(sends[0]!.msg.params).toEqual({
      message: sends[0]!.msg.params.message,
      idempotency_key: `reply-${eventId}`,
    });
    expect(bridge.requests('matrix.ack').map((r) => r.msg.params)).toContainEqual({ seq: thisSeq });
    // OpenClaw's model call went through the proxy with the real key, not the placeholder.
    const chats = stub.requests.filter((r) => r.url === '/v1/chat/completions');
    expect(chats.length).toBeGreaterThanOrEqual(1);
    expect(chats[0]!.headers.authorization).toBe(`Bearer ${realToken}`);
    expect(JSON.stringify(chats[0]!.headers)).not.toContain(PROXY_PLACEHOLDER_TOKEN);
    expect(chats[0]!.body).toContain(firstQuestion);
    expect(JSON.parse(chats[0]!.body).model).toBe('gpt-4o-mini');
  });

  test('one OpenClaw session per room: the room history goes with its next message, not to other rooms', async () => {
    stub.reset();
    const second = `and ${randomBytes(6).toString('hex')}?`;
    const a = await push(roomA, second);
    expect(a.sends).toHaveLength(1);
    const inA = stub.requests.filter((r) => r.url === '/v1/chat/completions');
    expect(inA.length).toBeGreaterThanOrEqual(1);
    // The same room's earlier question is in the conversation OpenClaw sends its model.
    expect(inA[inA.length - 1]!.body).toContain(second);
    expect(inA[inA.length - 1]!.body).toContain(firstQuestion);

    stub.reset();
    const third = `elsewhere ${randomBytes(6).toString('hex')}?`;
    const b = await push(roomB, third);
    expect(b.sends).toHaveLength(1);
    const inB = stub.requests.filter((r) => r.url === '/v1/chat/completions');
    expect(inB[inB.length - 1]!.body).toContain(third);
    expect(inB[inB.length - 1]!.body).not.toContain(firstQuestion);
  });

  test('!echo still answers at once, without OpenClaw; notices are not answered', async () => {
    stub.reset();
    const echo = await push(roomA, '!echo probe ✓');
    expect(echo.sends.map((r) => r.msg.params.message)).toEqual(['echo: probe ✓']);
    const notice = await push(roomA, 'a bot notice', 'm.notice');
    expect(notice.sends).toEqual([]);
    expect(stub.requests).toEqual([]);
  });

  test('agent.ask goes to OpenClaw too', async () => {
    stub.reset();
    const reply = await bridge.call('agent.ask', { question: 'anyone there?' }, ANSWER_TIMEOUT_MS);
    expect(reply.result.answer.trim()).toBe(STUB_ANSWER.trim());
    expect(reply.result.model).toBe('gpt-4o-mini');
    expect(stub.requests.some((r) => r.body.includes('anyone there?'))).toBe(true);
  });

  test('docker logs hold neither the token nor any question or answer', async () => {
    const logs = await docker(['logs', containerId]);
    const output = logs.stdout + logs.stderr;
    expect(output).toContain(
      '[agent] credential loaded (key_id k-openclaw, provider openai, proxy mode)',
    );
    expect(output).toContain('[agent] forwarder: 127.0.0.1:8089 → provider proxy');
    expect(output).toMatch(/\[agent\] openclaw: answered \d+ chars/);
    expect(output).not.toContain(realToken.slice(8));
    expect(output).not.toContain(firstQuestion);
    expect(output).not.toContain('anyone there?');
    expect(output).not.toContain('tok1');
    for (const line of output.trim().split('\n')) expect(line).toMatch(/^\[agent\] /);
  });

  test('docker stop: the gateway is stopped, notify stopping, exit 0', async () => {
    const exitCode = sh(`${DOCKER} wait ${containerId}`);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    const stop = await docker(['stop', '-t', '10', containerId]);
    expect(stop.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await exitCode).stdout.trim()).toBe('0');
    expect(
      bridge.requests('notify').find((r) => r.msg.params?.message === 'stopping'),
    ).toBeDefined();
    const logs = await docker(['logs', containerId]);
    expect(logs.stdout).toContain('[agent] SIGTERM: stopping');
    expect(logs.stdout).not.toContain('failed: openclaw');
  });
});
