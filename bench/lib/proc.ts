import { readdirSync, readFileSync } from 'node:fs';

/**
 * Memory and process-tree readings from /proc, for suites that watch long-lived servers. Every
 * function answers null (or nothing) where there is no /proc or the process is gone.
 */

/** A `kB` field of a /proc file such as `VmRSS:   12345 kB`, in bytes. */
function kbField(file: string, field: string): number | null {
  try {
    const found = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(file, 'utf8'));
    return found ? Number(found[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Resident set size of a process (all threads), in bytes. */
export function processRssBytes(pid: number): number | null {
  return kbField(`/proc/${pid}/status`, 'VmRSS');
}

/**
 * Proportional set size (resident memory, pages shared with other processes divided among them),
 * in bytes. Summed over processes that share memory (PostgreSQL's backends share its buffers),
 * it counts every page once, where a sum of RSS counts shared pages once per process.
 */
export function processPssBytes(pid: number): number | null {
  return kbField(`/proc/${pid}/smaps_rollup`, 'Pss');
}

/** The parent pid of a process. */
export function parentPid(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields count from the last ')': the command name may hold spaces and parentheses.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** Pids whose parent is `pid` (one level), as /proc lists them now. */
export function childPids(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((p) => parentPid(p) === pid);
}

/** The command line of a process, arguments joined by spaces; null when it is gone. */
export function processCmdline(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return null;
  }
}

/** The machine's MemAvailable (what can be allocated without swapping), in bytes. */
export function memAvailableBytes(): number | null {
  return kbField('/proc/meminfo', 'MemAvailable');
}

/** Pids of the processes whose command name (/proc/PID/comm) is one of `names`. */
export function pidsByName(names: string[]): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const wanted = new Set(names);
  return entries
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        return wanted.has(readFileSync(`/proc/${e}/comm`, 'utf8').trim());
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The first of `files` that reads; null when none does. */
function firstReadable(files: string[]): string | null {
  for (const file of files) {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      // the next layout
    }
  }
  return null;
}

/**
 * CPU seconds a Docker container's processes have used so far, from its cgroup (cgroup v1 or v2,
 * the cgroupfs or systemd driver); null where none of those is found.
 */
export function containerCpuSeconds(id: string): number | null {
  const v1 = firstReadable([`/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`]);
  if (v1 !== null) return Number(v1.trim()) / 1e9;
  const v2 = firstReadable([
    `/sys/fs/cgroup/docker/${id}/cpu.stat`,
    `/sys/fs/cgroup/system.slice/docker-${id}.scope/cpu.stat`,
  ]);
  const usec = v2 === null ? null : /^usage_usec (\d+)/m.exec(v2);
  return usec ? Number(usec[1]) / 1e6 : null;
}

/** Anonymous (not file-backed) memory of a Docker container's processes, from its cgroup. */
export function containerAnonMemoryBytes(id: string): number | null {
  const v1 = firstReadable([`/sys/fs/cgroup/memory/docker/${id}/memory.stat`]);
  const v1rss = v1 === null ? null : /^total_rss (\d+)/m.exec(v1);
  if (v1rss) return Number(v1rss[1]);
  const v2 = firstReadable([
    `/sys/fs/cgroup/docker/${id}/memory.stat`,
    `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.stat`,
  ]);
  const anon = v2 === null ? null : /^anon (\d+)/m.exec(v2);
  return anon ? Number(anon[1]) : null;
}

/**
 * Seconds some task has stalled on `resource` since boot (/proc/pressure, "some total"): the
 * difference over a phase, divided by its length, is the share of it that work waited for the
 * CPU, the disk or memory. Null without PSI.
 */
export function pressureStallSeconds(resource: 'cpu' | 'io' | 'memory'): number | null {
  try {
    const found = /^some .*total=(\d+)/m.exec(readFileSync(`/proc/pressure/${resource}`, 'utf8'));
    return found ? Number(found[1]) / 1e6 : null;
  } catch {
    return null;
  }
}

/**
 * The machine's CPU ticks so far (/proc/stat, all CPUs): all of them and those stolen by the
 * hypervisor. Over a phase, stolen / total is the share a virtual machine did not get.
 */
export function cpuTicks(): { total: number; steal: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    return { total, steal: fields[7] ?? 0 };
  } catch {
    return null;
  }
}
