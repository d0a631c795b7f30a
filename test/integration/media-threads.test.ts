/**
 * Calls' media on worker threads (media/media-threads.ts), with real werift clients, real Unix
 * sockets and echo agents: each call echoes its own tone through its thread; threads fill up to
 * `callsPerThread` and stop when idle; a thread that dies fails its calls only, and the next
 * call gets a fresh thread. The main thread holds no werift peer for any of it.
 */
import type { Socket } from 'node:net';
import { rms, tonePurity, zeroCrossingFrequency } from '../../media/audio-analysis';
import type { CallPeer } from '../../media/call-peer';
import { ToneGenerator, runEchoAgent, type EchoAgentHandle } from '../../media/echo';
import { MediaThreads } from '../../media/media-threads';
import type { UserCallState } from '../../machines/voice-call.machine';
import { Client, sendPaced, socketPair } from '../support/media-client';

jest.setTimeout(60_000);

interface TestCall {
  client: Client;
  peer: CallPeer;
  agent: EchoAgentHandle;
  bridgeEnd: Socket;
  states: UserCallState[];
  cleanup: () => void;
}

async function call(threads: MediaThreads): Promise<TestCall> {
  const client = new Client();
  const { bridgeEnd, agentEnd, cleanup } = await socketPair();
  const agent = runEchoAgent(agentEnd);
  const { peer, answerSdp } = await threads.answer(await client.offer(), bridgeEnd);
  const states: UserCallState[] = [];
  peer.onStateChange(({ userState }) => states.push(userState));
  await client.pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
  await client.connected();
  return { client, peer, agent, bridgeEnd, states, cleanup };
}

/** Sends one second of tone, waits for the echo, and returns what came back (steady part). */
async function echoTone(c: TestCall, hz: number): Promise<Buffer> {
  const before = c.client.received.length;
  const tone = new ToneGenerator(hz, 0.5);
  await sendPaced(c.client, 50, () => tone.next());
  for (let waited = 0; c.client.received.length < before + 50 && waited < 10_000; waited += 50) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return Buffer.concat(c.client.received.slice(before + 15, before + 45).map((f) => f.pcm));
}

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !check();) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const load = (threads: MediaThreads) => threads.threads().map((t) => t.calls);

const peerOptions = { iceServers: [], additionalHostAddresses: ['127.0.0.1'] };

describe('media threads', () => {
  it('runs each call on a thread, echoes its own tone, fills threads in turn and stops idle ones', async () => {
    const threads = new MediaThreads({
      peerOptions,
      maxThreads: 2,
      callsPerThread: 2,
      idleMs: 200,
    });
    const calls = [await call(threads), await call(threads), await call(threads)];
    expect(load(threads).sort()).toEqual([1, 2]);
    expect(threads.describe().threads).toBe(2);
    expect(['native', 'wasm']).toContain(threads.describe().opus);
    // werift is loaded on the threads only.
    expect(Object.keys(require.cache).some((k) => k.includes('/media/peer.'))).toBe(false);

    const tones = [440, 660, 880];
    const echoed = await Promise.all(calls.map((c, i) => echoTone(c, tones[i] as number)));
    echoed.forEach((pcm, i) => {
      const hz = tones[i] as number;
      expect(Math.abs(zeroCrossingFrequency(pcm) - hz)).toBeLessThan(hz * 0.02);
      expect(tonePurity(pcm, hz)).toBeGreaterThan(0.9);
      expect(rms(pcm)).toBeGreaterThan(0.3);
    });
    for (const c of calls) {
      expect(c.states[0]).toBe('Live');
      expect(c.agent.received()).toBeGreaterThanOrEqual(50);
    }

    // Closing sends END to the agent (its loop ends) and frees the call's place.
    await calls[0]!.peer.close();
    await calls[0]!.agent.done;
    await expect(calls[0]!.peer.agentDone).resolves.toBeUndefined();
    expect(load(threads).reduce((a, b) => a + b, 0)).toBe(2);
    await calls[0]!.peer.restartIce().then(
      () => {
        throw new Error('a closed call restarted ICE');
      },
      (err: Error) => expect(err.message).toMatch(/closed/),
    );

    // The agent hanging up ends its link: agentDone settles on the main thread.
    calls[1]!.bridgeEnd.destroy();
    await calls[1]!.peer.agentDone;

    for (const c of calls.slice(1)) await c.peer.close();
    await until(() => threads.describe().threads === 0, 'idle threads to stop');
    for (const c of calls) {
      await c.client.close();
      c.cleanup();
    }
    await threads.close();
  });

  it('a thread that dies fails its calls only; the next call gets a new thread', async () => {
    const exits: { calls: number; error?: string }[] = [];
    const threads = new MediaThreads({
      peerOptions,
      maxThreads: 2,
      callsPerThread: 1,
      onThreadExit: (info) => exits.push(info),
    });
    const [doomed, survivor] = [await call(threads), await call(threads)];
    expect(load(threads)).toEqual([1, 1]);

    // The doomed call's thread goes away (as a crash would take it).
    const victim = threads.threads()[0]!;
    const lost = victim.threadId;
    await victim.worker.terminate();
    await until(() => exits.length === 1, 'the thread exit to be reported');
    expect(exits[0]!.calls).toBe(1);
    // Which of the two calls was on it: the one whose state went Failed.
    const [dead, alive] = doomed.states.includes('Failed')
      ? [doomed, survivor]
      : [survivor, doomed];
    expect(dead.states.at(-1)).toBe('Failed');
    expect(alive.states).not.toContain('Failed');
    await expect(dead.peer.agentDone).rejects.toThrow(/media thread/);
    // A listener that comes after the death still learns of it.
    const late: UserCallState[] = [];
    dead.peer.onStateChange(({ userState }) => late.push(userState));
    expect(late).toEqual(['Failed']);
    await expect(dead.peer.restartIce()).rejects.toThrow();

    // The other call goes on echoing.
    const pcm = await echoTone(alive, 550);
    expect(Math.abs(zeroCrossingFrequency(pcm) - 550)).toBeLessThan(11);

    // A new call starts a new thread and works.
    const fresh = await call(threads);
    expect(threads.threads().map((t) => t.threadId)).not.toContain(lost);
    const echoed = await echoTone(fresh, 770);
    expect(Math.abs(zeroCrossingFrequency(echoed) - 770)).toBeLessThan(15);

    for (const c of [dead, alive, fresh]) {
      await c.peer.close();
      await c.client.close();
      c.cleanup();
    }
    await threads.close();
    expect(threads.describe().threads).toBe(0);
  });
});
