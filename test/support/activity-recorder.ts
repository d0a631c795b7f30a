/**
 * What the fake activities of the workflow tests share: a record of every attempt (with the
 * test server's time it was scheduled at), and a wall-clock `eventually` for assertions on
 * state that a workflow reaches asynchronously.
 */
import { Context } from '@temporalio/activity';

export interface RecordedActivity<N extends string> {
  name: N;
  args: unknown;
  attempt: number;
  /** Test-server time the current attempt was scheduled at (workflow time, not wall clock). */
  scheduledMs: number;
  /** Settles when this attempt of the fake has returned or thrown. */
  settled: Promise<void>;
}

/** Runs one attempt of a fake activity, recorded in `calls`. */
export async function recordActivity<N extends string, T>(
  calls: RecordedActivity<N>[],
  name: N,
  args: unknown,
  body: () => Promise<T>,
): Promise<T> {
  const info = Context.current().info;
  let settle!: () => void;
  const settled = new Promise<void>((resolve) => (settle = resolve));
  calls.push({
    name,
    args,
    attempt: info.attempt,
    scheduledMs: info.currentAttemptScheduledTimestampMs,
    settled,
  });
  try {
    return await body();
  } finally {
    settle();
  }
}

const realSleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const inFlight = new Set<Promise<void>>();

/**
 * Waits (up to `timeoutMs`) for every try `eventually` gave up on to settle. Call it before
 * tearing a Temporal environment down: a query still retrying when its connection closes throws
 * from a timer ("Channel has been shut down"), failing whichever suite runs next.
 */
export async function settleAbandonedChecks(timeoutMs = 30_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all([...inFlight]),
    new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
  ]);
  clearTimeout(timer);
}

/**
 * Retries `check` (wall clock) until it stops throwing; rethrows its last error on timeout. Each
 * try is bounded too, so a query that never returns fails the test with a message.
 */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      let timer: NodeJS.Timeout | undefined;
      const bounded = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('check did not return in 5 s')), 5_000);
      });
      try {
        const attempt = Promise.resolve(check());
        // A try given up on may still be a call in flight: remembered until it settles.
        const tracked = attempt.then(
          () => undefined,
          () => undefined,
        );
        inFlight.add(tracked);
        void tracked.then(() => inFlight.delete(tracked));
        return await Promise.race([attempt, bounded]);
      } finally {
        clearTimeout(timer);
      }
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await realSleep(50);
    }
  }
}
