/**
 * Suite `cluster`: the bridge on its two Temporal backends, measured in the same run — the
 * embedded dev server (`temporal server start-dev`, SQLite; what a bridge without
 * TEMPORAL_ADDRESS runs) and the production-shaped cluster of scripts/temporal-cluster.sh (the
 * Temporal server on PostgreSQL). For each:
 *
 * - a burst of concurrent `start`s (50), each call's latency and the wall time until all are
 *   Active, then the wall time to `stop` them all; beside it the same burst of `docker run -d`
 *   of the bridge's hardened agent container (flags from the bridge's own `containerSpec`);
 * - many idle runs (200, started 20 at a time): with all Active and nothing asked of them, the
 *   CPU and memory of the bridge and of the Temporal server (the dev server process; the cluster's
 *   server plus its PostgreSQL), then `status` and `containers.list` latency, then the wall time
 *   to stop them all.
 *
 * Environment: BENCH_CLUSTER_BURST (50), BENCH_CLUSTER_RUNS (200), BENCH_CLUSTER_POOL (20 calls
 * in flight while starting and stopping the idle runs), BENCH_CLUSTER_IDLE_SECONDS (30).
 */
import { execFile, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { spawnBridge, type BridgeProcess } from '../test/support/bridge-process';
import { AGENT_IMAGE, docker, ensureAgentImage, ensureDocker } from '../test/support/docker';
import { freePort, freePortRange } from '../test/support/ports';
import { PROJECT_ROOT } from './lib/child';
import { onCleanup } from './lib/cleanup';
import { prepareCpuSampling, processCpuSeconds, systemBusyCpuSeconds } from './lib/cpu';
import {
  bridgeBurst,
  dockerBurst,
  firstErrors,
  range,
  removeContainers,
  rpc,
  since,
  type Burst,
  type Outcome,
} from './lib/burst';
import { machineInfo } from './lib/machine';
import {
  childPids,
  containerAnonMemoryBytes,
  containerCpuSeconds,
  cpuTicks,
  memAvailableBytes,
  pidsByName,
  processCmdline,
  processPssBytes,
  processRssBytes,
  pressureStallSeconds,
} from './lib/proc';
import { summariseMs, type MsSummary } from './lib/stats';
import type { BenchSettings, Suite } from './lib/suite';
import { barChartPanel, BASELINE_COLOR, BRIDGE_COLOR, legend, type BarChart } from './lib/svg';

const BURST = Number(process.env.BENCH_CLUSTER_BURST ?? 50);
const IDLE_RUNS = Number(process.env.BENCH_CLUSTER_RUNS ?? 200);
const POOL = Number(process.env.BENCH_CLUSTER_POOL ?? 20);
const IDLE_MS = Number(process.env.BENCH_CLUSTER_IDLE_SECONDS ?? 30) * 1e3;
/** The idle window with no run open, for what each backend costs by itself. */
const EMPTY_MS = 10_000;
/** Quiet after a phase's last call, before a window: deferred work (visibility, cleanup) ends. */
const SETTLE_MS = 5_000;
const QUERY_CALLS = 50;
/** `status` answers from a list kept 500 ms (worker/rpc-api.ts): calls this far apart miss it. */
const QUERY_GAP_MS = 600;
/** Past this, the idle phase starts no more runs and measures what it has (a ceiling). */
const START_PHASE_MS = 150_000;
/** Nor when the machine has less than this left. */
const MIN_MEM_AVAILABLE = 2 * 2 ** 30;
const KEY_ID = 'bench';
const TTL = '10m';
const CLUSTER_COLOR = '#d9822b';
/** "other" CPU above this (% of one core) in an idle window flags the report as disturbed. */
const NOISY_OTHER = 25;
/** CPU steal above this (% of the CPUs' time) over a phase flags it too. */
const NOISY_STEAL = 5;
const SCRIPT = path.join(PROJECT_ROOT, 'scripts', 'temporal-cluster.sh');

/** Runs `task(0..count-1)` with at most `concurrency` in flight, while `more()` says so. */
async function pool<T>(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<T>,
  more: () => boolean = () => true,
): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count && more()) {
      const i = next++;
      out.push(await task(i));
    }
  };
  await Promise.all(range(Math.min(concurrency, count)).map(worker));
  return out;
}

/** A group of processes watched together (their pids looked up at each edge of a window). */
type PidSource = () => number[];

interface GroupUsage {
  pids: number;
  /** Share of one CPU over the window (100 = one core busy), summed over the group. */
  cpu_percent: number | null;
  /** At the window's end, summed over the group. */
  rss_bytes: number | null;
  pss_bytes: number | null;
}

interface UsageWindow {
  window_ms: number;
  groups: Record<string, GroupUsage>;
  /** The bridge's agent containers, from their cgroups. */
  agents: { containers: number; cpu_percent: number | null; anon_bytes: number | null };
  /** Every process on the machine: busy share of one CPU. */
  machine_cpu_percent: number | null;
  /** The machine minus every group and the agents: load from outside what is measured. */
  other_cpu_percent: number | null;
  mem_available_bytes: number | null;
}

/** The Docker engine's processes (comm names, cut at 15 characters by the kernel). */
const dockerEnginePids: PidSource = () =>
  pidsByName(['dockerd', 'containerd', 'containerd-shim', 'docker-proxy']);

const sumOrNull = (values: Array<number | null>) =>
  values.some((v) => v !== null) ? values.reduce<number>((a, v) => a + (v ?? 0), 0) : null;

/**
 * CPU over `ms` and memory at its end, per group and for the containers `containers()` lists,
 * with nothing asked of the bridge.
 */
