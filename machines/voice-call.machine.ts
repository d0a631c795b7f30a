import { assign, setup } from 'xstate';
import type { EndReason, LifecycleState } from './lifecycle';

/**
 * A voice call on the shared lifecycle: Pending (the user sees "Connecting") until the WebRTC
 * peer connects; Active, which is Live or Reconnecting (one ICE restart is allowed); then Ended
 * (hangup, budget stop), Failed (connect timeout, ICE failure, agent container died) or Expired
 * (TTL). Like the container run, the machine decides and `voiceCallWorkflow` acts:
 *
 * - `startIceRestart`: ask the media peer for one ICE restart;
 * - `warnBudget`: audit `budget_warning` and post a notice in the room;
 * - `cleanup`: on every terminal state, close the peer, stop the agent's run as configured,
 *   write the audit entry.
 */

export type VoiceEndReason =
  | EndReason
  | 'user_hangup'
  | 'connect_timeout'
  | 'ice_failed'
  | 'agent_died'
  | 'media_lost'
  | 'rejected';

/** What users see (the voice plan's states); also the `ArmorclawState` of calls. */
export type UserCallState = 'Connecting' | 'Live' | 'Reconnecting' | 'Ended' | 'Failed';

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
}

export interface VoiceCallContext extends VoiceCallInput {
  iceRestarts: number;
  tokensUsed: number;
  endReason?: VoiceEndReason;
  endDetail?: string;
  warned: boolean;
}

export type VoiceCallEvent =
  | { type: 'PEER_CONNECTED' }
  | { type: 'PEER_DISCONNECTED' }
  | { type: 'PEER_FAILED' }
  | { type: 'HANGUP'; reason?: string }
  | { type: 'AGENT_DIED'; detail?: string }
  | { type: 'BUDGET_EXCEEDED' }
  /** Model tokens the call's agent reported. */
  | { type: 'USAGE'; tokens: number }
  /** The bridge holding the peer lost it (restarted, or its host is unreachable). */
  | { type: 'MEDIA_LOST'; detail: string }
  /** Admission or a policy check refused the call. */
  | { type: 'REJECTED'; detail: string }
  | { type: 'START_FAILED'; message: string };

const addTokens = assign<VoiceCallContext, VoiceCallEvent, undefined, VoiceCallEvent, never>({
  tokensUsed: ({ context, event }) =>
    context.tokensUsed + (event.type === 'USAGE' ? event.tokens : 0),
});

export const voiceCallMachine = setup({
  types: {
    input: {} as VoiceCallInput,
    context: {} as VoiceCallContext,
    events: {} as VoiceCallEvent,
  },
  actions: {
    startIceRestart: () => undefined,
    warnBudget: () => undefined,
    cleanup: () => undefined,
  },
  guards: {
    canRestartIce: ({ context }) => context.iceRestarts < 1,
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
  initial: 'Pending',
  context: ({ input }) => ({ ...input, iceRestarts: 0, tokensUsed: 0, warned: false }),
  // The TTL counts from the start of the call, whatever state it is in.
  after: {
    ttl: { target: '.Expired', actions: assign({ endReason: 'ttl_expired' as VoiceEndReason }) },
  },
  // Whether connecting or live, these end the call (final states take no more events).
  on: {
    HANGUP: { target: '.Ended', actions: assign({ endReason: 'user_hangup' as VoiceEndReason }) },
    AGENT_DIED: {
      target: '.Failed',
      actions: assign({ endReason: 'agent_died' as VoiceEndReason }),
    },
    BUDGET_EXCEEDED: {
      target: '.Ended',
      actions: assign({ endReason: 'budget_exceeded' as VoiceEndReason }),
    },
    MEDIA_LOST: {
      target: '.Failed',
      actions: assign({
        endReason: 'media_lost' as VoiceEndReason,
        endDetail: ({ event }) => event.detail,
      }),
    },
    USAGE: [
      {
        guard: 'tokensExceeded',
        target: '.Ended',
        actions: [addTokens, assign({ endReason: 'budget_exceeded' as VoiceEndReason })],
      },
      { guard: 'tokensWarn', actions: [addTokens, 'warnBudget', assign({ warned: true })] },
      { actions: addTokens },
    ],
  },
  states: {
    Pending: {
      after: {
        connectTimeout: {
          target: 'Failed',
          actions: assign({ endReason: 'connect_timeout' as VoiceEndReason }),
        },
      },
      on: {
        PEER_CONNECTED: 'Active',
        REJECTED: {
          target: 'Failed',
          actions: assign({
            endReason: 'rejected' as VoiceEndReason,
            endDetail: ({ event }) => event.detail,
          }),
        },
        START_FAILED: {
          target: 'Failed',
          actions: assign({
            endReason: 'start_failed' as VoiceEndReason,
            endDetail: ({ event }) => event.message,
          }),
        },
        PEER_FAILED: {
          target: 'Failed',
          actions: assign({ endReason: 'ice_failed' as VoiceEndReason }),
        },
      },
    },
    Active: {
      initial: 'Live',
      after: {
        budgetWarning: { guard: 'notWarned', actions: ['warnBudget', assign({ warned: true })] },
        maxDuration: {
          target: 'Ended',
          actions: assign({ endReason: 'budget_exceeded' as VoiceEndReason }),
        },
      },
      states: {
        Live: {
          on: {
            PEER_DISCONNECTED: [
              {
                guard: 'canRestartIce',
                target: 'Reconnecting',
                actions: [
                  'startIceRestart',
                  assign({ iceRestarts: ({ context }) => context.iceRestarts + 1 }),
                ],
              },
              {
                target: '#voiceCall.Failed',
                actions: assign({ endReason: 'ice_failed' as VoiceEndReason }),
              },
            ],
            PEER_FAILED: [
              {
                guard: 'canRestartIce',
                target: 'Reconnecting',
                actions: [
                  'startIceRestart',
                  assign({ iceRestarts: ({ context }) => context.iceRestarts + 1 }),
                ],
              },
              {
                target: '#voiceCall.Failed',
                actions: assign({ endReason: 'ice_failed' as VoiceEndReason }),
              },
            ],
          },
        },
        Reconnecting: {
          after: {
            connectTimeout: {
              target: '#voiceCall.Failed',
              actions: assign({ endReason: 'ice_failed' as VoiceEndReason }),
            },
          },
          on: {
            PEER_CONNECTED: 'Live',
            PEER_FAILED: {
              target: '#voiceCall.Failed',
              actions: assign({ endReason: 'ice_failed' as VoiceEndReason }),
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
export function callStates(value: unknown): { lifecycle: LifecycleState; user: UserCallState } {
  if (value === 'Pending') return { lifecycle: 'Pending', user: 'Connecting' };
  if (typeof value === 'object' && value !== null && 'Active' in value) {
    const sub = (value as { Active: string }).Active;
    return { lifecycle: 'Active', user: sub === 'Reconnecting' ? 'Reconnecting' : 'Live' };
  }
  const lifecycle = value as LifecycleState;
  return { lifecycle, user: lifecycle === 'Ended' || lifecycle === 'Expired' ? 'Ended' : 'Failed' };
}
