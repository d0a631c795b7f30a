/**
 * Suite `container-start`: how long `start` takes to answer with an Active run, against
 * `docker run -d` of the same image with the same hardening flags and mounts, measured in the
 * same run; `stop` latency; and 50 concurrent starts. The difference is the orchestration the
 * bridge adds (workflow, secrets file, socket, search attributes, audit).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnBridge } from '../test/support/bridge-process';
import { AGENT_IMAGE, docker } from '../test/support/docker';
import { call } from '../test/support/socket-clients';
import { PROJECT_ROOT } from './lib/child';
import { onCleanup } from './lib/cleanup';
import { machineInfo } from './lib/machine';
import type { BenchSettings, Suite } from './lib/suite';
import { summariseMs } from './lib/stats';
import { barChartPanel, BASELINE_COLOR, BRIDGE_COLOR, legend } from './lib/svg';

const RUNS = Number(process.env.BENCH_CONTAINER_RUNS ?? 20);
const STORM = Number(process.env.BENCH_CONTAINER_STORM ?? 50);
const AIM_OVERHEAD = 0.25;

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/** The flags the bridge's containerSpec uses, as `docker run` arguments. */
function dockerRunArgs(name: string, secretsDir: string, socketDir: string): string[] {
  return [
    'run',
    '-d',
    '--name',
    name,
    '--user',
    '10001:10001',
    '--read-only',
    '--cap-drop',
    'ALL',
    '--security-opt',
    'no-new-privileges:true',
    '--pids-limit',
    '128',
    '--memory',
    '512m',
    '--memory-swap',
    '512m',
    '--tmpfs',
    '/tmp:rw,noexec,nosuid,nodev,size=64m',
    '--init',
    '--network',
    'none',
    '--log-opt',
    'max-size=10m',
    '--log-opt',
    'max-file=2',
    '--label',
    'armorclaw.bench=true',
    '-v',
    `${secretsDir}:/run/secrets:ro`,
    '-v',
    `${socketDir}:/run/armorclaw:rw`,
    AGENT_IMAGE,
  ];
}

