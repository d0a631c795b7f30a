/**
 * The gateway's wire contract: the envelope of `POST /rpc`, its error codes, and what a method
 * handler sees of its caller. Method modules (gateway/methods/*.ts) register handlers on a
 * `GatewayMethods` table; gateway/server.ts runs the guards, then the handler, and writes the
 * answer and its audit entry. Handlers throw `GatewayError` for anything the client should see;
 * anything else is answered `INTERNAL` with a fixed message.
 */

/** The envelope version the gateway speaks; any other `version` is PROTO_VERSION_UNSUPPORTED. */
export const GATEWAY_PROTOCOL_VERSION = '2.0';

export const GATEWAY_ERROR_CODES = [
  'PROTO_VERSION_UNSUPPORTED',
  'AUTH_MISSING',
  'AUTH_INVALID',
  'AUTH_ROLE_MISMATCH',
  'RATE_LIMITED',
  'RISK_BLOCKED',
  'BAD_REQUEST',
  'NOT_FOUND',
  'RUN_UNAVAILABLE',
  'FORBIDDEN',
  'INTERNAL',
] as const;
export type GatewayErrorCode = (typeof GATEWAY_ERROR_CODES)[number];

/** The HTTP status each code is answered with (the body always carries the envelope). */
export const GATEWAY_HTTP_STATUS: Record<GatewayErrorCode, number> = {
  PROTO_VERSION_UNSUPPORTED: 400,
  AUTH_MISSING: 401,
  AUTH_INVALID: 401,
  AUTH_ROLE_MISMATCH: 403,
  RATE_LIMITED: 429,
  RISK_BLOCKED: 403,
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  RUN_UNAVAILABLE: 503,
  FORBIDDEN: 403,
  INTERNAL: 500,
};

export class GatewayError extends Error {
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    /** Seconds a client should wait before retrying (RATE_LIMITED): the Retry-After header. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'GatewayError';
  }
}

export const badRequest = (message: string): GatewayError =>
  new GatewayError('BAD_REQUEST', message);
export const notFound = (message: string): GatewayError => new GatewayError('NOT_FOUND', message);

/** `local`: loopback in auth mode none; `admin`: loopback authenticated; `remote`: the rest. */
export type GatewayRole = 'local' | 'remote' | 'admin';

export interface GatewayCaller {
  role: GatewayRole;
  /**
   * Who is calling, for rate limits and audit: `token:<token id>`, `password`, `local`, or
   * `identity:<trusted identity header>`. Never a secret.
   */
  subject: string;
  /** The request's `req_<uuid>`, also in the answer and the audit entry. */
  auditId: string;
  /** The peer address the request came from (after trusted-proxy resolution). */
  address: string;
}

export type GatewayHandler = (params: unknown, caller: GatewayCaller) => Promise<unknown>;

/** name → handler; gateway/scopes.ts says which roles may call each name. */
export class GatewayMethods {
  private readonly handlers = new Map<string, GatewayHandler>();

  add(name: string, handler: GatewayHandler): void {
    if (this.handlers.has(name)) throw new Error(`gateway method ${name} registered twice`);
    this.handlers.set(name, handler);
  }

  get(name: string): GatewayHandler | undefined {
    return this.handlers.get(name);
  }

  names(): string[] {
    return [...this.handlers.keys()];
  }
}

export interface GatewayRequest {
  id?: string | number | null;
  version: string;
  method: string;
  params?: unknown;
}

export type GatewayResponse =
  | { id?: string | number | null; auditId: string; ok: true; result: unknown }
  | {
      id?: string | number | null;
      auditId: string;
      ok: false;
      error: { code: GatewayErrorCode; message: string };
    };
