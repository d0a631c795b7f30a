/**
 * Calls' media on worker threads: each thread holds up to `callsPerThread` calls (their werift
 * peers, SRTP, Opus and play-out pacing) before another starts, up to `maxThreads`; past that
 * calls go to the least busy thread. A thread with no call left stops after `idleMs`, so an idle
 * bridge holds none.
 *
 * The agent's audio socket stays on the main thread (a socket cannot move between threads): its
 * bytes cross to the thread and back as transferred buffers, two messages per 20 ms frame and
 * direction at most, which is all the main thread still does for a call. A caller frame for an
 * agent that is not reading is dropped here, as `linkAgent` does in-process.
 *
 * A thread that dies takes its calls with it: each is reported `failed` (its workflow ends it)
 * and pending operations reject; the next call starts a fresh thread.
 */
import type { Duplex } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { RTCIceCandidateInit } from 'werift';
import { threadSource } from '../services/runtime';
import { MAX_BUFFERED_TO_AGENT } from './agent-link';
import type { CallPeer, CallPeers } from './call-peer';
import type { OpusBackend } from './opus';
import { FrameType } from './pcm-framing';
import type { AudioPeerOptions, PeerStateChange } from './peer-options';

/** Operations on a call's peer, run on its thread. */
export type PeerOp = 'acceptOffer' | 'acceptAnswer' | 'addIceCandidate' | 'restartIce' | 'close';

export type ToThread =
  | { t: 'answer'; req: number; call: number; sdp: string }
  | { t: 'op'; req: number; call: number; op: PeerOp; arg?: unknown }
  | { t: 'agent-data'; call: number; bytes: Uint8Array }
  | { t: 'agent-closed'; call: number };

export type FromThread =
  | { t: 'reply'; req: number; ok: true; value?: unknown }
  | { t: 'reply'; req: number; ok: false; error: string }
  | { t: 'state'; call: number; change: PeerStateChange }
  | { t: 'candidate'; call: number; candidate: RTCIceCandidateInit }
  | { t: 'agent-write'; call: number; bytes: Uint8Array }
  | { t: 'agent-end'; call: number }
  | { t: 'agent-done'; call: number; error?: string };

export interface MediaThreadData {
  options: AudioPeerOptions;
}

export interface MediaThreadsOptions {
  /** werift options for every peer. */
  peerOptions: AudioPeerOptions;
  /** Threads at most (≥ 1). */
  maxThreads: number;
  /** Calls a thread takes before another thread starts. */
  callsPerThread: number;
  /** How long a thread with no call lives on. Default 30 s. */
  idleMs?: number;
  /** A thread stopped unexpectedly (its calls were reported failed). */
  onThreadExit?: (info: { calls: number; error?: string }) => void;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface RemoteCall {
  id: number;
  thread: Thread;
  agent: Duplex;
  stateFns: ((change: PeerStateChange) => void)[];
  candidateFns: ((candidate: RTCIceCandidateInit) => void)[];
  settleDone?: (error?: string) => void;
  detachAgent?: () => void;
  closed: boolean;
  /** Its thread died: it failed. */
  lost?: boolean;
}

interface Thread {
  worker: Worker;
  calls: Map<number, RemoteCall>;
  pending: Map<number, Pending>;
  idle?: NodeJS.Timeout;
  stopping: boolean;
  opus?: OpusBackend;
}

export class MediaThreads implements CallPeers {
  private readonly running = new Set<Thread>();
  private nextId = 1;
  private readonly idleMs: number;

  constructor(private readonly options: MediaThreadsOptions) {
    if (options.maxThreads < 1) throw new Error('MediaThreads needs at least one thread');
    this.idleMs = options.idleMs ?? 30_000;
  }

  async answer(offerSdp: string, agent: Duplex): Promise<{ peer: CallPeer; answerSdp: string }> {
    const thread = this.pick();
    const call: RemoteCall = {
      id: this.nextId++,
      thread,
      agent,
      stateFns: [],
      candidateFns: [],
      closed: false,
    };
    thread.calls.set(call.id, call);
    if (thread.idle) clearTimeout(thread.idle);
    thread.idle = undefined;
    const agentDone = new Promise<void>((resolve, reject) => {
      call.settleDone = (error) => (error ? reject(new Error(error)) : resolve());
    });
    agentDone.catch(() => undefined);
    let answered: { answerSdp: string; opus: OpusBackend };
    try {
      answered = (await this.request(thread, { t: 'answer', call: call.id, sdp: offerSdp })) as {
        answerSdp: string;
        opus: OpusBackend;
      };
    } catch (err) {
      this.forget(call);
      throw err;
    }
    thread.opus = answered.opus;
    // The thread may have died since it answered (the call is then closed and failed).
    if (!call.closed) call.detachAgent = this.pipeAgent(call);
    const op = (name: PeerOp, arg?: unknown) =>
      call.closed
        ? Promise.reject(new Error('the call is closed'))
        : this.request(thread, { t: 'op', call: call.id, op: name, arg });
    const peer: CallPeer = {
      acceptOffer: (sdp) => op('acceptOffer', sdp) as Promise<string>,
      acceptAnswer: async (sdp) => void (await op('acceptAnswer', sdp)),
      addIceCandidate: async (candidate) => void (await op('addIceCandidate', candidate)),
      restartIce: () => op('restartIce') as Promise<string>,
      onStateChange: (fn) => {
        call.stateFns.push(fn);
        if (call.lost) fn(FAILED); // its thread died before anyone listened
      },
      onIceCandidate: (fn) => void call.candidateFns.push(fn),
      agentDone,
      close: async () => {
        if (call.closed) return;
        await op('close').catch(() => undefined);
        this.forget(call);
      },
    };
    return { peer, answerSdp: answered.answerSdp };
  }

