/**
 * Suite `warm-pool`: `start` → Active when the run takes a container from the warm pool
 * (containers.warm_pool), against `docker run -d` of the same hardened container and against a
 * `start` that creates its container, BENCH_POOL_RUNS (20) of each, alternating, on one bridge
 * as `npm start` runs it (embedded Temporal dev server, real Docker).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { containerWorkflowId } from '../workflows/definitions';
import { docker, ensureAgentImage, ensureDocker } from '../test/support/docker';
import { rawRunArgs, rpc, since } from './lib/burst';
import { PROJECT_ROOT } from './lib/child';
import { benchSpace, startBenchBridge } from './lib/bench-bridge';
import { onCleanup } from './lib/cleanup';
import { machineInfo } from './lib/machine';
import { meanPhases, tracedStarts } from './lib/start-trace';
import { summariseMs, type MsSummary } from './lib/stats';
import type { BenchSettings, Suite } from './lib/suite';
import { barChartSvg, BASELINE_COLOR, BRIDGE_COLOR } from './lib/svg';

const RUNS = Number(process.env.BENCH_POOL_RUNS ?? 20);
const POOL = 3;
const KEY_ID = 'bench';
/** The pooled type, and a type with the same image and no pool (test bridges map both). */
const POOLED_TYPE = 'echo';
const COLD_TYPE = 'openclaw';
const COLD_COLOR = '#8fb3d9';

async function poolStatus(socketPath: string): Promise<{ ready: number; taken: number }> {
  const h = await rpc(socketPath, 'health', undefined, 10_000);
  if (!h.ok) throw new Error(h.error);
  const pool = (h.result!.warm_pool as Record<string, { ready: number; taken: number }>)[
    POOLED_TYPE
  ]!;
  return pool;
}

