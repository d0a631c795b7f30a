/**
 * Methods the bridge may call on the agent: one entry per method, params validated by the
 * handler (throw RpcError for -32602).
 */
import type { AgentAudio } from './audio';
import type { Llm, LlmAnswer } from './llm';
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

/**
 * A backend that answers every room message in a conversation of its own per room (OpenClaw,
 * agent/openclaw.ts), rather than only `!ask`.
 */
export interface ConversationBackend {
  readonly model: string;
  /** Failures are answers that say so (`ok: false`), never exceptions. */
  ask(question: string, conversation: string): Promise<LlmAnswer>;
}

/** The conversation key of a room: one OpenClaw session per room. */
export const roomConversation = (roomId: string): string => `room:${roomId}`;
/** The conversation `agent.ask` questions share. */
export const ASK_CONVERSATION = 'agent.ask';

interface RoomEvent {
  event_id?: string;
  type?: unknown;
  room_id?: unknown;
  sender?: string;
  content?: { body?: unknown; msgtype?: unknown };
}

/** The reply to a room message, or undefined when the agent has nothing to say to it. */
async function replyTo(
  event: RoomEvent,
  llm: Llm | undefined,
  backend: ConversationBackend | undefined,
): Promise<string | undefined> {
  const body = typeof event.content?.body === 'string' ? event.content.body : '';
  if (body.startsWith('!echo ')) return `echo: ${body.slice('!echo '.length)}`;
  if (backend) {
    // Every text message (not notices, emotes, files, or what could not be decrypted).
    const msgtype = event.content?.msgtype;
    const type = event.type;
    if (
      (type !== undefined && type !== 'm.room.message') ||
      (msgtype !== undefined && msgtype !== 'm.text')
    ) {
      return undefined;
    }
    const question = validQuestion(
      body.startsWith('!ask ') ? body.slice('!ask '.length).trim() : body,
    );
    if (!question) {
      return body.trim() === ''
        ? undefined
        : `messages of up to ${MAX_QUESTION_CHARS} characters, please`;
    }
    const room =
      typeof event.room_id === 'string' && event.room_id !== '' ? event.room_id : 'unknown';
    return (await backend.ask(question, roomConversation(room))).answer;
  }
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
  backend: ConversationBackend | undefined,
): Promise<void> {
  const { seq, event } = objectParams(params);
  if (typeof seq !== 'number' || typeof event !== 'object' || event === null) {
    throw new RpcError(INVALID_PARAMS, 'matrix.event needs seq and event');
  }
  const e = event as RoomEvent;
  const id = e.event_id;
  if (id && handling.has(id)) return;
  if (id && !seenEvents.has(id)) {
    log(`room message ${id} from ${e.sender ?? '?'}`);
    handling.add(id);
    try {
      const reply = await replyTo(e, llm, backend);
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
function askMethod(llm: Pick<Llm, 'ask'>): Handler {
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
 * one, while the agent reports unusable secrets, `agent.ask` is not offered). With `backend`
 * (OpenClaw), every room text message and `agent.ask` go to it instead of `llm`.
 */
export function agentMethods(
  audio: AgentAudio,
  llm?: Llm,
  backend?: ConversationBackend,
): ReadonlyMap<string, Handler> {
  const asker = backend
    ? { ask: (question: string) => backend.ask(question, ASK_CONVERSATION) }
    : llm;
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
    ...(asker ? [['agent.ask', askMethod(asker)] as const] : []),
    ['matrix.event', (params, ctx) => onMatrixEvent(params, ctx, llm, backend)],
    ['audio.start', (params, ctx) => audio.start(params, ctx.notify)],
    ['audio.end', (params) => audio.end(params)],
  ]);
}
