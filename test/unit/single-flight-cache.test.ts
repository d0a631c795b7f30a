import { SingleFlightCache } from '../../services/single-flight-cache';

describe('SingleFlightCache', () => {
  let clock = 0;
  const now = () => clock;

  test('loads once per max age, concurrent readers share the load', async () => {
    clock = 0;
    let loads = 0;
    let release!: () => void;
    const cache = new SingleFlightCache(
      () =>
        new Promise<number>((resolve) => {
          loads++;
          release = () => resolve(loads);
        }),
      1000,
      now,
    );
    const a = cache.get();
    const b = cache.get();
    release();
    expect(await a).toBe(1);
    expect(await b).toBe(1);
    clock = 999;
    expect(await cache.get()).toBe(1);
    clock = 1000;
    const c = cache.get();
    release();
    expect(await c).toBe(2);
    expect(loads).toBe(2);
  });

  test('a failed load is not cached', async () => {
    clock = 0;
    let fail = true;
    const cache = new SingleFlightCache(
      async () => {
        if (fail) throw new Error('down');
        return 'ok';
      },
      1000,
      now,
    );
    await expect(cache.get()).rejects.toThrow('down');
    fail = false;
    expect(await cache.get()).toBe('ok');
  });

  test('invalidate forces a fresh load, and a load started before it is not kept', async () => {
    clock = 0;
    let n = 0;
    let release: Array<() => void> = [];
    const cache = new SingleFlightCache(
      () => new Promise<number>((r) => release.push(() => r(++n))),
      1000,
      now,
    );
    const stale = cache.get();
    cache.invalidate();
    const fresh = cache.get();
    release.forEach((f) => f());
    release = [];
    expect(await stale).toBe(1);
    expect(await fresh).toBe(2);
    // the stale result did not overwrite the fresh one
    expect(await cache.get()).toBe(2);
  });
});