  describe(): { threads: number; opus?: OpusBackend } {
    const opus = [...this.running].find((t) => t.opus)?.opus;
    return { threads: this.running.size, ...(opus ? { opus } : {}) };
  }

  /** The running threads and their calls (for tests and the bench). */
  threads(): { threadId: number; calls: number; worker: Worker }[] {
    return [...this.running].map((t) => ({
      threadId: t.worker.threadId,
      calls: t.calls.size,
      worker: t.worker,
    }));
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.running].map(async (thread) => {
        for (const call of thread.calls.values()) this.forget(call);
        await this.stop(thread);
      }),
    );
  }

  /** The least busy thread with room, else a new one, else the least busy. */
  private pick(): Thread {
    let best: Thread | undefined;
    for (const t of this.running) {
      if (t.stopping) continue;
      if (!best || t.calls.size < best.calls.size) best = t;
    }
    if (best && best.calls.size < this.options.callsPerThread) return best;
    if (this.running.size < this.options.maxThreads || !best) return this.spawn();
    return best;
  }

  private spawn(): Thread {
    const workerData: MediaThreadData = { options: this.options.peerOptions };
    const worker = new Worker(threadSource(__dirname, 'media-thread-main'), {
      eval: true,
      workerData,
    });
    const thread: Thread = { worker, calls: new Map(), pending: new Map(), stopping: false };
    this.running.add(thread);
    worker.on('message', (m: FromThread) => this.receive(thread, m));
    let error: string | undefined;
    worker.on('error', (err) => (error = err.message));
    worker.once('exit', (code) => {
      this.running.delete(thread);
      const reason = error ?? `media thread exited (${code})`;
      for (const p of thread.pending.values()) p.reject(new Error(reason));
      thread.pending.clear();
      const lost = [...thread.calls.values()];
      for (const call of lost) {
        this.forget(call, reason);
        call.lost = true;
        for (const fn of call.stateFns) fn(FAILED);
      }
      if (!thread.stopping) this.options.onThreadExit?.({ calls: lost.length, error: reason });
    });
    return thread;
  }

  private receive(thread: Thread, m: FromThread): void {
    if (m.t === 'reply') {
      const p = thread.pending.get(m.req);
      if (!p) return;
      thread.pending.delete(m.req);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.error));
      return;
    }
    const call = thread.calls.get(m.call);
    if (!call) return;
    switch (m.t) {
      case 'state':
        for (const fn of call.stateFns) fn(m.change);
        break;
      case 'candidate':
        for (const fn of call.candidateFns) fn(m.candidate);
        break;
      case 'agent-write': {
        const { agent } = call;
        if (agent.destroyed || !agent.writable) break;
        // Real-time audio: an agent that does not keep up loses caller frames, not memory.
        if (m.bytes[2] === FrameType.AUDIO && agent.writableLength > MAX_BUFFERED_TO_AGENT) break;
        agent.write(Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength));
        break;
      }
      case 'agent-end':
        if (!call.agent.destroyed && call.agent.writable) call.agent.end();
        break;
      case 'agent-done':
        call.settleDone?.(m.error);
        break;
    }
  }

  /** The agent's bytes to the thread; its end too. Returns the detach. */
  private pipeAgent(call: RemoteCall): () => void {
    const { agent, thread, id } = call;
    const onData = (chunk: Buffer) => {
      const bytes = new Uint8Array(chunk); // a copy of its own, so it can be transferred
      thread.worker.postMessage({ t: 'agent-data', call: id, bytes } satisfies ToThread, [
        bytes.buffer,
      ]);
    };
    const onGone = () => {
      if (thread.calls.has(id)) {
        thread.worker.postMessage({ t: 'agent-closed', call: id } satisfies ToThread);
      }
    };
    agent.on('data', onData);
    agent.once('close', onGone);
    agent.once('error', onGone);
    return () => {
      agent.off('data', onData);
      agent.off('close', onGone);
      agent.off('error', onGone);
    };
  }

  private request(thread: Thread, message: DistributiveOmit<ToThread, 'req'>): Promise<unknown> {
    if (thread.stopping || !this.running.has(thread)) {
      return Promise.reject(new Error('media thread stopped'));
    }
    const req = this.nextId++;
    return new Promise((resolve, reject) => {
      thread.pending.set(req, { resolve, reject });
      thread.worker.postMessage({ ...message, req } as ToThread);
    });
  }

  /** The call is gone from its thread: closed, or lost with it (`error`). */
  private forget(call: RemoteCall, error?: string): void {
    if (call.closed) return;
    call.closed = true;
    call.settleDone?.(error);
    call.detachAgent?.();
    const { thread } = call;
    thread.calls.delete(call.id);
    if (thread.calls.size === 0 && !thread.stopping && this.running.has(thread)) {
      thread.idle = setTimeout(() => void this.stop(thread), this.idleMs);
      thread.idle.unref();
    }
  }

  private async stop(thread: Thread): Promise<void> {
    if (thread.idle) clearTimeout(thread.idle);
    if (thread.stopping) return;
    thread.stopping = true;
    await thread.worker.terminate();
  }
}

const FAILED: PeerStateChange = { connectionState: 'failed', userState: 'Failed' };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
