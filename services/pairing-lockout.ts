/**
 * Failed pairing attempts, counted per address and across all addresses in a sliding window. A
 * pairing code has 40 bits, so guessing is bounded only by how many guesses get checked: the
 * per-address limit stops one client, the global limit stops many clients sharing out the work
 * (at the price that a flood of wrong guesses holds off real pairings until the window passes).
 *
 * An attempt made while locked out is refused unchecked and not counted, so a lockout lifts once
 * the failures that caused it are older than the window, however long the guessing goes on. That
 * also bounds memory: no more than `maxGlobal` failures are ever held. Kept in memory only: a
 * restart forgets them, and restarting the bridge is not something a guesser can do.
 */

export interface PairingLockoutOptions {
  /** Failures from one address within the window before that address is refused. */
  maxPerAddress?: number;
  /** Failures from all addresses within the window before every address is refused. */
  maxGlobal?: number;
  windowMs?: number;
}

export const PAIRING_LOCKOUT_DEFAULTS = {
  maxPerAddress: 5,
  maxGlobal: 20,
  windowMs: 10 * 60_000,
} as const;

export type LockoutCheck =
  { locked: false } | { locked: true; scope: 'address' | 'global'; retryAfterMs: number };

export class PairingLockout {
  private readonly maxPerAddress: number;
  private readonly maxGlobal: number;
  private readonly windowMs: number;
  /** Oldest first. */
  private failures: Array<{ atMs: number; address: string }> = [];

  constructor(options: PairingLockoutOptions = {}) {
    this.maxPerAddress = positiveInteger(
      options.maxPerAddress ?? PAIRING_LOCKOUT_DEFAULTS.maxPerAddress,
      'maxPerAddress',
    );
    this.maxGlobal = positiveInteger(
      options.maxGlobal ?? PAIRING_LOCKOUT_DEFAULTS.maxGlobal,
      'maxGlobal',
    );
    this.windowMs = positiveInteger(
      options.windowMs ?? PAIRING_LOCKOUT_DEFAULTS.windowMs,
      'windowMs',
    );
  }

  /** Whether an attempt from `address` at `nowMs` may be checked at all. */
  check(address: string, nowMs: number): LockoutCheck {
    this.prune(nowMs);
    // The window slides: the lock lifts when the oldest failure that still counts ages out.
    const liftsAt = (atMs: number) => Math.max(1, atMs + this.windowMs - nowMs + 1);
    if (this.failures.length >= this.maxGlobal) {
      const oldest = this.failures[this.failures.length - this.maxGlobal]!;
      return { locked: true, scope: 'global', retryAfterMs: liftsAt(oldest.atMs) };
    }
    const mine = this.failures.filter((f) => f.address === address);
    if (mine.length >= this.maxPerAddress) {
      const oldest = mine[mine.length - this.maxPerAddress]!;
      return { locked: true, scope: 'address', retryAfterMs: liftsAt(oldest.atMs) };
    }
    return { locked: false };
  }

  /** Counts a checked attempt that failed. */
  recordFailure(address: string, nowMs: number): void {
    this.prune(nowMs);
    this.failures.push({ atMs: nowMs, address });
  }

  private prune(nowMs: number): void {
    // A failure counts while nowMs - atMs <= windowMs; one exactly windowMs old still counts.
    const from = nowMs - this.windowMs;
    if (this.failures.length > 0 && this.failures[0]!.atMs < from) {
      this.failures = this.failures.filter((f) => f.atMs >= from);
    }
  }
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name}: a positive integer`);
  return value;
}
