// The agent's audio channel (rpc/container-audio.ts through ContainerSocketHub) over real Unix
// sockets in a temp directory, with a fake agent speaking JSON-RPC on bridge.sock; and the
// reference agent's audio side (agent/audio.ts) against the same hub.
import { mkdtempSync, rmSync, statSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { AgentAudio, parseAudioMode } from '../../agent/audio';
import { zeroCrossingFrequency, rms } from '../../media/audio-analysis';
import { ToneGenerator } from '../../media/echo';
import { FrameType, PcmFrameDecoder, PcmFrameWriter, type PcmFrame } from '../../media/pcm-framing';
import { AgentAudioError, AGENT_AUDIO_FORMAT } from '../../rpc/container-audio';
import { ContainerSocketHub, containerSocketPaths } from '../../rpc/container-socket';

const NAME = 'armorclaw-openclaw-1700000000';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let hub: ContainerSocketHub;
const cleanups: Array<() => void> = [];

beforeEach(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-audio-'));
  const client = {
    workflow: { getHandle: () => ({ signal: async () => undefined }) },
  } as unknown as Client;
  hub = new ContainerSocketHub({
    bridgeSocketPath: path.join(dir, 'bridge.sock'),
    agentGid: process.getgid?.() ?? 0,
    client,
    audit: () => undefined,
    log: pino({ level: 'silent' }),
  });
  await hub.open(NAME);
});

afterEach(async () => {
  for (const fn of cleanups.splice(0)) fn();
  await hub.closeAll();
  rmSync(dir, { recursive: true, force: true });
});

const paths = () => containerSocketPaths(path.join(dir, 'bridge.sock'), NAME);

interface Message {
  method?: string;
  params?: any;
}

/** A fake agent's control connection: records what the bridge sends, reacts to audio.start. */
async function controlClient(onMessage: (m: Message) => void = () => undefined) {
  const socket = net.createConnection(paths().socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const received: Message[] = [];
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const m = JSON.parse(buf.slice(0, nl)) as Message;
      buf = buf.slice(nl + 1);
      received.push(m);
      onMessage(m);
    }
  });
  cleanups.push(() => socket.destroy());
  return { socket, received };
}

function connectAudio(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(paths().audioSocket);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
    cleanups.push(() => s.destroy());
  });
}

const closed = (s: net.Socket) =>
  new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

async function rejection(p: Promise<unknown>): Promise<AgentAudioError> {
  try {
    await p;
  } catch (err) {
    return err as AgentAudioError;
  }
  throw new Error('expected a rejection');
}

