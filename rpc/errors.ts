/**
 * The one catalogue of error codes the bridge sends to clients (docs/api.md, "Error codes"). Nothing else reaches a client: handlers throw
 * `RpcError`, and anything that is not an `RpcError` is logged and answered as InternalError
 * with a fixed message, so no stack trace, path or library text leaks.
 */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  ContainerRunning: -1,
  ContainerStopped: -2,
  KeyNotFound: -3,
  VoiceInternal: -32000,
  RoomAccessDenied: -32001,
  RateLimitExceeded: -32002,
  MaxConcurrentCalls: -32003,
  SessionNotFound: -32004,
  SecurityPolicyViolation: -32005,
  BudgetExceeded: -32006,
  TtlExceeded: -32007,
} as const;

export type ErrorCodeName = keyof typeof ErrorCode;
export type ErrorCodeValue = (typeof ErrorCode)[ErrorCodeName];

/** The default message of each code: the spec's names. */
export const defaultMessage: Record<ErrorCodeValue, string> = {
  [ErrorCode.ParseError]: 'Parse error',
  [ErrorCode.InvalidRequest]: 'Invalid request',
  [ErrorCode.MethodNotFound]: 'Method not found',
  [ErrorCode.InvalidParams]: 'Invalid params',
  [ErrorCode.InternalError]: 'Internal error',
  [ErrorCode.ContainerRunning]: 'Container operation failed',
  [ErrorCode.ContainerStopped]: 'Container not found',
  [ErrorCode.KeyNotFound]: 'Key not found',
  [ErrorCode.VoiceInternal]: 'Internal error',
  [ErrorCode.RoomAccessDenied]: 'Room access denied',
  [ErrorCode.RateLimitExceeded]: 'Rate limit exceeded',
  [ErrorCode.MaxConcurrentCalls]: 'Max concurrent calls',
  [ErrorCode.SessionNotFound]: 'Session not found',
  [ErrorCode.SecurityPolicyViolation]: 'Security policy violation',
  [ErrorCode.BudgetExceeded]: 'Budget exceeded',
  [ErrorCode.TtlExceeded]: 'TTL exceeded',
};

/** An error meant for the client: its code, message and data go out on the wire as they are. */
export class RpcError extends Error {
  constructor(
    readonly code: ErrorCodeValue,
    message: string = defaultMessage[code],
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

export const invalidParams = (message: string, data?: unknown): RpcError =>
  new RpcError(ErrorCode.InvalidParams, message, data);

export const internalError = (
  message: string = defaultMessage[ErrorCode.InternalError],
): RpcError => new RpcError(ErrorCode.InternalError, message);

export interface WireError {
  code: number;
  message: string;
  data?: unknown;
}

/** What goes on the wire for any thrown value. Non-RpcErrors never expose their text. */
export function toWireError(err: unknown): WireError {
  if (err instanceof RpcError) {
    return err.data === undefined
      ? { code: err.code, message: err.message }
      : { code: err.code, message: err.message, data: err.data };
  }
  return { code: ErrorCode.InternalError, message: defaultMessage[ErrorCode.InternalError] };
}
