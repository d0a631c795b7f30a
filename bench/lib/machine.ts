import { execFileSync } from 'node:child_process';
import os from 'node:os';

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  totalMemoryBytes: number;
  platform: string;
  kernel: string;
  arch: string;
  node: string;
  date: string;
  gitCommit: string | null;
  /** 1, 5 and 15 minute load averages when the info was taken. */
  loadAverage: number[];
}

/** What a reader needs to compare numbers from two runs. */
export function machineInfo(projectRoot: string): MachineInfo {
  let gitCommit: string | null = null;
  try {
    gitCommit = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: projectRoot,
      encoding: 'utf8',
      stdio: 'pipe',
    }).trim();
  } catch {
    // not a git checkout, or no commit yet
  }
  return {
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    totalMemoryBytes: os.totalmem(),
    platform: os.platform(),
    kernel: os.release(),
    arch: os.arch(),
    node: process.version,
    date: new Date().toISOString(),
    gitCommit,
    loadAverage: os.loadavg(),
  };
}
