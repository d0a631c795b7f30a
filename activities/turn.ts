/**
 * Gateway turn activities. On the shared queue: binding a turn to an agent container run (the
 * session's, started if none runs, or a fresh one) and stopping an isolated turn's run, through
 * Temporal. On the host queue (the agent's socket lives there, docs/architecture.md rule 5):
 * delivering the turn to the agent and waiting for its answer. Arguments and results carry ids
 * and the conversation's text, never a token.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
} from '@temporalio/client';
import type { Logger } from 'pino';
import { shortHash } from '../formats/short-hash';
import { startRunWorkflow } from '../sessions/containers';
import { isClosedWorkflowError } from '../sessions/workflow-errors';
import {
  containerStatusQuery,
  containerWorkflowId,
  stopUpdate,
  waitActiveUpdate,
  type AgentTurnInput,
  type TurnMessage,
} from '../workflows/definitions';

/** Failure types of the turn activities (the workflow reads their messages, not their types). */
export const TurnFailureType = {
  AgentUnavailable: 'AgentUnavailable',
  AgentRefused: 'AgentRefused',
  BadAnswer: 'BadAnswer',
} as const;

/** The container name of an isolated turn's own agent: one per turn, never reused. */
export const isolatedTurnContainer = (agentType: string, runId: string): string =>
  `armorclaw-${agentType}-turn-${shortHash(runId)}`;

/**
 * The name prefix of a gateway session's agents: `<prefix>-<generation>`, a new generation when
 * the previous run has ended (container names are never reused).
 */
export const sessionContainerPrefix = (agentType: string, sessionId: string): string =>
  `armorclaw-${agentType}-session-${shortHash(sessionId)}`;

export interface BindTurnArgs {
  binding: AgentTurnInput['binding'];
  sessionId: string;
  /** The isolated turn's container name (the workflow computes it from its run id). */
  containerName?: string;
  run: AgentTurnInput['run'];
}

export interface BoundAgent {
  containerName: string;
  containerId: string;
}

export interface DeliverTurnArgs {
  containerName: string;
  turnId: string;
  sessionId: string;
  messages: TurnMessage[];
  /** How long one attempt waits for the answer. */
  answerTimeoutMs: number;
}

export interface TurnAnswer {
  text: string;
  model?: string;
}

export interface TurnSharedActivities {
  bindTurnAgent(args: BindTurnArgs): Promise<BoundAgent>;
  stopTurnAgent(args: { containerName: string }): Promise<void>;
}

export interface TurnHostActivities {
  deliverTurn(args: DeliverTurnArgs): Promise<TurnAnswer>;
}

/** The agents' sockets as delivery needs them (rpc/container-socket.ts's hub). */
export interface TurnAgents {
  isConnected(containerName: string): boolean;
  request(
    containerName: string,
    method: string,
    params: unknown,
    opts: { timeoutMs?: number },
  ): Promise<unknown>;
}

const HEARTBEAT_MS = 2_000;
/** Generations of one session's agents tried in one bind before giving up. */
const MAX_GENERATION_STEPS = 20;