/** Waits until the pool is full again (the previous take refilled). */
async function poolFull(socketPath: string): Promise<number> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const s = await poolStatus(socketPath);
    if (s.ready === POOL) return s.taken;
    if (Date.now() > deadline)
      throw new Error(`the warm pool did not refill: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const warmPool: Suite = {
  name: 'warm-pool',
  budgetMs: () => 2 * 60_000 + RUNS * 10_000,
  async run(settings: BenchSettings): Promise<string[]> {
    if (!Number.isInteger(RUNS) || RUNS < 2) throw new Error('BENCH_POOL_RUNS must be at least 2');
    await ensureDocker();
    await ensureAgentImage();
    const machine = machineInfo(PROJECT_ROOT);
    const space = benchSpace('pool');
    const { dir, secretsRoot, label, stops } = space;
    try {
      console.log('starting the bridge (`npm start`, warm pool of 3, real Docker)...');
      const bridge = await startBenchBridge(space, {
        ARMORCLAW_WARM_POOL: JSON.stringify({ [POOLED_TYPE]: POOL }),
      });
      const socketPath = bridge.socketPath;
      const stored = await rpc(
        socketPath,
        'store_key',
        { id: KEY_ID, provider: 'openai', token: 'sk-bench-pool' },
        10_000,
      );
      if (!stored.ok) throw new Error(stored.error);

      const connection = await Connection.connect({
        address: `127.0.0.1:${bridge.temporalPort}`,
      });
      stops.push(onCleanup(() => connection.close()));
      const client = new Client({ connection });
      type Traced = { workflowId: string; sentAt: number; answeredAt: number };
      const traced: Record<string, Traced[]> = { [POOLED_TYPE]: [], [COLD_TYPE]: [] };
      const startAndStop = async (agentType: string): Promise<number> => {
        const s = await rpc(
          socketPath,
          'start',
          { key_id: KEY_ID, agent_type: agentType },
          120_000,
        );
        if (!s.ok) throw new Error(`start: ${s.error}`);
        traced[agentType]!.push({
          workflowId: containerWorkflowId(String(s.result!.container_name)),
          sentAt: s.sentAt,
          answeredAt: s.sentAt + s.ms,
        });
        const stopped = await rpc(
          socketPath,
          'stop',
          { container_id: s.result!.container_id },
          120_000,
        );
        if (!stopped.ok) throw new Error(`stop: ${stopped.error}`);
        return s.ms;
      };
      const rawDir = path.join(dir, 'raw');
      const rawSecrets = path.join(secretsRoot, 'raw');
      mkdirSync(rawSecrets, { mode: 0o700 });
      let rawCount = 0;
      const dockerRun = async (): Promise<number> => {
        const name = `armorclaw-bench-raw-${process.pid}-${rawCount++}`;
        const args = rawRunArgs(name, rawDir, rawSecrets, label);
        const t0 = process.hrtime.bigint();
        const r = await docker(args, { timeoutMs: 120_000 });
        const ms = since(t0);
        if (r.code !== 0) throw new Error(`docker run: ${r.stderr}`);
        await docker(['rm', '-f', name], { timeoutMs: 60_000 });
        return ms;
      };

      // The first of each unrecorded (image layers, first workflow tasks).
      await poolFull(socketPath);
      await startAndStop(POOLED_TYPE);
      await startAndStop(COLD_TYPE);
      await dockerRun();

      const pooled: number[] = [];
      const cold: number[] = [];
      const raw: number[] = [];
      for (const list of Object.values(traced)) list.length = 0;
      let takenBefore = await poolFull(socketPath);
      console.log(`${RUNS} × (pooled start, start, docker run -d)...`);
      for (let i = 0; i < RUNS; i++) {
        takenBefore = await poolFull(socketPath);
        pooled.push(await startAndStop(POOLED_TYPE));
        // Every pooled start must have taken from the pool, or the figure would be a cold one.
        const taken = (await poolStatus(socketPath)).taken;
        if (taken !== takenBefore + 1) throw new Error(`start ${i} did not take from the pool`);
        await poolFull(socketPath);
        cold.push(await startAndStop(COLD_TYPE));
        raw.push(await dockerRun());
      }

      const pooledPhases = meanPhases(await tracedStarts(client, traced[POOLED_TYPE]!));
      const coldPhases = new Map(meanPhases(await tracedStarts(client, traced[COLD_TYPE]!)));
      const result = {
        machine,
        runs: RUNS,
        pool_size: POOL,
        pooled_start: summariseMs(pooled),
        cold_start: summariseMs(cold),
        docker_run: summariseMs(raw),
        phases: {
          pooled: Object.fromEntries(pooledPhases),
          created: Object.fromEntries(coldPhases),
        },
        samples: { pooled, cold, raw },
      };
      const p50Ratio = result.pooled_start.p50 / result.docker_run.p50;
      const p95Ratio = result.pooled_start.p95 / result.docker_run.p95;
      const met50 = p50Ratio < 0.5;
      const met95 = p95Ratio < 1;

      mkdirSync(settings.outDir, { recursive: true });
      const jsonPath = path.join(settings.outDir, 'warm-pool.json');
      const mdPath = path.join(settings.outDir, 'warm-pool.md');
      const svgPath = path.join(settings.outDir, 'warm-pool.svg');
      writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');
      const f = (v: number) => v.toFixed(0);
      const row = (what: string, s: MsSummary) =>
        `| ${what} | ${s.n} | ${f(s.p50)} | ${f(s.p95)} | ${f(s.min)} | ${f(s.max)} |`;
      writeFileSync(
        mdPath,
        `# Warm pool: \`start\` from a pooled container against \`docker run -d\`

Generated by \`npm run bench\` (bench/warm-pool.ts) on ${machine.date}: ${machine.nproc} CPUs, Node ${machine.node}, commit ${machine.gitCommit?.slice(0, 12) ?? 'n/a'}, 1-minute load ${machine.loadAverage[0]?.toFixed(2)} at start. Raw numbers: [warm-pool.json](warm-pool.json).

One bridge as \`npm start\` runs it (compiled; embedded Temporal dev server, real Docker, the reference agent image) with \`containers.warm_pool = { ${POOLED_TYPE} = ${POOL} }\`. ${RUNS} rounds, each: a \`start\` of type \`${POOLED_TYPE}\` once the pool is full (the pool's \`taken\` count checks that it took a pooled container), a \`start\` of a type with the same image and no pool (it creates its container), and \`docker run -d\` of the bridge's own container (its \`containerSpec\`, with a secrets file and a socket directory; \`bench/lib/hardened-run.ts\`). Each run is stopped before the next. A bridge time is the \`start\` request until its answer (the run Active: the workflow, the hand-over or the container's creation, its socket, its secrets file, the audit entry).

## Aim

\`start\` → Active from the pool: p50 under 0.5× \`docker run -d\`'s p50: **${met50 ? 'met' : 'not met'}** (${p50Ratio.toFixed(2)}×); p95 under its p95: **${met95 ? 'met' : 'not met'}** (${p95Ratio.toFixed(2)}×).

## Results (ms)

| what | n | p50 | p95 | min | max |
| --- | ---: | ---: | ---: | ---: | ---: |
${row('`start` → Active, pooled', result.pooled_start)}
${row('`start` → Active, container created', result.cold_start)}
${row('`docker run -d` (baseline)', result.docker_run)}

![start latency](warm-pool.svg)

## Where a start's time goes

Each run's workflow history read back (bench/lib/start-trace.ts): from the request to the run's first event, each gap between consecutive events up to the update that answers \`start\`, named by the event that ends it, and from that update to the answer. Mean ms per start:

| phase | pooled | container created |
| --- | ---: | ---: |
${pooledPhases.map(([k, v]) => `| ${k} | ${f(v)} | ${f(coldPhases.get(k) ?? 0)} |`).join('\n')}

## What a pooled start does

The pooled container was created and started ahead, hardened like every run's container, with empty secrets and socket directories and no run, key or workflow in its name, labels or environment; its agent waits for a secrets file (\`ARMORCLAW_POOLED=1\`). A \`start\` takes one in its launch activity: the two directories are renamed to the run's (the container's bind mounts follow them) and the container is renamed to the run's name, then the run's socket is opened and its secrets file written (renamed into place, so the waiting agent never reads half a file). What remains of the time is the workflow's own round trip (update-with-start, one activity) and those few file system and Docker calls; \`docker run -d\` pays the container's creation and start, and the CLI's own process start (~30–60 ms).
`,
      );
      writeFileSync(
        svgPath,
        barChartSvg(
          {
            title: 'start latency (ms)',
            groupLabel: '',
            groups: ['p50', 'p95'],
            series: [
              {
                name: 'start, pooled',
                color: BRIDGE_COLOR,
                values: [result.pooled_start.p50, result.pooled_start.p95],
              },
              {
                name: 'start, created',
                color: COLD_COLOR,
                values: [result.cold_start.p50, result.cold_start.p95],
              },
              {
                name: 'docker run -d',
                color: BASELINE_COLOR,
                values: [result.docker_run.p50, result.docker_run.p95],
              },
            ],
            format: (v) => v.toFixed(0),
          },
          560,
          320,
        ),
      );
      console.log(pooledPhases.map(([k, v]) => `  ${k}: ${f(v)} ms`).join('\n'));
      console.log(
        `warm-pool: pooled p50 ${f(result.pooled_start.p50)} ms, created ${f(result.cold_start.p50)} ms, docker run -d ${f(result.docker_run.p50)} ms (${p50Ratio.toFixed(2)}×)`,
      );
      return [jsonPath, mdPath, svgPath];
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    }
  },
};
