/**
 * Methods the bridge may call on the agent: one entry per method, params validated by the
 * handler (throw RpcError for -32602).
 */
import type { AgentAudio } from './audio';
import type { ChatMessage, Llm, LlmAnswer } from './llm';
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
  /** One turn over a conversation's messages (`agent.turn`); failures are answers too. */
  chat(messages: readonly ChatMessage[], conversation: string): Promise<LlmAnswer>;
}

/** The conversation key of a room: one OpenClaw session per room. */
export const roomConversation = (roomId: string): string => `room:${roomId}`;
/** The conversation of a gateway session: one OpenClaw session per gateway session. */
export const sessionConversation = (sessionId: string): string => `session:${sessionId}`;
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

/** What `agent.turn` answers. */
export interface TurnAnswer {
  text: string;
  model?: string;
}

/** Most messages and characters one `agent.turn` takes (the bridge's own limits are lower). */
const MAX_TURN_MESSAGES = 1000;
const MAX_TURN_CHARS = 512 * 1024;
const TURN_ID = /^[A-Za-z0-9._:-]{1,200}$/;
const ROLES: ReadonlySet<string> = new Set(['system', 'user', 'assistant']);

/**
 * Turns already answered (or being answered), by turn id: the bridge delivers a turn at least
 * once (it asks again after a restart or a lost connection), and the agent answers it once per
 * process, from its first successful model call. A failed call, or an agent process that
 * restarted, calls its model again.
 */
const turns = new Map<string, Promise<TurnAnswer>>();
const TURNS_LIMIT = 1000;

function turnParams(params: unknown): {
  turnId: string;
  sessionId: string;
  messages: ChatMessage[];
} {
  const { turn_id, session_id, messages } = objectParams(params);
  if (typeof turn_id !== 'string' || !TURN_ID.test(turn_id)) {
    throw new RpcError(INVALID_PARAMS, 'turn_id must be a string of 1 to 200 [A-Za-z0-9._:-]');
  }
  if (typeof session_id !== 'string' || session_id === '' || session_id.length > 256) {
    throw new RpcError(INVALID_PARAMS, 'session_id must be a string of 1 to 256 characters');
  }
  if (!Array.isArray(messages) || messages.length === 0 || messages.length > MAX_TURN_MESSAGES) {
    throw new RpcError(INVALID_PARAMS, `messages must be an array of 1 to ${MAX_TURN_MESSAGES}`);
  }
  let chars = 0;
  const list = messages.map((m: unknown) => {
    const { role, content } = (typeof m === 'object' && m !== null ? m : {}) as Record<
      string,
      unknown
    >;
    if (typeof role !== 'string' || typeof content !== 'string') {
      throw new RpcError(INVALID_PARAMS, 'each message needs a string role and content');
    }
    chars += content.length;
    // Roles a model does not know (tool, developer, …) are read as the user's words.
    return { role: ROLES.has(role) ? role : 'user', content } as ChatMessage;
  });
  if (chars > MAX_TURN_CHARS) {
    throw new RpcError(INVALID_PARAMS, `messages hold at most ${MAX_TURN_CHARS} characters`);
  }
  return { turnId: turn_id, sessionId: session_id, messages: list };
}

/** The deterministic answer of an agent without a model: the last user message, echoed. */
export function echoTurn(messages: readonly ChatMessage[]): TurnAnswer {
  const last = [...messages].reverse().find((m) => m.role === 'user') ?? messages.at(-1)!;
  return { text: `echo: ${last.content}` };
}

/**
 * `agent.turn` {turn_id, session_id, messages} → {text, model?}: the conversation to `backend`
 * (OpenClaw, one session per gateway session), else to `llm` in proxy mode (one chat
 * completion), else echoed (file mode: the container has no way to its model). Model failures
 * are answers that say so.
 */
function turnMethod(llm: Llm | undefined, backend: ConversationBackend | undefined): Handler {
  const answer = async (
    sessionId: string,
    messages: ChatMessage[],
  ): Promise<TurnAnswer & { ok: boolean }> => {
    if (backend) {
      const a = await backend.chat(messages, sessionConversation(sessionId));
      return { text: a.answer, model: a.model, ok: a.ok };
    }
    if (llm?.proxied) {
      const a = await llm.chat(messages);
      return { text: a.answer, model: a.model, ok: a.ok };
    }
    return { ...echoTurn(messages), ok: true };
  };
  return async (params) => {
    const { turnId, sessionId, messages } = turnParams(params);
    let pending = turns.get(turnId);
    if (pending) {
      log(`turn ${turnId}: delivered again, answered from the first delivery`);
      return pending;
    }
    log(`turn ${turnId}: ${messages.length} message(s)`);
    const asked = answer(sessionId, messages);
    pending = asked.then(({ text, model }) => (model ? { text, model } : { text }));
    turns.set(turnId, pending);
    if (turns.size > TURNS_LIMIT) turns.delete(turns.keys().next().value as string);
    // A failed answer (the model unreachable while the bridge restarts, say) is not kept: the
    // bridge's next delivery of the turn asks the model again.
    const { ok } = await asked.catch(() => ({ ok: false }));
    if (!ok) turns.delete(turnId);
    return pending;
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
    // Not offered while the agent reports unusable secrets (no model, no backend).
    ...(llm || backend ? [['agent.turn', turnMethod(llm, backend)] as const] : []),
    ['matrix.event', (params, ctx) => onMatrixEvent(params, ctx, llm, backend)],
    ['audio.start', (params, ctx) => audio.start(params, ctx.notify)],
    ['audio.end', (params) => audio.end(params)],
  ]);
}
