/**
 * The provider proxy (docs/provider-proxy.md): an HTTP server per run on that run's own Unix
 * socket. The agent sends provider API requests with a placeholder key; the proxy checks the
 * run, the path and the guard, swaps in the run's real key and forwards, streaming both ways,
 * and reads the token usage out of what comes back.
 *
 * The socket names the run: an agent reaches only its own socket, so it cannot speak for
 * another run, and nothing it sends decides which key is used.
 */
import { chmod, chown, lstat, unlink } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { Exchange, sendError, type ExchangeDeps } from './exchange';
import {
  CREDENTIAL_QUERY_PARAMS,
  matchRoute,
  PROVIDER_SPECS,
  type Provider,
  type RefusalKind,
} from './providers';
import type { Usage } from './usage';

/** What the proxy needs to know about a run, looked up on every request. */
export interface RunRoute {
  active: boolean;
  provider: Provider;
  keyId: string;
}

export interface ProviderProxyDeps {
  runs: { lookup(runName: string): RunRoute | undefined };
  /** The real token behind a key id (the keystore). */
  credentials: { tokenFor(keyId: string): string | Promise<string> };
  /** Where each provider is reached; defaults to the provider's own https origin. */
  baseUrls?: Partial<Record<Provider, string>>;
  /** Usage read from each response that carried it. */
  onUsage?(runName: string, usage: Usage): void;
  /** Told of each request the proxy answered itself instead of forwarding it. */
  onRefused?(runName: string, refusal: { kind: RefusalKind; method: string; path: string }): void;
  /** Consulted before each request is forwarded: false or a reason refuses it with 429. */
  guard?: { allow(runName: string): boolean | { reason: string } };
  log: Logger;
  /** Upstream TCP connect limit (default 10 s). */
  connectTimeoutMs?: number;
  /** Upstream silence limit, before and during a response (default 300 s: slow models think). */
  idleTimeoutMs?: number;
  /** Largest chat request body the proxy rewrites (default 32 MiB). */
  maxRewriteBytes?: number;
  /** PEM certificates trusted for HTTPS upstreams besides the public roots (a private gateway). */
  extraCa?: string;
}

interface Listener {
  server: http.Server;
  socketPath: string;
  inflight: Set<Exchange>;
}

/** Keeps a run's provider traffic on its own socket, its key out of the agent's hands. */
export class ProviderProxy {
  private readonly listeners = new Map<string, Listener>();
  private readonly log: Logger;
  private readonly agents: Record<'http:' | 'https:', http.Agent>;

  constructor(private readonly deps: ProviderProxyDeps) {
    this.agents = {
      'http:': new http.Agent({ keepAlive: true }),
      // Certificates are verified as Node does by default; an extra CA adds to the roots.
      'https:': new https.Agent({
        keepAlive: true,
        ...(deps.extraCa ? { ca: [...tls.rootCertificates, deps.extraCa] } : {}),
      }),
    };
    // Nothing here logs headers; the redaction is for a careless line added later.
    this.log = deps.log.child(
      { component: 'provider-proxy' },
      {
        redact: {
          paths: [
            'token',
            '*.token',
            'headers.authorization',
            'headers["x-api-key"]',
            'headers["x-goog-api-key"]',
          ],
          censor: '[redacted]',
        },
      },
    );
  }