async function measureWindow(
  groups: Record<string, PidSource>,
  containers: () => Promise<string[]>,
  ms: number,
): Promise<UsageWindow> {
  const cpuAt = (pids: number[]) => new Map(pids.map((p) => [p, processCpuSeconds(p)]));
  const containerCpuAt = (ids: string[]) => new Map(ids.map((id) => [id, containerCpuSeconds(id)]));
  const idsBefore = await containers();
  const agentsBefore = containerCpuAt(idsBefore);
  const before = Object.fromEntries(
    Object.entries(groups).map(([name, pids]) => [name, cpuAt(pids())]),
  );
  const machine0 = systemBusyCpuSeconds();
  const t0 = process.hrtime.bigint();
  await delay(ms);
  const seconds = since(t0) / 1e3;
  const machine1 = systemBusyCpuSeconds();
  const out: Record<string, GroupUsage> = {};
  for (const [name, source] of Object.entries(groups)) {
    const pids = source();
    // A process born inside the window (a PostgreSQL backend) used all its CPU inside it.
    const cpu = sumOrNull(
      pids.map((p) => {
        const end = processCpuSeconds(p);
        if (end === null) return null;
        return end - (before[name]!.get(p) ?? 0);
      }),
    );
    out[name] = {
      pids: pids.length,
      cpu_percent: cpu === null ? null : (cpu / seconds) * 100,
      rss_bytes: sumOrNull(pids.map(processRssBytes)),
      pss_bytes: sumOrNull(pids.map(processPssBytes)),
    };
  }
  const agentsCpu = sumOrNull(
    idsBefore.map((id) => {
      const end = containerCpuSeconds(id);
      const start = agentsBefore.get(id);
      return end === null || start === null || start === undefined ? null : end - start;
    }),
  );
  const agents = {
    containers: idsBefore.length,
    cpu_percent: agentsCpu === null ? null : (agentsCpu / seconds) * 100,
    anon_bytes: sumOrNull(idsBefore.map(containerAnonMemoryBytes)),
  };
  const machine =
    machine0 === null || machine1 === null ? null : ((machine1 - machine0) / seconds) * 100;
  const measured = sumOrNull([...Object.values(out).map((g) => g.cpu_percent), agents.cpu_percent]);
  return {
    window_ms: seconds * 1e3,
    groups: out,
    agents,
    machine_cpu_percent: machine,
    other_cpu_percent: machine === null || measured === null ? null : machine - measured,
    mem_available_bytes: memAvailableBytes(),
  };
}

interface Idle {
  target: number;
  active: number;
  /** Why fewer than `target` runs were started (null: all were). */
  ceiling: string | null;
  start_wall_ms: number;
  per_start: MsSummary;
  empty: UsageWindow;
  loaded: UsageWindow;
  mem_available_before_bytes: number | null;
  status: MsSummary;
  status_containers: { min: number; max: number } | null;
  list: MsSummary;
  list_count: { min: number; max: number } | null;
  stop_wall_ms: number;
  stopped: number;
  per_stop: MsSummary;
  errors: string[];
}

async function idleRuns(
  socketPath: string,
  groups: Record<string, PidSource>,
  containers: () => Promise<string[]>,
): Promise<Idle> {
  await delay(SETTLE_MS);
  console.log(`  ${EMPTY_MS / 1e3} s idle with no run open...`);
  const empty = await measureWindow(groups, containers, EMPTY_MS);
  const memBefore = memAvailableBytes();

  console.log(`  starting ${IDLE_RUNS} runs, ${POOL} at a time...`);
  let ceiling: string | null = null;
  const phaseStart = Date.now();
  const more = () => {
    if (ceiling) return false;
    if (Date.now() - phaseStart > START_PHASE_MS) {
      ceiling = `time: starting took longer than ${START_PHASE_MS / 1e3} s`;
      return false;
    }
    const avail = memAvailableBytes();
    if (avail !== null && avail < MIN_MEM_AVAILABLE) {
      ceiling = `memory: less than ${MIN_MEM_AVAILABLE / 2 ** 30} GiB available`;
      return false;
    }
    return true;
  };
  let t0 = process.hrtime.bigint();
  const starts = await pool(
    IDLE_RUNS,
    POOL,
    async () => {
      const r = await rpc(socketPath, 'start', { key_id: KEY_ID, ttl: TTL }, 120_000);
      if (!r.ok && !ceiling) ceiling = `a start failed: ${r.error}`;
      return r;
    },
    more,
  );
  const startWall = since(t0);
  const ids = starts.filter((s) => s.ok).map((s) => String(s.result!.container_id));
  console.log(
    `  ${ids.length} Active in ${(startWall / 1e3).toFixed(1)} s${ceiling ? ` (stopped: ${ceiling})` : ''}; ${SETTLE_MS / 1e3} s settle + ${IDLE_MS / 1e3} s idle window...`,
  );

  await delay(SETTLE_MS);
  const loaded = await measureWindow(groups, containers, IDLE_MS);

  console.log(`  ${QUERY_CALLS} status + containers.list calls, ${QUERY_GAP_MS} ms apart...`);
  const status: Outcome[] = [];
  const list: Outcome[] = [];
  for (let i = 0; i < QUERY_CALLS; i++) {
    const started = Date.now();
    status.push(await rpc(socketPath, 'status', undefined, 10_000));
    list.push(await rpc(socketPath, 'containers.list', { limit: 1000 }, 10_000));
    await delay(Math.max(0, started + QUERY_GAP_MS - Date.now()));
  }
  const counts = (outcomes: Outcome[], field: string) => {
    const seen = outcomes.filter((o) => o.ok).map((o) => Number(o.result![field]));
    return seen.length ? { min: Math.min(...seen), max: Math.max(...seen) } : null;
  };

  console.log(`  stopping ${ids.length} runs, ${POOL} at a time...`);
  t0 = process.hrtime.bigint();
  const stops = await pool(ids.length, POOL, (i) =>
    rpc(socketPath, 'stop', { container_id: ids[i] }, 120_000),
  );
  const stopWall = since(t0);
  return {
    target: IDLE_RUNS,
    active: ids.length,
    ceiling,
    start_wall_ms: startWall,
    per_start: summariseMs(starts.filter((s) => s.ok).map((s) => s.ms)),
    empty,
    loaded,
    mem_available_before_bytes: memBefore,
    status: summariseMs(status.filter((s) => s.ok).map((s) => s.ms)),
    status_containers: counts(status, 'containers'),
    list: summariseMs(list.filter((s) => s.ok).map((s) => s.ms)),
    list_count: counts(list, 'count'),
    stop_wall_ms: stopWall,
    stopped: stops.filter((s) => s.ok).length,
    per_stop: summariseMs(stops.filter((s) => s.ok).map((s) => s.ms)),
    errors: firstErrors([...starts, ...status, ...list, ...stops]),
  };
}

