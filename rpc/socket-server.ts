import { chmod, chown, lstat, mkdir, stat, unlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import type { RpcDispatcher, CallContext } from './dispatcher';
import { ErrorCode } from './errors';
import { JsonStreamFramer } from './framer';

export interface SocketServerOptions {
  socketPath: string;
  maxMessageBytes: number;
  idleTimeoutMs: number;
  /**
   * A client that has had every answer, has nothing pending (no request in flight, no partial
   * request buffered, no subscription) and stays quiet this long is closed, so one-shot clients
   * that never half-close (netcat without -N) return at once. 0 keeps such connections open
   * until `idleTimeoutMs`; per-container sockets use 0 (agents hold their connection).
   */
  quietCloseMs: number;
  maxConnections: number;
  /** Requests answered concurrently per connection before reading from it pauses. */
  maxInFlightPerConnection: number;
  /**
   * Group that may connect besides the owner (the agent's gid for a per-container socket); it
   * gets the directory (0750) and the socket (0660). Applied only when running as root.
   */
  groupId?: number;
  /**
   * The peer answers requests of ours on the same connection (agents on their per-container
   * socket): JSON-RPC responses it sends are matched to `request` calls instead of being
   * dispatched as (invalid) requests. Off for the bridge's own socket, whose clients only ask.
   */
  peerRequests?: boolean;
}

/** Why a request to the peer (`RpcSocketServer.request`) got no result. */
export type PeerRequestFailure = 'no_peer' | 'timeout' | 'closed' | 'error';

/** A request to the peer that failed; `rpcCode`/`message` carry the peer's own error. */
export class PeerRequestError extends Error {
  constructor(
    readonly reason: PeerRequestFailure,
    message: string,
    readonly rpcCode?: number,
  ) {
    super(message);
    this.name = 'PeerRequestError';
  }
}

/** Thrown when another live bridge already answers on the socket path. */
export class SocketInUseError extends Error {
  constructor(readonly socketPath: string) {
    super(
      `another bridge is already answering on ${socketPath}; stop it first or set ARMORCLAW_SOCKET`,
    );
    this.name = 'SocketInUseError';
  }
}

/**
 * Serves JSON-RPC 2.0 on a Unix socket. Responses on one connection go out in the order their
 * requests arrived, each followed by a newline, so line-reading clients stay in step.
 */
export class RpcSocketServer {
  private server?: net.Server;
  private readonly connections = new Set<Connection>();
  private readonly connectionListeners: Array<(ctx: CallContext) => void> = [];
  private nextConnectionId = 1;
  private closing = false;

  constructor(
    private readonly dispatcher: RpcDispatcher,
    private readonly options: SocketServerOptions,
    private readonly log: Logger,
  ) {}

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Calls `fn` with the context of every new connection (to push a backlog to it, say). */
  onConnection(fn: (ctx: CallContext) => void): void {
    this.connectionListeners.push(fn);
  }

  /**
   * Sends a JSON-RPC request to the peer on its newest connection (an agent that reconnected
   * leaves the old one behind) and resolves with its result. Needs `peerRequests`. Rejects with
   * a PeerRequestError: `no_peer` (nobody connected), `timeout`, `closed` (the connection went
   * away first) or `error` (the peer answered with an error).
   */
  request(method: string, params: unknown, timeoutMs: number): Promise<unknown> {
    if (!this.options.peerRequests) {
      return Promise.reject(new Error('this socket does not take answers from its peer'));
    }
    let newest: Connection | undefined;
    for (const c of this.connections) if (!newest || c.id > newest.id) newest = c;
    if (!newest || this.closing) {
      return Promise.reject(new PeerRequestError('no_peer', 'no agent is connected'));
    }
    return newest.request(method, params, timeoutMs);
  }

  /** Sends a notification to every open connection; returns how many took it. */
  notifyAll(method: string, params: unknown): number {
    let delivered = 0;
    for (const c of this.connections) if (c.ctx.notify(method, params)) delivered++;
    return delivered;
  }

  async listen(): Promise<void> {
    const { socketPath } = this.options;
    await prepareSocketDirectory(path.dirname(socketPath), this.log);
    await removeStaleSocket(socketPath);

    const server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    server.maxConnections = this.options.maxConnections;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err }, 'socket server error'));
    // Owner and group only (API spec, "Security Considerations").
    await chmod(socketPath, 0o660);
    if (this.options.groupId !== undefined && process.getuid?.() === 0) {
      await chown(path.dirname(socketPath), 0, this.options.groupId);
      await chown(socketPath, 0, this.options.groupId);
    }
    this.server = server;
  }

  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), then removes the socket. */
  async close(graceMs = 5_000): Promise<void> {
    if (!this.server || this.closing) return;
    this.closing = true;
    const server = this.server;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.race([
      Promise.all([...this.connections].map((c) => c.drainAndEnd())),
      delay(graceMs),
    ]);
    for (const c of this.connections) c.destroy();
    await closed;
    await unlink(this.options.socketPath).catch(() => undefined);
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const connection = new Connection(
      this.nextConnectionId++,
      socket,
      this.dispatcher,
      this.options,
      this.log,
    );
    this.connections.add(connection);
    socket.once('close', () => this.connections.delete(connection));
    for (const fn of this.connectionListeners) fn(connection.ctx);
  }
}

