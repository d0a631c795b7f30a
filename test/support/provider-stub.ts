/**
 * A stand-in for the paid provider APIs (none is reachable from tests): OpenAI-compatible chat,
 * responses, embeddings and models, Anthropic messages, and Google generateContent /
 * streamGenerateContent, on 127.0.0.1 at a random port (or on a Unix socket, to stand in for the
 * bridge's provider proxy as an agent sees it). It answers JSON or SSE (a stream is `chunks`
 * pieces `delayMs` apart), reports usage as each provider does, records every request (headers,
 * path, body, when it finished or was dropped) and can answer with a provider error or break a
 * stream off.
 * `timedRequest` is the agent's side: one HTTP request, each piece of the answer timed.
 */
import http, {
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface StubOptions {
  /** Pieces a streamed answer is sent in. */
  chunks: number;
  /** Pause before each piece of a stream (and before a JSON answer). */
  delayMs: number;
  inputTokens: number;
  outputTokens: number;
  /** When set, every request is answered with this error in the provider's format. */
  error?: { status: number; message?: string };
  /** When set, a stream's connection is dropped after this many pieces, without its end. */
  breakAfter?: number;
}

export interface StubRequest {
  method: string;
  /** Path and query as received. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** performance.now() when the answer was complete, or the client went away. */
  finishedAt?: number;
  /** The client closed before the answer was complete. */
  dropped: boolean;
}

const DEFAULTS: StubOptions = { chunks: 3, delayMs: 0, inputTokens: 11, outputTokens: 7 };

type Family = 'openai' | 'anthropic' | 'google';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The stub server; `options` may be changed between requests. */
export class ProviderStub {
  readonly requests: StubRequest[] = [];
  options: StubOptions;
  private constructor(
    private readonly server: http.Server,
    /** The stub's origin; on a Unix socket, a placeholder origin for parsing paths. */
    readonly url: string,
    options: Partial<StubOptions>,
    /** The Unix socket it listens on, when started with one. */
    readonly socketPath?: string,
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  /**
   * Starts a stub on a random loopback port, or on `listen.socketPath`; with `listen.tls`, it
   * speaks HTTPS (as real providers do) with that key and certificate.
   */
  static async start(
    options: Partial<StubOptions> = {},
    listen: { socketPath?: string; tls?: { key: string; cert: string } } = {},
  ): Promise<ProviderStub> {
    const server = listen.tls ? https.createServer(listen.tls) : http.createServer();
    const { socketPath } = listen;
    let stub: ProviderStub;
    if (socketPath !== undefined) {
      await new Promise<void>((resolve) => server.listen(socketPath, resolve));
      stub = new ProviderStub(server, 'http://localhost', options, socketPath);
    } else {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const scheme = listen.tls ? 'https' : 'http';
      stub = new ProviderStub(server, `${scheme}://127.0.0.1:${port}`, options);
    }
    server.on('request', (req, res) => void stub.handle(req, res));
    return stub;
  }

  /** Stops the stub and drops its connections. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Forgets the recorded requests. */
  reset(options: Partial<StubOptions> = {}): void {
    this.requests.length = 0;
    this.options = { ...DEFAULTS, ...options };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const record: StubRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
      dropped: false,
    };
    this.requests.push(record);
    res.on('close', () => {
      record.dropped = !res.writableFinished;
      record.finishedAt ??= performance.now();
    });
    res.on('finish', () => (record.finishedAt = performance.now()));
    const url = new URL(record.url, this.url);
    const family: Family = url.pathname.startsWith('/v1beta/')
      ? 'google'
      : url.pathname === '/v1/messages'
        ? 'anthropic'
        : 'openai';
    const o = this.options;
    if (o.error) return sendJson(res, o.error.status, providerError(family, o.error));
    let body: Record<string, any> = {};
    try {
      body = record.body ? JSON.parse(record.body) : {};
    } catch {
      return sendJson(res, 400, providerError(family, { status: 400, message: 'bad JSON' }));
    }
    const model = typeof body.model === 'string' ? body.model : 'stub-model';
    const path = url.pathname.replace(/^\/api/, '');
    if (family === 'google') {
      const m = /^\/v1beta\/models\/([^:]+):(generateContent|streamGenerateContent)$/.exec(path);
      if (!m) return sendJson(res, 404, providerError(family, { status: 404 }));
      if (m[2] === 'generateContent') return this.json(res, googleChunk(m[1]!, o, o.chunks));
      if (url.searchParams.get('alt') !== 'sse') {
        return this.json(
          res,
          range(o.chunks).map((i) => googleChunk(m[1]!, o, i + 1)),
        );
      }
      // CRLF line ends, as Google's servers send them.
      return this.stream(res, (i) =>
        i < o.chunks ? `data: ${JSON.stringify(googleChunk(m[1]!, o, i + 1))}\r\n\r\n` : '',
      );
    }
    if (family === 'anthropic') {
      if (body.stream !== true) return this.json(res, anthropicMessage(model, o));
      return this.stream(res, (i) => anthropicEvents(model, o, i));
    }
    switch (path) {
      case '/v1/chat/completions': {
        if (body.stream !== true) return this.json(res, chatCompletion(model, o));
        const withUsage = body.stream_options?.include_usage === true;
        return this.stream(res, (i) => chatChunk(model, o, i, withUsage));
      }
      case '/v1/responses':
        if (body.stream !== true) return this.json(res, responseObject(model, o));
        return this.stream(res, (i) => responseEvents(model, o, i));
      case '/v1/embeddings':
        return this.json(res, {
          object: 'list',
          model,
          data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }],
          usage: { prompt_tokens: o.inputTokens, total_tokens: o.inputTokens },
        });
      case '/v1/models':
        return this.json(res, { object: 'list', data: [{ id: 'stub-model', object: 'model' }] });
      default:
        return sendJson(res, 404, providerError(family, { status: 404 }));
    }
  }

  private async json(res: ServerResponse, value: unknown): Promise<void> {
    if (this.options.delayMs > 0) await sleep(this.options.delayMs);
    sendJson(res, 200, value);
  }

  /** Streams `event(i)` for i in 0..chunks (the last call closes the stream), pausing before each. */
  private async stream(res: ServerResponse, event: (i: number) => string): Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    for (let i = 0; i <= this.options.chunks; i++) {
      if (this.options.delayMs > 0) await sleep(this.options.delayMs);
      if (res.destroyed) return;
      if (i === this.options.breakAfter) {
        // What was written still goes out; the body's end (the last chunk) never does.
        res.socket?.destroySoon();
        return;
      }
      res.write(event(i));
    }
    res.end();
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** The error body each provider sends. */
function providerError(family: Family, e: { status: number; message?: string }): unknown {
  const message = e.message ?? `stub error ${e.status}`;
  if (family === 'anthropic') {
    return {
      type: 'error',
      error: { type: e.status === 429 ? 'rate_limit_error' : 'api_error', message },
    };
  }
  if (family === 'google') return { error: { code: e.status, message, status: 'UNAVAILABLE' } };
  return { error: { message, type: 'server_error', code: null } };
}