async function waitUntil(what: string, fn: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('ContainerSocketHub audio channel', () => {
  test('serves audio.sock next to bridge.sock with the same mode, and removes it on close', async () => {
    const p = paths();
    expect(statSync(p.audioSocket).isSocket()).toBe(true);
    expect(statSync(p.audioSocket).mode & 0o777).toBe(0o660);
    expect(statSync(p.audioSocket).gid).toBe(statSync(p.socket).gid);
    await hub.close(NAME);
    expect(existsSync(p.audioSocket)).toBe(false);
  });

  test('attach sends audio.start and hands over the agent connection; bytes flow both ways', async () => {
    let agentSide: net.Socket | undefined;
    const agent = await controlClient((m) => {
      if (m.method === 'audio.start') void connectAudio().then((s) => (agentSide = s));
    });
    const bridgeSide = await hub.attachAudio(NAME, 'call-1');
    expect(agent.received).toContainEqual({
      jsonrpc: '2.0',
      method: 'audio.start',
      params: {
        session_id: 'call-1',
        format: { sample_rate: 48000, channels: 1, sample_format: 's16le', frame_ms: 20 },
      },
    });
    expect(AGENT_AUDIO_FORMAT).toEqual(agent.received[0]!.params.format);
    await waitUntil('agent side', () => agentSide !== undefined);
    const got = new Promise<string>((resolve) =>
      agentSide!.once('data', (d: Buffer) => resolve(d.toString())),
    );
    bridgeSide.write('to-agent');
    expect(await got).toBe('to-agent');
    const back = new Promise<string>((resolve) =>
      bridgeSide.once('data', (d: Buffer) => resolve(d.toString())),
    );
    agentSide!.write('to-bridge');
    expect(await back).toBe('to-bridge');
    hub.detachAudio(NAME, 'call-1');
  });

  test('a second attach while one holds the channel is agent_busy', async () => {
    await controlClient((m) => {
      if (m.method === 'audio.start') void connectAudio();
    });
    await hub.attachAudio(NAME, 'call-1');
    const err = await rejection(hub.attachAudio(NAME, 'call-2'));
    expect(err).toBeInstanceOf(AgentAudioError);
    expect(err.code).toBe('agent_busy');
    hub.detachAudio(NAME, 'call-1');
  });

  test('busy while the first attach is still waiting', async () => {
    await controlClient(); // never connects its audio
    const first = hub.attachAudio(NAME, 'call-1', { timeoutMs: 2_000 });
    const err = await rejection(hub.attachAudio(NAME, 'call-2'));
    expect(err.code).toBe('agent_busy');
    hub.detachAudio(NAME, 'call-1');
    expect((await rejection(first)).code).toBe('agent_audio_cancelled');
  });

  test('an unknown or closed container is agent_unavailable', async () => {
    expect((await rejection(hub.attachAudio('armorclaw-nope-1', 's'))).code).toBe(
      'agent_unavailable',
    );
    await hub.close(NAME);
    expect((await rejection(hub.attachAudio(NAME, 's'))).code).toBe('agent_unavailable');
    hub.detachAudio(NAME, 's'); // harmless
  });

  test('an agent that never connects: agent_audio_timeout, audio.end sent, slot freed', async () => {
    const agent = await controlClient();
    const t0 = Date.now();
    const err = await rejection(hub.attachAudio(NAME, 'call-slow', { timeoutMs: 300 }));
    expect(err.code).toBe('agent_audio_timeout');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    await waitUntil('audio.end', () => agent.received.some((m) => m.method === 'audio.end'));
    expect(agent.received.find((m) => m.method === 'audio.end')!.params).toEqual({
      session_id: 'call-slow',
    });
    // A late connection is refused; a new call can attach.
    const late = await connectAudio();
    await closed(late);
    const next = hub.attachAudio(NAME, 'call-next');
    void connectAudio();
    await expect(next).resolves.toBeDefined();
    hub.detachAudio(NAME, 'call-next');
  });

  test('an audio connection with no attach waiting is closed at once', async () => {
    const stray = await connectAudio();
    const t0 = Date.now();
    await closed(stray);
    expect(Date.now() - t0).toBeLessThan(1_000);
    // A second connection while a call holds the channel is refused too.
    await controlClient((m) => {
      if (m.method === 'audio.start') void connectAudio();
    });
    const held = await hub.attachAudio(NAME, 'call-1');
    const intruder = await connectAudio();
    await closed(intruder);
    expect(held.destroyed).toBe(false);
    hub.detachAudio(NAME, 'call-1');
  });

  test('a control connection made while an attach waits is told audio.start', async () => {
    const attached = hub.attachAudio(NAME, 'call-late', { timeoutMs: 2_000 });
    await sleep(50);
    const agent = await controlClient((m) => {
      if (m.method === 'audio.start') void connectAudio();
    });
    await expect(attached).resolves.toBeDefined();
    expect(agent.received.map((m) => m.method)).toEqual(['audio.start']);
    expect(agent.received[0]!.params.session_id).toBe('call-late');
    hub.detachAudio(NAME, 'call-late');
  });

  test('detach sends audio.end, closes the connection, frees the slot; it is idempotent', async () => {
    let agentSide: net.Socket | undefined;
    const agent = await controlClient((m) => {
      if (m.method === 'audio.start') void connectAudio().then((s) => (agentSide = s));
    });
    const stream: Duplex = await hub.attachAudio(NAME, 'call-1');
    await waitUntil('agent side', () => agentSide !== undefined);
    hub.detachAudio(NAME, 'call-other'); // not the holder: nothing happens
    expect(stream.destroyed).toBe(false);
    hub.detachAudio(NAME, 'call-1');
    expect(stream.destroyed).toBe(true);
    await closed(agentSide!);
    await waitUntil('audio.end', () => agent.received.some((m) => m.method === 'audio.end'));
    expect(agent.received.filter((m) => m.method === 'audio.end')).toEqual([
      { jsonrpc: '2.0', method: 'audio.end', params: { session_id: 'call-1' } },
    ]);
    hub.detachAudio(NAME, 'call-1');
    await sleep(50);
    expect(agent.received.filter((m) => m.method === 'audio.end')).toHaveLength(1);
    const again = await hub.attachAudio(NAME, 'call-2');
    expect(again.destroyed).toBe(false);
    hub.detachAudio(NAME, 'call-2');
  });
});

/** The reference agent's audio side (agent/audio.ts) answering through the hub. */
describe('reference agent audio', () => {
  const FRAMES = 60; // 1.2 s

  async function callWith(mode: string) {
    const logs: string[] = [];
    const notes: string[] = [];
    const audio = new AgentAudio({
      socketPath: paths().audioSocket,
      mode: parseAudioMode(mode),
      log: (m) => logs.push(m),
    });
    await controlClient((m) => {
      if (m.method === 'audio.start') void audio.start(m.params, (_kind, msg) => notes.push(msg));
      if (m.method === 'audio.end') audio.end(m.params);
    });
    cleanups.push(() => audio.endAll());
    const stream = await hub.attachAudio(NAME, `call-${mode}`);
    const frames: PcmFrame[] = [];
    const decoder = new PcmFrameDecoder();
    stream.on('data', (chunk: Buffer) => frames.push(...decoder.push(chunk)));
    const writer = new PcmFrameWriter();
    const tone = new ToneGenerator(440, 0.5);
    const t0 = Date.now();
    for (let i = 0; i < FRAMES; i++) {
      stream.write(writer.audio(tone.next()));
      await sleep(Math.max(0, t0 + (i + 1) * 20 - Date.now()));
    }
    await waitUntil('audio_in', () => notes.some((n) => n.startsWith('audio_in')));
    return { stream, frames, notes, logs, writer, audio };
  }

  const pcmOf = (frames: PcmFrame[]) =>
    Buffer.concat(frames.filter((f) => f.type === FrameType.AUDIO).map((f) => f.payload));

  test('echo: every frame comes back with its timestamp; it reports hearing 440 Hz', async () => {
    const { stream, frames, notes, logs, writer } = await callWith('echo');
    await waitUntil('echoes', () => frames.length >= FRAMES);
    expect(frames.slice(0, FRAMES).map((f) => f.timestamp)).toEqual(
      Array.from({ length: FRAMES }, (_, i) => i * 960),
    );
    expect(zeroCrossingFrequency(pcmOf(frames))).toBeCloseTo(440, -1);
    const m = /^audio_in frequency_hz=(\d+) rms=([\d.]+) frames=(\d+)$/.exec(notes[0]!);
    expect(m).not.toBeNull();
    expect(Math.abs(Number(m![1]) - 440)).toBeLessThan(5);
    expect(Number(m![2])).toBeCloseTo(0.354, 2);
    expect(Number(m![3])).toBeGreaterThan(30);
    // The bridge's END: the agent answers END and closes.
    stream.write(writer.end());
    await waitUntil('END back', () => frames.some((f) => f.type === FrameType.END));
    await closed(stream as net.Socket);
    expect(logs.some((l) => /audio call call-echo started \(echo\)/.test(l))).toBe(true);
    await waitUntil('end log', () => logs.some((l) => /audio call call-echo ended/.test(l)));
    hub.detachAudio(NAME, 'call-echo');
  });

  test('tone:660 plays a tone at real time whatever it hears; audio.end stops it', async () => {
    const { stream, frames, notes, logs } = await callWith('tone:660');
    const pcm = pcmOf(frames);
    expect(zeroCrossingFrequency(pcm)).toBeCloseTo(660, -1);
    expect(rms(pcm)).toBeCloseTo(0.354, 2);
    // Real time: about 50 frames a second since it connected (plus a small lead), not a burst.
    const count = frames.length;
    await sleep(500);
    const perSecond = (frames.length - count) * 2;
    expect(perSecond).toBeGreaterThan(40);
    expect(perSecond).toBeLessThan(60);
    expect(notes.some((n) => /^audio_in frequency_hz=4[34]\d /.test(n))).toBe(true);
    hub.detachAudio(NAME, 'call-tone:660');
    await waitUntil('end log', () =>
      logs.some((l) => /audio call call-tone:660 ended/.test(l)),
    ).catch((err) => {
      throw new Error(`${err.message}: ${JSON.stringify(logs)} ${JSON.stringify(notes)}`);
    });
    expect(stream.destroyed).toBe(true);
  });

  test('parseAudioMode', () => {
    expect(parseAudioMode(undefined)).toEqual({ kind: 'echo' });
    expect(parseAudioMode('echo')).toEqual({ kind: 'echo' });
    expect(parseAudioMode('tone:440')).toEqual({ kind: 'tone', frequency: 440 });
    expect(() => parseAudioMode('tone:0')).toThrow(/ARMORCLAW_AGENT_AUDIO/);
    expect(() => parseAudioMode('tone:30000')).toThrow(/ARMORCLAW_AGENT_AUDIO/);
    expect(() => parseAudioMode('loud')).toThrow(/ARMORCLAW_AGENT_AUDIO/);
  });
});
