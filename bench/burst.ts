/**
 * Suite `burst`: BENCH_BURST (50) `start`s at once against as many `docker run -d` of the same
 * hardened container at once, BENCH_BURST_ROUNDS (2) rounds alternating, on one bridge with its
 * embedded Temporal dev server and real Docker; and where the time of a start goes, alone and
 * in a burst, read back from each run's workflow history (lib/start-trace.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { containerWorkflowId } from '../workflows/definitions';
import type { BridgeProcess } from '../test/support/bridge-process';
import { ensureAgentImage, ensureDocker } from '../test/support/docker';
import { PROJECT_ROOT } from './lib/child';
import { benchSpace, startBenchBridge } from './lib/bench-bridge';
import { onCleanup } from './lib/cleanup';
import { bridgeBurst, dockerBurst, rpc, type Burst } from './lib/burst';
import { machineInfo } from './lib/machine';
import { meanPhases, tracedStarts, type Phases } from './lib/start-trace';
import type { BenchSettings, Suite } from './lib/suite';
import { barChartPanel, BASELINE_COLOR, BRIDGE_COLOR, legend } from './lib/svg';

const BURST = Number(process.env.BENCH_BURST ?? 50);
const ROUNDS = Number(process.env.BENCH_BURST_ROUNDS ?? 2);
const ALONE = 5;
const AIM_RATIO = 1.25;
const KEY_ID = 'bench';
const TTL = '10m';

type Traced = Burst & { phases: Phases[] };

async function traceOf(
  client: Client,
  starts: Array<{ ok: boolean; ms: number; sentAt: number; result?: Record<string, unknown> }>,
): Promise<Phases[]> {
  return tracedStarts(
    client,
    starts
      .filter((s) => s.ok)
      .map((s) => ({
        workflowId: containerWorkflowId(String(s.result!.container_name)),
        sentAt: s.sentAt,
        answeredAt: s.sentAt + s.ms,
      })),
  );
}

export const burst: Suite = {
  name: 'burst',
  budgetMs: () => 5 * 60_000 + ROUNDS * 4 * 60_000,
  async run(settings: BenchSettings): Promise<string[]> {
    for (const [name, v] of [
      ['BENCH_BURST', BURST],
      ['BENCH_BURST_ROUNDS', ROUNDS],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
    }
    await ensureDocker();
    await ensureAgentImage();
    const machine = machineInfo(PROJECT_ROOT);
    const space = benchSpace('burst');
    const { dir, secretsRoot, label, stops } = space;
    try {
      console.log('starting the bridge (`npm start`, embedded Temporal, real Docker)...');
      const bridge: BridgeProcess = await startBenchBridge(space, {});
      const connection = await Connection.connect({
        address: `127.0.0.1:${bridge.temporalPort}`,
      });
      stops.push(onCleanup(() => connection.close()));
      const client = new Client({ connection });
      const socketPath = bridge.socketPath;
      const params = { key_id: KEY_ID, ttl: TTL };
      const stored = await rpc(
        socketPath,
        'store_key',
        { id: KEY_ID, provider: 'openai', token: 'sk-bench-burst' },
        10_000,
      );
      if (!stored.ok) throw new Error(stored.error);

      // Alone: a few starts one at a time (the first unrecorded: image layers, first tasks).
      console.log(`${ALONE} starts one at a time...`);
      const alone = [];
      for (let i = 0; i <= ALONE; i++) {
        const s = await rpc(socketPath, 'start', params, 120_000);
        if (!s.ok) throw new Error(`start: ${s.error}\n${bridge.output()}`);
        await rpc(socketPath, 'stop', { container_id: s.result!.container_id }, 120_000);
        if (i > 0) alone.push(s);
      }
      const alonePhases = await traceOf(client, alone);

      const raw: Burst[] = [];
      const bridged: Traced[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        console.log(`round ${round + 1}: ${BURST} × docker run -d...`);
        const rawDir = path.join(dir, `raw-${round}`);
        const rawSecrets = path.join(secretsRoot, `raw-${round}`);
        mkdirSync(rawSecrets, { mode: 0o700 });
        raw.push(await dockerBurst(BURST, rawDir, rawSecrets, label));
        console.log(`  all running in ${(raw.at(-1)!.all_active_ms / 1e3).toFixed(1)} s`);
        console.log(`round ${round + 1}: ${BURST} × start...`);
        const { starts, ...b } = await bridgeBurst(socketPath, BURST, params);
        bridged.push({ ...b, phases: await traceOf(client, starts) });
        console.log(`  all Active in ${(b.all_active_ms / 1e3).toFixed(1)} s`);
      }

      const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
      const rawWall = mean(raw.map((b) => b.all_active_ms));
      const bridgeWall = mean(bridged.map((b) => b.all_active_ms));
      const ratio = bridgeWall / rawWall;
      const met = ratio <= AIM_RATIO;
      const inBurst = meanPhases(bridged.flatMap((b) => b.phases));
      const aloneMean = new Map(meanPhases(alonePhases));
      const result = {
        machine,
        burst: BURST,
        rounds: ROUNDS,
        aim_ratio: AIM_RATIO,
        ratio,
        aim_met: met,
        docker_run: raw,
        bridge: bridged.map(({ phases: _p, ...b }) => b),
        phases: {
          alone: Object.fromEntries(aloneMean),
          in_burst: Object.fromEntries(inBurst),
        },
      };

      mkdirSync(settings.outDir, { recursive: true });
      const jsonPath = path.join(settings.outDir, 'burst.json');
      const mdPath = path.join(settings.outDir, 'burst.md');
      const svgPath = path.join(settings.outDir, 'burst.svg');
      writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');
      const s1 = (ms: number) => (ms / 1e3).toFixed(1);
      const f0 = (ms: number) => ms.toFixed(0);
      const roundRow = (i: number) =>
        `| ${i + 1} | ${s1(raw[i]!.all_active_ms)} | ${s1(bridged[i]!.all_active_ms)} | ${(bridged[i]!.all_active_ms / raw[i]!.all_active_ms).toFixed(2)}× | ${f0(raw[i]!.per_start.p50)} / ${f0(bridged[i]!.per_start.p50)} | ${bridged[i]!.ok}/${BURST} |`;
      const names = [...new Set([...inBurst.map(([k]) => k), ...aloneMean.keys()])];
      const inBurstMap = new Map(inBurst);
      writeFileSync(
        mdPath,
        `# ${BURST} starts at once: the bridge against \`docker run -d\`

Generated by \`npm run bench\` (bench/burst.ts) on ${machine.date}: ${machine.nproc} CPUs, Node ${machine.node}, commit ${machine.gitCommit?.slice(0, 12) ?? 'n/a'}, 1-minute load ${machine.loadAverage[0]?.toFixed(2)} at start. Raw numbers: [burst.json](burst.json).

One bridge as \`npm start\` runs it (compiled; embedded Temporal dev server, real Docker, the reference agent image). Each round: ${BURST} \`docker run -d\` at once of the bridge's own container (its \`containerSpec\`: hardening flags, limits, secrets file and socket mounts; \`bench/lib/hardened-run.ts\`), then \`docker stop\` + \`docker rm\` of each; then ${BURST} \`start\` calls at once over the bridge's socket (\`start\` answers when the run is Active), then a \`stop\` of each. The wall time is from the first request to the last answer.

## Aim

${BURST} concurrent \`start\`s within ${AIM_RATIO}× of ${BURST} concurrent \`docker run -d\`: **${met ? 'met' : 'not met'}** (${ratio.toFixed(2)}×: ${s1(bridgeWall)} s against ${s1(rawWall)} s, mean of ${ROUNDS} rounds).

| round | \`docker run -d\` all running (s) | bridge all Active (s) | ratio | per call p50 ms (docker / bridge) | started |
| --- | ---: | ---: | ---: | ---: | ---: |
${raw.map((_, i) => roundRow(i)).join('\n')}

![burst](burst.svg)

## Where a start's time goes

Each run's workflow history read back after the burst: the time from the \`start\` request to the run's first event, each gap between consecutive events up to the update that answers \`start\`, named by the event that ends it, and from that update to the answer. Mean ms per start, alone (${ALONE} one at a time) and in the bursts:

| phase | alone | in a burst of ${BURST} |
| --- | ---: | ---: |
${names.map((n) => `| ${n} | ${f0(aloneMean.get(n) ?? 0)} | ${f0(inBurstMap.get(n) ?? 0)} |`).join('\n')}
| **total** | **${f0([...aloneMean.values()].reduce((a, x) => a + x, 0))}** | **${f0(inBurst.reduce((a, [, x]) => a + x, 0))}** |

## What this found, and what changed

Measured with this suite on the same machine (2 CPUs), the burst went from 2–3× Docker's time to about Docker's time:

- **Names tried one by one.** Every start of the same second began at \`armorclaw-<type>-<unix seconds>\` and asked Temporal for each taken name in turn: the k-th start of a burst made k workflow starts, over a thousand for 50. "request → the run exists" was 5.1 s of each start's time. The bridge now counts the names it hands out in a second (\`RunNames\` in rpc/methods/containers.ts); a name taken anyway (another bridge) still moves to the next.
- **Round trips per start.** A start was four workflow tasks and three activities on its way to Active: the start's task, a task only to accept the \`wait-active\` update, one after the secrets file, one after the container; and \`writeSecretsFile\`, \`startContainer\`, \`recordAudit\`. The request now starts the run and sends the update together (update-with-start), and one activity writes the secrets file, starts the container and writes the audit entry (\`launchContainer\`): two tasks and one activity. Temporal's dev server, which writes every step to one SQLite file, was the busiest process in a burst (7 s of CPU in 20 s, against 5 s for the bridge and 2.3 s for Docker).
- **Pollers.** The worker polled each queue with a fixed ten pollers, of which only two take new workflows' first tasks; they now scale with the backlog (Temporal's poller autoscaling). "workflow task: running" (which includes waiting inside the worker) halved.

What is left is mostly Docker's own time (\`launchContainer: running\`) and the workflow tasks of 50 runs queueing behind each other on two cores shared with Docker and the Temporal server.
`,
      );
      const chart = barChartPanel(
        {
          title: `${BURST} at once: wall time until all run (s)`,
          groupLabel: 'round',
          groups: raw.map((_, i) => String(i + 1)),
          series: [
            {
              name: 'bridge start',
              color: BRIDGE_COLOR,
              values: bridged.map((b) => b.all_active_ms / 1e3),
            },
            {
              name: 'docker run -d',
              color: BASELINE_COLOR,
              values: raw.map((b) => b.all_active_ms / 1e3),
            },
          ],
          format: (v) => v.toFixed(1),
        },
        0,
        20,
        480,
        320,
      );
      writeFileSync(
        svgPath,
        `<svg xmlns="http://www.w3.org/2000/svg" width="480" height="360" viewBox="0 0 480 360"><rect width="480" height="360" fill="#fff"/>\n${legend(
          [
            { name: 'bridge start', color: BRIDGE_COLOR },
            { name: 'docker run -d', color: BASELINE_COLOR },
          ],
          60,
          16,
        )}\n${chart}\n</svg>\n`,
      );
      console.log(
        `burst: ${BURST} starts ${s1(bridgeWall)} s, docker run -d ${s1(rawWall)} s (${ratio.toFixed(2)}×)`,
      );
      console.log(inBurst.map(([k, v]) => `  ${k}: ${f0(v)} ms`).join('\n'));
      return [jsonPath, mdPath, svgPath];
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    }
  },
};
