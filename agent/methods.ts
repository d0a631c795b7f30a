/**
 * Methods the bridge may call on the agent: one entry per method, params validated by the
 * handler (throw RpcError for -32602).
 */
import type { AgentAudio } from './audio';
import type { Llm } from './llm';
import { log } from './log';
import {
  INVALID_PARAMS,
  objectParams,
  RpcError,
  type Handler,
  type HandlerContext,
} from './rpc-peer';

/** Event ids already handled: the bridge delivers at least once, the agent acts once. */
const seenEvents = new Set<string>();
const SEEN_LIMIT = 10_000;
/**
 * Event ids being handled: the bridge pushes an unacknowledged event again every 5 s, and a
 * model's answer takes longer than that; the first delivery answers and acknowledges it.
 */
const handling = new Set<string>();

/** The longest question `agent.ask` and `!ask` take. */
export const MAX_QUESTION_CHARS = 8000;

/** The question, if `value` is one the agent takes (1 to MAX_QUESTION_CHARS, not blank). */
function validQuestion(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' && value.length <= MAX_QUESTION_CHARS
    ? value
    : undefined;
}

/** The reply to a room message, or undefined when the agent has nothing to say to it. */
async function replyTo(body: string, llm: Llm | undefined): Promise<string | undefined> {
  if (body.startsWith('!echo ')) return `echo: ${body.slice('!echo '.length)}`;
  if (body === '!ask' || body.startsWith('!ask ')) {
    const question = validQuestion(body.slice('!ask'.length).trim());
    if (!question) return `usage: !ask <question> (1 to ${MAX_QUESTION_CHARS} characters)`;
    if (!llm) return 'this agent has no model to ask';
    return (await llm.ask(question)).answer;
  }
  return undefined;
}

/**
 * A room event pushed by the bridge (`matrix.event` {seq, event}). The reference agent answers
 * `!echo <text>` with the text and `!ask <question>` with its model's answer, then acknowledges
 * the event so the bridge stops redelivering it.
 */
async function onMatrixEvent(
  params: unknown,
  ctx: HandlerContext,
  llm: Llm | undefined,
): Promise<void> {
  const { seq, event } = objectParams(params);
  if (typeof seq !== 'number' || typeof event !== 'object' || event === null) {
    throw new RpcError(INVALID_PARAMS, 'matrix.event needs seq and event');
  }
  const e = event as { event_id?: string; sender?: string; content?: { body?: unknown } };
  const id = e.event_id;
  if (id && handling.has(id)) return;
  if (id && !seenEvents.has(id)) {
    const body = typeof e.content?.body === 'string' ? e.content.body : '';
    log(`room message ${id} from ${e.sender ?? '?'}`);
    handling.add(id);
    try {
      const reply = await replyTo(body, llm);
      if (reply !== undefined) {
        // Keyed by the event it answers: if the bridge restarts mid-send and the agent sends
        // again, the room still gets one reply.
        await ctx.call('matrix.send', { message: reply, idempotency_key: `reply-${id}` });
      }
    } finally {
      handling.delete(id);
    }
    // Marked only once handled: a failed send is tried again on redelivery.
    seenEvents.add(id);
    if (seenEvents.size > SEEN_LIMIT) seenEvents.delete(seenEvents.values().next().value as string);
  }
  await ctx.call('matrix.ack', { seq });
}

/** `agent.ask` {question} → {answer, model}: failures of the model are answers too. */
function askMethod(llm: Llm): Handler {
  return async (params) => {
    const question = validQuestion(objectParams(params).question);
    if (!question) {
      throw new RpcError(
        INVALID_PARAMS,
        `question must be a string of 1 to ${MAX_QUESTION_CHARS} characters`,
      );
    }
    const { answer, model } = await llm.ask(question);
    return { answer, model };
  };
}

/**
 * The method table, with the voice methods answered by `audio` and questions by `llm` (without
 * one, while the agent reports unusable secrets, `agent.ask` is not offered).
 */
export function agentMethods(audio: AgentAudio, llm?: Llm): ReadonlyMap<string, Handler> {
  return new Map<string, Handler>([
    ['ping', () => ({ pong: true })],
    [
      'agent.echo',
      (params) => {
        const { text } = objectParams(params);
        if (typeof text !== 'string') throw new RpcError(INVALID_PARAMS, 'text must be a string');
        return { text };
      },
    ],
    ...(llm ? [['agent.ask', askMethod(llm)] as const] : []),
    ['matrix.event', (params, ctx) => onMatrixEvent(params, ctx, llm)],
    ['audio.start', (params, ctx) => audio.start(params, ctx.notify)],
    ['audio.end', (params) => audio.end(params)],
  ]);
}
