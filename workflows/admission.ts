import {
  allHandlersFinished,
  condition,
  continueAsNew,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import {
  admissionStatusQuery,
  admitCallUpdate,
  CALL_ADMISSION_EXPIRY_GRACE_MS,
  releaseCallSignal,
  type ActiveCall,
  type AdmitCallArgs,
  type CallAdmissionDecision,
  type CallAdmissionState,
  type CallAdmissionStatus,
  type CallAdmissionWorkflowInput,
} from './definitions';
import { ArmorclawKind } from './search-attributes';

const DEFAULT_MAX_HISTORY_EVENTS = 2_000;

export const emptyAdmissionState = (): CallAdmissionState => ({
  active: {},
  recent: {},
  rateLimitWindowMs: 0,
});

/**
 * The admission decision, pure: what `admit-call` answers at `nowMs` and the state after it.
 * In order: slots past their expiry (+ grace) are freed; a session already admitted is admitted
 * again without counting twice (a retried activity); the user's sliding rate window is checked,
 * then the namespace's concurrency cap; only an admission is recorded (a refusal costs nothing).
 */
export function decideAdmission(
  state: CallAdmissionState,
  args: AdmitCallArgs,
  nowMs: number,
): { state: CallAdmissionState; decision: CallAdmissionDecision } {
  const { rateLimitCalls, rateLimitWindowMs, maxConcurrentCalls } = args.limits;
  const active = dropExpired(state.active, nowMs);
  const recent = slideWindow(state.recent, nowMs, rateLimitWindowMs);
  const next = (): CallAdmissionState => ({ active, recent, rateLimitWindowMs });

  const count = Object.keys(active).length;
  if (active[args.sessionId]) {
    return { state: next(), decision: { admitted: true, active: count } };
  }
  const userRecent = recent[args.userKey] ?? [];
  if (userRecent.length >= rateLimitCalls) {
    return {
      state: next(),
      decision: {
        admitted: false,
        reason: 'rate_limited',
        message:
          `${args.userKey} started ${userRecent.length} calls in the last ` +
          `${seconds(rateLimitWindowMs)} (limit ${rateLimitCalls})`,
      },
    };
  }
  if (count >= maxConcurrentCalls) {
    return {
      state: next(),
      decision: {
        admitted: false,
        reason: 'max_concurrent',
        message: `${count} calls in progress, the maximum is ${maxConcurrentCalls}`,
      },
    };
  }
  active[args.sessionId] = {
    sessionId: args.sessionId,
    roomId: args.roomId,
    userKey: args.userKey,
    hostId: args.hostId,
    admittedAtMs: nowMs,
    expiresAtMs: args.expiresAtMs,
  };
  recent[args.userKey] = [...userRecent, nowMs];
  return { state: next(), decision: { admitted: true, active: count + 1 } };
}

/** The state without the session's slot (unchanged if it holds none). */
export function releaseAdmission(state: CallAdmissionState, sessionId: string): CallAdmissionState {
  if (!state.active[sessionId]) return state;
  const active = { ...state.active };
  delete active[sessionId];
  return { ...state, active };
}

/** The public status at `nowMs`: slots as held (expiry applies at the next admit). */
export function admissionStatus(state: CallAdmissionState, nowMs: number): CallAdmissionStatus {
  const recent: Record<string, number> = {};
  for (const [userKey, times] of Object.entries(
    slideWindow(state.recent, nowMs, state.rateLimitWindowMs),
  )) {
    recent[userKey] = times.length;
  }
  const active = Object.values(state.active)
    .sort((a, b) => a.admittedAtMs - b.admittedAtMs)
    .map((call) => ({ ...call }));
  return { active, recent };
}

/**
 * The call-admission entity (workflow id `call-admission`, one per namespace): every bridge asks
 * it before a call starts, so the concurrency cap and per-user rate limit hold across bridges
 * and survive any of them crashing. Temporal runs one workflow task at a time and the admit
 * handler never awaits between deciding and recording, so concurrent admits are serialised.
 */
export async function callAdmissionWorkflow(input: CallAdmissionWorkflowInput): Promise<never> {
  let state: CallAdmissionState = input.state ?? emptyAdmissionState();

  upsertSearchAttributes([{ key: ArmorclawKind, value: 'admission' }]);

  setHandler(admissionStatusQuery, () => admissionStatus(state, Date.now()));
  setHandler(releaseCallSignal, ({ sessionId }) => {
    state = releaseAdmission(state, sessionId);
  });
  setHandler(
    admitCallUpdate,
    (args) => {
      // Workflow time: the same on replay, and the same for every bridge.
      const { state: next, decision } = decideAdmission(state, args, Date.now());
      state = next;
      return decision;
    },
    { validator: validateAdmitArgs },
  );

  const maxHistoryEvents = input.maxHistoryEvents ?? DEFAULT_MAX_HISTORY_EVENTS;
  await condition(() => {
    const info = workflowInfo();
    return info.continueAsNewSuggested || info.historyLength > maxHistoryEvents;
  });
  // The handlers are synchronous, so this holds at once; it keeps that true if one ever awaits.
  await condition(allHandlersFinished);
  return continueAsNew<typeof callAdmissionWorkflow>({
    state,
    maxHistoryEvents: input.maxHistoryEvents,
  });
}

function dropExpired(
  active: Record<string, ActiveCall>,
  nowMs: number,
): Record<string, ActiveCall> {
  const kept: Record<string, ActiveCall> = {};
  for (const [sessionId, call] of Object.entries(active)) {
    // A call workflow terminated by an operator never releases: its slot ends with its TTL.
    if (nowMs <= call.expiresAtMs + CALL_ADMISSION_EXPIRY_GRACE_MS) kept[sessionId] = call;
  }
  return kept;
}

/** Admission times inside the window (nowMs - windowMs, nowMs]; users left with none dropped. */
function slideWindow(
  recent: Record<string, number[]>,
  nowMs: number,
  windowMs: number,
): Record<string, number[]> {
  const kept: Record<string, number[]> = {};
  for (const [userKey, times] of Object.entries(recent)) {
    const inWindow = times.filter((t) => t > nowMs - windowMs);
    if (inWindow.length > 0) kept[userKey] = inWindow;
  }
  return kept;
}

const seconds = (ms: number): string => `${Math.round(ms / 1000)} s`;

const positiveInt = (n: unknown): boolean =>
  typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
const nonEmpty = (s: unknown): boolean => typeof s === 'string' && s !== '' && s.length <= 512;

/** Refuses malformed admits before they reach history (the caller gets the error). */
function validateAdmitArgs(args: AdmitCallArgs): void {
  if (typeof args !== 'object' || args === null) throw new Error('admit-call needs an object');
  for (const field of ['sessionId', 'roomId', 'userKey', 'hostId'] as const) {
    if (!nonEmpty(args[field])) throw new Error(`${field} must be a non-empty string`);
  }
  if (!Number.isSafeInteger(args.expiresAtMs)) throw new Error('expiresAtMs must be epoch ms');
  const limits = args.limits;
  if (typeof limits !== 'object' || limits === null) throw new Error('limits are required');
  for (const field of ['rateLimitCalls', 'rateLimitWindowMs', 'maxConcurrentCalls'] as const) {
    if (!positiveInt(limits[field])) throw new Error(`limits.${field} must be a positive integer`);
  }
}