const readPid = (file: string): number | null => {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
};

/** SIGKILL of a pid that still runs the command we started (pids get reused). */
function killIfStill(pid: number | null, cmdlinePart: string): void {
  if (pid === null) return;
  if (!processCmdline(pid)?.includes(cmdlinePart)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
}

interface ClusterHandle {
  dir: string;
  address: string;
  start_ms: number;
  stop(): Promise<void>;
}

/**
 * The cluster of scripts/temporal-cluster.sh in a directory of its own (0755: the `postgres` OS
 * user must enter it), its ports free (the server uses PORT..PORT+8, below 32760). Its stop is
 * registered before it starts, so a timeout during the start still stops what started.
 */
async function startClusterBackend(): Promise<ClusterHandle> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-bench-cluster-'));
  chmodSync(dir, 0o755);
  let starting: ChildProcess | undefined;
  const stop = onCleanup(async () => {
    if (starting && starting.exitCode === null) starting.kill('SIGKILL');
    const pids = {
      server: readPid(path.join(dir, 'temporal-server.pid')),
      ui: readPid(path.join(dir, 'temporal-ui.pid')),
      postgres: readPid(path.join(dir, 'pg', 'postmaster.pid')),
    };
    await new Promise<void>((resolve) =>
      execFile('bash', [SCRIPT, 'stop', '--dir', dir], { timeout: 90_000 }, () => resolve()),
    );
    // What the script could not stop, by the pids its files named.
    killIfStill(pids.server, 'temporal-server');
    killIfStill(pids.ui, 'temporal-ui-server');
    killIfStill(pids.postgres, 'postgres');
    rmSync(dir, { recursive: true, force: true });
  });
  const args = [
    'start',
    '--dir',
    dir,
    '--port',
    String(await freePortRange(10)),
    '--pg-port',
    String(await freePort()),
    '--ui-port',
    String(await freePort()),
  ];
  const t0 = process.hrtime.bigint();
  const stdout = await new Promise<string>((resolve, reject) => {
    starting = execFile(
      'bash',
      [SCRIPT, ...args],
      { timeout: 180_000, maxBuffer: 16 * 1024 * 1024 },
      (err, out, errOut) =>
        err
          ? reject(new Error(`temporal-cluster.sh start: ${err.message}\n${errOut}`))
          : resolve(out),
    );
  });
  const found = /^TEMPORAL_ADDRESS=(\S+)$/m.exec(stdout);
  if (!found) throw new Error(`temporal-cluster.sh start printed no address: ${stdout}`);
  return { dir, address: found[1]!, start_ms: since(t0), stop };
}

/** What the machine was like during a phase: the disk's fsync, stalls, the hypervisor's share. */
interface Conditions {
  /** 20 fsyncs of a 4 KiB write in the phase's directory, just before it (ms). */
  fsync_before: MsSummary;
  phase_ms: number;
  /** Share of the phase some task waited for the disk (/proc/pressure/io). */
  io_stall_percent: number | null;
  /** Share of the phase some task waited for a CPU (/proc/pressure/cpu). */
  cpu_stall_percent: number | null;
  /** Share of the CPUs' time the hypervisor gave to others. */
  cpu_steal_percent: number | null;
}

