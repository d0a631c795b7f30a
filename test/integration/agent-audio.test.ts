// The agent's audio channel end to end: the real bridge (worker/main.ts `start` with its
// embedded Temporal server and real Docker, run as a child by test/support/audio-bridge-entry.ts,
// which adds a test-only door to the hub's `attachAudio`) runs `armorclaw/agent:v1`; the test
// plays 2 s of 440 Hz to the agent and checks the echo, the agent's `audio_in` report in the
// run's notifications (status query), a clean end, and a second call on the same container.
// The tone mode needs an environment variable the bridge does not set on its containers, so it
// runs the same image directly (`docker run -e ARMORCLAW_AGENT_AUDIO=tone:660`) against an
// in-process hub whose Temporal client is a recorder.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { rms, tonePurity, zeroCrossingFrequency } from '../../media/audio-analysis';
import { ToneGenerator } from '../../media/echo';
import { FrameType, PcmFrameDecoder, PcmFrameWriter, type PcmFrame } from '../../media/pcm-framing';
import { ContainerSocketHub, containerSocketPaths } from '../../rpc/container-socket';
import type { AgentNotification } from '../../workflows/definitions';
import { ECHO_AGENT_TYPES, PROJECT_ROOT, TSX_ARGS } from '../support/bridge-process';
import {
  removeTestContainers,
  rpc,
  runStatus,
  sleep,
  temporalClient,
  waitFor,
} from '../support/containers';
import { AGENT_IMAGE, docker, ensureAgentImage } from '../support/docker';
import { freePort } from '../support/ports';

jest.setTimeout(120_000);

const AGENT_UID = 10001;
const hex = (n: number) => randomBytes(n).toString('hex');

/** Plays `seconds` of `frequency` Hz to the agent at real time; collects what comes back. */
async function playAndListen(stream: Duplex, frequency: number, seconds: number) {
  const frames: PcmFrame[] = [];
  const decoder = new PcmFrameDecoder();
  stream.on('data', (chunk: Buffer) => frames.push(...decoder.push(chunk)));
  stream.resume(); // the door hands its stream over paused
  const writer = new PcmFrameWriter();
  const tone = new ToneGenerator(frequency, 0.5);
  const count = seconds * 50;
  const t0 = Date.now();
  for (let i = 0; i < count; i++) {
    stream.write(writer.audio(tone.next()));
    await sleep(Math.max(0, t0 + (i + 1) * 20 - Date.now()));
  }
  return { frames, writer, count };
}

const audioOf = (frames: PcmFrame[]) => frames.filter((f) => f.type === FrameType.AUDIO);
const pcmOf = (frames: PcmFrame[]) => Buffer.concat(audioOf(frames).map((f) => f.payload));
const closedOf = (s: Duplex) =>
  new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

/**
 * `attachAudio` through the child bridge's test door: resolves with the audio stream, or rejects
 * with an error carrying the hub's code. Closing the stream detaches.
 */
function attachThroughDoor(
  door: string,
  container: string,
  sessionId: string,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(door);
    s.once('error', reject);
    s.once('connect', () =>
      s.write(`${JSON.stringify({ container, session_id: sessionId, timeout_ms: 5_000 })}\n`),
    );
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const nl = head.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      const line = head.slice(0, nl);
      if (line !== 'OK') {
        s.destroy();
        reject(Object.assign(new Error(line), { code: line.replace(/^ERR /, '') }));
        return;
      }
      const rest = Buffer.from(head.slice(nl + 1), 'latin1');
      s.pause();
      if (rest.length > 0) s.unshift(rest);
      resolve(s);
    };
    s.on('data', onData);
  });
}