function chatCompletion(model: string, o: StubOptions): unknown {
  return {
    id: 'chatcmpl-stub',
    object: 'chat.completion',
    model,
    choices: [
      { index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop' },
    ],
    usage: {
      prompt_tokens: o.inputTokens,
      completion_tokens: o.outputTokens,
      total_tokens: o.inputTokens + o.outputTokens,
    },
  };
}

/** Piece i of a chat stream: deltas, then the usage chunk (when asked for) and [DONE]. */
function chatChunk(model: string, o: StubOptions, i: number, withUsage: boolean): string {
  const chunk = (choices: unknown[], usage: unknown = null) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-stub', object: 'chat.completion.chunk', model, choices, usage })}\n\n`;
  if (i < o.chunks)
    return chunk([{ index: 0, delta: { content: `tok${i} ` }, finish_reason: null }]);
  const usage = {
    prompt_tokens: o.inputTokens,
    completion_tokens: o.outputTokens,
    total_tokens: o.inputTokens + o.outputTokens,
  };
  return (withUsage ? chunk([], usage) : '') + 'data: [DONE]\n\n';
}

function responseObject(
  model: string,
  o: StubOptions,
  status = 'completed',
): Record<string, unknown> {
  return {
    id: 'resp_stub',
    object: 'response',
    status,
    model,
    output: [],
    usage:
      status === 'completed'
        ? {
            input_tokens: o.inputTokens,
            output_tokens: o.outputTokens,
            total_tokens: o.inputTokens + o.outputTokens,
          }
        : null,
  };
}

function responseEvents(model: string, o: StubOptions, i: number): string {
  const event = (type: string, data: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  if (i === 0)
    return event('response.created', { response: responseObject(model, o, 'in_progress') });
  if (i < o.chunks) return event('response.output_text.delta', { delta: `tok${i} ` });
  return event('response.completed', { response: responseObject(model, o) });
}

function anthropicMessage(model: string, o: StubOptions): unknown {
  return {
    id: 'msg_stub',
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'text', text: 'hello' }],
    stop_reason: 'end_turn',
    usage: { input_tokens: o.inputTokens, output_tokens: o.outputTokens },
  };
}