/** Notifications are dropped for a client with this much unread output (it is not reading). */
const MAX_UNREAD_NOTIFICATION_BYTES = 1024 * 1024;

interface PendingRequest {
  method: string;
  resolve(result: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** A JSON-RPC response (to one of our requests), or undefined for anything else. */
function asResponse(text: string): { id: unknown; result?: unknown; error?: unknown } | undefined {
  // A text with neither key is no response: it goes to the dispatcher unparsed here.
  if (!text.includes('"result"') && !text.includes('"error"')) return undefined;
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m) || 'method' in m) return undefined;
  if (!('result' in m) && !('error' in m)) return undefined;
  return m as { id: unknown; result?: unknown; error?: unknown };
}

/** One client connection: frames its bytes, answers in order, applies backpressure. */
class Connection {
  private readonly framer: JsonStreamFramer;
  /** The tail of the response chain: each answer is written after the one before it. */
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private keptOpen = 0;
  private readEnded = false;
  private quietTimer?: NodeJS.Timeout;
  /** Closed for quiet: bytes that still arrive are not read, so no request runs unanswered. */
  private quietClosed = false;
  /** Our requests to the peer awaiting its answer, by id (`peerRequests` only). */
  private readonly pending = new Map<string, PendingRequest>();
  private nextRequestId = 1;
  readonly ctx: CallContext;

