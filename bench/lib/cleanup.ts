/**
 * What must be stopped however the bench ends (done, failed, interrupted, timed out): the
 * bridge and the helper processes. Run in reverse order of registration.
 */
const cleanups: Array<() => Promise<void> | void> = [];

/** Registers `fn`; returns a function that runs it now and unregisters it. */
export function onCleanup(fn: () => Promise<void> | void): () => Promise<void> {
  cleanups.push(fn);
  return async () => {
    const i = cleanups.indexOf(fn);
    if (i >= 0) cleanups.splice(i, 1);
    await fn();
  };
}

export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    await Promise.resolve()
      .then(fn)
      .catch((err: Error) => console.error(`cleanup failed: ${err.message}`));
  }
}
