import { assign, setup } from 'xstate';
import type { EndReason } from './lifecycle';

/**
 * A container run: Pending while its secrets file is written and the container starts; Active
 * while it runs; then Ended (stopped, exited cleanly, budget), Failed (start failed, died,
 * unhealthy, its host lost) or Expired (TTL). The machine decides; `containerRunWorkflow` acts on its actions:
 *
 * - `removeSecrets`: delete the secrets file (on the agent's ack, or at the deadline);
 * - `cleanup`: on every terminal state, stop and remove the container, remove the secrets file,
 *   write the audit entry;
 * - `USAGE` (what the provider proxy metered) adds to the run's spend; an Active run whose spend
 *   reaches its limit ends with `budget_exceeded`;
 * - delayed events (`ttl`, `secretsDeadline`) arrive as `xstate.raise` actions with a delay and
 *   are cancelled with `xstate.cancel`; the workflow turns them into Temporal timers.
 */

export interface ContainerRunInput {
  ttlMs: number;
  /** At most this long after the container starts, the secrets file is removed. */
  secretsDeadlineMs: number;
  /** The run's spending limit in micro-dollars; 0: none. */
  limitMicroUsd: number;
}

/** What the provider proxy metered for the run so far. */
export interface RunSpend {
  requests: number;
  inputTokens: number;
  outputTokens: number;
  costMicroUsd: number;
}

export interface ContainerRunContext extends ContainerRunInput {
  containerId?: string;
  secretsRemoved: boolean;
  /** The agent acknowledged before the start was recorded (its signal can overtake the result). */
  ackedWhilePending: boolean;
  endReason?: EndReason;
  /** Human-readable detail of the end (exit code, error message). Never a secret. */
  endDetail?: string;
  exitCode?: number;
  spend: RunSpend;
}

export type ContainerRunEvent =
  | { type: 'STARTED'; containerId: string }
  | { type: 'START_FAILED'; message: string }
  | { type: 'STOP_REQUESTED'; reason?: string }
  | { type: 'SECRETS_ACKED' }
  | { type: 'CONTAINER_EXITED'; exitCode: number; oomKilled: boolean }
  | { type: 'HEALTH_FAILED'; message: string }
  /** The run's host did not answer within its grace, or the operator reaped it. */
  | { type: 'HOST_LOST'; detail: string }
  | { type: 'BUDGET_EXCEEDED' }
  | { type: 'USAGE'; inputTokens: number; outputTokens: number; costMicroUsd: number };

