/**
 * The load generator, in its own process so it never shares an event loop with a server.
 * Each connection runs a closed loop: send one request, wait for its response, send the next,
 * as JSON-RPC lines on a Unix socket or as `POST /rpc` envelopes to the HTTP gateway.
 * After `warmupMs` it records every response completed during `measureMs`, then stops
 * sending, waits for what is still in flight and reports over IPC.
 */
import net from 'node:net';
import { exitWithParent, tell } from './lib/child';
import { prepareCpuSampling, processCpuSeconds, systemBusyCpuSeconds } from './lib/cpu';
import type { GatewayTarget, LoadResult, LoadSpec, ParentMessage } from './lib/protocol';
import { SampleBuffer, summariseLatencyNs } from './lib/stats';

/** The shared state of one run: whether responses count and where their latencies go. */
interface Window {
  recording: boolean;
  stopping: boolean;
  samples: SampleBuffer;
  errors: number;
  unexpectedStatus: number;
  unexpectedSample?: unknown;
}

/** A response reduced to what the loop checks: which request it answers and how. */
interface Answer {
  id: unknown;
  ok: boolean;
  result?: { status?: unknown };
}

/**
 * How requests and responses look on one wire: JSON-RPC lines on the socket, or `POST /rpc`
 * envelopes over HTTP/1.1 keep-alive to the gateway. `take` returns the first complete response
 * in `buffer` and the rest, or null while it is incomplete.
 */
interface Wire {
  request(id: number): string;
  take(buffer: string): { text: string; rest: string } | null;
  answer(text: string): Answer;
}

function jsonLines(method: string): Wire {
  return {
    request: (id) => `{"jsonrpc":"2.0","id":${id},"method":"${method}"}\n`,
    take(buffer) {
      const newline = buffer.indexOf('\n');
      return newline < 0
        ? null
        : { text: buffer.slice(0, newline), rest: buffer.slice(newline + 1) };
    },
    answer(text) {
      const r = JSON.parse(text) as Answer & { error?: unknown };
      return { id: r.id, ok: r.error === undefined, result: r.result };
    },
  };
}

