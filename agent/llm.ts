/**
 * The agent's model: one question (or one conversation's messages, for `agent.turn`), one
 * streamed chat completion, the text deltas joined into the answer. Three stream dialects: OpenAI's chat completions (openai, xai, openrouter),
 * Anthropic's messages and Google's streamGenerateContent.
 *
 * In `proxy` mode the request goes over the bridge's provider proxy socket (HTTP on a Unix
 * socket, the provider's own paths) with the placeholder from the secrets file as its key; the
 * proxy swaps in the real one, so the key never enters the container. In `file` mode it goes to
 * the provider's public https origin with the real key, which needs a network the operator
 * opened (a network-none container answers "could not be reached").
 *
 * Every failure becomes an answer text saying what went wrong (provider errors as
 * `model error (<status>): <provider's message>`), because the answer goes back to a person.
 * Nothing here logs the key, the question or the answer: lengths and outcomes only.
 */
import http from 'node:http';
import https from 'node:https';
import type { Credentials } from './credentials';
import { errorCode, log } from './log';
import { SseReader, type SseEvent } from './sse';

type Family = 'openai' | 'anthropic' | 'google';

interface ProviderRoute {
  family: Family;
  /** The provider's public API origin, for file mode. */
  origin: string;
  /** The streaming chat path, as the provider (and the proxy, which mirrors it) has it. */
  path(model: string): string;
  defaultModel: string;
}

const openAiStyle = (origin: string, prefix: string, defaultModel: string): ProviderRoute => ({
  family: 'openai',
  origin,
  path: () => `${prefix}/chat/completions`,
  defaultModel,
});

const ROUTES: Readonly<Record<string, ProviderRoute>> = {
  openai: openAiStyle('https://api.openai.com', '/v1', 'gpt-4o-mini'),
  xai: openAiStyle('https://api.x.ai', '/v1', 'grok-2-latest'),
  openrouter: openAiStyle('https://openrouter.ai', '/api/v1', 'openai/gpt-4o-mini'),
  anthropic: {
    family: 'anthropic',
    origin: 'https://api.anthropic.com',
    path: () => '/v1/messages',
    defaultModel: 'claude-3-5-haiku-latest',
  },
  google: {
    family: 'google',
    origin: 'https://generativelanguage.googleapis.com',
    path: (model) => `/v1beta/models/${encodeURIComponent(model)}:streamGenerateContent?alt=sse`,
    defaultModel: 'gemini-1.5-flash',
  },
};

/** The providers the agent can ask. */
export const LLM_PROVIDERS: readonly string[] = Object.keys(ROUTES);

/** The model the agent asks when ARMORCLAW_AGENT_MODEL is unset, per provider. */
export function defaultModelFor(provider: string): string | undefined {
  return Object.hasOwn(ROUTES, provider) ? ROUTES[provider]!.defaultModel : undefined;
}

/** Anthropic refuses a request without both. */
const ANTHROPIC_VERSION = '2023-06-01';
const ANTHROPIC_MAX_TOKENS = 1024;
const DEFAULT_TIMEOUT_MS = 120_000;
/** A room message holds at most 32,768 characters (matrix.send); an answer stops short of it. */
export const MAX_ANSWER_CHARS = 32_000;
/** Enough of an error body for its message; the rest is not read. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_ERROR_MESSAGE_CHARS = 500;

export interface LlmOptions {
  /** The model to ask (ARMORCLAW_AGENT_MODEL); defaults to one per provider. */
  model?: string;
  /** The limit on one whole answer (default 120 s). */
  timeoutMs?: number;
  /** File mode only: where the provider is reached instead of its public origin. */
  origin?: string;
}

/** What `ask` answers: the text for the person who asked, whether the model gave it. */
export interface LlmAnswer {
  answer: string;
  model: string;
  ok: boolean;
}

/** One message of a conversation, as `agent.turn` takes them (roles other than these are `user`). */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** How one request ended; `note` is for the log (never content). */
interface Outcome {
  answer: string;
  ok: boolean;
  note: string;
}

/** One reading of a stream event. */
interface Step {
  text?: string;
  /** The provider said the answer is complete. */
  done?: boolean;
  /** The provider's error, as an answer. */
  error?: string;
}

/** Asks the run's model through the provider proxy (proxy mode) or directly (file mode). */
export class Llm {
  readonly model: string;
  private readonly route: ProviderRoute | undefined;
  private readonly timeoutMs: number;

