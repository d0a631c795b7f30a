import { noParams, parseParams } from '../params';
import type { RpcDispatcher } from '../dispatcher';
import { internalError } from '../errors';
import { SingleFlightCache } from '../../services/single-flight-cache';

export interface CoreDeps {
  version: string;
  socketPath: string;
  /**
   * Ids of the containers whose runs are Active, read from Temporal's visibility store (not a
   * process-local map) at most every few hundred ms; `start`/`stop` invalidate it.
   */
  containerIds: SingleFlightCache<string[]>;
  /** The warm pool per agent type (`warm_pool` in `status` and `health`); absent: none. */
  warmPool?: () => Record<string, unknown>;
  /** Named dependency probes for `health`; each throws when its part is unusable. */
  checks: Record<string, () => Promise<void>>;
  checkTimeoutMs?: number;
  /** How long one round of health checks answers `health` calls (default 1 s). */
  healthMaxAgeMs?: number;
}

export interface CheckResult {
  status: 'ok' | 'error';
  latency_ms: number;
  error?: string;
}

/**
 * `status` (the spec's shape, plus `warm_pool` when one is configured) and `health` (the spec's
 * `status` plus `checks`, and `warm_pool`).
 */
export function registerCoreMethods(dispatcher: RpcDispatcher, deps: CoreDeps): void {
  dispatcher.addMethod('status', async (params) => {
    parseParams(noParams, params);
    let ids: string[];
    try {
      ids = await deps.containerIds.get();
    } catch {
      throw internalError('Internal error: container list unavailable (Temporal did not answer)');
    }
    return {
      version: deps.version,
      state: 'running',
      socket: deps.socketPath,
      containers: ids.length,
      container_ids: ids,
      ...(deps.warmPool ? { warm_pool: deps.warmPool() } : {}),
    };
  });

  // One round of probes serves every `health` call for a second: a busy client cannot turn the
  // bridge into a load generator against Temporal and Docker.
  const health = new SingleFlightCache(async () => {
    const names = Object.keys(deps.checks);
    const results = await Promise.all(
      names.map((name) => runCheck(deps.checks[name]!, deps.checkTimeoutMs ?? 2_000)),
    );
    const checks = Object.fromEntries(names.map((n, i) => [n, results[i]!]));
    const healthy = results.every((r) => r.status === 'ok');
    return {
      status: healthy ? 'healthy' : 'unhealthy',
      checks,
      checked_at: new Date().toISOString(),
    };
  }, deps.healthMaxAgeMs ?? 1_000);
  dispatcher.addMethod('health', async (params) => {
    parseParams(noParams, params);
    const answer = await health.get();
    return deps.warmPool ? { ...answer, warm_pool: deps.warmPool() } : answer;
  });
}

async function runCheck(check: () => Promise<void>, timeoutMs: number): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { status: 'ok', latency_ms: elapsed(started) };
  } catch (err) {
    return { status: 'error', latency_ms: elapsed(started), error: publicReason(err) };
  } finally {
    clearTimeout(timer);
  }
}

const elapsed = (since: number) => Math.round((performance.now() - since) * 100) / 100;

/** A short reason fit for a client: the first line, without paths. */
function publicReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text
    .split('\n')[0]!
    .replace(/\/[^\s:'"]+/g, '<path>')
    .slice(0, 200);
}