function fsyncProbe(dir: string): MsSummary {
  const file = path.join(dir, '.fsync-probe');
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(4096, 7);
  const samples: number[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const t = process.hrtime.bigint();
      writeSync(fd, block, 0, block.length, 0);
      fsyncSync(fd);
      samples.push(since(t));
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return summariseMs(samples);
}

/** Starts watching a phase; the returned function says what it was like until now. */
function watchConditions(dir: string): () => Conditions {
  const fsyncBefore = fsyncProbe(dir);
  const t0 = process.hrtime.bigint();
  const io0 = pressureStallSeconds('io');
  const cpu0 = pressureStallSeconds('cpu');
  const ticks0 = cpuTicks();
  return () => {
    const seconds = since(t0) / 1e3;
    const io1 = pressureStallSeconds('io');
    const cpu1 = pressureStallSeconds('cpu');
    const ticks1 = cpuTicks();
    const share = (a: number | null, b: number | null) =>
      a === null || b === null ? null : ((b - a) / seconds) * 100;
    return {
      fsync_before: fsyncBefore,
      phase_ms: seconds * 1e3,
      io_stall_percent: share(io0, io1),
      cpu_stall_percent: share(cpu0, cpu1),
      cpu_steal_percent:
        ticks0 && ticks1 && ticks1.total > ticks0.total
          ? ((ticks1.steal - ticks0.steal) / (ticks1.total - ticks0.total)) * 100
          : null,
    };
  };
}

interface BackendResult {
  backend: 'dev' | 'cluster';
  temporal_address: string;
  cluster_start_ms: number | null;
  bridge_start_ms: number;
  /** From the warm-up to the last stop. */
  conditions: Conditions;
  burst: Burst;
  idle: Idle;
  containers_left: number;
}

async function runBackend(
  backend: 'dev' | 'cluster',
  root: string,
  secretsRoot: string,
): Promise<BackendResult> {
  const cluster = backend === 'cluster' ? await startClusterBackend() : undefined;
  if (cluster) {
    console.log(`  cluster up at ${cluster.address} in ${(cluster.start_ms / 1e3).toFixed(1)} s`);
  }
  const dir = path.join(root, backend);
  mkdirSync(dir);
  const secretsDir = path.join(secretsRoot, backend);
  mkdirSync(secretsDir, { mode: 0o700 });
  // A host id of its own labels every container this bridge creates: cleanup finds them all.
  const hostId = `bench-cluster-${backend}-${process.pid}`;
  const t0 = process.hrtime.bigint();
  // Registered before the spawn: a timeout while it starts still stops it.
  const held: { bridge?: BridgeProcess } = {};
  const stopBridge = onCleanup(async () => {
    const { bridge } = held;
    if (bridge) {
      const devPid = readPid(path.join(bridge.stateDir, 'temporal', 'dev-server.pid'));
      const exited = await Promise.race([bridge.stop(), delay(15_000).then(() => 'hung' as const)]);
      if (exited === 'hung') await bridge.stop('SIGKILL');
      killIfStill(devPid, 'start-dev');
    }
    await removeContainers(`label=armorclaw.host=${hostId}`);
  });
  const bridge = await spawnBridge({
    dir,
    env: {
      ARMORCLAW_MASTER_KEY: 'c1'.repeat(32),
      ARMORCLAW_SECRETS_DIR: secretsDir,
      ARMORCLAW_HOST_ID: hostId,
      ...(cluster ? { TEMPORAL_ADDRESS: cluster.address } : {}),
    },
  });
  held.bridge = bridge;
  const bridgeStart = since(t0);
  console.log(`  bridge up in ${(bridgeStart / 1e3).toFixed(1)} s`);
  const socketPath = bridge.socketPath;
  const stored = await rpc(
    socketPath,
    'store_key',
    { id: KEY_ID, provider: 'openai', token: 'sk-bench-cluster' },
    10_000,
  );
  if (!stored.ok) throw new Error(stored.error);

  const conditions = watchConditions(dir);
  // One unrecorded run warms the paths (image layers, the workflow bundle's first task).
  const warm = await rpc(socketPath, 'start', { key_id: KEY_ID, ttl: TTL }, 120_000);
  if (!warm.ok) throw new Error(`warm-up ${warm.error}\n--- bridge output ---\n${bridge.output()}`);
  await rpc(socketPath, 'stop', { container_id: warm.result!.container_id }, 120_000);

  console.log(`  ${BURST} concurrent starts...`);
  const { starts: _starts, ...burst } = await bridgeBurst(socketPath, BURST, {
    key_id: KEY_ID,
    ttl: TTL,
  });
  console.log(
    `  ${burst.ok}/${BURST} Active in ${(burst.all_active_ms / 1e3).toFixed(1)} s, stopped in ${(burst.stop_all_ms / 1e3).toFixed(1)} s`,
  );

  const bridgePid = bridge.child.pid!;
  const groups: Record<string, PidSource> = {
    bridge: () => [bridgePid],
    docker: dockerEnginePids,
    bench: () => [process.pid],
  };
  if (cluster) {
    const serverPid = readPid(path.join(cluster.dir, 'temporal-server.pid'));
    const uiPid = readPid(path.join(cluster.dir, 'temporal-ui.pid'));
    const postmaster = readPid(path.join(cluster.dir, 'pg', 'postmaster.pid'));
    if (serverPid === null || postmaster === null) throw new Error('cluster pids not found');
    groups.temporal = () => [serverPid];
    groups.postgres = () => [postmaster, ...childPids(postmaster)];
    if (uiPid !== null) groups.ui = () => [uiPid];
  } else {
    const devPid = readPid(path.join(bridge.stateDir, 'temporal', 'dev-server.pid'));
    if (devPid === null || !processCmdline(devPid)?.includes('start-dev')) {
      throw new Error('the dev server pid file names no `temporal server start-dev`');
    }
    groups.temporal = () => [devPid];
  }
  const containers = async () =>
    (await docker(['ps', '-q', '--no-trunc', '--filter', `label=armorclaw.host=${hostId}`])).stdout
      .split('\n')
      .filter(Boolean);
  const idle = await idleRuns(socketPath, groups, containers);
  const phase = conditions();
  console.log(
    `  stopped ${idle.stopped}/${idle.active} in ${(idle.stop_wall_ms / 1e3).toFixed(1)} s`,
  );

  await stopBridge();
  const containersLeft = await removeContainers(`label=armorclaw.host=${hostId}`);
  await cluster?.stop();
  return {
    backend,
    temporal_address: cluster?.address ?? `127.0.0.1:${bridge.temporalPort} (embedded dev server)`,
    cluster_start_ms: cluster?.start_ms ?? null,
    bridge_start_ms: bridgeStart,
    conditions: phase,
    burst,
    idle,
    containers_left: containersLeft,
  };
}

// --- report ------------------------------------------------------------------------------------

const mib = (b: number | null | undefined) =>
  b === null || b === undefined ? 'n/a' : `${(b / 2 ** 20).toFixed(0)}`;
const pct = (v: number | null | undefined) =>
  v === null || v === undefined ? 'n/a' : v.toFixed(1);
const ms0 = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : 'n/a');
const ms1 = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : 'n/a');
const sec = (v: number) => (Number.isFinite(v) ? (v / 1e3).toFixed(1) : 'n/a');

/** The Temporal side: the dev server; or the cluster's server plus PostgreSQL (PSS, not RSS). */
function temporalCpu(w: UsageWindow): number | null {
  return sumOrNull([
    w.groups.temporal?.cpu_percent ?? null,
    w.groups.postgres?.cpu_percent ?? null,
  ]);
}
function temporalMemory(w: UsageWindow): number | null {
  return sumOrNull([w.groups.temporal?.rss_bytes ?? null, w.groups.postgres?.pss_bytes ?? null]);
}