  constructor(
    private readonly credentials: Credentials,
    private readonly options: LlmOptions = {},
  ) {
    this.route = ROUTES[credentials.provider];
    this.model = options.model ?? this.route?.defaultModel ?? '';
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Whether the model is reached through the bridge's provider proxy (proxy mode). */
  get proxied(): boolean {
    return this.credentials.mode === 'proxy';
  }

  /** One streamed chat completion for `question`; failures are answers that say so. */
  ask(question: string): Promise<LlmAnswer> {
    return this.chat([{ role: 'user', content: question }]);
  }

  /** One streamed chat completion over `messages` (oldest first); failures are answers too. */
  async chat(messages: readonly ChatMessage[]): Promise<LlmAnswer> {
    const route = this.route;
    if (!route) {
      const provider = this.credentials.provider || '(none)';
      log(`ask: provider ${provider} is not one the agent speaks`);
      return {
        answer: `this agent cannot ask provider ${JSON.stringify(provider)}; it speaks ${LLM_PROVIDERS.join(', ')}`,
        model: this.model,
        ok: false,
      };
    }
    const started = performance.now();
    log(
      `ask: ${this.credentials.provider} ${this.model} (${this.credentials.mode} mode), ${sizeNote(messages)}`,
    );
    const outcome = await this.request(route, messages);
    const ms = Math.round(performance.now() - started);
    log(
      outcome.ok
        ? `ask: answered ${outcome.answer.length} chars in ${ms} ms${outcome.note ? ` (${outcome.note})` : ''}`
        : `ask: failed (${outcome.note}) after ${ms} ms`,
    );
    return { answer: outcome.answer, model: this.model, ok: outcome.ok };
  }

  private request(route: ProviderRoute, messages: readonly ChatMessage[]): Promise<Outcome> {
    return new Promise((resolve) => {
      const payload = JSON.stringify(requestBody(route.family, this.model, messages));
      const headers = {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(payload)),
        accept: 'text/event-stream',
        ...keyHeaders(route.family, this.credentials.token.reveal()),
      };
      let req: http.ClientRequest | undefined;
      let responded = false;
      let settled = false;
      const finish = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req?.destroy();
        resolve(outcome);
      };
      const timer = setTimeout(
        () =>
          finish({
            answer: `the model did not answer within ${Math.round(this.timeoutMs / 1000)} s`,
            ok: false,
            note: 'timeout',
          }),
        this.timeoutMs,
      );
      try {
        req = this.send(route, headers, (res) => {
          responded = true;
          readResponse(route.family, res, finish);
        });
      } catch (err) {
        // A header Node refuses (a token with a line break): its message names the header only.
        finish(unreachable(err));
        return;
      }
      // Once the response has begun, its own close reports how it ended.
      req.on('error', (err) => {
        if (!responded) finish(unreachable(err));
      });
      req.end(payload);
    });
  }

  private send(
    route: ProviderRoute,
    headers: Record<string, string>,
    onResponse: (res: http.IncomingMessage) => void,
  ): http.ClientRequest {
    const path = route.path(this.model);
    const credentials = this.credentials;
    if (credentials.mode === 'proxy') {
      return http.request(
        { socketPath: credentials.proxySocket, path, method: 'POST', headers, agent: false },
        onResponse,
      );
    }
    const url = new URL(path, this.options.origin ?? route.origin);
    const transport = url.protocol === 'http:' ? http : https;
    return transport.request(url, { method: 'POST', headers, agent: false }, onResponse);
  }
}

/** What the log says of a request's content: its size only. */
function sizeNote(messages: readonly ChatMessage[]): string {
  const chars = messages.reduce((n, m) => n + m.content.length, 0);
  return messages.length === 1
    ? `question ${chars} chars`
    : `${messages.length} messages, ${chars} chars`;
}

function unreachable(err: unknown): Outcome {
  const code = errorCode(err);
  return { answer: `the model could not be reached (${code})`, ok: false, note: code };
}

function requestBody(family: Family, model: string, all: readonly ChatMessage[]): unknown {
  const messages = all.map((m) => ({ role: m.role, content: m.content }));
  switch (family) {
    case 'openai':
      return { model, stream: true, messages };
    case 'anthropic': {
      // Anthropic takes system text beside the conversation, not in it.
      const system = all.filter((m) => m.role === 'system').map((m) => m.content);
      return {
        model,
        max_tokens: ANTHROPIC_MAX_TOKENS,
        stream: true,
        ...(system.length > 0 ? { system: system.join('\n\n') } : {}),
        messages: messages.filter((m) => m.role !== 'system'),
      };
    }
    case 'google': {
      const system = all.filter((m) => m.role === 'system').map((m) => ({ text: m.content }));
      return {
        ...(system.length > 0 ? { systemInstruction: { parts: system } } : {}),
        contents: all
          .filter((m) => m.role !== 'system')
          .map((m) => ({
            role: m.role === 'assistant' ? 'model' : 'user',
            parts: [{ text: m.content }],
          })),
      };
    }
  }
}

function keyHeaders(family: Family, token: string): Record<string, string> {
  switch (family) {
    case 'openai':
      return { authorization: `Bearer ${token}` };
    case 'anthropic':
      return { 'x-api-key': token, 'anthropic-version': ANTHROPIC_VERSION };
    case 'google':
      return { 'x-goog-api-key': token };
  }
}

