/**
 * The agent's end of its bridge socket: JSON-RPC 2.0 in both directions on one connection. The
 * agent calls the bridge (`secrets.ack`, `notify`, `heartbeat`, `matrix.*`) and answers the
 * bridge's calls from a method table. Incoming bytes are split into JSON texts by the bridge's
 * own framer (rpc/framer.ts); outgoing messages are one JSON text per line.
 */
import net from 'node:net';
import { JsonStreamFramer } from '../rpc/framer';
import { errorCode, log } from './log';

type RpcId = string | number | null;

const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
const INTERNAL_ERROR = -32603;

/** Largest message the bridge may send; a larger one drops the connection. */
const MAX_MESSAGE_BYTES = 1 << 20;

/** An error a handler throws to answer with a specific JSON-RPC error. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

/** The bridge did not answer in time; the connection is dropped and re-established. */
export class RpcTimeout extends Error {}
/** The connection closed before the answer came. */
export class RpcDisconnected extends Error {}

export type NotifyKind = 'status' | 'progress' | 'error';

/** What a handler may use besides its params. */
export interface HandlerContext {
  /** Sends a `notify` to the bridge (fire and forget). */
  notify(kind: NotifyKind, message: string): void;
  /** Calls a bridge method on the current connection. */
  call(method: string, params: unknown): Promise<unknown>;
}

export type Handler = (params: unknown, ctx: HandlerContext) => unknown;

/** A handler's params as an object; anything else is answered with -32602. */
export function objectParams(params: unknown): Record<string, unknown> {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new RpcError(INVALID_PARAMS, 'params must be an object');
  }
  return params as Record<string, unknown>;
}

interface Pending {
  resolve(result: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** One connection to the bridge: calls out, answers calls in. */
export class RpcConnection {
  private nextId = 1;
  private readonly pending = new Map<RpcId, Pending>();
  private readonly framer = new JsonStreamFramer(MAX_MESSAGE_BYTES);
  readonly closed: Promise<void>;

  constructor(
    private readonly socket: net.Socket,
    private readonly table: ReadonlyMap<string, Handler>,
    private readonly ctx: HandlerContext,
  ) {
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.framer.push(chunk)) {
        if (frame.kind === 'too-large') {
          log('bridge sent an oversized message; reconnecting');
          socket.destroy();
          return;
        }
        this.receive(frame.text);
      }
    });
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(new RpcDisconnected('connection closed'));
        }
        this.pending.clear();
        resolve();
      });
    });
    socket.on('error', () => {
      // 'close' follows and is what matters.
    });
  }

  get isOpen(): boolean {
    return !this.socket.destroyed;
  }

  call(method: string, params: unknown, timeoutMs: number): Promise<unknown> {
    if (!this.isOpen) return Promise.reject(new RpcDisconnected('not connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcTimeout(`${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ jsonrpc: '2.0', id, method, params });
    });
  }

  /** Ends the connection after what was written is flushed. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private send(message: unknown): void {
    if (this.isOpen) this.socket.write(`${JSON.stringify(message)}\n`);
  }

  private receive(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.send({ jsonrpc: '2.0', id: null, error: { code: PARSE_ERROR, message: 'Parse error' } });
      return;
    }
    if (Array.isArray(message)) {
      if (message.length === 0) {
        this.send(errorResponse(null, INVALID_REQUEST, 'Invalid Request'));
        return;
      }
      // handle() never rejects: a failing handler becomes an error response.
      void Promise.all(message.map((m) => this.handle(m))).then((answers) => {
        const replies = answers.filter((a) => a !== undefined);
        if (replies.length) this.send(replies);
      });
      return;
    }
    // handle() never rejects: a failing handler becomes an error response.
    void this.handle(message).then((reply) => {
      if (reply !== undefined) this.send(reply);
    });
  }

  /** Returns the reply to send, or undefined (notifications, responses to our calls). */
  private async handle(message: unknown): Promise<unknown> {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      return errorResponse(null, INVALID_REQUEST, 'Invalid Request');
    }
    const m = message as Record<string, unknown>;
    const id = m.id;
    const validId =
      id === undefined || id === null || typeof id === 'string' || typeof id === 'number';
    if (!('method' in m)) {
      if (('result' in m || 'error' in m) && validId && id !== undefined) {
        this.settle(id as RpcId, m);
        return undefined;
      }
      return errorResponse(null, INVALID_REQUEST, 'Invalid Request');
    }
    if (m.jsonrpc !== '2.0' || typeof m.method !== 'string' || !validId) {
      return errorResponse(
        validId && id !== undefined ? (id as RpcId) : null,
        INVALID_REQUEST,
        'Invalid Request',
      );
    }
    const isNotification = id === undefined;
    const handler = this.table.get(m.method);
    if (!handler) {
      return isNotification
        ? undefined
        : errorResponse(id as RpcId, METHOD_NOT_FOUND, 'Method not found');
    }
    try {
      const result = await handler(m.params, this.ctx);
      return isNotification ? undefined : { jsonrpc: '2.0', id, result: result ?? null };
    } catch (err) {
      if (isNotification) return undefined;
      if (err instanceof RpcError)
        return errorResponse(id as RpcId, err.code, err.message, err.data);
      log(`${m.method} failed (${errorCode(err)})`);
      return errorResponse(id as RpcId, INTERNAL_ERROR, 'Internal error');
    }
  }

  private settle(id: RpcId, m: Record<string, unknown>): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in m) {
      const e = (m.error ?? {}) as { code?: unknown; message?: unknown; data?: unknown };
      p.reject(
        new RpcError(
          typeof e.code === 'number' ? e.code : INTERNAL_ERROR,
          typeof e.message === 'string' ? e.message : 'error',
          e.data,
        ),
      );
    } else {
      p.resolve(m.result);
    }
  }
}

function errorResponse(id: RpcId, code: number, message: string, data?: unknown): unknown {
  const error = data === undefined ? { code, message } : { code, message, data };
  return { jsonrpc: '2.0', id, error };
}

/** Opens the bridge socket; rejects when nothing listens there (yet). */
export function connect(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    const onError = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
