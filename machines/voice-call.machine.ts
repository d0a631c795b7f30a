import { assign, setup, type StateValue } from 'xstate';
import type { EndReason, LifecycleState } from './lifecycle';

/**
 * A voice call on the shared lifecycle. Pending (the user sees "Connecting") walks the call's
 * preparation, one step per state, each entered with an action the workflow performs (an
 * activity) whose answer comes back as an event:
 *
 *   CheckingRoom --ROOM_OK--> Admitting --ADMITTED--> StartingAgent | CheckingAgent
 *     --AGENT_STARTED | AGENT_OK--> PreparingMedia --MEDIA_READY--> Ready --PEER_CONNECTED--> Active
 *
 * Active is Live or Reconnecting (MAX_ICE_RESTARTS restarts allowed); then Ended (hangup, budget
 * stop), Failed (refused, start failed, connect timeout, ICE failure, agent died, media lost) or
 * Expired (TTL). What the workflow does for each action:
 *
 * - `checkRoom`, `admit`, `startAgent`, `checkAgent`, `prepareMedia` (which also audits
 *   `call_created`): Pending's activities;
 * - `auditRejection`: audit the refusal (`call_rejected` or `security_violation`);
 * - `watchAgent`, `watchMedia`: end the call when its agent's run or its media goes;
 * - `startIceRestart`: ask the media peer for one ICE restart;
 * - `warnBudget`: audit `budget_warning` and post a notice in the room;
 * - `cleanup`: on every terminal state, close the peer, stop the agent's run as configured,
 *   release the admission slot, write the audit entry. An admission or agent start still in
 *   flight (`admission`/`agentStart` in the context) is awaited first, never cancelled.
 */

export type VoiceEndReason =
  | EndReason
  | 'user_hangup'
  | 'connect_timeout'
  | 'ice_failed'
  | 'agent_died'
  | 'media_lost'
  | 'rejected';

/**
 * What the caller sees: the `user_state` of the status query, the `ArmorclawUserState` search
 * attribute and the call page's state all come from `callStates` / `userStateOf` below.
 */
export type UserCallState = 'Connecting' | 'Live' | 'Reconnecting' | 'Ended' | 'Failed';

/** ICE restarts a call may make in its life (the media peer enforces the same limit). */
export const MAX_ICE_RESTARTS = 1;

export interface VoiceCallInput {
  ttlMs: number;
  connectTimeoutMs: number;
  /** When the budget warning fires (the configured fraction of the allowed duration). */
  budgetWarningMs: number;
  /** Per-call talk time from connect; then the call ends (budget_exceeded). */
  maxDurationMs: number;
  /** Per-call model tokens the agent may report; 0: no per-call token limit. */
  maxTokens: number;
  /** Tokens at which the budget warning fires (the configured fraction of maxTokens). */
  tokenWarningAt: number;
  /** The container name of an agent already running; absent: a run is started for the call. */
  existingAgent?: string;
}

/** An admission or an agent start: never asked, in flight (the call may end meanwhile), or done. */
export type Progress = 'none' | 'inFlight' | 'done';

export interface VoiceCallContext extends VoiceCallInput {
  iceRestarts: number;
  tokensUsed: number;
  endReason?: VoiceEndReason;
  endDetail?: string;
  warned: boolean;
  /** The agent's run, once known (an existing one from the start). */
  containerName?: string;
  /** `done`: the call holds an admission slot that cleanup releases. */
  admission: Progress;
  agentStart: Progress;
  /** Why the call was refused (the failure type `call-ready` throws, and its message). */
  rejection?: { type: string; message: string };
}

export type VoiceCallEvent =
  // Pending's steps, answered by the workflow's activities.
  | { type: 'ROOM_OK' }
  | { type: 'ADMITTED' }
  | { type: 'AGENT_STARTED'; containerName: string }
  | { type: 'AGENT_OK' }
  | { type: 'MEDIA_READY' }
  /** The room policy or the admission refused the call. */
  | { type: 'REJECTED'; failureType: string; reason: string; message: string }
  | { type: 'START_FAILED'; message: string }
  // Facts from the peer, the caller, the agent and the budget.
  | { type: 'PEER_CONNECTED' }
  | { type: 'PEER_DISCONNECTED' }
  | { type: 'PEER_FAILED' }
  | { type: 'HANGUP'; reason?: string }
  | { type: 'AGENT_DIED'; detail?: string }
  | { type: 'BUDGET_EXCEEDED' }
  /** Model tokens the call's agent reported. */
  | { type: 'USAGE'; tokens: number }
  /** The bridge holding the peer lost it (restarted, or its host is unreachable). */
  | { type: 'MEDIA_LOST'; detail: string };

type Assign = ReturnType<
  typeof assign<VoiceCallContext, VoiceCallEvent, undefined, VoiceCallEvent, never>