/** Reads a response to the end (or to its first error) and settles the request with it. */
function readResponse(
  family: Family,
  res: http.IncomingMessage,
  finish: (outcome: Outcome) => void,
): void {
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) return readError(status, res, finish);
  if (!/^text\/event-stream\b/i.test(res.headers['content-type'] ?? '')) {
    return finish({
      answer: 'the model answered in an unexpected format (not a stream)',
      ok: false,
      note: `http ${status} not a stream`,
    });
  }
  const reader = new SseReader();
  let text = '';
  let done = false;
  const take = (events: SseEvent[]): boolean => {
    for (const event of events) {
      const step = readEvent(family, event);
      if (step.error) {
        finish({ answer: step.error, ok: false, note: 'error event' });
        return false;
      }
      if (step.text) text += step.text;
      if (text.length >= MAX_ANSWER_CHARS) {
        finish({
          answer: `${text.slice(0, MAX_ANSWER_CHARS)}\n\n(the answer was truncated)`,
          ok: true,
          note: 'truncated',
        });
        return false;
      }
      if (step.done) done = true;
    }
    return true;
  };
  res.on('data', (chunk: Buffer) => {
    if (!take(reader.push(chunk))) res.destroy();
  });
  res.on('close', () => {
    // An answer whose connection broke (!complete) or whose stream never said it was done.
    if (!take(reader.end())) return;
    if (done && res.complete) {
      finish({ answer: text || '(the model answered with no text)', ok: true, note: '' });
    } else {
      finish({
        answer: text
          ? `${text}\n\n(the model's answer was cut short)`
          : "the model's answer broke off before any text arrived",
        ok: false,
        note: 'cut short',
      });
    }
  });
}

/** A non-2xx answer: the provider's (or the proxy's) error body, read for its message. */
function readError(
  status: number,
  res: http.IncomingMessage,
  finish: (outcome: Outcome) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (chunk: Buffer) => {
    if (size < MAX_ERROR_BODY_BYTES) chunks.push(chunk);
    size += chunk.length;
  });
  res.on('close', () => {
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      // Not JSON (a gateway's HTML page, a cut body): the status says enough.
    }
    finish({ answer: modelError(String(status), body), ok: false, note: `http ${status}` });
  });
}

/** `model error (<label>): <message>` from any provider's error body. */
function modelError(label: string, body: unknown): string {
  const message = errorObject(body)?.message;
  return typeof message === 'string' && message !== ''
    ? `model error (${label}): ${message.slice(0, MAX_ERROR_MESSAGE_CHARS)}`
    : `model error (${label})`;
}

/** The `error` object all three providers put their errors in. */
function errorObject(body: unknown): Record<string, unknown> | undefined {
  const error = (body as { error?: unknown } | null)?.error;
  return typeof error === 'object' && error !== null
    ? (error as Record<string, unknown>)
    : undefined;
}

/** The label of an error met inside a stream, where the HTTP status was already 200. */
function streamErrorLabel(error: Record<string, unknown>): string {
  for (const value of [error.code, error.type, error.status]) {
    if (typeof value === 'number' || (typeof value === 'string' && value !== '')) {
      return String(value);
    }
  }
  return 'stream';
}

/** The parts of the three providers' stream events the agent reads; any of them may be absent. */
interface StreamEvent {
  type?: unknown;
  choices?: Array<{ delta?: { content?: unknown }; finish_reason?: unknown } | null>;
  delta?: { type?: unknown; text?: unknown } | null;
  candidates?: Array<{ content?: { parts?: unknown } | null; finishReason?: unknown } | null>;
}

function readEvent(family: Family, event: SseEvent): Step {
  if (family === 'openai' && event.data === '[DONE]') return { done: true };
  let parsed: unknown;
  try {
    parsed = JSON.parse(event.data);
  } catch {
    // Not one of the provider's events (a keep-alive, say): nothing to take from it.
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null) return {};
  const data = parsed as StreamEvent;
  const error = errorObject(data);
  if (error || event.event === 'error' || data.type === 'error') {
    return { error: modelError(streamErrorLabel(error ?? {}), data) };
  }
  switch (family) {
    case 'openai': {
      const choice = data.choices?.[0];
      return {
        text: stringOr(choice?.delta?.content),
        done: choice?.finish_reason !== undefined && choice?.finish_reason !== null,
      };
    }
    case 'anthropic':
      if (data.type === 'message_stop') return { done: true };
      if (data.type === 'content_block_delta' && data.delta?.type === 'text_delta') {
        return { text: stringOr(data.delta.text) };
      }
      return {};
    case 'google': {
      const candidate = data.candidates?.[0];
      const parts: unknown = candidate?.content?.parts;
      return {
        text: Array.isArray(parts)
          ? parts.map((p) => stringOr((p as { text?: unknown } | null)?.text)).join('')
          : '',
        done: typeof candidate?.finishReason === 'string',
      };
    }
  }
}

const stringOr = (value: unknown): string => (typeof value === 'string' ? value : '');
