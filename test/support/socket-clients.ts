/**
 * Byte-level clients that behave like the ones the API spec shows: `nc -N` and `socat` (send,
 * newline, half-close, read until the server closes), the spec's Python snippet (sendall with
 * no newline, keep the connection open, read the answer), and pipelining clients.
 */
import net from 'node:net';

/** Like `echo REQ | nc -N -U sock`: newline, half-close, read everything until close. */
export function ncRequest(
  socketPath: string,
  payload: string | Buffer,
  timeoutMs = 10_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${JSON.stringify(out)}`));
    }, timeoutMs);
    s.on('connect', () => {
      s.write(payload);
      if (typeof payload === 'string' && !payload.endsWith('\n')) s.write('\n');
      s.end();
    });
    s.on('data', (d) => (out += d));
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** Parses newline-delimited JSON responses. */
export const parseLines = (text: string): unknown[] =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));

/** One JSON-RPC call, nc style; returns the parsed response. */
export async function call(
  socketPath: string,
  method: string,
  params?: unknown,
  id: number | string = 1,
  timeoutMs = 10_000,
): Promise<any> {
  const req: Record<string, unknown> = { jsonrpc: '2.0', id, method };
  if (params !== undefined) req.params = params;
  const lines = parseLines(await ncRequest(socketPath, JSON.stringify(req), timeoutMs));
  if (lines.length !== 1) throw new Error(`expected one response, got ${lines.length}`);
  return lines[0];
}

/**
 * A connection kept open: write bytes, read responses line by line. Models the spec's Python
 * client (no newline, no half-close) and pipelining clients.
 */
export class PersistentClient {
  private buffer = '';
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d) => {
      this.buffer += d;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static connect(socketPath: string): Promise<PersistentClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(socketPath);
      s.once('connect', () => resolve(new PersistentClient(s)));
      s.once('error', reject);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Reads `n` newline-terminated responses. */
  async readLines(n: number, timeoutMs = 10_000): Promise<any[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.buffer.split('\n');
      if (lines.length - 1 >= n) {
        const taken = lines.slice(0, n);
        this.buffer = lines.slice(n).join('\n');
        return taken.map((l) => JSON.parse(l));
      }
      if (this.closed) throw new Error(`connection closed after ${lines.length - 1} of ${n} lines`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out waiting for ${n} lines; have ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves when the server closes the connection, or rejects after `timeoutMs`. */
  async waitClosed(timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** What arrived and was not read as a line. */
  get pending(): string {
    return this.buffer;
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