>;

const endAs = (endReason: VoiceEndReason): Assign => assign({ endReason });

const addTokens: Assign = assign({
  tokensUsed: ({ context, event }) =>
    context.tokensUsed + (event.type === 'USAGE' ? event.tokens : 0),
});

const iceFailed = { target: '#voiceCall.Failed', actions: endAs('ice_failed') } as const;

/** Live's answer to a path that dropped or failed: the same chance to come back for both. */
const peerLost = [
  {
    guard: 'canRestartIce' as const,
    target: 'Reconnecting',
    actions: [
      'startIceRestart' as const,
      assign({ iceRestarts: ({ context }) => context.iceRestarts + 1 }) as Assign,
    ],
  },
  { target: '#voiceCall.Failed', actions: endAs('ice_failed') },
];

const startFailed: Assign = assign({
  endReason: 'start_failed',
  endDetail: ({ event }) => (event.type === 'START_FAILED' ? event.message : undefined),
});

const rejected: Assign = assign({
  endReason: 'rejected',
  endDetail: ({ event }) => (event.type === 'REJECTED' ? event.reason : undefined),
  rejection: ({ event }) =>
    event.type === 'REJECTED' ? { type: event.failureType, message: event.message } : undefined,
});

export const voiceCallMachine = setup({
  types: {
    input: {} as VoiceCallInput,
    context: {} as VoiceCallContext,
    events: {} as VoiceCallEvent,
  },
  actions: {
    // Performed by the workflow; here they are names in the transition's action list.
    checkRoom: () => undefined,
    admit: () => undefined,
    startAgent: () => undefined,
    checkAgent: () => undefined,
    prepareMedia: () => undefined,
    auditRejection: () => undefined,
    watchAgent: () => undefined,
    watchMedia: () => undefined,
    startIceRestart: () => undefined,
    warnBudget: () => undefined,
    cleanup: () => undefined,
  },
  guards: {
    existingAgent: ({ context }) => context.existingAgent !== undefined,
    canRestartIce: ({ context }) => context.iceRestarts < MAX_ICE_RESTARTS,
    notWarned: ({ context }) => !context.warned,
    tokensExceeded: ({ context, event }) =>
      event.type === 'USAGE' &&
      context.maxTokens > 0 &&
      context.tokensUsed + event.tokens >= context.maxTokens,
    tokensWarn: ({ context, event }) =>
      event.type === 'USAGE' &&
      !context.warned &&
      context.maxTokens > 0 &&
      context.tokensUsed + event.tokens >= context.tokenWarningAt,
  },
  delays: {
    ttl: ({ context }) => context.ttlMs,
    connectTimeout: ({ context }) => context.connectTimeoutMs,
    budgetWarning: ({ context }) => context.budgetWarningMs,
    maxDuration: ({ context }) => context.maxDurationMs,
  },
}).createMachine({
  id: 'voiceCall',
  initial: 'Open',
  context: ({ input }) => ({
    ...input,
    iceRestarts: 0,
    tokensUsed: 0,
    warned: false,
    containerName: input.existingAgent,
    admission: 'none',
    agentStart: 'none',
  }),
  states: {
    // Pending or Active. The final states are outside it, so they take no more events (XState's
    // pure `transition` would otherwise let the handlers below act on a call that has ended).
    Open: {
      initial: 'Pending',
      // The TTL counts from the start of the call, whatever state it is in.
      after: { ttl: { target: '#voiceCall.Expired', actions: endAs('ttl_expired') } },
      // Whether connecting or live, these end the call.
      on: {
        HANGUP: { target: '#voiceCall.Ended', actions: endAs('user_hangup') },
        AGENT_DIED: { target: '#voiceCall.Failed', actions: endAs('agent_died') },
        BUDGET_EXCEEDED: { target: '#voiceCall.Ended', actions: endAs('budget_exceeded') },
        MEDIA_LOST: {
          target: '#voiceCall.Failed',
          actions: assign({ endReason: 'media_lost', endDetail: ({ event }) => event.detail }),
        },
        USAGE: [
          {
            guard: 'tokensExceeded',
            target: '#voiceCall.Ended',
            actions: [addTokens, endAs('budget_exceeded')],
          },
          { guard: 'tokensWarn', actions: [addTokens, 'warnBudget', assign({ warned: true })] },
          { actions: addTokens },
        ],
      },
      states: {
        Pending: {
          initial: 'CheckingRoom',
          // From the start of the call, not from Ready: the caller waits through all of Pending.
          after: {
            connectTimeout: { target: '#voiceCall.Failed', actions: endAs('connect_timeout') },
          },
          on: { START_FAILED: { target: '#voiceCall.Failed', actions: startFailed } },
          states: {
            CheckingRoom: {
              entry: 'checkRoom',
              on: {
                ROOM_OK: 'Admitting',
                REJECTED: { target: '#voiceCall.Failed', actions: [rejected, 'auditRejection'] },
              },
            },
            Admitting: {
              entry: [assign({ admission: 'inFlight' }), 'admit'],
              on: {
                ADMITTED: [
                  {
                    guard: 'existingAgent',
                    target: 'CheckingAgent',
                    actions: assign({ admission: 'done' }),
                  },
                  { target: 'StartingAgent', actions: assign({ admission: 'done' }) },
                ],
                // Refused: no slot taken.
                REJECTED: {
                  target: '#voiceCall.Failed',
                  actions: [assign({ admission: 'none' }), rejected, 'auditRejection'],
                },
              },
            },
            StartingAgent: {
              entry: [assign({ agentStart: 'inFlight' }), 'startAgent'],
              on: {
                AGENT_STARTED: {
                  target: 'PreparingMedia',
                  actions: assign({
                    agentStart: 'done',
                    containerName: ({ event }) => event.containerName,
                  }),
                },
                // Settled too: cleanup need not wait for it.
                START_FAILED: {
                  target: '#voiceCall.Failed',
                  actions: [assign({ agentStart: 'done' }), startFailed],
                },
              },
            },
            CheckingAgent: {
              entry: 'checkAgent',
              on: { AGENT_OK: 'PreparingMedia' },
            },
            PreparingMedia: {
              entry: 'prepareMedia',
              on: { MEDIA_READY: 'Ready' },
            },
            // `call-ready` answers; the caller negotiates with the media hub.
            Ready: {
              entry: ['watchAgent', 'watchMedia'],
              on: {
                PEER_CONNECTED: '#voiceCall.Open.Active',
                PEER_FAILED: iceFailed,
              },
            },
          },
        },
        Active: {
          initial: 'Live',
          after: {
            budgetWarning: {
              guard: 'notWarned',
              actions: ['warnBudget', assign({ warned: true })],
            },
            maxDuration: { target: '#voiceCall.Ended', actions: endAs('budget_exceeded') },
          },
          states: {
            Live: {
              on: { PEER_DISCONNECTED: peerLost, PEER_FAILED: peerLost },
            },
            Reconnecting: {
              after: { connectTimeout: iceFailed },
              on: { PEER_CONNECTED: 'Live', PEER_FAILED: iceFailed },
            },
          },
        },
      },
    },
    Ended: { type: 'final', entry: 'cleanup' },
    Failed: { type: 'final', entry: 'cleanup' },
    Expired: { type: 'final', entry: 'cleanup' },
  },
});