  /** Serves `runName` on a new socket at `socketPath` (owner and group only). */
  async listen(
    runName: string,
    socketPath: string,
    options: { groupId?: number } = {},
  ): Promise<void> {
    if (this.listeners.has(runName)) throw new Error(`run ${runName} already has a proxy socket`);
    await removeStaleSocket(socketPath);
    const inflight = new Set<Exchange>();
    const server = http.createServer((req, res) => {
      this.handle(runName, inflight, req, res).catch((err: Error) => {
        // A fault of the proxy's own: the agent gets an answer, the process keeps running.
        this.log.error({ run: runName, err: err.message }, 'proxy request failed');
        sendError(
          res,
          this.providerOf(runName),
          'upstream_unreachable',
          'the bridge failed to forward the request',
        );
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err, run: runName }, 'proxy socket error'));
    this.listeners.set(runName, { server, socketPath, inflight });
    await chmod(socketPath, 0o660);
    if (options.groupId !== undefined && process.getuid?.() === 0) {
      await chown(socketPath, 0, options.groupId);
    }
  }

  /** Stops serving `runName`: aborts its requests, closes its connections, removes its socket. */
  async close(runName: string): Promise<void> {
    const listener = this.listeners.get(runName);
    if (!listener) return;
    this.listeners.delete(runName);
    for (const exchange of listener.inflight) exchange.abort();
    const closed = new Promise<void>((resolve) => listener.server.close(() => resolve()));
    listener.server.closeAllConnections();
    await closed;
    await unlink(listener.socketPath).catch(() => undefined);
  }

  /** Closes every run's socket and the upstream connection pools. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.listeners.keys()].map((run) => this.close(run)));
    this.agents['http:'].destroy();
    this.agents['https:'].destroy();
  }

  /**
   * Ends `runName`'s requests in flight now, each with an error in its provider's format (a
   * stream gets it as a last event); returns how many there were. Later requests are the
   * guard's to refuse.
   */
  cut(runName: string, reason = 'usage for this run was cut off by the bridge'): number {
    const listener = this.listeners.get(runName);
    if (!listener) return 0;
    const exchanges = [...listener.inflight];
    for (const exchange of exchanges) exchange.cut(reason);
    return exchanges.length;
  }

  /** Runs with a socket open. */
  runs(): string[] {
    return [...this.listeners.keys()];
  }

  private async handle(
    runName: string,
    inflight: Set<Exchange>,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const log = this.log.child({ run: runName });
    const route = this.deps.runs.lookup(runName);
    const provider = this.providerOf(runName);
    const refuse = (kind: RefusalKind, message: string): void => {
      log.info({ provider, method: req.method, kind }, 'provider request refused');
      req.resume();
      sendError(res, provider, kind, message);
      const path = (req.url ?? '').split('?')[0]!.slice(0, 256);
      try {
        this.deps.onRefused?.(runName, { kind, method: req.method ?? '', path });
      } catch (err) {
        log.error({ err }, 'refusal callback failed');
      }
    };
    if (!route || !route.active) return refuse('inactive', 'this run is not active');

    const raw = req.url ?? '';
    if (!raw.startsWith('/') || raw.startsWith('//')) return refuse('not_found', 'unknown path');
    const url = new URL(raw, 'http://proxy.invalid');
    for (const p of CREDENTIAL_QUERY_PARAMS) url.searchParams.delete(p);
    const method = req.method ?? 'GET';
    const match = matchRoute(route.provider, method, url.pathname);
    if (!match.ok) {
      return refuse(
        match.kind,
        match.kind === 'wrong_provider'
          ? `this run's key is for ${route.provider}; ${method} ${url.pathname} is not one of its paths`
          : `${method} ${url.pathname} is not available through the bridge`,
      );
    }

    const verdict = this.allowed(runName, log);
    if (verdict !== true) return refuse('budget', verdict);

    let token: string;
    try {
      token = await this.deps.credentials.tokenFor(route.keyId);
      // An empty key would reach the provider as `Bearer ` and fail there, less clearly.
      if (typeof token !== 'string' || token === '') throw new Error('empty token');
    } catch (err) {
      log.warn({ keyId: route.keyId, err: (err as Error).message }, 'no token for the run');
      return refuse('no_credential', "the run's provider key is not available");
    }
    if (!this.listeners.has(runName)) return refuse('inactive', 'this run is not active');

    const base = new URL(
      this.deps.baseUrls?.[route.provider] ?? PROVIDER_SPECS[route.provider].defaultBaseUrl,
    );
    const target = new URL(base.href.replace(/\/$/, '') + url.pathname + url.search);
    const deps: ExchangeDeps = {
      provider: route.provider,
      endpoint: match.endpoint,
      fallbackModel: googleModel(url.pathname),
      agent: target.protocol === 'http:' ? this.agents['http:'] : this.agents['https:'],
      connectTimeoutMs: this.deps.connectTimeoutMs ?? 10_000,
      idleTimeoutMs: this.deps.idleTimeoutMs ?? 300_000,
      maxRewriteBytes: this.deps.maxRewriteBytes ?? 32 * 1024 * 1024,
      log,
      onDone: (exchange, usage) => {
        inflight.delete(exchange);
        if (usage) this.report(runName, usage, log);
      },
    };
    const exchange = new Exchange(deps, req, res, target, token);
    inflight.add(exchange);
    exchange.start();
  }

  /** Whose error format to answer in: without a run, OpenAI's, the most widely read. */
  private providerOf(runName: string): Provider {
    try {
      return this.deps.runs.lookup(runName)?.provider ?? 'openai';
    } catch {
      return 'openai';
    }
  }

  private allowed(runName: string, log: Logger): true | string {
    if (!this.deps.guard) return true;
    try {
      const verdict = this.deps.guard.allow(runName);
      if (verdict === true) return true;
      return verdict === false ? 'the run may not make more provider requests' : verdict.reason;
    } catch (err) {
      // A guard that cannot decide must not wave spend through.
      log.error({ err }, 'proxy guard failed; refusing');
      return 'the bridge could not check the run’s budget';
    }
  }

  private report(runName: string, usage: Usage, log: Logger): void {
    log.debug({ usage }, 'provider usage');
    try {
      this.deps.onUsage?.(runName, usage);
    } catch (err) {
      log.error({ err }, 'usage callback failed');
    }
  }
}

/** Google names the model in the path only; its responses name the version, not always. */
function googleModel(pathname: string): string {
  const m = /^\/v1beta\/models\/([^/:]+)/.exec(pathname);
  return m?.[1] ?? '';
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  const existing = await lstat(socketPath).catch(() => undefined);
  if (!existing) return;
  if (!existing.isSocket())
    throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
  await unlink(socketPath);
}