function markdown(
  machine: ReturnType<typeof machineInfo>,
  dev: BackendResult,
  cl: BackendResult,
  raw: Burst,
  rawConditions: Conditions,
  suiteMs: number,
): string {
  const condRow = (what: string, f: (c: Conditions) => string) =>
    `| ${what} | ${f(rawConditions)} | ${f(dev.conditions)} | ${f(cl.conditions)} |`;
  const both = (f: (r: BackendResult) => string) => `${f(dev)} | ${f(cl)}`;
  const burstRow = (what: string, f: (b: Burst) => string) =>
    `| ${what} | ${f(dev.burst)} | ${f(cl.burst)} | ${f(raw)} |`;
  const idleRow = (what: string, f: (r: BackendResult) => string) => `| ${what} | ${both(f)} |`;
  const L = (r: BackendResult) => r.idle.loaded;
  const E = (r: BackendResult) => r.idle.empty;
  const ceilings = [dev, cl]
    .filter((r) => r.idle.ceiling)
    .map(
      (r) =>
        `> **${r.backend === 'dev' ? 'Dev server' : 'Cluster'}: ${r.idle.active} of ${r.idle.target} runs started** (${r.idle.ceiling}); its idle figures are for ${r.idle.active} runs.\n`,
    )
    .join('\n');
  const errors = [dev, cl]
    .flatMap((r) => [...r.burst.errors, ...r.idle.errors].map((e) => `${r.backend}: ${e}`))
    .concat(raw.errors.map((e) => `docker: ${e}`));
  const busy = (machine.loadAverage[0] ?? 0) > machine.nproc * 0.5;
  const noisy = [dev, cl].filter(
    (r) =>
      (r.idle.loaded.other_cpu_percent ?? 0) > NOISY_OTHER ||
      (r.idle.empty.other_cpu_percent ?? 0) > NOISY_OTHER ||
      (r.conditions.cpu_steal_percent ?? 0) > NOISY_STEAL,
  );
  const rawNoisy = (rawConditions.cpu_steal_percent ?? 0) > NOISY_STEAL;
  const memDrop = (r: BackendResult) =>
    r.idle.mem_available_before_bytes !== null && r.idle.loaded.mem_available_bytes !== null
      ? r.idle.mem_available_before_bytes - r.idle.loaded.mem_available_bytes
      : null;
  /** "12 % less" / "8 % more": `a` against `b`. */
  const change = (a: number, b: number) => {
    if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a';
    const d = (a / b - 1) * 100;
    return Math.abs(d) < 0.5
      ? 'the same'
      : `${Math.abs(d).toFixed(0)} % ${d < 0 ? 'less' : 'more'}`;
  };
  /** "2.1×": `a` over `b`. */
  const times = (a: number | null, b: number | null) =>
    a === null || b === null || !Number.isFinite(a / b) ? 'n/a' : `${(a / b).toFixed(1)}×`;
  const burstRatio = cl.burst.all_active_ms / dev.burst.all_active_ms;
  const burstVerdict =
    Math.abs(burstRatio - 1) < 0.1
      ? 'neither effect dominates the burst: the two backends are within 10 % of each other'
      : `the ${burstRatio < 1 ? 'cluster' : 'dev server'} came out ${change(Math.min(cl.burst.all_active_ms, dev.burst.all_active_ms), Math.max(cl.burst.all_active_ms, dev.burst.all_active_ms))} time`;
  const devCpu = temporalCpu(dev.idle.loaded) ?? NaN;
  const clCpu = temporalCpu(cl.idle.loaded) ?? NaN;
  const startVerdict =
    dev.idle.start_wall_ms < cl.idle.start_wall_ms === devCpu < clCpu
      ? ` The backend that spends less CPU on its runs (the idle cost below) started them sooner: with the CPUs the limit, CPU per step counts for more than parallel writes.`
      : '';
  const costs: string[] = [];
  const gains: string[] = [];
  (clCpu > devCpu ? costs : gains).push(`${clCpu > devCpu ? 'more' : 'less'} CPU`);
  const clMem = temporalMemory(cl.idle.loaded) ?? NaN;
  const devMem = temporalMemory(dev.idle.loaded) ?? NaN;
  (clMem > devMem ? costs : gains).push(`${clMem > devMem ? 'more' : 'less'} memory`);
  const faster = (c: number, d: number, what: string) =>
    Math.abs(c / d - 1) < 0.1
      ? undefined
      : (c < d ? gains : costs).push(`${c < d ? 'faster' : 'slower'} ${what}`);
  faster(cl.idle.start_wall_ms, dev.idle.start_wall_ms, 'starts (at 20 in flight)');
  faster(cl.idle.stop_wall_ms, dev.idle.stop_wall_ms, 'stops');
  faster(cl.idle.status.p50, dev.idle.status.p50, 'visibility queries');
  const tradeOff = `${costs.length ? `costs ${costs.join(', ')}` : 'costs nothing more'}${gains.length ? ` and gains ${gains.join(', ')}` : ''} (differences under 10 % left out)`;
  return `# Temporal backends: embedded dev server vs. PostgreSQL cluster

Generated by \`BENCH_SUITES=cluster npm run bench\` (bench/cluster.ts) on ${machine.date}: ${machine.nproc} CPUs (${machine.cpuModel}), ${mib(machine.totalMemoryBytes)} MiB RAM, Node ${machine.node}, commit ${machine.gitCommit?.slice(0, 12) ?? 'n/a'}, 1-minute load ${machine.loadAverage[0]?.toFixed(2)} at start; the suite took ${(suiteMs / 60e3).toFixed(1)} min.${busy || noisy.length > 0 || rawNoisy ? '' : ' The numbers come from a quiet machine: the run was started only once no other test or bench run was going and the load had settled.'} Raw numbers, every call: [cluster.json](cluster.json).

**What ran.** The same real bridge (\`worker/main.ts\`, real Docker, the reference agent \`${AGENT_IMAGE}\`, a fake OpenAI key) twice, one backend after the other:

- **dev server**: no TEMPORAL_ADDRESS, so the bridge runs its embedded \`temporal server start-dev\` (one process, SQLite file in the bridge's state directory);
- **cluster**: \`scripts/temporal-cluster.sh start\` in a private directory (the Temporal server built from Go modules, frontend, history, matching and worker services in one process, 4 history shards, on a project-local PostgreSQL 15), the bridge pointed at it with TEMPORAL_ADDRESS (cluster up in ${sec(cl.cluster_start_ms ?? NaN)} s).

Per backend, after one unrecorded start/stop: **${BURST} concurrent \`start\`s** (one socket connection each, all written at once; \`start\` answers when the run is Active), then a \`stop\` of each, all at once; then **${IDLE_RUNS} runs** started ${POOL} calls in flight at a time, ${SETTLE_MS / 1e3} s of quiet, a ${IDLE_MS / 1e3} s window with all of them open and nothing asked (CPU over the window, memory at its end), ${QUERY_CALLS} \`status\` and ${QUERY_CALLS} \`containers.list\` (\`limit: 1000\`) calls one at a time ${QUERY_GAP_MS} ms apart (\`status\` keeps its list 500 ms, so each call reads Temporal), and a \`stop\` of every run, ${POOL} in flight. The **baseline** burst is \`docker run -d\` of the same container ${BURST} times at once (the bridge's own \`containerSpec\`: hardening flags, limits, secrets and socket mounts; \`bench/lib/hardened-run.ts\`), then \`docker stop -t 5\` + \`docker rm -f\` of each, at once.

${busy ? `> **The machine was busy** (1-minute load ${machine.loadAverage[0]?.toFixed(2)} on ${machine.nproc} CPUs at start): absolute times are inflated by other work.\n\n` : ''}${ceilings ? `${ceilings}\n` : ''}${noisy.length > 0 || rawNoisy ? `> **Load from outside the bench** (${[...noisy.map((r) => r.backend), ...(rawNoisy ? ['docker run -d burst'] : [])].join(', ')}: "other" above ${NOISY_OTHER} % of one core in an idle window, or the hypervisor took more than ${NOISY_STEAL} % of the CPUs' time in the phase): those figures are not to be trusted; rerun on an idle machine.\n\n` : ''}## ${BURST} concurrent starts

| figure | dev server | cluster | \`docker run -d\` (baseline) |
| --- | ---: | ---: | ---: |
${burstRow('started', (b) => `${b.ok}/${b.n}`)}
${burstRow('per call p50 (ms)', (b) => ms0(b.per_start.p50))}
${burstRow('per call p95 (ms)', (b) => ms0(b.per_start.p95))}
${burstRow('per call max (ms)', (b) => ms0(b.per_start.max))}
${burstRow('wall time until all Active (s)', (b) => sec(b.all_active_ms))}
${burstRow('wall time to stop all (s)', (b) => sec(b.stop_all_ms))}

## ${IDLE_RUNS} idle runs

| figure | dev server | cluster |
| --- | ---: | ---: |
${idleRow('runs Active', (r) => `${r.idle.active}/${r.idle.target}`)}
${idleRow(`wall time to start them, ${POOL} in flight (s)`, (r) => sec(r.idle.start_wall_ms))}
${idleRow('per start p50 / p95 (ms)', (r) => `${ms0(r.idle.per_start.p50)} / ${ms0(r.idle.per_start.p95)}`)}
${idleRow('bridge CPU (% of one core)', (r) => pct(L(r).groups.bridge?.cpu_percent))}
${idleRow('bridge RSS (MiB)', (r) => mib(L(r).groups.bridge?.rss_bytes))}
${idleRow('Temporal server CPU (% of one core)', (r) => pct(L(r).groups.temporal?.cpu_percent))}
${idleRow('Temporal server RSS (MiB)', (r) => mib(L(r).groups.temporal?.rss_bytes))}
${idleRow('PostgreSQL CPU (% of one core, all its processes)', (r) => pct(L(r).groups.postgres?.cpu_percent))}
${idleRow('PostgreSQL memory (MiB, PSS summed over its processes)', (r) => mib(L(r).groups.postgres?.pss_bytes))}
${idleRow('**Temporal in all: CPU (%)**', (r) => `**${pct(temporalCpu(L(r)))}**`)}
${idleRow('**Temporal in all: memory (MiB)**', (r) => `**${mib(temporalMemory(L(r)))}**`)}
${idleRow(`agents' CPU (% of one core, all ${IDLE_RUNS} containers)`, (r) => pct(L(r).agents.cpu_percent))}
${idleRow(`agents' memory (MiB, anonymous, all ${IDLE_RUNS} containers)`, (r) => mib(L(r).agents.anon_bytes))}
${idleRow('Docker engine CPU (% of one core: dockerd, containerd, shims)', (r) => pct(L(r).groups.docker?.cpu_percent))}
${idleRow('Temporal Web UI server CPU (%) / RSS (MiB)', (r) => (r.backend === 'cluster' ? `${pct(L(r).groups.ui?.cpu_percent)} / ${mib(L(r).groups.ui?.rss_bytes)}` : 'in the dev server'))}
${idleRow('whole machine CPU (% of one core)', (r) => pct(L(r).machine_cpu_percent))}
${idleRow('of which other (machine minus all the above: kernel, hypervisor steal, outside load)', (r) => pct(L(r).other_cpu_percent))}
${idleRow('machine memory taken by the runs (MiB, MemAvailable drop)', (r) => mib(memDrop(r)))}
${idleRow('`status` p50 / p95 (ms)', (r) => `${ms1(r.idle.status.p50)} / ${ms1(r.idle.status.p95)}`)}
${idleRow('`containers.list` p50 / p95 (ms)', (r) => `${ms1(r.idle.list.p50)} / ${ms1(r.idle.list.p95)}`)}
${idleRow('containers counted by `status` / `containers.list`', (r) => `${r.idle.status_containers?.min ?? 'n/a'} / ${r.idle.list_count?.min ?? 'n/a'}`)}
${idleRow(`wall time to stop them, ${POOL} in flight (s)`, (r) => sec(r.idle.stop_wall_ms))}
${idleRow('per stop p50 / p95 (ms)', (r) => `${ms0(r.idle.per_stop.p50)} / ${ms0(r.idle.per_stop.p95)}`)}
${idleRow('no run open: bridge CPU (%) / RSS (MiB)', (r) => `${pct(E(r).groups.bridge?.cpu_percent)} / ${mib(E(r).groups.bridge?.rss_bytes)}`)}
${idleRow('no run open: Temporal in all, CPU (%) / memory (MiB)', (r) => `${pct(temporalCpu(E(r)))} / ${mib(temporalMemory(E(r)))}`)}

![burst, idle runs, query latency: dev server, cluster, docker run](cluster.svg)

## Conditions during each phase

| figure | \`docker run -d\` burst | dev server phase | cluster phase |
| --- | ---: | ---: | ---: |
${condRow('phase length (s)', (c) => sec(c.phase_ms))}
${condRow('fsync of 4 KiB just before, p50 / max (ms)', (c) => `${ms1(c.fsync_before.p50)} / ${ms1(c.fsync_before.max)}`)}
${condRow('some task waiting for the disk (% of the phase)', (c) => pct(c.io_stall_percent))}
${condRow('some task waiting for a CPU (% of the phase)', (c) => pct(c.cpu_stall_percent))}
${condRow('CPU time stolen by the hypervisor (%)', (c) => pct(c.cpu_steal_percent))}

The dev server's SQLite and the cluster's PostgreSQL write to the same disk (the bench's temporary directory). The dev server runs SQLite with its defaults (the bridge passes no \`--sqlite-pragma\`): a rollback journal and full sync, so every commit of its one writer waits for its own fsyncs (a bare workflow start took over a dozen when this suite was written), one commit after the other. PostgreSQL flushes its WAL once for all the transactions committing at that moment. So a slow or uneven disk shows more in the dev server's figures. Compare these rows before reading much into a difference between two runs.

## What the numbers mean

- **${BURST} at once: Docker first.** ${BURST} containers started at once on ${machine.nproc} CPUs queue in the Docker engine: \`docker run -d\` alone took ${sec(raw.all_active_ms)} s until all ran. The bridge took ${sec(dev.burst.all_active_ms)} s on the dev server and ${sec(cl.burst.all_active_ms)} s on the cluster (${change(cl.burst.all_active_ms, dev.burst.all_active_ms)}), ${times(dev.burst.all_active_ms, raw.all_active_ms)} and ${times(cl.burst.all_active_ms, raw.all_active_ms)} Docker's own time. On top of the container, each start is a workflow: its start, an update that waits for Active, the secrets file, the run's sockets and provider proxy, audit, each step a workflow task or activity whose state the backend writes. The dev server keeps all of it in one SQLite file, and SQLite serialises writes: one writer at a time, every workflow's history, timers, task queues and visibility rows queue for the same lock, each commit waiting for the disk (conditions below). The cluster's server writes through a pool of PostgreSQL connections over 4 history shards in parallel, but each step costs more on the way (gRPC from the bridge to the server, SQL from the server to PostgreSQL, more processes to schedule). On ${machine.nproc} CPUs that Docker already keeps busy, ${burstVerdict}.
- **${IDLE_RUNS} runs, ${POOL} starts in flight**: ${sec(dev.idle.start_wall_ms)} s on the dev server, ${sec(cl.idle.start_wall_ms)} s on the cluster (${change(cl.idle.start_wall_ms, dev.idle.start_wall_ms)}); stopping them all, ${sec(dev.idle.stop_wall_ms)} s against ${sec(cl.idle.stop_wall_ms)} s (${change(cl.idle.stop_wall_ms, dev.idle.stop_wall_ms)}). A stop is an update per run that waits for the container's stop (\`docker stop -t 5\`; the agent exits on SIGTERM within a second), its removal, the secrets file's removal and audit.${startVerdict}
- **Idle runs are not free.** An open run is a workflow that wakes every 30 s (\`containers.health_check_interval\`) for a timer and an activity that inspects its container, so ${IDLE_RUNS} runs make about ${(IDLE_RUNS / 30).toFixed(1)} workflow tasks and activities a second; the ${IDLE_MS / 1e3} s window covers one round. (Agents also heartbeat their bridge socket every 5 s; that stays in the bridge's memory.) With ${IDLE_RUNS} runs open, Temporal used ${pct(temporalCpu(dev.idle.loaded))} % of one core on the dev server and ${pct(temporalCpu(cl.idle.loaded))} % on the cluster (server ${pct(cl.idle.loaded.groups.temporal?.cpu_percent)} % + PostgreSQL ${pct(cl.idle.loaded.groups.postgres?.cpu_percent)} %), ${times(temporalCpu(cl.idle.loaded), temporalCpu(dev.idle.loaded))}; memory ${mib(temporalMemory(dev.idle.loaded))} MiB against ${mib(temporalMemory(cl.idle.loaded))} MiB (PostgreSQL as PSS, so the buffers its processes share count once). With no run open the cluster already costs ${pct(temporalCpu(cl.idle.empty))} % against ${pct(temporalCpu(dev.idle.empty))} %. The bridge itself: ${pct(dev.idle.loaded.groups.bridge?.cpu_percent)} % / ${pct(cl.idle.loaded.groups.bridge?.cpu_percent)} % of a core and about ${mib(dev.idle.loaded.groups.bridge?.rss_bytes)} MiB either way. The ${IDLE_RUNS} agents together: ${pct(dev.idle.loaded.agents.cpu_percent)} % of a core and ${mib(dev.idle.loaded.agents.anon_bytes)} MiB of anonymous memory; the machine's available memory fell by ${mib(memDrop(dev))} MiB in all (about ${mib((memDrop(dev) ?? NaN) / Math.max(1, dev.idle.active))} MiB a run, with Docker's per-container processes and page cache), so memory is far from the ceiling on this ${mib(machine.totalMemoryBytes)} MiB machine.
- **\`status\` and \`containers.list\`** list the ${IDLE_RUNS} open runs from Temporal's visibility store (SQLite's; PostgreSQL's); \`containers.list\` returns each run's fields too, in pages of 100. p50 ${ms1(dev.idle.status.p50)} ms on the dev server against ${ms1(cl.idle.status.p50)} ms on the cluster for \`status\` (${change(cl.idle.status.p50, dev.idle.status.p50)}), ${ms1(dev.idle.list.p50)} against ${ms1(cl.idle.list.p50)} ms for \`containers.list\` (${change(cl.idle.list.p50, dev.idle.list.p50)}).
- One run per backend, one after the other (the dev server first), on a ${machine.nproc}-CPU machine where the bridge, Temporal, PostgreSQL, Docker and the agents share the CPUs: differences of a few percent are within run-to-run noise. On more cores the cluster's parallel writers have room the dev server's single SQLite writer never gets. On this machine the cluster ${tradeOff}.
${errors.length > 0 ? `\nErrors seen (first of each kind): ${errors.map((e) => `\`${e.replace(/`/g, "'").slice(0, 300)}\``).join('; ')}\n` : ''}`;
}

