/**
 * `agent.run` and `agent.wait`: a turn of a gateway session runs as `agentTurnWorkflow` on the
 * session's own agent container (started by its first turn, kept for `gateway.agent.ttl`), and
 * its answer is held for one `agent.wait`. Durable: a bridge killed mid-turn finishes the turn
 * when it is back (workflows/agent-turn.ts).
 *
 * `agent.wait` is consumptive, as the spec says: the first wait that finds the turn over takes
 * its result; later waits, unknown runs and turns whose result outlived `gateway.turn.retention`
 * are NOT_FOUND. A turn that failed or expired is answered once with RUN_UNAVAILABLE and its
 * reason (the failure is its result, taken like an answer), then NOT_FOUND. A turn still running
 * when the wait's bound passes is RUN_UNAVAILABLE "still running": wait again.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { z } from 'zod';
import { collectTurn, startTurnWorkflow } from '../../sessions/turns';
import type { AgentTurnInput, TurnResult } from '../../workflows/definitions';
import { parseGatewayParams } from '../params';
import { GatewayError, notFound, type GatewayMethods } from '../protocol';
import { checkTurnMessages, turnRunTemplate, type TurnDeps } from '../turns';

export interface AgentMethodsDeps extends TurnDeps {
  client: Client;
}

/** The spec's `session`. */
export const turnSessionSchema = z.strictObject({
  sessionId: z.string().min(1).max(256),
  channelId: z.string().min(1).max(256),
  channelKind: z.enum(['dm', 'group', 'web', 'mobile']),
  userId: z.string().min(1).max(256).optional(),
});

const runParams = z.strictObject({
  session: turnSessionSchema,
  messages: z
    .array(z.strictObject({ role: z.string().min(1).max(32), content: z.string() }))
    .min(1),
});

/** A run id as the bridge makes them: a uuid, or `cron-<job>-<time>` for a cron firing. */
const RUN_ID = /^[A-Za-z0-9._:-]{1,200}$/;
const waitParams = z.strictObject({
  runId: z.string().regex(RUN_ID, 'must be a run id as agent.run answered it'),
  /** How long to wait for a running turn (capped at gateway.turn.max_wait). */
  timeoutMs: z.number().int().min(0).optional(),
});

/** agent.wait's default bound, when the caller gives none (capped at gateway.turn.max_wait). */
const DEFAULT_WAIT_MS = 30_000;

/** What agent.wait answers: the spec's TurnResult fields, and the model and agent that answered. */
export interface AgentWaitResult {
  runId: string;
  assistantText: string;
  events: TurnResult['events'];
  model?: string;
  containerName?: string;
}

/**
 * Starts a turn of `session` on the session's agent (what agent.run does): checks the messages
 * against the turn limits and answers the new run's id.
 */
export async function startSessionTurn(
  deps: AgentMethodsDeps,
  session: AgentTurnInput['session'],
  messages: AgentTurnInput['messages'],
): Promise<string> {
  const { turns, temporal } = deps.config;
  checkTurnMessages(messages, turns);
  const run = turnRunTemplate(deps);
  const runId = randomUUID();
  await startTurnWorkflow(deps.client, temporal.taskQueue, runId, {
    session,
    messages,
    binding: 'session',
    run,
    timeoutMs: turns.timeoutMs,
    retentionMs: turns.retentionMs,
    maxRetries: turns.maxRetries,
    backoffMs: turns.backoffMs,
  });
  return runId;
}

/** A collected turn that answered; one that failed or expired is RUN_UNAVAILABLE with why. */
export function answeredTurn(r: TurnResult): TurnResult {
  if (r.state !== 'Ended') {
    throw new GatewayError(
      'RUN_UNAVAILABLE',
      `run ${r.runId} ${r.state === 'Expired' ? 'expired' : 'failed'}: ${r.endDetail ?? r.endReason ?? 'no answer'}`,
    );
  }
  return r;
}

export function registerAgentMethods(methods: GatewayMethods, deps: AgentMethodsDeps): void {
  const { turns } = deps.config;

  methods.add('agent.run', async (params) => {
    const p = parseGatewayParams(runParams, params);
    return { runId: await startSessionTurn(deps, p.session, p.messages) };
  });

  methods.add('agent.wait', async (params) => {
    const p = parseGatewayParams(waitParams, params);
    const waitMs = Math.min(p.timeoutMs ?? DEFAULT_WAIT_MS, turns.maxWaitMs);
    const got = await collectTurn(deps.client, p.runId, waitMs);
    if (got.status === 'gone') {
      throw notFound(
        `no result for run ${p.runId}: unknown, already collected, or kept past gateway.turn.retention`,
      );
    }
    if (got.status === 'running') {
      throw new GatewayError(
        'RUN_UNAVAILABLE',
        `run ${p.runId} is still running (${got.state}); call agent.wait again`,
      );
    }
    const r = answeredTurn(got.result);
    const result: AgentWaitResult = {
      runId: r.runId,
      assistantText: r.assistantText,
      events: r.events,
      ...(r.model ? { model: r.model } : {}),
      ...(r.containerName ? { containerName: r.containerName } : {}),
    };
    return result;
  });
}
