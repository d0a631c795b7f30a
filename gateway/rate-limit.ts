/**
 * Per-method, per-subject rate limits (docs/gateway.md, "Rate limits"): a token bucket per
 * (method, subject) holding up to a minute's budget and refilling evenly, so a client may burst
 * its whole budget and then gets one request per 60/budget seconds. Buckets live in memory: a
 * restart refills them, which errs towards letting a client in, never towards locking it out.
 */

export interface RateLimitConfig {
  /** Requests per minute when the method has no row in `methodRates`; 0: unlimited. */
  ratePerMinute: number;
  methodRates: Readonly<Record<string, number>>;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  updatedMs: number;
  capacity: number;
}

/** Above this many buckets, full ones (idle subjects) are dropped: they carry no information. */
const PRUNE_AT = 50_000;

export class MethodRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly config: RateLimitConfig,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** Takes one request from (method, subject)'s bucket, or says how long until one is free. */
  take(method: string, subject: string): RateDecision {
    const perMinute = Object.prototype.hasOwnProperty.call(this.config.methodRates, method)
      ? this.config.methodRates[method]!
      : this.config.ratePerMinute;
    if (perMinute === 0) return { ok: true };
    const now = this.nowMs();
    const key = `${method}\u0000${subject}`;
    const perMs = perMinute / 60_000;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= PRUNE_AT) this.prune(now);
      bucket = { tokens: perMinute, updatedMs: now, capacity: perMinute };
      this.buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(perMinute, bucket.tokens + (now - bucket.updatedMs) * perMs);
      bucket.updatedMs = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return {
      ok: false,
      retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000)),
    };
  }

  private prune(now: number): void {
    for (const [key, b] of this.buckets) {
      const perMs = b.capacity / 60_000;
      if (b.tokens + (now - b.updatedMs) * perMs >= b.capacity) this.buckets.delete(key);
    }
  }
}
