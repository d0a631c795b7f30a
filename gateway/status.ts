/**
 * `GET /status`: the gateway's own facts (listener, runtime metrics, policy decisions since
 * start) plus named parts the composition root adds (approvals, incident flags, scheduler
 * backlog, ...). A part that fails reports `{ error }` instead of failing the whole answer.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { GatewayErrorCode } from './protocol';

/** A named contribution to `/status`: its value, or a promise of it. */
export type StatusPart = () => unknown;

/** Guard and handler outcomes since start, by code (`ok` for answered requests). */
export class PolicyDecisionCounter {
  private readonly counts = new Map<string, number>();

  count(outcome: 'ok' | GatewayErrorCode): void {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + 1);
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}

/** Process metrics: uptime, memory, event-loop delay (sampled since start). */
export class RuntimeMetrics {
  private readonly loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  private readonly startedMs = Date.now();

  constructor() {
    this.loop.enable();
  }

  snapshot(): Record<string, number> {
    const mem = process.memoryUsage();
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    return {
      uptimeMs: Date.now() - this.startedMs,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      heapTotalBytes: mem.heapTotal,
      eventLoopDelayP50Ms: ms(this.loop.percentile(50)),
      eventLoopDelayP99Ms: ms(this.loop.percentile(99)),
      eventLoopDelayMaxMs: ms(this.loop.max),
    };
  }

  close(): void {
    this.loop.disable();
  }
}

/** Resolves every part (each bounded by `timeoutMs`) into one object, keyed by part name. */
export async function composeStatus(
  base: Record<string, unknown>,
  parts: Readonly<Record<string, StatusPart>>,
  timeoutMs = 2_000,
): Promise<Record<string, unknown>> {
  const names = Object.keys(parts);
  const values = await Promise.all(
    names.map(async (name) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        return await Promise.race([
          Promise.resolve().then(() => parts[name]!()),
          new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`no answer within ${timeoutMs} ms`)),
              timeoutMs,
            );
          }),
        ]);
      } catch (err) {
        return { error: (err as Error).message };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const out: Record<string, unknown> = { ...base };
  names.forEach((name, i) => (out[name] = values[i]));
  return out;
}
