import {
  JSONRPCServer,
  createJSONRPCErrorResponse,
  type JSONRPCResponse,
  type JSONRPCServerMiddleware,
} from 'json-rpc-2.0';
import type { Logger } from 'pino';
import { ErrorCode, RpcError, defaultMessage, toWireError, type WireError } from './errors';

/** What a method handler sees besides its params: the connection it was called on. */
export interface CallContext {
  connectionId: number;
  /**
   * Sends a JSON-RPC notification to the caller's connection (for subscriptions). Returns false
   * when it was dropped because the client is not reading (its answers would pile up).
   */
  notify(method: string, params: unknown): boolean;
  /** Runs `fn` once when the caller's connection closes. */
  onClose(fn: () => void): void;
  /**
   * Exempts the connection from the idle timeout (a subscription waiting for pushes is not
   * idle); returns the function that ends the exemption.
   */
  keepOpen(): () => void;
}

export type MethodHandler = (params: unknown, ctx: CallContext) => unknown | Promise<unknown>;

type Id = string | number | null;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function errorResponse(id: Id, code: number, message: string, data?: unknown): JSONRPCResponse {
  return createJSONRPCErrorResponse(id, code, message, data);
}

/**
 * Turns parsed JSON texts into JSON-RPC responses through json-rpc-2.0's server, after
 * checking each request's shape ourselves (json-rpc-2.0 1.8 answers a one-element batch with
 * a bare object, throws on `[null]`, and turns thrown Errors into code 0 with their text).
 */
export class RpcDispatcher {
  private readonly server: JSONRPCServer<CallContext>;

  constructor(private readonly log: Logger) {
    this.server = new JSONRPCServer<CallContext>({ errorListener: () => undefined });
    const mapErrors: JSONRPCServerMiddleware<CallContext> = async (next, request, ctx) => {
      try {
        return await next(request, ctx);
      } catch (err) {
        if (!(err instanceof RpcError)) {
          this.log.error({ err, method: request.method }, 'method failed');
        }
        if (request.id === undefined) return null; // a notification is owed no answer
        const wire = toWireError(err);
        return errorResponse(request.id, wire.code, wire.message, wire.data);
      }
    };
    this.server.applyMiddleware(mapErrors);
  }

  /** Registers a method; `handler` throws RpcError for anything the client should see. */
  addMethod(name: string, handler: MethodHandler): void {
    this.server.addMethod(name, (params, ctx) => handler(params, ctx));
  }

  hasMethod(name: string): boolean {
    return this.server.hasMethod(name);
  }

  /**
   * Calls `method` in-process, as the HTTP gateway does: the result, or the error a socket client
   * would get. There is no connection behind the call, so subscriptions cannot push on it (the
   * gateway does not offer them).
   */
  async call(
    method: string,
    params: unknown,
  ): Promise<{ ok: true; result: unknown } | { ok: false; error: WireError }> {
    const request = { jsonrpc: '2.0', id: 0, method, ...(params === undefined ? {} : { params }) };
    const response = await this.handleOne(request, IN_PROCESS_CONTEXT);
    if (response === null) return { ok: true, result: null };
    if (response.error) {
      const { code, message, data } = response.error;
      return { ok: false, error: data === undefined ? { code, message } : { code, message, data } };
    }
    return { ok: true, result: response.result };
  }

  /**
   * Answers one frame of text. Returns the response to send (an object, or an array for a
   * batch) or null when nothing is owed (notifications only).
   */
  async handleText(
    text: string,
    ctx: CallContext,
  ): Promise<JSONRPCResponse | JSONRPCResponse[] | null> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return errorResponse(null, ErrorCode.ParseError, 'Parse error: invalid JSON');
    }
    if (Array.isArray(parsed)) {
      if (parsed.length === 0) {
        return errorResponse(null, ErrorCode.InvalidRequest, 'Invalid request: empty batch');
      }
      const answers = await Promise.all(parsed.map((item) => this.handleOne(item, ctx)));
      const responses = answers.filter((r): r is JSONRPCResponse => r !== null);
      return responses.length > 0 ? responses : null;
    }
    return this.handleOne(parsed, ctx);
  }

  private async handleOne(request: unknown, ctx: CallContext): Promise<JSONRPCResponse | null> {
    const problem = requestProblem(request);
    if (problem) {
      const id = isPlainObject(request) && isValidId(request.id) ? (request.id as Id) : null;
      return errorResponse(id, ErrorCode.InvalidRequest, `Invalid request: ${problem}`);
    }
    try {
      return await this.server.receive(request as never, ctx);
    } catch (err) {
      this.log.error({ err }, 'dispatch failed');
      const id = (request as { id?: Id }).id;
      if (id === undefined) return null;
      return errorResponse(id, ErrorCode.InternalError, defaultMessage[ErrorCode.InternalError]);
    }
  }
}

/** The context of an in-process call: no connection, nothing to notify, nothing to close. */
const IN_PROCESS_CONTEXT: CallContext = {
  connectionId: -1,
  notify: () => false,
  onClose: () => undefined,
  keepOpen: () => () => undefined,
};

function isValidId(id: unknown): boolean {
  return id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
}

/** Why a value is not a JSON-RPC 2.0 request, or null if it is one. */
function requestProblem(request: unknown): string | null {
  if (!isPlainObject(request)) return 'a request must be a JSON object';
  if (request.jsonrpc !== '2.0') return 'jsonrpc must be "2.0"';
  if (typeof request.method !== 'string' || request.method === '') {
    return 'method must be a non-empty string';
  }
  if ('id' in request && !isValidId(request.id)) return 'id must be a string, number or null';
  if ('params' in request && request.params !== null && typeof request.params !== 'object') {
    return 'params must be an object or an array';
  }
  return null;
}