/** Piece i of a messages stream: message_start, text deltas, message_delta with the output. */
function anthropicEvents(model: string, o: StubOptions, i: number): string {
  const event = (type: string, data: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  if (i === 0) {
    return (
      event('message_start', {
        message: {
          id: 'msg_stub',
          type: 'message',
          role: 'assistant',
          model,
          content: [],
          usage: { input_tokens: o.inputTokens, output_tokens: 1 },
        },
      }) + event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } })
    );
  }
  if (i < o.chunks)
    return event('content_block_delta', {
      index: 0,
      delta: { type: 'text_delta', text: `tok${i} ` },
    });
  return (
    event('content_block_stop', { index: 0 }) +
    event('message_delta', {
      delta: { stop_reason: 'end_turn' },
      usage: { output_tokens: o.outputTokens },
    }) +
    event('message_stop', {})
  );
}

/** Chunk n of chunks: Google reports the running totals on every chunk, the reason on the last. */
function googleChunk(model: string, o: StubOptions, n: number): unknown {
  const finish = n >= o.chunks ? { finishReason: 'STOP' } : {};
  return {
    candidates: [
      { content: { role: 'model', parts: [{ text: `tok${n} ` }] }, ...finish, index: 0 },
    ],
    usageMetadata: {
      promptTokenCount: o.inputTokens,
      candidatesTokenCount: Math.round((o.outputTokens * n) / Math.max(o.chunks, 1)),
      totalTokenCount: o.inputTokens + Math.round((o.outputTokens * n) / Math.max(o.chunks, 1)),
    },
    modelVersion: model,
  };
}

/** An answer with the arrival of each piece of its body. */
export interface TimedReply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Each piece of the body with performance.now() at its arrival. */
  pieces: Array<{ at: number; text: string }>;
  /** The body broke off (a reset rather than an end). */
  broken: boolean;
}

/** One request to a Unix socket or a TCP port, on a fresh connection, the answer timed. */
export function timedRequest(
  target: { socketPath: string } | { host: string; port: number },
  method: string,
  urlPath: string,
  body?: unknown,
  headers: Record<string, string> = {},
  onPiece?: (text: string) => void,
  agent: http.Agent | false = false,
): Promise<TimedReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const contentType: Record<string, string> = payload
      ? { 'content-type': 'application/json' }
      : {};
    const req = http.request(
      { ...target, method, path: urlPath, agent, headers: { ...contentType, ...headers } },
      (res) => {
        const pieces: TimedReply['pieces'] = [];
        let broken = false;
        res.on('data', (c: Buffer) => {
          pieces.push({ at: performance.now(), text: c.toString() });
          onPiece?.(c.toString());
        });
        res.on('aborted', () => (broken = true));
        res.on('error', () => (broken = true));
        res.on('close', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: pieces.map((p) => p.text).join(''),
            pieces,
            broken: broken || !res.complete,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