describe('agent audio through the real bridge', () => {
  let dir: string;
  let secretsDir: string;
  let child: ChildProcess;
  let output = '';
  let socketPath: string;
  let door: string;
  let client: Client;
  let closeClient: () => Promise<void>;
  let name: string;
  let containerId: string;
  const KEY_ID = `audio-key-${hex(4)}`;

  beforeAll(async () => {
    await ensureAgentImage();
    dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-audio-it-'));
    secretsDir = mkdtempSync('/dev/shm/armorclaw-audio-secrets-');
    socketPath = path.join(dir, 'run', 'bridge.sock');
    door = path.join(dir, 'audio-door.sock');
    const temporalPort = await freePort();
    child = spawn(
      process.execPath,
      [...TSX_ARGS, path.join(PROJECT_ROOT, 'test', 'support', 'audio-bridge-entry.ts')],
      {
        cwd: dir,
        env: {
          ...process.env,
          ARMORCLAW_CONFIG: '',
          ARMORCLAW_AGENT_TYPES: ECHO_AGENT_TYPES,
          ARMORCLAW_SOCKET: socketPath,
          ARMORCLAW_STATE_DIR: path.join(dir, 'state'),
          ARMORCLAW_TEMPORAL_PORT: String(temporalPort),
          ARMORCLAW_TEMPORAL_UI_PORT: String(await freePort()),
          ARMORCLAW_MASTER_KEY: hex(32),
          ARMORCLAW_SECRETS_DIR: secretsDir,
          ARMORCLAW_LOG_LEVEL: 'info',
          ARMORCLAW_TEST_AUDIO_SOCKET: door,
          ARMORCLAW_VOICE_SIGNALING_PORT: '0',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    try {
      await waitFor(
        'the bridge and its audio door',
        () =>
          child.exitCode === null &&
          new Promise<boolean>((resolve) => {
            const s = net.connect(door);
            s.once('connect', () => {
              s.destroy();
              resolve(true);
            });
            s.once('error', () => resolve(false));
          }),
        { timeoutMs: 90_000, intervalMs: 200 },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- bridge output ---\n${output}`);
    }
    ({ client, close: closeClient } = await temporalClient(temporalPort));
    const stored = await rpc(socketPath, 'store_key', {
      id: KEY_ID,
      provider: 'openai',
      token: `sk-audio-${hex(8)}`,
    });
    expect(stored.error).toBeUndefined();
    const started = await rpc(socketPath, 'start', { key_id: KEY_ID });
    expect(started.error).toBeUndefined();
    name = started.result.container_name;
    containerId = started.result.container_id;
    await waitFor(
      'the agent to be ready',
      async () => (await runStatus(client, name)).notifications.some((n) => n.message === 'ready'),
      { timeoutMs: 30_000, intervalMs: 200 },
    );
  }, 180_000);

  afterAll(async () => {
    if (containerId) {
      await rpc(socketPath, 'stop', { container_id: containerId }, 60_000).catch(() => undefined);
    }
    await closeClient?.().catch(() => undefined);
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(20_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await removeTestContainers(name ? [name] : [], [dir, secretsDir]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(secretsDir, { recursive: true, force: true });
  }, 120_000);

  const agentLogs = async () => (await docker(['logs', name])).stdout;

  test('2 s of 440 Hz come back as 440 Hz; the agent reports hearing it; detach ends it cleanly', async () => {
    const t0 = Date.now();
    const stream = await attachThroughDoor(door, name, 'call-it-1');
    const attachMs = Date.now() - t0;
    const { frames, count } = await playAndListen(stream, 440, 2);
    await waitFor('the echo', () => audioOf(frames).length >= count, { timeoutMs: 3_000 });
    const echoed = audioOf(frames);
    // Same timestamps as sent (echo mode), in order.
    expect(echoed.slice(0, count).map((f) => f.timestamp)).toEqual(
      Array.from({ length: count }, (_, i) => i * 960),
    );
    const pcm = pcmOf(frames);
    expect(Math.abs(zeroCrossingFrequency(pcm) - 440)).toBeLessThan(2);
    expect(rms(pcm)).toBeCloseTo(0.354, 2);
    expect(tonePurity(pcm, 440)).toBeGreaterThan(0.95);

    // What the agent heard, as the run's status query shows it.
    const heard = await waitFor(
      'an audio_in notification',
      async () =>
        (await runStatus(client, name)).notifications.find((n: AgentNotification) =>
          /^audio_in frequency_hz=4\d\d /.test(n.message),
        ),
      { timeoutMs: 5_000, intervalMs: 200 },
    );
    const m = /^audio_in frequency_hz=(\d+) rms=([\d.]+) frames=(\d+)$/.exec(heard.message)!;
    expect(Math.abs(Number(m[1]) - 440)).toBeLessThan(5);
    expect(Number(m[2])).toBeCloseTo(0.354, 2);
    expect(heard.kind).toBe('status');

    // While this call holds the channel, another is refused.
    await expect(attachThroughDoor(door, name, 'call-it-x')).rejects.toMatchObject({
      code: 'agent_busy',
    });

    // Detach (the door calls detachAudio when its connection closes): the agent ends the call.
    stream.destroy();
    await waitFor('the agent to end the call', async () =>
      /audio call call-it-1 ended/.test(await agentLogs()),
    );
    expect(await agentLogs()).toMatch(/audio call call-it-1 started \(echo\)/);
    // The agent is still there, answering, after its call ended.
    const beat = await rpc(containerSocketPaths(socketPath, name).endpoint, 'heartbeat');
    expect(beat.result).toEqual({ status: 'ok' });
    expect((await runStatus(client, name)).state).toBe('Active');
    console.log(`agent audio: attach ${attachMs} ms, ${echoed.length} frames echoed`);
  });

  test('a second call on the same container works after detach; END ends it from the media side', async () => {
    const stream = await attachThroughDoor(door, name, 'call-it-2');
    const { frames, writer, count } = await playAndListen(stream, 523, 1);
    await waitFor('the echo', () => audioOf(frames).length >= count, { timeoutMs: 3_000 });
    expect(Math.abs(zeroCrossingFrequency(pcmOf(frames)) - 523)).toBeLessThan(3);
    // The caller hangs up on the media side: END; the agent answers END and closes.
    stream.write(writer.end());
    await waitFor('END from the agent', () => frames.some((f) => f.type === FrameType.END));
    await closedOf(stream);
    await waitFor('the end log line', async () =>
      /audio call call-it-2 ended: stream ended/.test(await agentLogs()),
    );
    await waitFor(
      'an audio_in of 523 Hz',
      async () =>
        (await runStatus(client, name)).notifications.some((n) =>
          /^audio_in frequency_hz=5[12]\d /.test(n.message),
        ),
      // The agent's notification reaches the run as a signal: seconds on a loaded machine.
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    // And the channel is free again.
    const third = await attachThroughDoor(door, name, 'call-it-3');
    third.destroy();
  });
});

describe('tone mode: the image run directly with ARMORCLAW_AGENT_AUDIO=tone:660', () => {
  let dir: string;
  let hub: ContainerSocketHub;
  const container = `armorclaw-audio-tone-${hex(4)}`;
  const notes: AgentNotification[] = [];

  beforeAll(async () => {
    await ensureAgentImage();
    dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-audio-tone-'));
    const secrets = path.join(dir, 'secrets');
    mkdirSync(secrets, { mode: 0o700 });
    const file = path.join(secrets, 'credentials.json');
    // Not a real credential: the agent only needs a well-formed file to start.
    writeFileSync(file, JSON.stringify({ key_id: 'tone-test', provider: 'none', token: 'x' }), {
      mode: 0o400,
    });
    chownSync(file, AGENT_UID, AGENT_UID);
    chownSync(secrets, AGENT_UID, AGENT_UID);
    const recorder = {
      workflow: {
        getHandle: () => ({
          signal: async (_def: unknown, n?: AgentNotification) => {
            if (n) notes.push(n);
          },
        }),
      },
    } as unknown as Client;
    hub = new ContainerSocketHub({
      bridgeSocketPath: path.join(dir, 'run', 'bridge.sock'),
      agentGid: AGENT_UID,
      client: recorder,
      audit: () => undefined,
      log: pino({ level: 'warn' }),
    });
    const paths = await hub.open(container);
    const r = await docker([
      'run',
      '-d',
      '--name',
      container,
      '--label',
      'armorclaw.managed=true',
      '--network',
      'none',
      '--read-only',
      '--cap-drop',
      'ALL',
      '--user',
      `${AGENT_UID}:${AGENT_UID}`,
      '-e',
      'ARMORCLAW_AGENT_AUDIO=tone:660',
      '-v',
      `${paths.dir}:/run/armorclaw:rw`,
      '-v',
      `${secrets}:/run/secrets:ro`,
      AGENT_IMAGE,
    ]);
    expect(r.stderr).toBe('');
    await waitFor('the agent to be ready', () => notes.some((n) => n.message === 'ready'), {
      timeoutMs: 20_000,
    });
  }, 60_000);

  afterAll(async () => {
    await docker(['rm', '-f', container]);
    await hub?.closeAll();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the agent plays 660 Hz at real time whatever it hears, and reports hearing 440 Hz', async () => {
    const stream = await hub.attachAudio(container, 'call-tone');
    const { frames } = await playAndListen(stream, 440, 2);
    const pcm = pcmOf(frames);
    expect(Math.abs(zeroCrossingFrequency(pcm) - 660)).toBeLessThan(3);
    expect(tonePurity(pcm, 660)).toBeGreaterThan(0.95);
    // Real time, not one frame per frame heard: about 50 a second over the 2 s.
    expect(audioOf(frames).length).toBeGreaterThanOrEqual(95);
    expect(audioOf(frames).length).toBeLessThanOrEqual(110);
    await waitFor('audio_in', () =>
      notes.some((n) => /^audio_in frequency_hz=4\d\d /.test(n.message)),
    );
    hub.detachAudio(container, 'call-tone');
    await closedOf(stream);
    const logs = await docker(['logs', container]);
    expect(logs.stdout).toMatch(/audio call call-tone started \(tone 660 Hz\)/);
    await waitFor('the end log line', async () =>
      /audio call call-tone ended/.test((await docker(['logs', container])).stdout),
    );
  });
});