export const containerStart: Suite = {
  name: 'container-start',
  async run(settings: BenchSettings): Promise<string[]> {
    const machine = machineInfo(PROJECT_ROOT);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-bench-ct-'));
    const secretsDir = mkdtempSync(path.join('/dev/shm', 'armorclaw-bench-'));
    onCleanup(() => {
      rmSync(dir, { recursive: true, force: true });
      rmSync(secretsDir, { recursive: true, force: true });
    });
    console.log('starting the bridge (embedded Temporal, real Docker)...');
    mkdirSync(path.join(dir, 'bridge'));
    // A host id of its own labels every container this bench's bridge creates, so whatever
    // happens (a timeout, Ctrl-C) cleanup finds and removes them all.
    const hostId = `bench-${process.pid}`;
    const bridge = await spawnBridge({
      dir: path.join(dir, 'bridge'),
      env: {
        ARMORCLAW_MASTER_KEY: 'b7'.repeat(32),
        ARMORCLAW_SECRETS_DIR: secretsDir,
        ARMORCLAW_HOST_ID: hostId,
      },
    });
    onCleanup(async () => {
      await bridge.stop();
      const left = await docker(['ps', '-aq', '--filter', `label=armorclaw.host=${hostId}`]);
      const ids = left.stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await docker(['rm', '-f', ...ids]);
    });
    await call(bridge.socketPath, 'store_key', {
      id: 'bench',
      provider: 'openai',
      token: 'sk-bench',
    });

    // Warm both paths once (image layers, the workflow bundle's first task).
    const warm = (await call(bridge.socketPath, 'start', { key_id: 'bench' })).result;
    await call(bridge.socketPath, 'stop', { container_id: warm.container_id });

    const bridgeStart: number[] = [];
    const bridgeStop: number[] = [];
    const rawRun: number[] = [];
    const rawStop: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      let t0 = process.hrtime.bigint();
      const res = await call(bridge.socketPath, 'start', { key_id: 'bench' });
      if (!res.result) throw new Error(`start failed: ${JSON.stringify(res.error)}`);
      bridgeStart.push(ms(t0));
      t0 = process.hrtime.bigint();
      await call(bridge.socketPath, 'stop', { container_id: res.result.container_id });
      bridgeStop.push(ms(t0));

      // The same image, flags and mounts, by hand: a secrets file and a socket directory.
      const name = `armorclaw-bench-raw-${process.pid}-${i}`;
      const sdir = path.join(secretsDir, name);
      const sockDir = path.join(dir, 'sock', name);
      mkdirSync(sdir, { recursive: true });
      mkdirSync(sockDir, { recursive: true });
      writeFileSync(
        path.join(sdir, 'credentials.json'),
        '{"key_id":"bench","provider":"openai","token":"x"}',
        { mode: 0o444 },
      );
      t0 = process.hrtime.bigint();
      const ran = await docker(dockerRunArgs(name, sdir, sockDir));
      if (ran.code !== 0) throw new Error(`docker run failed: ${ran.stderr}`);
      rawRun.push(ms(t0));
      t0 = process.hrtime.bigint();
      await docker(['stop', '-t', '5', name]);
      await docker(['rm', '-f', name]);
      rawStop.push(ms(t0));
    }

    console.log(`${STORM} concurrent starts...`);
    let t0 = process.hrtime.bigint();
    const storm = await Promise.all(
      Array.from({ length: STORM }, async () => {
        const s = process.hrtime.bigint();
        const r = await call(bridge.socketPath, 'start', { key_id: 'bench' }, 1, 300_000);
        return {
          ok: Boolean(r.result),
          id: r.result?.container_id as string | undefined,
          ms: ms(s),
        };
      }),
    );
    const stormTotal = ms(t0);
    t0 = process.hrtime.bigint();
    await Promise.all(
      storm
        .filter((r) => r.id)
        .map((r) => call(bridge.socketPath, 'stop', { container_id: r.id }, 1, 300_000)),
    );
    const stormStopTotal = ms(t0);

    const result = {
      machine,
      runs: RUNS,
      bridge_start: summariseMs(bridgeStart),
      docker_run: summariseMs(rawRun),
      bridge_stop: summariseMs(bridgeStop),
      docker_stop_rm: summariseMs(rawStop),
      storm: {
        n: STORM,
        ok: storm.filter((r) => r.ok).length,
        total_ms: stormTotal,
        per_start: summariseMs(storm.map((r) => r.ms)),
        stop_all_ms: stormStopTotal,
      },
      samples: { bridgeStart, rawRun, bridgeStop, rawStop },
    };
    const overhead50 = result.bridge_start.p50 / result.docker_run.p50 - 1;
    const overhead95 = result.bridge_start.p95 / result.docker_run.p95 - 1;

    mkdirSync(settings.outDir, { recursive: true });
    const jsonPath = path.join(settings.outDir, 'container-start.json');
    const mdPath = path.join(settings.outDir, 'container-start.md');
    const svgPath = path.join(settings.outDir, 'container-start.svg');
    writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');
    const f = (v: number) => v.toFixed(0);
    const pct = (v: number) => `${(v * 100).toFixed(0)} %`;
    writeFileSync(
      mdPath,
      `# Container start: bridge \`start\` vs. \`docker run -d\`

Generated by \`npm run bench\` (bench/container-start.ts) on ${machine.date}: ${machine.nproc} CPUs, Node ${machine.node}, commit ${machine.gitCommit?.slice(0, 12) ?? 'n/a'}, 1-minute load ${machine.loadAverage[0]?.toFixed(2)} at start. ${RUNS} sequential runs of each, alternating, same image (\`${AGENT_IMAGE}\`), same hardening flags and mounts; the bridge's time is \`start\` request → Active answer over the socket (workflow start, secrets file from the keystore, per-container socket, create + start, audit). Raw numbers: [container-start.json](container-start.json).

## Aim

Orchestration overhead at most ${pct(AIM_OVERHEAD)} over raw \`docker run\`: **${overhead50 <= AIM_OVERHEAD ? 'met' : 'not met'} at p50 (${pct(overhead50)})**, ${overhead95 <= AIM_OVERHEAD ? 'met' : 'not met'} at p95 (${pct(overhead95)}).

## Results (ms)

| what | n | p50 | p95 | min | max |
| --- | ---: | ---: | ---: | ---: | ---: |
| bridge \`start\` → Active | ${RUNS} | ${f(result.bridge_start.p50)} | ${f(result.bridge_start.p95)} | ${f(result.bridge_start.min)} | ${f(result.bridge_start.max)} |
| \`docker run -d\` (baseline) | ${RUNS} | ${f(result.docker_run.p50)} | ${f(result.docker_run.p95)} | ${f(result.docker_run.min)} | ${f(result.docker_run.max)} |
| bridge \`stop\` → Ended (cleanup done) | ${RUNS} | ${f(result.bridge_stop.p50)} | ${f(result.bridge_stop.p95)} | ${f(result.bridge_stop.min)} | ${f(result.bridge_stop.max)} |
| \`docker stop\` + \`docker rm\` (baseline) | ${RUNS} | ${f(result.docker_stop_rm.p50)} | ${f(result.docker_stop_rm.p95)} | ${f(result.docker_stop_rm.min)} | ${f(result.docker_stop_rm.max)} |

${STORM} concurrent \`start\`s: ${result.storm.ok}/${STORM} succeeded in ${f(stormTotal)} ms (per start p50 ${f(result.storm.per_start.p50)} ms, p95 ${f(result.storm.per_start.p95)} ms); stopping them all took ${f(stormStopTotal)} ms.

![start and stop latency](container-start.svg)

Note: the \`docker\` CLI adds its own process start (~30-60 ms) to the baseline; the bridge talks to the engine's API directly.
`,
    );
    const chart = barChartPanel(
      {
        title: 'p50 / p95 latency (ms)',
        groupLabel: '',
        groups: ['start p50', 'start p95', 'stop p50', 'stop p95'],
        series: [
          {
            name: 'bridge',
            color: BRIDGE_COLOR,
            values: [
              result.bridge_start.p50,
              result.bridge_start.p95,
              result.bridge_stop.p50,
              result.bridge_stop.p95,
            ],
          },
          {
            name: 'docker CLI',
            color: BASELINE_COLOR,
            values: [
              result.docker_run.p50,
              result.docker_run.p95,
              result.docker_stop_rm.p50,
              result.docker_stop_rm.p95,
            ],
          },
        ],
        format: (v) => v.toFixed(0),
      },
      0,
      20,
      640,
      320,
    );
    writeFileSync(
      svgPath,
      `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360" viewBox="0 0 640 360"><rect width="640" height="360" fill="#fff"/>\n${legend(
        [
          { name: 'bridge', color: BRIDGE_COLOR },
          { name: 'docker CLI', color: BASELINE_COLOR },
        ],
        60,
        16,
      )}\n${chart}\n</svg>\n`,
    );
    console.log(
      `container-start: bridge p50 ${f(result.bridge_start.p50)} ms vs docker run p50 ${f(result.docker_run.p50)} ms`,
    );
    return [jsonPath, mdPath, svgPath];
  },
};
