/**
 * Token usage as the providers report it, read from the responses passing through the proxy.
 *
 * Each provider puts usage somewhere else: OpenAI chat in `usage` (in a stream, in a last chunk
 * that only comes when the request asked for it: `withStreamUsage`), OpenAI's responses API in
 * the `response.completed` event, Anthropic's input in `message_start` and its output in
 * `message_delta`, Google in `usageMetadata` on every chunk. The meter recognises all of them by
 * shape, so it needs no provider; every figure a provider sends is cumulative for its response,
 * so a later one replaces an earlier one instead of adding to it.
 */

/** Tokens one response consumed; `model` is empty when neither response nor request named it. */
export interface Usage {
  model: string;
  inputTokens: number;
  outputTokens: number;
}

/** Largest JSON body kept for metering; a bigger one passes through unmetered. */
export const MAX_METERED_JSON_BYTES = 16 * 1024 * 1024;

/** One server-sent event: its `event:` name (empty when absent) and its joined `data:` lines. */
export interface SseEvent {
  event: string;
  data: string;
}

/**
 * An incremental text/event-stream parser: bytes in, whole events out, whatever the chunk
 * boundaries (inside a UTF-8 sequence, between a CR and its LF).
 */
export class SseParser {
  private readonly decoder = new TextDecoder();
  private line = '';
  private skipLf = false;
  private event = '';
  private data: string[] = [];

  /** Feeds bytes; returns the events they completed. */
  push(chunk: Uint8Array): SseEvent[] {
    return this.feed(this.decoder.decode(chunk, { stream: true }));
  }

  /** Ends the stream; an event cut off before its blank line still counts (usage may be in it). */
  end(): SseEvent[] {
    const out = this.feed(this.decoder.decode());
    if (this.line !== '') this.takeLine(out);
    if (this.data.length > 0) this.dispatch(out);
    return out;
  }

