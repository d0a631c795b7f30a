/**
 * The bridge's side of an agent's per-container socket, for tests that run a real agent image
 * without a bridge: newline-delimited JSON-RPC 2.0 on a Unix socket, every request of the agent
 * answered ok and recorded, calls to the agent's methods on its latest connection.
 */
import { chmodSync, unlinkSync } from 'node:fs';
import net from 'node:net';

export interface Received {
  conn: number;
  msg: any;
  at: number;
}

/** A minimal bridge side of the per-container socket: newline-delimited JSON-RPC 2.0. */
export class FakeBridge {
  readonly received: Received[] = [];
  private server: net.Server | null = null;
  private readonly sockets: net.Socket[] = [];
  private connCount = 0;
  private nextId = 1;
  private readonly pending = new Map<number, (msg: any) => void>();
  /** Bad lines: anything the agent sent that is not one JSON object per line. */
  readonly framingErrors: string[] = [];

  constructor(readonly socketPath: string) {}

  async listen(): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    chmodSync(this.socketPath, 0o666);
    this.server = server;
  }

  /** Closes the listener and every connection and removes the socket file, like a dying bridge. */
  async close(): Promise<void> {
    for (const s of this.sockets.splice(0)) s.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      unlinkSync(this.socketPath);
    } catch {
      // already gone
    }
  }

  get connections(): number {
    return this.connCount;
  }

  /** Calls a method on the agent over its most recent connection. */
  call(method: string, params?: unknown, timeoutMs = 3000): Promise<any> {
    const socket = this.sockets[this.sockets.length - 1];
    if (!socket) return Promise.reject(new Error('no agent connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer`));
      }, timeoutMs);
      this.pending.set(id, (msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
      socket.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  }

  /** Requests (or notifications) the agent sent, optionally of one method. */
  requests(method?: string): Received[] {
    return this.received.filter((r) => 'method' in r.msg && (!method || r.msg.method === method));
  }

  private accept(socket: net.Socket): void {
    const conn = ++this.connCount;
    this.sockets.push(socket);
    socket.setEncoding('utf8');
    let buf = '';
    socket.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: any;
        try {
          msg = JSON.parse(line);
        } catch {
          this.framingErrors.push(line);
          continue;
        }
        if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
          this.framingErrors.push(line);
          continue;
        }
        this.received.push({ conn, msg, at: Date.now() });
        if ('method' in msg) {
          if (msg.id !== undefined) {
            socket.write(
              `${JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { ok: true } })}\n`,
            );
          }
        } else if (typeof msg.id === 'number') {
          this.pending.get(msg.id)?.(msg);
          this.pending.delete(msg.id);
        }
      }
    });
    socket.on('error', () => undefined);
  }
}
