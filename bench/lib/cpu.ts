import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** Clock ticks per second of /proc's utime/stime (USER_HZ, almost always 100). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond =
        Number.parseInt(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }), 10) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/**
 * CPU seconds (user + system, all threads) a process has used so far, from /proc; null where
 * there is no /proc or the process is gone. Its waited-for children are not included.
 */
export function processCpuSeconds(pid: number): number | null {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** CPU seconds one thread of a process has used (`tid` = `pid`: its main thread), from /proc. */
export function threadCpuSeconds(pid: number, tid: number): number | null {
  return statCpuSeconds(`/proc/${pid}/task/${tid}/stat`);
}

function statCpuSeconds(file: string): number | null {
  try {
    const stat = readFileSync(file, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / clockTicks();
  } catch {
    return null;
  }
}

/** Warm the CLK_TCK lookup up front so it never runs inside a measured window. */
export function prepareCpuSampling(): void {
  clockTicks();
}

/**
 * CPU seconds all processes on the machine have used so far (busy time summed over CPUs, from
 * /proc/stat), or null without /proc. Minus the watched processes, it shows load from outside
 * the bench that would skew its numbers.
 */
export function systemBusyCpuSeconds(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    const [user, nice, system, , , irq, softirq, steal] = line
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    return (user! + nice! + system! + irq! + softirq! + steal!) / clockTicks();
  } catch {
    return null;
  }
}

/**
 * CPU seconds the Docker containers `ids` (full ids) have used so far, from their cgroups (v1
 * `cpuacct`, or v2 `cpu.stat`, either of Docker's cgroup drivers); null when none is found.
 */
export function containersCpuSeconds(ids: string[]): number | null {
  let total = 0;
  let found = 0;
  for (const id of ids) {
    const v1 = [
      `/sys/fs/cgroup/cpuacct/docker/${id}`,
      `/sys/fs/cgroup/cpuacct/system.slice/docker-${id}.scope`,
    ];
    const v2 = [`/sys/fs/cgroup/docker/${id}`, `/sys/fs/cgroup/system.slice/docker-${id}.scope`];
    const seconds =
      v1
        .map((d) => readNumber(`${d}/cpuacct.usage`, (t) => Number(t) / 1e9))
        .find((v) => v !== null) ??
      v2
        .map((d) =>
          readNumber(`${d}/cpu.stat`, (t) => Number(/^usage_usec (\d+)/m.exec(t)?.[1]) / 1e6),
        )
        .find((v) => v !== null);
    if (seconds === undefined || seconds === null) continue;
    total += seconds;
    found++;
  }
  return found > 0 ? total : null;
}

function readNumber(file: string, parse: (text: string) => number): number | null {
  try {
    const v = parse(readFileSync(file, 'utf8'));
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}
