/**
 * The one catalogue of error codes the bridge sends to clients (docs/api.md, "Error codes"). Nothing else reaches a client: handlers throw
 * `RpcError`, and anything that is not an `RpcError` is logged and answered as InternalError
 * with a fixed message, so no stack trace, path or library text leaks.
 */
import { CallFailureType, ContainerFailureType } from '../workflows/definitions';

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

/**
 * What each failure type a workflow throws means on the wire, for container runs and calls
 * alike. `prefix` goes before the failure's own message; without one the message stands alone.
 */
const WORKFLOW_FAILURES: Record<string, { code: ErrorCodeValue; prefix?: string }> = {
  [ContainerFailureType.KeyNotFound]: { code: ErrorCode.InvalidParams, prefix: 'Invalid params' },
  [ContainerFailureType.KeyExpired]: { code: ErrorCode.InvalidParams, prefix: 'Invalid params' },
  [ContainerFailureType.ImageNotFound]: {
    code: ErrorCode.InternalError,
    prefix: 'Container creation failed',
  },
  [ContainerFailureType.InvalidSpec]: {
    code: ErrorCode.InternalError,
    prefix: 'Container creation failed',
  },
  [ContainerFailureType.StartFailed]: {
    code: ErrorCode.InternalError,
    prefix: 'Container creation failed',
  },
  [CallFailureType.RoomDenied]: { code: ErrorCode.RoomAccessDenied },
  [CallFailureType.RateLimited]: { code: ErrorCode.RateLimitExceeded },
  [CallFailureType.MaxConcurrent]: { code: ErrorCode.MaxConcurrentCalls },
  [CallFailureType.SecurityViolation]: { code: ErrorCode.SecurityPolicyViolation },
  [CallFailureType.BudgetExceeded]: { code: ErrorCode.BudgetExceeded },
  [CallFailureType.AgentUnavailable]: { code: ErrorCode.VoiceInternal, prefix: 'Internal error' },
  [CallFailureType.CallEnded]: { code: ErrorCode.VoiceInternal, prefix: 'Internal error' },
};

/**
 * The client's error for a failure a workflow threw (its `ApplicationFailure` type and message),
 * or `fallback` for a type the table does not name: a library's text never reaches a client.
 */
export function workflowFailureError(
  type: string | null | undefined,
  message: string,
  fallback: RpcError,
): RpcError {
  const known = type ? WORKFLOW_FAILURES[type] : undefined;
  if (!known) return fallback;
  return new RpcError(known.code, known.prefix ? `${known.prefix}: ${message}` : message);
}
