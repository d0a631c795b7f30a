/**
 * The socket API's methods over HTTP: each runs through the bridge's own dispatcher in-process,
 * so params, behaviour and messages are those of docs/api.md; only the error codes are the
 * gateway's (the table below). Which roles may call each is gateway/scopes.ts.
 */
import type { RpcDispatcher } from '../../rpc/dispatcher';
import { ErrorCode } from '../../rpc/errors';
import { GatewayError, type GatewayErrorCode, type GatewayMethods } from '../protocol';
import { SOCKET_METHOD_SCOPES } from '../scopes';

/** JSON-RPC code → gateway code; anything else is INTERNAL (with the socket's message). */
export const RPC_TO_GATEWAY_CODE: Readonly<Record<number, GatewayErrorCode>> = {
  [ErrorCode.ParseError]: 'BAD_REQUEST',
  [ErrorCode.InvalidRequest]: 'BAD_REQUEST',
  [ErrorCode.InvalidParams]: 'BAD_REQUEST',
  [ErrorCode.TtlExceeded]: 'BAD_REQUEST',
  [ErrorCode.MethodNotFound]: 'NOT_FOUND',
  [ErrorCode.ContainerStopped]: 'NOT_FOUND',
  [ErrorCode.KeyNotFound]: 'NOT_FOUND',
  [ErrorCode.SessionNotFound]: 'NOT_FOUND',
  [ErrorCode.RoomAccessDenied]: 'FORBIDDEN',
  [ErrorCode.SecurityPolicyViolation]: 'FORBIDDEN',
  [ErrorCode.BudgetExceeded]: 'FORBIDDEN',
  [ErrorCode.RateLimitExceeded]: 'RATE_LIMITED',
  [ErrorCode.MaxConcurrentCalls]: 'RUN_UNAVAILABLE',
  [ErrorCode.ContainerRunning]: 'RUN_UNAVAILABLE',
  [ErrorCode.InternalError]: 'INTERNAL',
  [ErrorCode.VoiceInternal]: 'INTERNAL',
};

/** Registers every socket method that has a row in SOCKET_METHOD_SCOPES and exists on `dispatcher`. */
export function registerBridgeMethods(
  methods: GatewayMethods,
  deps: { dispatcher: Pick<RpcDispatcher, 'call' | 'hasMethod'> },
): void {
  for (const name of Object.keys(SOCKET_METHOD_SCOPES)) {
    if (!deps.dispatcher.hasMethod(name)) continue;
    methods.add(name, async (params) => {
      const answer = await deps.dispatcher.call(name, params);
      if (answer.ok) return answer.result;
      const code = RPC_TO_GATEWAY_CODE[answer.error.code] ?? 'INTERNAL';
      // RATE_LIMITED always carries a Retry-After; the socket's limits are per minute.
      throw new GatewayError(code, answer.error.message, code === 'RATE_LIMITED' ? 60 : undefined);
    });
  }
}
