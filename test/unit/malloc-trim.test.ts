/**
 * The malloc_trim module setup builds (native/malloc-trim.c → .tools/malloc-trim.node), in a
 * child node: memory freed in the middle of malloc's heap stays in the process until the trim
 * hands it back.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { MALLOC_TRIM_MODULE, startMallocTrim } from '../../worker/malloc-trim';

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

describe('startMallocTrim', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('trims once start-up has settled, then on schedule, until stopped', () => {
    const trim = jest.fn(() => true);
    const debug = jest.fn();
    const log = { debug, warn: jest.fn() } as unknown as Parameters<
      typeof startMallocTrim
    >[0]['log'];
    const schedule = startMallocTrim({ log, binding: { trim }, firstMs: 1000, everyMs: 5000 });
    jest.advanceTimersByTime(999);
    expect(trim).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    expect(trim).toHaveBeenCalledTimes(1);
    expect(debug).toHaveBeenCalledWith(
      expect.objectContaining({ released: true }),
      'malloc trimmed',
    );
    jest.advanceTimersByTime(10_000);
    expect(trim).toHaveBeenCalledTimes(3);
    schedule.stop();
    jest.advanceTimersByTime(60_000);
    expect(trim).toHaveBeenCalledTimes(3);
  });
});