/** The lifecycle state and the user-visible state of a snapshot value. */
export function callStates(value: StateValue): { lifecycle: LifecycleState; user: UserCallState } {
  if (typeof value === 'object') {
    const open = value.Open as StateValue;
    if (typeof open === 'object' && 'Pending' in open) {
      return { lifecycle: 'Pending', user: 'Connecting' };
    }
    const sub = (open as { Active?: string }).Active;
    return { lifecycle: 'Active', user: sub === 'Reconnecting' ? 'Reconnecting' : 'Live' };
  }
  const lifecycle = value as LifecycleState;
  return { lifecycle, user: lifecycle === 'Ended' || lifecycle === 'Expired' ? 'Ended' : 'Failed' };
}

/** Whether `call-ready` can answer: the call's media is prepared, and it has not ended. */
export function isReady(value: StateValue): boolean {
  const open = typeof value === 'object' ? (value.Open as StateValue) : undefined;
  if (typeof open !== 'object') return false;
  return 'Active' in open || (open as { Pending?: string }).Pending === 'Ready';
}

/** werift's (and the W3C's) RTCPeerConnection.connectionState values. */
export type PeerConnectionState =
  'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed';

/**
 * What the caller sees of a media peer, before the call's workflow has heard of it: the state
 * the machine is in (or about to be in) for that connection state, then `callStates`.
 */
export function userStateOf(
  state: PeerConnectionState,
  peer: { everConnected: boolean; iceRestartsLeft: number },
): UserCallState {
  return callStates(peerStateValue(state, peer)).user;
}

function peerStateValue(
  state: PeerConnectionState,
  peer: { everConnected: boolean; iceRestartsLeft: number },
): StateValue {
  const reconnecting = { Open: { Active: 'Reconnecting' } };
  switch (state) {
    case 'new':
    case 'connecting':
      return peer.everConnected ? reconnecting : { Open: { Pending: 'Ready' } };
    case 'connected':
      return { Open: { Active: 'Live' } };
    case 'disconnected':
      return reconnecting;
    case 'failed':
      return peer.everConnected && peer.iceRestartsLeft > 0 ? reconnecting : 'Failed';
    case 'closed':
      return 'Ended';
  }
}
