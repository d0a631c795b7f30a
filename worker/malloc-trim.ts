/**
 * Gives the memory the main thread holds free back to the kernel, once start-up has settled and
 * then whenever the process has grown by a megabyte since the last time and is at rest (checked
 * every 10 s): a full garbage collection first (at rest V8 collects rarely and keeps the pages
 * its last allocations grew into, 3–5 MB of an idle bridge with Matrix), then glibc's trim. What
 * the process allocates and frees with malloc (start-up, the Temporal core, V8's compiler,
 * SQLite, Matrix's syncs) stays in malloc's arenas in pieces too fragmented for free() to
 * return: measured at about 20–40 MB of an idle bridge's RSS after start, and bursts of 10–16 MB
 * minutes later (docs/benchmarks/lean.md). `malloc_trim(0)` returns all of it; Node cannot call
 * it, so setup builds a one-function native module (native/malloc-trim.c →
 * .tools/malloc-trim.node). Without it (no C compiler, or not glibc) the bridge only collects.
 * The mark is a megabyte because a bridge's work at rest (Matrix syncs, Temporal's polls and
 * tasks) allocates and frees a few MB at a time: with 4 MB an idle bridge with Matrix sat up to
 * 4 MB above its trimmed size between trims. A collection and trim of an idle bridge takes
 * 27–49 ms of the main thread (measured), at most every 10 s and never under load.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
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

/**
 * A full garbage collection of this thread's heap. V8 exposes `gc` only to contexts created while
 * its flag is set: one context is made with it, and the flag is cleared again, so no other code
 * (and no dependency) sees a global `gc`.
 */
export function fullGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  try {
    return vm.runInNewContext('gc') as () => void;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
}

export interface TrimSchedule {
  stop(): void;
}

/**
 * Collects and trims `firstMs` after the call; then, every `checkMs`, once the resident set has
 * grown by `growthBytes` since the last trim (a trim that finds little free moves that mark up,
 * so a process that grows by use is not trimmed in vain every time) and the process is at rest:
 * it used less than `busyShare` of a core (all its threads) since the last check. Under load the
 * memory freed is soon taken again, and a full collection would only cost the calls and runs
 * in progress their time. Logs what each returned. Without the native module it still collects.
 */
export function startMallocTrim(opts: {
  log: Logger;
  binding?: MallocTrim;
  /** A full garbage collection ({@link fullGc} by default). */
  collect?: () => void;
  firstMs?: number;
  checkMs?: number;
  growthBytes?: number;
  /** Less than this share of one core used since the last check counts as at rest (0.1). */
  busyShare?: number;
  resident?: () => number;
  /** CPU time the process has used so far, in microseconds (all threads). */
  cpuMicros?: () => number;
}): TrimSchedule {
  let binding: MallocTrim | undefined;
  try {
    binding = opts.binding ?? loadMallocTrim();
  } catch (err) {
    opts.log.warn({ err }, 'malloc_trim module did not load; free memory stays with malloc');
  }
  const trim = binding?.trim ?? (() => false);
  const collect = opts.collect ?? fullGc();
  const resident = opts.resident ?? residentBytes;
  const growth = opts.growthBytes ?? 2 ** 20;
  const checkMs = opts.checkMs ?? 10_000;
  const cpuMicros =
    opts.cpuMicros ??
    (() => {
      const used = process.cpuUsage();
      return used.user + used.system;
    });
  let mark = 0;
  const run = () => {
    const before = resident();
    const t0 = performance.now();
    collect();
    const released = trim();
    mark = resident();
    opts.log.debug(
      {
        released,
        ms: Math.round(performance.now() - t0),
        rssMb: Math.round(mark / 2 ** 20),
        freedMb: Math.round((before - mark) / 2 ** 20),
      },
      'malloc trimmed',
    );
  };
  let every: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    run();
    let cpuMark = cpuMicros();
    every = setInterval(() => {
      const used = cpuMicros();
      const busy = (used - cpuMark) / (checkMs * 1000);
      cpuMark = used;
      if (busy < (opts.busyShare ?? 0.1) && resident() - mark >= growth) run();
    }, checkMs);
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