export function createTurnSharedActivities(deps: {
  client: Client;
  taskQueue: string;
  log: Logger;
}): TurnSharedActivities {
  const handleOf = (name: string) => deps.client.workflow.getHandle(containerWorkflowId(name));
  const unavailable = (message: string) =>
    ApplicationFailure.nonRetryable(message, TurnFailureType.AgentUnavailable);

  /** Starts the run (or finds the one a previous attempt started) and waits until it is Active. */
  async function startAndWait(containerName: string, run: BindTurnArgs['run']) {
    try {
      await startRunWorkflow(deps.client, deps.taskQueue, { ...run, containerName });
    } catch (err) {
      // A retried attempt, or another turn of the session: the run exists already.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    return waitActive(containerName);
  }

  /** The run's container id once Active; undefined when the run has ended (or never started). */
  async function waitActive(containerName: string): Promise<BoundAgent | undefined> {
    try {
      const started = await handleOf(containerName).executeUpdate(waitActiveUpdate);
      return { containerName, containerId: started.container_id };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || isClosedWorkflowError(err)) return undefined;
      const cause = (err as { cause?: Error }).cause ?? (err as Error);
      // The run ended or failed to start: that is the answer for this generation.
      if ((cause as { type?: string }).type === 'RunEnded') return undefined;
      throw unavailable(`the agent did not start: ${cause.message}`);
    }
  }

  /** The highest generation of the session's runs the visibility store knows (0: none). */
  async function knownGeneration(prefix: string): Promise<number> {
    let highest = 0;
    const query = `WorkflowId STARTS_WITH '${containerWorkflowId(prefix)}-'`;
    for await (const wf of deps.client.workflow.list({ query })) {
      const n = Number(wf.workflowId.slice(containerWorkflowId(prefix).length + 1));
      if (Number.isSafeInteger(n) && n > highest) highest = n;
    }
    return highest;
  }

  return {
    /**
     * Heartbeats and yields to cancellation: the run it waits for is a workflow this bridge's
     * worker drives, and a worker shutting down cancels its activities rather than wait for a
     * workflow it no longer runs.
     */
    async bindTurnAgent(args) {
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), HEARTBEAT_MS);
      try {
        return await Promise.race([bind(args), ctx.cancelled]);
      } finally {
        clearInterval(beat);
      }
    },

    async stopTurnAgent({ containerName }) {
      try {
        await handleOf(containerName).executeUpdate(stopUpdate, {
          args: [{ reason: 'turn_ended' }],
        });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError || isClosedWorkflowError(err)) return;
        throw err;
      }
    },
  };

  async function bind({
    binding,
    sessionId,
    containerName,
    run,
  }: BindTurnArgs): Promise<BoundAgent> {
    if (binding === 'isolated') {
      if (!containerName) throw unavailable('an isolated turn needs its container name');
      const bound = await startAndWait(containerName, run);
      if (!bound) throw unavailable(`the agent run ${containerName} ended before the turn`);
      return bound;
    }
    // The visibility store trails by up to a second: it gives where to start looking, and
    // describing each generation (strongly consistent) finds the live one or the next free one.
    const prefix = sessionContainerPrefix(run.agentType, sessionId);
    let generation = Math.max(1, await knownGeneration(prefix));
    for (let step = 0; step < MAX_GENERATION_STEPS; step++, generation++) {
      const name = `${prefix}-${generation}`;
      let running: boolean;
      try {
        running = (await handleOf(name).describe()).status.name === 'RUNNING';
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        const bound = await startAndWait(name, run);
        if (bound) return bound;
        continue;
      }
      if (!running) continue;
      const status = await handleOf(name)
        .query(containerStatusQuery)
        .catch(() => undefined);
      if (status && status.state !== 'Pending' && status.state !== 'Active') continue;
      const bound = await waitActive(name);
      if (bound) return bound;
    }
    throw unavailable(`no agent for session ${sessionId} after ${MAX_GENERATION_STEPS} tries`);
  }
}

/** How long a delivery waits for the agent to (re)connect to its socket: a restarted bridge. */
const CONNECT_WAIT_MS = 60_000;
/**
 * Agent errors that no retry can mend: the agent does not take the method or these params, or
 * its answer was withheld for holding a stored credential (-32005, the socket's security policy
 * violation): asking again would fetch the credential again.
 */
const REFUSALS = new Set([-32601, -32602, -32005]);

export function createTurnHostActivities(deps: {
  agents: TurnAgents;
  log: Logger;
}): TurnHostActivities {
  return {
    async deliverTurn({ containerName, turnId, sessionId, messages, answerTimeoutMs }) {
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), HEARTBEAT_MS);
      try {
        const deadline = Date.now() + CONNECT_WAIT_MS;
        while (!deps.agents.isConnected(containerName)) {
          if (Date.now() > deadline) {
            throw ApplicationFailure.retryable(
              `agent ${containerName} is not connected to its socket`,
              TurnFailureType.AgentUnavailable,
            );
          }
          await Promise.race([ctx.sleep(250), ctx.cancelled]);
        }
        let answer: unknown;
        try {
          answer = await Promise.race([
            deps.agents.request(
              containerName,
              'agent.turn',
              { turn_id: turnId, session_id: sessionId, messages },
              { timeoutMs: answerTimeoutMs },
            ),
            ctx.cancelled,
          ]);
        } catch (err) {
          const e = err as { reason?: string; rpcCode?: number; message?: string };
          if (e.reason === undefined) throw err;
          const message = `agent ${containerName}: ${e.message ?? e.reason}`;
          if (e.reason === 'error' && e.rpcCode !== undefined && REFUSALS.has(e.rpcCode)) {
            throw ApplicationFailure.nonRetryable(message, TurnFailureType.AgentRefused);
          }
          // No agent, no answer in time, or the connection went away: another attempt may do.
          throw ApplicationFailure.retryable(message, TurnFailureType.AgentUnavailable);
        }
        const a = answer as { text?: unknown; model?: unknown } | null;
        if (typeof a?.text !== 'string') {
          throw ApplicationFailure.nonRetryable(
            `agent ${containerName} answered without a text`,
            TurnFailureType.BadAnswer,
          );
        }
        deps.log.info({ containerName, turnId, chars: a.text.length }, 'turn answered');
        return { text: a.text, ...(typeof a.model === 'string' ? { model: a.model } : {}) };
      } finally {
        clearInterval(beat);
      }
    },
  };
}