function gatewayHttp(method: string, gateway: GatewayTarget): Wire {
  const head =
    `POST /rpc HTTP/1.1\r\nHost: ${gateway.host}:${gateway.port}\r\n` +
    `Authorization: Bearer ${gateway.token}\r\nContent-Type: application/json\r\n`;
  return {
    request(id) {
      const body = `{"id":${id},"version":"2.0","method":"${method}","params":{}}`;
      return `${head}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    },
    take(buffer) {
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return null;
      const length = /\r\ncontent-length: *(\d+)/i.exec(buffer.slice(0, end + 2));
      if (!length) throw new Error(`a response without Content-Length: ${buffer.slice(0, 200)}`);
      const bodyEnd = end + 4 + Number(length[1]);
      // Content-Length counts bytes; the gateway's answers here are ASCII, so bytes = chars.
      if (buffer.length < bodyEnd) return null;
      return { text: buffer.slice(end + 4, bodyEnd), rest: buffer.slice(bodyEnd) };
    },
    answer(text) {
      const r = JSON.parse(text) as Answer;
      return { id: r.id, ok: r.ok === true, result: r.result };
    },
  };
}

/** One persistent connection with at most one request in flight. */
class ClosedLoopConnection {
  private pending = '';
  private nextId = 1;
  /** hrtime of the request in flight; 0n when none is. */
  sentAt = 0n;
  completed = 0;
  finished: Promise<void>;
  private finish!: () => void;
  failure?: string;

  constructor(
    private readonly socket: net.Socket,
    private readonly wire: Wire,
    private readonly spec: Pick<LoadSpec, 'expectResultStatus'>,
    private readonly window: Window,
  ) {
    this.finished = new Promise((resolve) => (this.finish = resolve));
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(`socket error: ${err.message}`));
    socket.on('close', () => {
      if (this.sentAt !== 0n)
        this.fail('the server closed the connection with a request in flight');
      this.finish();
    });
  }

  static open(spec: LoadSpec, window: Window): Promise<ClosedLoopConnection> {
    const wire = spec.gateway ? gatewayHttp(spec.method, spec.gateway) : jsonLines(spec.method);
    return new Promise((resolve, reject) => {
      const socket = spec.gateway
        ? net.connect(spec.gateway.port, spec.gateway.host)
        : net.connect(spec.socketPath);
      socket.once('connect', () => resolve(new ClosedLoopConnection(socket, wire, spec, window)));
      socket.once('error', reject);
    });
  }

  send(): void {
    const id = this.nextId++;
    this.sentAt = process.hrtime.bigint();
    this.socket.write(this.wire.request(id));
  }

  private onData(chunk: string): void {
    // Taken before any parsing, so the client's own JSON work is not counted as latency.
    const receivedAt = process.hrtime.bigint();
    this.pending += chunk;
    let taken: { text: string; rest: string } | null;
    let response: Answer;
    try {
      taken = this.wire.take(this.pending);
      if (!taken) return;
      response = this.wire.answer(taken.text);
    } catch (err) {
      return this.fail(`a response that cannot be read: ${(err as Error).message.slice(0, 200)}`);
    }
    this.pending = taken.rest;
    if (this.pending.trim() !== '') return this.fail('more than one response for one request');
    if (response.id !== this.nextId - 1)
      return this.fail(`response id ${String(response.id)}, expected ${this.nextId - 1}`);
    const latencyNs = Number(receivedAt - this.sentAt);
    this.sentAt = 0n;
    if (this.window.recording) {
      if (!response.ok) this.window.errors++;
      else {
        this.window.samples.push(latencyNs);
        this.completed++;
        const expected = this.spec.expectResultStatus;
        if (expected !== undefined && response.result?.status !== expected) {
          this.window.unexpectedStatus++;
          this.window.unexpectedSample ??= response.result;
        }
      }
    }
    if (this.window.stopping) this.socket.end();
    else this.send();
  }

  fail(reason: string): void {
    this.failure ??= reason;
    this.socket.destroy();
    this.finish();
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function cpuSnapshot(pids: Record<string, number>): Record<string, number | null> {
  const snap: Record<string, number | null> = {};
  for (const [role, pid] of Object.entries(pids)) snap[role] = processCpuSeconds(pid);
  const own = process.cpuUsage();
  snap.client = (own.user + own.system) / 1e6;
  snap.machine = systemBusyCpuSeconds();
  return snap;
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  prepareCpuSampling();
  const window: Window = {
    recording: false,
    stopping: false,
    samples: new SampleBuffer(),
    errors: 0,
    unexpectedStatus: 0,
  };
  const connections = await Promise.all(
    Array.from({ length: spec.connections }, () => ClosedLoopConnection.open(spec, window)),
  );
  // A request that takes longer than the timeout ends the run rather than hanging it.
  const watchdog = setInterval(() => {
    const now = process.hrtime.bigint();
    for (const c of connections) {
      if (c.sentAt !== 0n && Number(now - c.sentAt) / 1e6 > spec.requestTimeoutMs) {
        c.fail(`no response within ${spec.requestTimeoutMs} ms`);
      }
    }
  }, 250);

  for (const c of connections) c.send();
  await sleep(spec.warmupMs);
  const cpuBefore = cpuSnapshot(spec.watchPids);
  const startedAt = process.hrtime.bigint();
  window.recording = true;
  await sleep(spec.measureMs);
  window.recording = false;
  const endedAt = process.hrtime.bigint();
  const cpuAfter = cpuSnapshot(spec.watchPids);
  window.stopping = true;
  await Promise.all(connections.map((c) => c.finished));
  clearInterval(watchdog);

  const failure = connections.find((c) => c.failure)?.failure;
  if (failure) throw new Error(failure);

  const windowMs = Number(endedAt - startedAt) / 1e6;
  const cpuPercent: Record<string, number | null> = {};
  for (const role of Object.keys(cpuAfter)) {
    const before = cpuBefore[role];
    const after = cpuAfter[role];
    cpuPercent[role] =
      before == null || after == null ? null : ((after - before) / (windowMs / 1e3)) * 100;
  }
  // What the rest of the machine used: anything here is noise from outside the bench.
  const ours = Object.entries(cpuPercent).filter(([role]) => role !== 'machine');
  cpuPercent.other =
    cpuPercent.machine == null || ours.some(([, v]) => v == null)
      ? null
      : Math.max(0, cpuPercent.machine - ours.reduce((sum, [, v]) => sum + v!, 0));
  const counts = connections.map((c) => c.completed);
  return {
    requests: window.samples.length,
    errors: window.errors,
    unexpectedStatus: window.unexpectedStatus,
    unexpectedSample: window.unexpectedSample,
    windowMs,
    requestsPerSecond: window.samples.length / (windowMs / 1e3),
    latencyMs: summariseLatencyNs(window.samples.values()),
    perConnectionRequests: { min: Math.min(...counts), max: Math.max(...counts) },
    cpuPercent,
  };
}

if (require.main === module) {
  exitWithParent();
  process.once('message', (message: ParentMessage) => {
    runLoad(message.spec).then(
      (result) => tell({ type: 'result', result }),
      (err: Error) => tell({ type: 'failed', reason: err.message }),
    );
  });
  tell({ type: 'ready' });
}
