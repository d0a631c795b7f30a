import { assign, setup } from 'xstate';

/**
 * One agent turn of the gateway (`agent.run`, or a cron firing): Pending while an agent container
 * is bound to it (the session's, started if it is not running, or a fresh one for an isolated
 * turn); Active while the turn is delivered to the agent and answered; then Ended (answered),
 * Failed (no agent could be bound, or the delivery failed after its retries) or Expired (the
 * turn's time ran out). The machine decides; `agentTurnWorkflow` acts on its actions:
 *
 * - `bind`: bind the agent (an activity), answered by BOUND or BIND_FAILED;
 * - `deliver`: ask the bound agent (`agent.turn` on its socket, an activity on its host), answered
 *   by ANSWERED or DELIVERY_FAILED;
 * - `cleanup`: on every terminal state; stops the container of an isolated turn;
 * - the delayed `turnTimeout` (the whole turn's limit, from its start) arrives as an
 *   `xstate.raise` with a delay: a Temporal timer in the workflow.
 *
 * Holding the answer until `agent.wait` collects it comes after the lifecycle and is the
 * workflow's (a bounded wait), not a state of this machine.
 */

/** Why a turn ended. Stable strings: they go to the audit log and to clients. */
export type TurnEndReason = 'answered' | 'bind_failed' | 'delivery_failed' | 'turn_timeout';

export interface AgentTurnMachineInput {
  /** The whole turn's limit, binding and delivery included. */
  timeoutMs: number;
}

export interface AgentTurnContext extends AgentTurnMachineInput {
  containerName?: string;
  containerId?: string;
  assistantText?: string;
  model?: string;
  endReason?: TurnEndReason;
  /** Human-readable detail of a failure. Never a secret. */
  endDetail?: string;
}

export type AgentTurnEvent =
  | { type: 'BOUND'; containerName: string; containerId?: string }
  | { type: 'BIND_FAILED'; message: string }
  | { type: 'ANSWERED'; text: string; model?: string }
  | { type: 'DELIVERY_FAILED'; message: string };

export const agentTurnMachine = setup({
  types: {
    input: {} as AgentTurnMachineInput,
    context: {} as AgentTurnContext,
    events: {} as AgentTurnEvent,
  },
  actions: {
    // Performed by the workflow; here they are names in the transition's action list.
    bind: () => undefined,
    deliver: () => undefined,
    cleanup: () => undefined,
  },
  delays: {
    turnTimeout: ({ context }) => context.timeoutMs,
  },
}).createMachine({
  id: 'agentTurn',
  initial: 'Pending',
  context: ({ input }) => ({ ...input }),
  // From the turn's start, whatever state it is in.
  after: {
    turnTimeout: {
      target: '.Expired',
      actions: assign({
        endReason: 'turn_timeout' as TurnEndReason,
        endDetail: ({ context }) => `no answer within ${Math.round(context.timeoutMs / 1000)} s`,
      }),
    },
  },
  states: {
    Pending: {
      entry: 'bind',
      on: {
        BOUND: {
          target: 'Active',
          actions: assign({
            containerName: ({ event }) => event.containerName,
            containerId: ({ event }) => event.containerId,
          }),
        },
        BIND_FAILED: {
          target: 'Failed',
          actions: assign({
            endReason: 'bind_failed' as TurnEndReason,
            endDetail: ({ event }) => event.message,
          }),
        },
      },
    },
    Active: {
      entry: 'deliver',
      on: {
        ANSWERED: {
          target: 'Ended',
          actions: assign({
            endReason: 'answered' as TurnEndReason,
            assistantText: ({ event }) => event.text,
            model: ({ event }) => event.model,
          }),
        },
        DELIVERY_FAILED: {
          target: 'Failed',
          actions: assign({
            endReason: 'delivery_failed' as TurnEndReason,
            endDetail: ({ event }) => event.message,
          }),
        },
      },
    },
    Ended: { type: 'final', entry: 'cleanup' },
    Failed: { type: 'final', entry: 'cleanup' },
    Expired: { type: 'final', entry: 'cleanup' },
  },
});