export const containerRunMachine = setup({
  types: {
    input: {} as ContainerRunInput,
    context: {} as ContainerRunContext,
    events: {} as ContainerRunEvent,
  },
  actions: {
    // Performed by the workflow; here they are names in the transition's action list.
    removeSecrets: () => undefined,
    cleanup: () => undefined,
    markSecretsRemoved: assign({ secretsRemoved: true }),
    addUsage: assign({
      spend: ({ context, event }) =>
        event.type !== 'USAGE'
          ? context.spend
          : {
              requests: context.spend.requests + 1,
              inputTokens: context.spend.inputTokens + event.inputTokens,
              outputTokens: context.spend.outputTokens + event.outputTokens,
              costMicroUsd: context.spend.costMicroUsd + event.costMicroUsd,
            },
    }),
  },
  guards: {
    secretsPresent: ({ context }) => !context.secretsRemoved,
    ackedEarly: ({ context }) => context.ackedWhilePending && !context.secretsRemoved,
    cleanExit: ({ event }) =>
      event.type === 'CONTAINER_EXITED' && event.exitCode === 0 && !event.oomKilled,
    oomKilled: ({ event }) => event.type === 'CONTAINER_EXITED' && event.oomKilled,
    overRunLimit: ({ context }) =>
      context.limitMicroUsd > 0 && context.spend.costMicroUsd >= context.limitMicroUsd,
  },
  delays: {
    ttl: ({ context }) => context.ttlMs,
    secretsDeadline: ({ context }) => context.secretsDeadlineMs,
  },
}).createMachine({
  id: 'containerRun',
  initial: 'Pending',
  context: ({ input }) => ({
    ...input,
    secretsRemoved: false,
    ackedWhilePending: false,
    spend: { requests: 0, inputTokens: 0, outputTokens: 0, costMicroUsd: 0 },
  }),
  // Usage is counted whenever it arrives (a response can finish while the run starts or ends).
  on: { USAGE: { actions: 'addUsage' } },
  states: {
    Pending: {
      on: {
        STARTED: {
          target: 'Active',
          actions: assign({ containerId: ({ event }) => event.containerId }),
        },
        START_FAILED: {
          target: 'Failed',
          actions: assign({ endReason: 'start_failed', endDetail: ({ event }) => event.message }),
        },
        STOP_REQUESTED: {
          target: 'Ended',
          actions: assign({ endReason: 'stop_requested' as EndReason }),
        },
        SECRETS_ACKED: { actions: assign({ ackedWhilePending: true }) },
        HOST_LOST: {
          target: 'Failed',
          actions: assign({
            endReason: 'host_lost' as EndReason,
            endDetail: ({ event }) => event.detail,
          }),
        },
        // A budget stop during the start must not let the run become Active afterwards.
        BUDGET_EXCEEDED: {
          target: 'Ended',
          actions: assign({ endReason: 'budget_exceeded' as EndReason }),
        },
      },
    },
    Active: {
      always: [
        // Spend that reached the limit while the run started ends it as soon as it is Active.
        {
          guard: 'overRunLimit',
          target: 'Ended',
          actions: assign({
            endReason: 'budget_exceeded' as EndReason,
            endDetail: 'the run reached its spending limit',
          }),
        },
        // An ack that overtook the start result is honoured as soon as the run is Active.
        { guard: 'ackedEarly', actions: ['removeSecrets', 'markSecretsRemoved'] },
      ],
      after: {
        ttl: { target: 'Expired', actions: assign({ endReason: 'ttl_expired' as EndReason }) },
        secretsDeadline: {
          guard: 'secretsPresent',
          actions: ['removeSecrets', 'markSecretsRemoved'],
        },
      },
      on: {
        SECRETS_ACKED: {
          guard: 'secretsPresent',
          actions: ['removeSecrets', 'markSecretsRemoved'],
        },
        STOP_REQUESTED: {
          target: 'Ended',
          actions: assign({ endReason: 'stop_requested' as EndReason }),
        },
        BUDGET_EXCEEDED: {
          target: 'Ended',
          actions: assign({ endReason: 'budget_exceeded' as EndReason }),
        },
        HOST_LOST: {
          target: 'Failed',
          actions: assign({
            endReason: 'host_lost' as EndReason,
            endDetail: ({ event }) => event.detail,
          }),
        },
        HEALTH_FAILED: {
          target: 'Failed',
          actions: assign({
            endReason: 'health_check_failed',
            endDetail: ({ event }) => event.message,
          }),
        },
        CONTAINER_EXITED: [
          {
            guard: 'cleanExit',
            target: 'Ended',
            actions: assign({ endReason: 'container_exited', exitCode: 0 }),
          },
          {
            guard: 'oomKilled',
            target: 'Failed',
            actions: assign({ endReason: 'oom_killed', exitCode: ({ event }) => event.exitCode }),
          },
          {
            target: 'Failed',
            actions: assign({
              endReason: 'container_exited',
              exitCode: ({ event }) => event.exitCode,
              endDetail: ({ event }) => `exit code ${event.exitCode}`,
            }),
          },
        ],
      },
    },
    Ended: { type: 'final', entry: 'cleanup' },
    Failed: { type: 'final', entry: 'cleanup' },
    Expired: { type: 'final', entry: 'cleanup' },
  },
});