function chart(dev: BackendResult, cl: BackendResult, raw: Burst): string {
  const fmtMs = (v: number) =>
    v >= 10_000
      ? `${(v / 1e3).toFixed(0)} s`
      : v >= 1_000
        ? `${Number((v / 1e3).toFixed(1))} s`
        : `${Number(v.toFixed(v < 10 ? 1 : 0))} ms`;
  const two = (
    title: string,
    groups: string[],
    pick: (r: BackendResult) => Array<number | null>,
    format: (v: number) => string,
  ): BarChart => ({
    title,
    groupLabel: '',
    groups,
    series: [
      { name: 'dev server', color: BRIDGE_COLOR, values: pick(dev) },
      { name: 'cluster', color: CLUSTER_COLOR, values: pick(cl) },
    ],
    format,
  });
  const burstBars = (b: Burst) => [
    b.per_start.p50,
    b.per_start.p95,
    b.all_active_ms,
    b.stop_all_ms,
  ];
  const panels: BarChart[] = [
    {
      title: `${BURST} concurrent starts`,
      groupLabel: '',
      groups: ['call p50', 'call p95', 'all Active', 'stop all'],
      series: [
        { name: 'dev server', color: BRIDGE_COLOR, values: burstBars(dev.burst) },
        { name: 'cluster', color: CLUSTER_COLOR, values: burstBars(cl.burst) },
        { name: 'docker run -d', color: BASELINE_COLOR, values: burstBars(raw) },
      ],
      format: fmtMs,
    },
    two(
      `${IDLE_RUNS} runs: start and stop all`,
      ['start all', 'stop all'],
      (r) => [r.idle.start_wall_ms, r.idle.stop_wall_ms],
      fmtMs,
    ),
    two(
      `${IDLE_RUNS} runs, ${IDLE_MS / 1e3} s idle: CPU %`,
      ['bridge', 'Temporal', 'machine'],
      (r) => [
        r.idle.loaded.groups.bridge?.cpu_percent ?? null,
        temporalCpu(r.idle.loaded),
        r.idle.loaded.machine_cpu_percent,
      ],
      (v) => `${Number(v.toFixed(v < 10 ? 1 : 0))} %`,
    ),
    two(
      `${IDLE_RUNS} runs idle: memory (MiB)`,
      ['bridge', 'Temporal'],
      (r) =>
        [r.idle.loaded.groups.bridge?.rss_bytes ?? null, temporalMemory(r.idle.loaded)].map((b) =>
          b === null ? null : b / 2 ** 20,
        ),
      (v) => v.toFixed(0),
    ),
    two(
      `with ${IDLE_RUNS} runs open: latency`,
      ['status p50', 'p95', 'list p50', 'p95'],
      (r) => [r.idle.status.p50, r.idle.status.p95, r.idle.list.p50, r.idle.list.p95],
      fmtMs,
    ),
  ];
  // The burst (three series) takes two columns of the first row; the rest one column each.
  const boxes = [
    [0, 24, 640],
    [640, 24, 320],
    [0, 344, 320],
    [320, 344, 320],
    [640, 344, 320],
  ] as const;
  const svg = panels
    .map((p, i) => barChartPanel(p, boxes[i]![0], boxes[i]![1], boxes[i]![2], 320))
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="960" height="684" viewBox="0 0 960 684"><rect width="960" height="684" fill="#fff"/>\n${legend(
    [
      { name: 'dev server (SQLite)', color: BRIDGE_COLOR },
      { name: 'cluster (PostgreSQL)', color: CLUSTER_COLOR },
      { name: 'docker run -d (baseline)', color: BASELINE_COLOR },
    ],
    60,
    16,
  )}\n${svg}\n</svg>\n`;
}

export const cluster: Suite = {
  name: 'cluster',
  budgetMs: () => 12 * 60_000,
  async run(settings: BenchSettings): Promise<string[]> {
    const suiteStart = process.hrtime.bigint();
    const machine = machineInfo(PROJECT_ROOT);
    prepareCpuSampling();
    await ensureDocker();
    await ensureAgentImage();
    const root = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-bench-cl-'));
    const secretsRoot = mkdtempSync(path.join('/dev/shm', 'armorclaw-bench-cl-'));
    onCleanup(() => {
      rmSync(root, { recursive: true, force: true });
      rmSync(secretsRoot, { recursive: true, force: true });
    });

    console.log(`docker run -d baseline: ${BURST} at once...`);
    const label = `cluster-${process.pid}`;
    onCleanup(async () => void (await removeContainers(`label=armorclaw.bench=${label}`)));
    const rawDir = path.join(root, 'raw');
    const rawSecrets = path.join(secretsRoot, 'raw');
    mkdirSync(rawSecrets, { mode: 0o700 });
    mkdirSync(rawDir);
    const rawWatch = watchConditions(rawDir);
    const raw = await dockerBurst(BURST, rawDir, rawSecrets, label);
    const rawConditions = rawWatch();
    console.log(
      `  ${raw.ok}/${BURST} running in ${(raw.all_active_ms / 1e3).toFixed(1)} s, removed in ${(raw.stop_all_ms / 1e3).toFixed(1)} s`,
    );

    console.log('bridge on the embedded dev server (SQLite)...');
    const dev = await runBackend('dev', root, secretsRoot);
    console.log('bridge on the cluster (temporal-cluster.sh, PostgreSQL)...');
    const cl = await runBackend('cluster', root, secretsRoot);
    const suiteMs = since(suiteStart);

    const result = {
      machine,
      settings: {
        burst: BURST,
        idle_runs: IDLE_RUNS,
        pool: POOL,
        idle_window_ms: IDLE_MS,
        empty_window_ms: EMPTY_MS,
        settle_ms: SETTLE_MS,
        query_calls: QUERY_CALLS,
        query_gap_ms: QUERY_GAP_MS,
        ttl: TTL,
        image: AGENT_IMAGE,
      },
      suite_ms: suiteMs,
      docker_run_burst: raw,
      docker_run_conditions: rawConditions,
      dev_server: dev,
      cluster: cl,
    };
    mkdirSync(settings.outDir, { recursive: true });
    const jsonPath = path.join(settings.outDir, 'cluster.json');
    const mdPath = path.join(settings.outDir, 'cluster.md');
    const svgPath = path.join(settings.outDir, 'cluster.svg');
    writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');
    writeFileSync(mdPath, markdown(machine, dev, cl, raw, rawConditions, suiteMs));
    writeFileSync(svgPath, chart(dev, cl, raw));
    console.log(
      `cluster: ${BURST} starts all Active dev ${sec(dev.burst.all_active_ms)} s / cluster ${sec(cl.burst.all_active_ms)} s / docker ${sec(raw.all_active_ms)} s; ${IDLE_RUNS} idle: Temporal CPU dev ${pct(temporalCpu(dev.idle.loaded))} % / cluster ${pct(temporalCpu(cl.idle.loaded))} %`,
    );
    return [jsonPath, mdPath, svgPath];
  },
};
