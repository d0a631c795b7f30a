/**
 * The CLI's JSON-RPC client: one connection per call — connect, send one request, read one
 * answer, close. The bridge ends every answer with a newline, but the answer is framed by JSON
 * structure (as the bridge frames requests), so a large answer split across reads, or a line
 * break inside a string, cannot cut it short.
 */
import net from 'node:net';
import path from 'node:path';
import { JsonStreamFramer } from '../rpc/framer';

/** Largest answer read (a `webrtc.get_audit_log` of 1000 entries is well under this). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** Nobody answers on the socket: exit code 3. */
export class BridgeUnreachableError extends Error {}

/** The bridge answered with a JSON-RPC error object. */
export class RpcCallError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

export interface CallOptions {
  timeoutMs?: number;
}

export type Call = (method: string, params?: unknown) => Promise<unknown>;

export const START_HINT = `start it with \`bash scripts/start.sh\` in ${path.resolve(__dirname, '..')}`;

/** Sends `method(params)` to the bridge on `socketPath` and resolves to its result. */
export function callBridge(
  socketPath: string,
  method: string,
  params?: unknown,
  opts: CallOptions = {},
): Promise<unknown> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const request: Record<string, unknown> = { jsonrpc: '2.0', id: 1, method };
  if (params !== undefined) request.params = params;
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    const framer = new JsonStreamFramer(MAX_ANSWER_BYTES);
    let done = false;
    const finish = (err: Error | null, value?: unknown) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `no answer from the bridge within ${Math.round(timeoutMs / 1000)} s ` +
              `(${method}); the request may still complete`,
          ),
        ),
      timeoutMs,
    );
    socket.once('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk: Buffer) => {
      for (const frame of framer.push(chunk)) {
        if (frame.kind === 'too-large') {
          finish(new Error(`the bridge's answer is larger than ${MAX_ANSWER_BYTES} bytes`));
          return;
        }
        try {
          finish(null, answerOf(JSON.parse(frame.text)));
        } catch (err) {
          finish(err as Error);
        }
        return;
      }
    });
    socket.once('error', (err: NodeJS.ErrnoException) => finish(connectError(socketPath, err)));
    socket.once('close', () =>
      finish(
        new BridgeUnreachableError(
          `the bridge at ${socketPath} closed the connection without answering ` +
            '(it may be shutting down)',
        ),
      ),
    );
  });
}

function answerOf(response: unknown): unknown {
  if (typeof response !== 'object' || response === null || Array.isArray(response)) {
    throw new Error('the bridge sent something that is not a JSON-RPC response');
  }
  const r = response as {
    result?: unknown;
    error?: { code?: unknown; message?: unknown; data?: unknown };
  };
  if (r.error !== undefined) {
    const code = typeof r.error.code === 'number' ? r.error.code : 0;
    const message = typeof r.error.message === 'string' ? r.error.message : 'unknown error';
    throw new RpcCallError(code, message, r.error.data);
  }
  if (!('result' in r)) throw new Error('the bridge sent a response with neither result nor error');
  return r.result;
}

function connectError(socketPath: string, err: NodeJS.ErrnoException): Error {
  switch (err.code) {
    case 'ENOENT':
      return new BridgeUnreachableError(
        `cannot reach the bridge: no socket at ${socketPath}; is the bridge running? ${START_HINT}`,
      );
    case 'ECONNREFUSED':
    case 'ENOTSOCK':
      return new BridgeUnreachableError(
        `cannot reach the bridge: nothing answers on ${socketPath} (a bridge that stopped?); ` +
          START_HINT,
      );
    case 'EACCES':
    case 'EPERM':
      return new BridgeUnreachableError(
        `cannot reach the bridge: permission denied on ${socketPath}; run as the bridge's user ` +
          `or root, or as a member of the socket's group`,
      );
    case 'ECONNRESET':
    case 'EPIPE':
      return new BridgeUnreachableError(
        `the bridge at ${socketPath} dropped the connection before answering`,
      );
    default:
      return new BridgeUnreachableError(`cannot reach the bridge on ${socketPath}: ${err.message}`);
  }
}
