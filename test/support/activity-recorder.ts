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
        return await Promise.race([Promise.resolve(check()), bounded]);
      } finally {
        clearTimeout(timer);
      }
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await realSleep(50);
    }
  }
}
