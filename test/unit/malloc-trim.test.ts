/**
 * The malloc_trim module setup builds (native/malloc-trim.c → .tools/malloc-trim.node), in a
 * child node: memory freed in the middle of malloc's heap stays in the process until the trim
 * hands it back.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fullGc, MALLOC_TRIM_MODULE, startMallocTrim } from '../../worker/malloc-trim';

/** Allocates 150 MB in 100 KB buffers, keeps one in eight, frees the rest; RSS before and after the trim. */
const CHILD = `
const { trim } = require(${JSON.stringify(MALLOC_TRIM_MODULE)});
const rss = () => Number(/VmRSS:\\s+(\\d+) kB/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
const kept = [];
let all = [];
for (let i = 0; i < 1500; i++) {
  const b = Buffer.allocUnsafeSlow(100_000);
  b.fill(i & 0xff);
  all.push(b);
  if (i % 8 === 0) kept.push(b);
}
all = null;
global.gc(); global.gc();
const before = rss();
const released = trim();
const after = rss();
console.log(JSON.stringify({ before, after, released, kept: kept.length }));
`;

describe('malloc_trim module', () => {
  it('is built by setup', () => {
    expect(existsSync(MALLOC_TRIM_MODULE)).toBe(true);
  });

  it('returns memory freed in the middle of the heap to the kernel', () => {
    const out = JSON.parse(
      execFileSync(process.execPath, ['--expose-gc', '-e', CHILD], {
        encoding: 'utf8',
        env: { ...process.env, MALLOC_ARENA_MAX: '2' },
      }),
    ) as { before: number; after: number; released: boolean; kept: number };
    expect(out.kept).toBe(188);
    expect(out.released).toBe(true);
    // About 130 MB was freed between the kept buffers; free() could return little of it.
    expect(out.before - out.after).toBeGreaterThan(60);
  });
});

/** A logger for startMallocTrim whose calls the test can read (`debug` and `warn` mocks). */
const stubLog = (debug = jest.fn()) =>
  ({ debug, warn: jest.fn() }) as unknown as Parameters<typeof startMallocTrim>[0]['log'];

describe('startMallocTrim', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('trims once start-up has settled, then whenever the process has grown, until stopped', () => {
    const MB = 2 ** 20;
    let rss = 200 * MB;
    // Each trim hands back all but 150 MB.
    const trim = jest.fn(() => {
      const released = rss > 150 * MB;
      rss = Math.min(rss, 150 * MB);
      return released;
    });
    const collect = jest.fn();
    const debug = jest.fn();
    const log = stubLog(debug);
    const schedule = startMallocTrim({
      log,
      binding: { trim },
      collect,
      firstMs: 1000,
      checkMs: 5000,
      growthBytes: 4 * MB,
      resident: () => rss,
      cpuMicros: () => 0,
    });
    jest.advanceTimersByTime(999);
    expect(trim).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    expect(trim).toHaveBeenCalledTimes(1);
    expect(debug).toHaveBeenCalledWith(
      { released: true, ms: expect.any(Number), rssMb: 150, freedMb: 50 },
      'malloc trimmed',
    );
    // Grown by less than the mark: no trim.
    rss += 3 * MB;
    jest.advanceTimersByTime(10_000);
    expect(trim).toHaveBeenCalledTimes(1);
    // Grown by 4 MB since the last trim: the next check trims.
    rss += 1 * MB;
    jest.advanceTimersByTime(5000);
    expect(trim).toHaveBeenCalledTimes(2);
    expect(debug).toHaveBeenLastCalledWith(
      { released: true, ms: expect.any(Number), rssMb: 150, freedMb: 4 },
      'malloc trimmed',
    );
    // Growth the trim cannot return (memory in use) moves the mark: no trim in vain each check.
    trim.mockImplementation(() => false);
    rss += 10 * MB;
    jest.advanceTimersByTime(5000);
    expect(trim).toHaveBeenCalledTimes(3);
    jest.advanceTimersByTime(20_000);
    expect(trim).toHaveBeenCalledTimes(3);
    rss += 5 * MB;
    schedule.stop();
    jest.advanceTimersByTime(60_000);
    expect(trim).toHaveBeenCalledTimes(3);
    // Each trim came right after a full collection.
    expect(collect).toHaveBeenCalledTimes(3);
    for (let i = 0; i < 3; i++) {
      expect(collect.mock.invocationCallOrder[i]).toBeLessThan(trim.mock.invocationCallOrder[i]!);
    }
  });

  it('leaves a busy process alone until it is at rest again', () => {
    const MB = 2 ** 20;
    let rss = 200 * MB;
    let cpu = 0;
    const trim = jest.fn(() => {
      rss = 150 * MB;
      return true;
    });
    const log = stubLog();
    const schedule = startMallocTrim({
      log,
      binding: { trim },
      collect: jest.fn(),
      firstMs: 1000,
      checkMs: 10_000,
      growthBytes: 4 * MB,
      resident: () => rss,
      cpuMicros: () => cpu,
    });
    jest.advanceTimersByTime(1000);
    expect(trim).toHaveBeenCalledTimes(1);
    // Grown, but half a core busy over each check: no trim.
    rss += 20 * MB;
    for (let i = 0; i < 3; i++) {
      cpu += 5_000_000;
      jest.advanceTimersByTime(10_000);
    }
    expect(trim).toHaveBeenCalledTimes(1);
    // Just under a tenth of a core: at rest, trimmed.
    cpu += 999_000;
    jest.advanceTimersByTime(10_000);
    expect(trim).toHaveBeenCalledTimes(2);
    schedule.stop();
  });

  it('by default trims at rest after a megabyte of growth, checked every 10 s', () => {
    const MB = 2 ** 20;
    let rss = 150 * MB;
    const trim = jest.fn(() => true);
    const log = stubLog();
    const schedule = startMallocTrim({
      log,
      binding: { trim },
      collect: jest.fn(),
      firstMs: 1000,
      resident: () => rss,
      cpuMicros: () => 0,
    });
    jest.advanceTimersByTime(1000);
    expect(trim).toHaveBeenCalledTimes(1);
    rss += MB - 1;
    jest.advanceTimersByTime(10_000);
    expect(trim).toHaveBeenCalledTimes(1);
    rss += 1;
    jest.advanceTimersByTime(9_999);
    expect(trim).toHaveBeenCalledTimes(1);
    jest.advanceTimersByTime(1);
    expect(trim).toHaveBeenCalledTimes(2);
    schedule.stop();
  });

  it('still collects without the native module', () => {
    const collect = jest.fn();
    const log = stubLog();
    const schedule = startMallocTrim({
      log,
      binding: undefined,
      collect,
      firstMs: 1000,
      resident: () => 100,
    });
    // `binding: undefined` asks for the module setup builds; none is loaded here.
    jest.advanceTimersByTime(1000);
    expect(collect).toHaveBeenCalledTimes(1);
    schedule.stop();
  });
});

describe('fullGc', () => {
  it('collects what nothing refers to any more, without a global gc left behind', async () => {
    const gc = fullGc();
    let garbage: object | undefined = { big: new Array(1000).fill('x') };
    const ref = new WeakRef(garbage);
    garbage = undefined;
    // A WeakRef's target is kept until the end of the job that made or last read it.
    expect(ref.deref()).toBeDefined();
    await new Promise((r) => setImmediate(r));
    gc();
    expect(ref.deref()).toBeUndefined();
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    expect(require('node:vm').runInNewContext('typeof gc')).toBe('undefined');
  });
});
