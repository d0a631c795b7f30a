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
  EndReason | 'user_hangup' | 'connect_timeout' | 'ice_failed' | 'agent_died';

/** What users see (the voice plan's states); also the `ArmorclawState` of calls. */
export type UserCallState = 'Connecting' | 'Live' | 'Reconnecting' | 'Ended' | 'Failed';

export interface VoiceCallInput {
  ttlMs: number;
  connectTimeoutMs: number;
  /** When the budget warning fires (the configured fraction of the allowed duration). */
  budgetWarningMs: number;
}

export interface VoiceCallContext extends VoiceCallInput {
  iceRestarts: number;
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
  | { type: 'START_FAILED'; message: string };

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
  },
  delays: {
    ttl: ({ context }) => context.ttlMs,
    connectTimeout: ({ context }) => context.connectTimeoutMs,
    budgetWarning: ({ context }) => context.budgetWarningMs,
  },
}).createMachine({
  id: 'voiceCall',
  initial: 'Pending',
  context: ({ input }) => ({ ...input, iceRestarts: 0, warned: false }),
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
