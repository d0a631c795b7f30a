/**
 * One request through the provider proxy, from the agent's request to the end of the
 * provider's response: the upstream call with its timeouts, the unbuffered relay of the body
 * each way, the usage meter, and the ways it can end early (cut, agent gone, upstream gone).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import { downstreamHeaders, upstreamHeaders } from './headers';
import {
  errorBody,
  errorEvent,
  PROVIDER_SPECS,
  REFUSAL_STATUS,
  type Endpoint,
  type Provider,
  type RefusalKind,
} from './providers';
import { meterFor, withStreamUsage, type Usage, type UsageMeter } from './usage';

/** The upstream was silent too long, while connecting or during the exchange. */
export class UpstreamTimeout extends Error {
  constructor(readonly phase: 'connect' | 'idle') {
    super(`upstream ${phase} timeout`);
  }
}

export interface ExchangeDeps {
  provider: Provider;
  endpoint: Endpoint;
  /** The model to report when the response does not name one (Google's is in the path). */
  fallbackModel: string;
  agent: http.Agent;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxRewriteBytes: number;
  log: Logger;
  /** Called once when the exchange is over, with the usage it saw. */
  onDone(exchange: Exchange, usage: Usage | undefined): void;
}

/** Answers with `provider`'s error body for a refusal of `kind`. */
export function sendError(
  res: ServerResponse,
  provider: Provider,
  kind: RefusalKind,
  message: string,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(errorBody(provider, kind, message));
  res.writeHead(REFUSAL_STATUS[kind], {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** One agent request and its provider response. */
export class Exchange {
  private upstream: http.ClientRequest | undefined;
  private meter: UsageMeter | undefined;
  private sse = false;
  private ended = false;
  private readonly startedAt = performance.now();
  private fallbackModel: string;

  constructor(
    private readonly deps: ExchangeDeps,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly target: URL,
    private readonly token: string,
  ) {
    this.fallbackModel = deps.fallbackModel;
  }

  /** Sends the request upstream (after rewriting a chat request's body, if it needs it). */
  start(): void {
    // Closed before the response ended: the agent went away, and the provider should stop too.
    this.res.on('close', () => this.abort());
    const rewrite =
      this.deps.endpoint === 'chat' && PROVIDER_SPECS[this.deps.provider].errorStyle === 'openai';
    if (rewrite) this.collectBody();
    else this.send(undefined);
  }

  /** Ends the exchange with a `cut` error in the provider's format (a last event in a stream). */
  cut(reason: string): void {
    if (this.ended) return;
    const { provider } = this.deps;
    this.upstream?.destroy();
    if (!this.res.headersSent) sendError(this.res, provider, 'cut', reason);
    else if (this.sse) this.res.end(errorEvent(provider, 'cut', reason));
    else this.res.destroy();
    this.finish('cut');
  }

  /** Ends the exchange without an answer (the run's socket is closing, or the agent left). */
  abort(): void {
    if (this.ended) return;
    this.upstream?.destroy();
    this.res.destroy();
    this.finish('aborted');
  }

  private collectBody(): void {
    const chunks: Buffer[] = [];
    let size = 0;
    this.req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= this.deps.maxRewriteBytes) chunks.push(chunk);
    });
    this.req.on('end', () => {
      if (this.ended) return;
      if (size > this.deps.maxRewriteBytes) {
        sendError(this.res, this.deps.provider, 'too_large', 'request body too large');
        this.finish('too_large');
        return;
      }
      const body = Buffer.concat(chunks);
      const rewritten = withStreamUsage(body);
      if (rewritten?.model) this.fallbackModel = rewritten.model;
      this.send(rewritten?.body ?? body);
    });
  }

  private send(body: Buffer | undefined): void {
    if (this.ended) return;
    const { deps, req } = this;
    let upstream: http.ClientRequest;
    try {
      const headers = upstreamHeaders(deps.provider, req.headers, this.token, body?.length);
      const request = this.target.protocol === 'http:' ? http.request : https.request;
      upstream = request(this.target, { method: req.method, headers, agent: deps.agent });
    } catch (err) {
      // A header node refuses to send (a token with a line break, say); its message names the
      // header, never its value.
      deps.log.warn({ err: (err as Error).message }, 'upstream request not sent');
      sendError(
        this.res,
        deps.provider,
        'upstream_unreachable',
        'the bridge could not reach the provider',
      );
      this.finish('unsent');
      return;
    }
    this.upstream = upstream;
    upstream.on('socket', (socket) => {
      if (!socket.connecting) return;
      const timer = setTimeout(
        () => upstream.destroy(new UpstreamTimeout('connect')),
        deps.connectTimeoutMs,
      );
      socket.once('connect', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
    });
    upstream.setTimeout(deps.idleTimeoutMs, () => upstream.destroy(new UpstreamTimeout('idle')));
    upstream.on('response', (up) => this.relay(up));
    upstream.on('error', (err) => this.upstreamFailed(err));
    if (body) upstream.end(body);
    else req.pipe(upstream);
  }

  private relay(up: IncomingMessage): void {
    if (this.ended) {
      up.destroy();
      return;
    }
    const status = up.statusCode ?? 502;
    const contentType = up.headers['content-type'];
    this.sse = (contentType ?? '').toLowerCase().startsWith('text/event-stream');
    // Errors pass through as the provider sent them, and carry no usage.
    this.meter = status < 300 ? meterFor(contentType, this.fallbackModel) : undefined;
    this.res.writeHead(status, downstreamHeaders(up.headers));
    this.res.flushHeaders();
    up.on('data', (chunk: Buffer) => {
      if (this.ended) return;
      this.meter?.push(chunk);
      // Each chunk goes out as it came (an SSE event must not wait for the next); a slow agent
      // slows the provider down instead of filling memory.
      if (!this.res.write(chunk)) {
        up.pause();
        this.res.once('drain', () => up.resume());
      }
    });
    up.on('end', () => {
      if (this.ended) return;
      this.res.end();
      this.finish('done');
    });
    up.on('close', () => {
      // Closed before its end: the provider's connection broke mid-response. The agent sees
      // the same break (its body ends short), as it would talking to the provider directly.
      if (this.ended || up.complete) return;
      this.deps.log.warn({ provider: this.deps.provider }, 'upstream response broke off');
      this.res.destroy();
      this.finish('upstream_broke');
    });
  }

  private upstreamFailed(err: Error): void {
    if (this.ended) return;
    const timeout = err instanceof UpstreamTimeout;
    this.deps.log.warn({ provider: this.deps.provider, err: err.message }, 'upstream failed');
    const kind = timeout ? 'upstream_timeout' : 'upstream_unreachable';
    const message = timeout
      ? `the provider did not answer in time (${err.phase})`
      : 'the bridge could not reach the provider';
    sendError(this.res, this.deps.provider, kind, message);
    this.finish(kind);
  }

  private finish(outcome: string): void {
    if (this.ended) return;
    this.ended = true;
    const usage = this.meter?.end();
    this.deps.log.debug(
      {
        provider: this.deps.provider,
        method: this.req.method,
        path: this.target.pathname,
        status: this.res.statusCode,
        outcome,
        ms: Math.round(performance.now() - this.startedAt),
      },
      'provider request',
    );
    this.deps.onDone(this, usage);
  }
}