  private feed(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10 && this.skipLf && i === start && this.line === '') {
        // The LF of a CRLF whose CR ended the previous chunk.
        this.skipLf = false;
        start = i + 1;
        continue;
      }
      this.skipLf = false;
      if (c !== 10 && c !== 13) continue;
      this.line += text.slice(start, i);
      this.takeLine(out);
      if (c === 13) {
        if (text.charCodeAt(i + 1) === 10) i++;
        else if (i + 1 === text.length) this.skipLf = true;
      }
      start = i + 1;
    }
    this.line += text.slice(start);
    return out;
  }

  private takeLine(out: SseEvent[]): void {
    const line = this.line;
    this.line = '';
    if (line === '') {
      if (this.data.length > 0) this.dispatch(out);
      else this.event = '';
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
  }

  private dispatch(out: SseEvent[]): void {
    out.push({ event: this.event, data: this.data.join('\n') });
    this.event = '';
    this.data = [];
  }
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const count = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : undefined;
const sum = (...vs: unknown[]): number | undefined => {
  const ns = vs.map(count);
  return ns.every((n) => n === undefined)
    ? undefined
    : ns.reduce<number>((a, n) => a + (n ?? 0), 0);
};

/** What a meter has gathered so far from one response. */
class UsageState {
  model = '';
  input: number | undefined;
  output: number | undefined;

  absorb(value: unknown): void {
    if (Array.isArray(value)) {
      // Google's streamGenerateContent without `alt=sse`: one JSON array of chunks.
      for (const v of value) this.absorb(v);
      return;
    }
    if (!isObject(value)) return;
    if (value.type === 'message_start' && isObject(value.message)) {
      this.absorb(value.message);
      return;
    }
    if (typeof value.type === 'string' && value.type.startsWith('response.')) {
      if (isObject(value.response)) this.absorb(value.response);
      return;
    }
    this.setModel(value.model ?? value.modelVersion);
    if (isObject(value.usageMetadata)) {
      const u = value.usageMetadata;
      this.set(count(u.promptTokenCount), sum(u.candidatesTokenCount, u.thoughtsTokenCount));
    }
    if (isObject(value.usage)) {
      const u = value.usage;
      // Cached input is counted at the input price: the budget would rather over-count than
      // let spend pass unseen.
      const input =
        count(u.prompt_tokens) ??
        sum(u.input_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens);
      this.set(input, count(u.completion_tokens) ?? count(u.output_tokens));
    }
  }

  private setModel(v: unknown): void {
    if (typeof v === 'string' && v !== '' && v.length <= 256) this.model = v;
  }

  private set(input: number | undefined, output: number | undefined): void {
    if (input !== undefined) this.input = input;
    if (output !== undefined) this.output = output;
  }

  result(fallbackModel: string): Usage | undefined {
    if (this.input === undefined && this.output === undefined) return undefined;
    return {
      model: this.model || fallbackModel,
      inputTokens: this.input ?? 0,
      outputTokens: this.output ?? 0,
    };
  }
}

/** Reads usage from a response body fed chunk by chunk; `end()` says what it found. */
export interface UsageMeter {
  push(chunk: Uint8Array): void;
  /** The usage seen, or undefined when the response carried none. */
  end(): Usage | undefined;
}

const MAY_HOLD_USAGE = /"(usage|usageMetadata)"\s*:\s*\{/;

/** A meter for a `text/event-stream` body: each event's data is one JSON value. */
export function sseUsageMeter(fallbackModel = ''): UsageMeter {
  const parser = new SseParser();
  const state = new UsageState();
  const take = (events: SseEvent[]): void => {
    for (const e of events) {
      // Most events are text deltas; parsing only those that can hold usage keeps the meter's
      // cost per stream near one parse. `"usage": null` (OpenAI's deltas) does not match.
      if (!MAY_HOLD_USAGE.test(e.data)) continue;
      try {
        state.absorb(JSON.parse(e.data));
      } catch {
        // Not JSON: a keep-alive or a provider's own notice; nothing to count.
      }
    }
  };
  return {
    push: (chunk) => take(parser.push(chunk)),
    end: () => {
      take(parser.end());
      return state.result(fallbackModel);
    },
  };
}

/** A meter for a JSON body, kept up to MAX_METERED_JSON_BYTES. */
export function jsonUsageMeter(fallbackModel = '', maxBytes = MAX_METERED_JSON_BYTES): UsageMeter {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let overflow = false;
  return {
    push: (chunk) => {
      if (overflow) return;
      size += chunk.byteLength;
      if (size > maxBytes) {
        overflow = true;
        chunks.length = 0;
      } else chunks.push(chunk);
    },
    end: () => {
      if (overflow) return undefined;
      const state = new UsageState();
      try {
        state.absorb(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        return undefined;
      }
      return state.result(fallbackModel);
    },
  };
}

/** The meter for a response of `contentType`, or undefined when it cannot carry usage. */
export function meterFor(
  contentType: string | undefined,
  fallbackModel = '',
): UsageMeter | undefined {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'text/event-stream') return sseUsageMeter(fallbackModel);
  if (type === 'application/json' || type.endsWith('+json')) return jsonUsageMeter(fallbackModel);
  return undefined;
}

/**
 * An OpenAI-style chat request rewritten so a stream ends with a usage chunk
 * (`stream_options.include_usage`); any other body comes back unchanged (undefined).
 */
export function withStreamUsage(body: Buffer): { body: Buffer; model: string } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(parsed)) return undefined;
  const model = typeof parsed.model === 'string' ? parsed.model : '';
  if (parsed.stream !== true) return { body, model };
  const options = isObject(parsed.stream_options) ? parsed.stream_options : {};
  if (options.include_usage === true) return { body, model };
  parsed.stream_options = { ...options, include_usage: true };
  return { body: Buffer.from(JSON.stringify(parsed)), model };
}
