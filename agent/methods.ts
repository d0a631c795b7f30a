/**
 * Methods the bridge may call on the agent: one entry per method, params validated by the
 * handler (throw RpcError for -32602).
 */
import type { AgentAudio } from './audio';
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
 * A room event pushed by the bridge (`matrix.event` {seq, event}). The reference agent answers
 * messages that start with `!echo ` by sending the rest back to the room, then acknowledges the
 * event so the bridge stops redelivering it. A real agent would hand the text to its model here.
 */
async function onMatrixEvent(params: unknown, ctx: HandlerContext): Promise<void> {
  const { seq, event } = objectParams(params);
  if (typeof seq !== 'number' || typeof event !== 'object' || event === null) {
    throw new RpcError(INVALID_PARAMS, 'matrix.event needs seq and event');
  }
  const e = event as { event_id?: string; sender?: string; content?: { body?: unknown } };
  if (e.event_id && !seenEvents.has(e.event_id)) {
    const body = typeof e.content?.body === 'string' ? e.content.body : '';
    log(`room message ${e.event_id} from ${e.sender ?? '?'}`);
    if (body.startsWith('!echo ')) {
      // Keyed by the event it answers: if the bridge restarts mid-send and the agent sends
      // again, the room still gets one reply.
      await ctx.call('matrix.send', {
        message: `echo: ${body.slice('!echo '.length)}`,
        idempotency_key: `reply-${e.event_id}`,
      });
    }
    // Marked only once handled: a failed send is tried again on redelivery.
    seenEvents.add(e.event_id);
    if (seenEvents.size > SEEN_LIMIT) seenEvents.delete(seenEvents.values().next().value as string);
  }
  await ctx.call('matrix.ack', { seq });
}

/** The method table, with the voice methods answered by `audio`. */
export function agentMethods(audio: AgentAudio): ReadonlyMap<string, Handler> {
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
    ['matrix.event', (params, ctx) => onMatrixEvent(params, ctx)],
    ['audio.start', (params, ctx) => audio.start(params, ctx.notify)],
    ['audio.end', (params) => audio.end(params)],
  ]);
}
