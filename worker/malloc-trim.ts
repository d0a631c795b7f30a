/**
 * Gives the memory glibc's malloc holds free back to the kernel, once start-up has settled and
 * then whenever the process has grown by a few MB since the last time (checked every 10 s). What
 * the process allocates and frees with malloc (start-up, the Temporal core, V8's compiler,
 * SQLite, Matrix's syncs) stays in malloc's arenas in pieces too fragmented for free() to
 * return: measured at about 20–40 MB of an idle bridge's RSS after start, and bursts of 10–16 MB
 * minutes later (docs/benchmarks/lean.md). `malloc_trim(0)` returns all of it; Node cannot call
 * it, so setup builds a one-function native module (native/malloc-trim.c →
 * .tools/malloc-trim.node). Without it (no C compiler, or not glibc) the bridge runs as before.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { PROJECT_ROOT } from '../services/runtime';

export const MALLOC_TRIM_MODULE = path.join(PROJECT_ROOT, '.tools', 'malloc-trim.node');

export interface MallocTrim {
  /** Returns free memory to the kernel; true when there was some. */
  trim(): boolean;
}

/** The native module, or undefined when setup could not build it. */
export function loadMallocTrim(file = MALLOC_TRIM_MODULE): MallocTrim | undefined {
  if (!existsSync(file)) return undefined;
  return require(file) as MallocTrim;
}

/** This process's resident set, in bytes (Linux). */
export function residentBytes(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

export interface TrimSchedule {
  stop(): void;
}

/**
 * Trims `firstMs` after the call; then, every `checkMs`, once the resident set has grown by
 * `growthBytes` since the last trim (a trim that finds little free moves that mark up, so a
 * process that grows by use is not trimmed in vain every time). Logs what each trim returned.
 */
export function startMallocTrim(opts: {
  log: Logger;
  binding?: MallocTrim;
  firstMs?: number;
  checkMs?: number;
  growthBytes?: number;
  resident?: () => number;
}): TrimSchedule {
  let binding: MallocTrim | undefined;
  try {
    binding = opts.binding ?? loadMallocTrim();
  } catch (err) {
    opts.log.warn({ err }, 'malloc_trim module did not load; free memory stays with malloc');
  }
  if (!binding) return { stop: () => undefined };
  const trim = binding.trim;
  const resident = opts.resident ?? residentBytes;
  const growth = opts.growthBytes ?? 4 * 2 ** 20;
  let mark = 0;
  const run = () => {
    const before = resident();
    const released = trim();
    mark = resident();
    opts.log.debug(
      {
        released,
        rssMb: Math.round(mark / 2 ** 20),
        freedMb: Math.round((before - mark) / 2 ** 20),
      },
      'malloc trimmed',
    );
  };
  let every: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    run();
    every = setInterval(() => {
      if (resident() - mark >= growth) run();
    }, opts.checkMs ?? 10_000);
    every.unref();
  }, opts.firstMs ?? 15_000);
  first.unref();
  return {
    stop() {
      clearTimeout(first);
      if (every) clearInterval(every);
    },
  };
}