  constructor(
    readonly id: number,
    private readonly socket: net.Socket,
    private readonly dispatcher: RpcDispatcher,
    private readonly options: SocketServerOptions,
    private readonly log: Logger,
  ) {
    this.framer = new JsonStreamFramer(options.maxMessageBytes);
    this.ctx = {
      connectionId: id,
      notify: (method, params) => {
        if (socket.writableLength > MAX_UNREAD_NOTIFICATION_BYTES) return false;
        this.write({ jsonrpc: '2.0', method, params });
        return true;
      },
      onClose: (fn) => socket.once('close', fn),
      keepOpen: () => {
        this.keptOpen++;
        this.disarmQuietClose();
        let released = false;
        return () => {
          if (!released) this.keptOpen--;
          released = true;
          this.armQuietClose();
        };
      },
    };
    socket.setTimeout(options.idleTimeoutMs);
    socket.on('timeout', () => {
      if (this.inFlight === 0 && this.keptOpen === 0 && this.pending.size === 0) {
        this.log.debug({ connectionId: id }, 'idle connection closed');
        socket.destroy();
      }
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => {
      this.disarmQuietClose();
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new PeerRequestError('closed', `${p.method}: the connection closed first`));
      }
      this.pending.clear();
    });
    socket.on('end', () => {
      this.readEnded = true;
      this.disarmQuietClose();
      for (const frame of this.framer.end()) {
        if (frame.kind !== 'json') continue;
        const response = this.options.peerRequests ? asResponse(frame.text) : undefined;
        if (response) this.settle(response);
        else this.enqueue(frame.text);
      }
      void this.tail.then(() => this.socket.end());
    });
    // A client that vanishes mid-request harms nothing: handlers run to completion, writes to a
    // destroyed socket are dropped.
    socket.on('error', (err) => this.log.debug({ err, connectionId: id }, 'connection error'));
  }

  /** See RpcSocketServer.request. */
  request(method: string, params: unknown, timeoutMs: number): Promise<unknown> {
    if (this.socket.destroyed || !this.socket.writable) {
      return Promise.reject(new PeerRequestError('closed', `${method}: the connection is closed`));
    }
    // Our ids are strings with a prefix, so they never look like a peer's own numbering.
    const id = `bridge-${this.nextRequestId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PeerRequestError('timeout', `${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { method, resolve, reject, timer });
      this.write({ jsonrpc: '2.0', id, method, params });
    });
  }

  /** Settles one of our requests with the peer's answer; an unknown id is dropped. */
  private settle(response: { id: unknown; result?: unknown; error?: unknown }): void {
    const p = typeof response.id === 'string' ? this.pending.get(response.id) : undefined;
    if (!p) {
      this.log.debug({ connectionId: this.id }, 'answer to no pending request dropped');
      return;
    }
    this.pending.delete(response.id as string);
    clearTimeout(p.timer);
    if ('error' in response) {
      const e = (response.error ?? {}) as { code?: unknown; message?: unknown };
      p.reject(
        new PeerRequestError(
          'error',
          `${p.method}: ${typeof e.message === 'string' ? e.message.slice(0, 500) : 'error'}`,
          typeof e.code === 'number' ? e.code : undefined,
        ),
      );
    } else {
      p.resolve(response.result);
    }
  }

  private onData(chunk: Buffer): void {
    if (this.quietClosed) return;
    this.disarmQuietClose();
    for (const frame of this.framer.push(chunk)) {
      if (frame.kind === 'too-large') {
        this.log.warn({ connectionId: this.id, bytes: frame.bytes }, 'request over size limit');
        this.socket.pause();
        const response = {
          jsonrpc: '2.0',
          id: null,
          error: {
            code: ErrorCode.InvalidRequest,
            message: `Invalid request: message larger than ${this.options.maxMessageBytes} bytes`,
          },
        };
        void this.tail.then(() => {
          this.write(response);
          this.socket.end();
          setTimeout(() => this.socket.destroy(), 1_000).unref();
        });
        return;
      }
      const response = this.options.peerRequests ? asResponse(frame.text) : undefined;
      if (response) this.settle(response);
      else this.enqueue(frame.text);
    }
  }

  private enqueue(text: string): void {
    this.inFlight++;
    if (this.inFlight >= this.options.maxInFlightPerConnection) this.socket.pause();
    const answer = this.dispatcher.handleText(text, this.ctx);
    this.tail = this.tail.then(async () => {
      const response = await answer;
      if (response !== null) this.write(response);
      this.inFlight--;
      if (this.inFlight < this.options.maxInFlightPerConnection && !this.readEnded) {
        this.socket.resume();
      }
      this.armQuietClose();
    });
  }

  /** Whether the client has had every answer and has nothing more under way. */
  private get settled(): boolean {
    return this.inFlight === 0 && this.keptOpen === 0 && this.framer.pendingBytes === 0;
  }

  private armQuietClose(): void {
    const quietMs = this.options.quietCloseMs;
    if (quietMs <= 0 || this.readEnded || this.socket.destroyed || !this.settled) return;
    this.disarmQuietClose();
    this.quietTimer = setTimeout(() => {
      this.quietTimer = undefined;
      if (!this.settled || this.readEnded) return;
      this.log.debug({ connectionId: this.id }, 'quiet connection closed after its answers');
      this.quietClosed = true;
      // end() flushes what is queued and sends FIN; a client that never closes its side is cut
      // a moment later.
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1_000).unref();
    }, quietMs);
    this.quietTimer.unref();
  }

  private disarmQuietClose(): void {
    if (this.quietTimer) clearTimeout(this.quietTimer);
    this.quietTimer = undefined;
  }

  private write(message: unknown): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    const ok = this.socket.write(JSON.stringify(message) + '\n');
    if (!ok && !this.readEnded) {
      // The client is not reading its answers: stop reading its requests until it catches up.
      this.socket.pause();
      this.socket.once('drain', () => this.socket.resume());
    }
  }

  /**
   * For shutdown: bytes a client sent before the signal may still sit in the kernel buffer, so
   * keep reading until the connection has been quiet for `quietMs`, answer everything, then end.
   */
  async drainAndEnd(quietMs = 50): Promise<void> {
    let lastData = Date.now();
    const onData = () => (lastData = Date.now());
    this.socket.on('data', onData);
    while (Date.now() - lastData < quietMs && !this.socket.destroyed) {
      await delay(quietMs);
    }
    this.socket.off('data', onData);
    this.socket.pause();
    await this.tail;
    await new Promise<void>((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.end(() => resolve());
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * The socket's directory is the bridge's (0750); a shared directory such as /tmp (sticky,
 * world-writable) is left as it is.
 */
async function prepareSocketDirectory(dir: string, log: Logger): Promise<void> {
  const existing = await stat(dir).catch(() => undefined);
  if (!existing) {
    await mkdir(dir, { recursive: true, mode: 0o750 });
    await chmod(dir, 0o750);
    return;
  }
  if (!existing.isDirectory()) throw new Error(`socket directory ${dir} is not a directory`);
  const shared = (existing.mode & 0o1000) !== 0 || (existing.mode & 0o002) !== 0;
  if (shared) {
    log.warn({ dir }, 'socket directory is shared; set ARMORCLAW_SOCKET to a private directory');
  } else if (existing.uid === process.getuid?.()) {
    await chmod(dir, 0o750);
  }
}

/**
 * Fails fast when another bridge answers on `socketPath` or a non-socket file sits there, so a
 * second bridge refuses before it starts anything else.
 */
export async function assertSocketPathFree(socketPath: string): Promise<void> {
  const existing = await lstat(socketPath).catch(() => undefined);
  if (!existing) return;
  if (!existing.isSocket()) {
    throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
  }
  if (await socketAnswers(socketPath)) throw new SocketInUseError(socketPath);
}

/** Replaces a socket file left by a dead bridge; refuses when a live bridge answers on it. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  const existing = await lstat(socketPath).catch(() => undefined);
  if (!existing) return;
  if (!existing.isSocket()) {
    throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
  }
  if (await socketAnswers(socketPath)) throw new SocketInUseError(socketPath);
  await unlink(socketPath);
}

function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
