/**
 * Suite `pairing`: the time from `armorclaw pair` to a new device's first answer — the CLI's
 * code, `POST /api/bridge/pair/complete`, the device WebSocket, `chatCompletions` answered by
 * the device's own (new, cold) agent container — straight to the bridge's gateway and through a
 * relay (`armorclaw relay serve` on this host), against the same first answer without pairing
 * (`agent.run` + `agent.wait` of a new gateway session, the same cold agent), measured in the
 * same run. The model is the provider stub behind the real provider proxy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnBridge } from '../test/support/bridge-process';
import { completePairing, connectDevice } from '../test/support/device-client';
import { docker, ensureAgentImage, ensureDocker } from '../test/support/docker';
import { gatewayClient } from '../test/support/gateway-client';
import { freePort } from '../test/support/ports';
import { ProviderStub } from '../test/support/provider-stub';
import { call } from '../test/support/socket-clients';
import { PROJECT_ROOT } from './lib/child';
import { onCleanup } from './lib/cleanup';
import { machineInfo } from './lib/machine';
import { summariseMs, type MsSummary } from './lib/stats';
import type { BenchSettings, Suite } from './lib/suite';
import { barChartPanel, BASELINE_COLOR, BRIDGE_COLOR, legend } from './lib/svg';

const RUNS = Number(process.env.BENCH_PAIRING_RUNS ?? 5);
const AIM_MS = 60_000;
const CLI = path.join(PROJECT_ROOT, 'cli', 'armorclaw.js');
const RELAY_COLOR = '#7b3fb5';

const since = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/** Runs the CLI to completion; its stdout. */
function cli(args: string[], input = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: 'pipe' });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`armorclaw ${args[0]}: exit ${code}: ${err}`)),
    );
    child.stdin.end(input);
  });
}

interface Phases {
  total: number;
  code: number;
  paired: number;
  connected: number;
  answered: number;
}

/** One device, from `armorclaw pair` to its first answer, through `baseUrl`. */
async function pairToAnswer(socketPath: string, baseUrl: string, n: number): Promise<Phases> {
  const t0 = process.hrtime.bigint();
  const started = JSON.parse(await cli(['pair', '--json', '--socket', socketPath]));
  const code = since(t0);
  const paired = await completePairing(baseUrl, started.pairCode, {
    name: `Bench phone ${n}`,
    os: 'android',
    bridgeVersion: '1.0.0',
  });
  if (paired.status !== 200) throw new Error(`pairing refused: ${JSON.stringify(paired.body)}`);
  const pairedAt = since(t0);
  const device = await connectDevice(baseUrl, paired.body.wsToken);
  const connected = since(t0);
  const answer = await device.invoke('chatCompletions', {
    messages: [{ role: 'user', content: 'hello, first message' }],
  });
  const answered = since(t0);
  device.close();
  if (!answer.ok) throw new Error(`no answer: ${JSON.stringify(answer.error)}`);
  return {
    total: answered,
    code,
    paired: pairedAt - code,
    connected: connected - pairedAt,
    answered: answered - connected,
  };
}

export const pairing: Suite = {
  name: 'pairing',
  budgetMs: () => 15 * 60_000,
  async run(settings: BenchSettings): Promise<string[]> {
    const machine = machineInfo(PROJECT_ROOT);
    await ensureDocker();
    await ensureAgentImage();
    const stub = await ProviderStub.start({});
    onCleanup(() => stub.close());
    const relayState = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-bench-relay-'));
    const hostId = `bench-${process.pid}`;
    console.log('starting the bridge (embedded Temporal, real Docker) and a relay...');
    const bridge = await spawnBridge({
      env: {
        ARMORCLAW_HOST_ID: hostId,
        ARMORCLAW_MASTER_KEY: 'b3'.repeat(32),
        ARMORCLAW_PROXY_BASE_URLS: JSON.stringify({ openai: stub.url }),
        ARMORCLAW_SECRETS_MODE: 'proxy',
        ARMORCLAW_GATEWAY_AGENT_KEY_ID: 'bench',
      },
    });
    onCleanup(async () => {
      await bridge.stop('SIGKILL');
      // Every agent this bench's bridge started carries its host id.
      const left = await docker(['ps', '-aq', '--filter', `label=armorclaw.host=${hostId}`]);
      const ids = left.stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await docker(['rm', '-f', ...ids]);
      rmSync(bridge.dir, { recursive: true, force: true });
      rmSync(relayState, { recursive: true, force: true });
    });
    await call(bridge.socketPath, 'store_key', {
      id: 'bench',
      provider: 'openai',
      token: 'sk-bench-key',
    });
    const gatewayUrl = await bridge.gatewayUrl();
    const gw = await gatewayClient(bridge, 'bench');

    const relayPort = await freePort();
    const relayUrl = `http://127.0.0.1:${relayPort}`;
    const credential = (await cli(['relay', 'credential', '--state', relayState])).trim();
    const relay: ChildProcess = spawn(
      process.execPath,
      [
        CLI,
        'relay',
        'serve',
        '--host',
        '127.0.0.1',
        '--port',
        String(relayPort),
        '--state',
        relayState,
      ],
      { stdio: 'ignore' },
    );
    onCleanup(() => void relay.kill('SIGKILL'));
    for (let i = 0; i < 200; i++) {
      if ((await fetch(`${relayUrl}/health`).catch(() => undefined))?.ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    const direct: Phases[] = [];
    const relayed: Phases[] = [];
    const baseline: number[] = [];
    const linkT0 = process.hrtime.bigint();
    await cli(['relay', 'link', relayUrl, '--socket', bridge.socketPath], credential);
    for (let i = 0; i < 300; i++) {
      if ((await call(bridge.socketPath, 'relay.status', {})).result?.connected) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const linkMs = since(linkT0);

    for (let n = 0; n < RUNS; n++) {
      // Alternating, so the machine's drift touches each the same.
      direct.push(await pairToAnswer(bridge.socketPath, gatewayUrl, n));
      relayed.push(await pairToAnswer(bridge.socketPath, relayUrl, n + RUNS));
      const t0 = process.hrtime.bigint();
      const { runId } = await gw.result('agent.run', {
        session: {
          sessionId: `bench-${process.pid}-${n}`,
          channelId: `bench-${n}`,
          channelKind: 'web',
        },
        messages: [{ role: 'user', content: 'hello, first message' }],
      });
      for (;;) {
        const r = await gw.rpc('agent.wait', { runId, timeoutMs: 20_000 });
        if (r.body.ok) break;
        if (!/still running/.test(r.body.error?.message ?? '')) {
          throw new Error(`agent.wait: ${JSON.stringify(r.body)}`);
        }
      }
      baseline.push(since(t0));
      console.log(
        `run ${n + 1}/${RUNS}: direct ${direct.at(-1)!.total.toFixed(0)} ms, relay ${relayed.at(-1)!.total.toFixed(0)} ms, agent.run ${baseline.at(-1)!.toFixed(0)} ms`,
      );
    }

    const phase = (rows: Phases[], k: keyof Phases): MsSummary =>
      summariseMs(rows.map((r) => r[k]));
    const result = {
      machine,
      runs: RUNS,
      relay_link_ms: linkMs,
      direct: Object.fromEntries(
        (['total', 'code', 'paired', 'connected', 'answered'] as const).map((k) => [
          k,
          phase(direct, k),
        ]),
      ),
      relay: Object.fromEntries(
        (['total', 'code', 'paired', 'connected', 'answered'] as const).map((k) => [
          k,
          phase(relayed, k),
        ]),
      ),
      baseline_agent_run: summariseMs(baseline),
      samples: { direct, relayed, baseline },
    } as const;
    const worst = Math.max(result.direct.total!.max, result.relay.total!.max);

    mkdirSync(settings.outDir, { recursive: true });
    const jsonPath = path.join(settings.outDir, 'pairing.json');
    const mdPath = path.join(settings.outDir, 'pairing.md');
    const svgPath = path.join(settings.outDir, 'pairing.svg');
    writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');
    const f = (v: number) => v.toFixed(0);
    const row = (name: string, s: MsSummary) =>
      `| ${name} | ${s.n} | ${f(s.p50)} | ${f(s.p95)} | ${f(s.min)} | ${f(s.max)} |`;
    writeFileSync(
      mdPath,
      `# Pairing: from \`armorclaw pair\` to a new device's first answer

Generated by \`BENCH_SUITES=pairing npm run bench\` (bench/pairing.ts) on ${machine.date}: ${machine.nproc} CPUs, Node ${machine.node}, commit ${machine.gitCommit?.slice(0, 12) ?? 'n/a'}, 1-minute load ${machine.loadAverage[0]?.toFixed(2)} at start. ${RUNS} devices each way, alternating with the baseline. A run is one scripted device: \`armorclaw pair --json\` (a CLI process, the code over the socket) → \`POST /api/bridge/pair/complete\` → the device WebSocket (\`ready\`) → \`chatCompletions\` answered by the device's own agent container, started cold by that first message (the reference agent; its model the provider stub behind the real provider proxy). **Relay** is the same through \`armorclaw relay serve\` on this host (the bridge's outbound link, already up; linking it took ${f(linkMs)} ms). **Baseline**: \`agent.run\` + \`agent.wait\` of a new gateway session over the gateway, the same cold agent without any pairing. Raw numbers: [pairing.json](pairing.json).

## Aim

Under 1 minute of machine time from \`armorclaw pair\` to the first answer (a person's bar is 3 minutes): **${worst < AIM_MS ? 'met' : 'not met'}** (slowest of ${2 * RUNS}: ${(worst / 1000).toFixed(1)} s).

## Results (ms)

| what | n | p50 | p95 | min | max |
| --- | ---: | ---: | ---: | ---: | ---: |
${row('direct: pair → first answer', result.direct.total!)}
${row('&nbsp;&nbsp;armorclaw pair (CLI) → code', result.direct.code!)}
${row('&nbsp;&nbsp;pair/complete', result.direct.paired!)}
${row('&nbsp;&nbsp;WebSocket → ready', result.direct.connected!)}
${row('&nbsp;&nbsp;chatCompletions (cold agent)', result.direct.answered!)}
${row('relay: pair → first answer', result.relay.total!)}
${row('&nbsp;&nbsp;pair/complete via relay', result.relay.paired!)}
${row('&nbsp;&nbsp;WebSocket via relay → ready', result.relay.connected!)}
${row('&nbsp;&nbsp;chatCompletions via relay (cold agent)', result.relay.answered!)}
${row('baseline: agent.run + agent.wait (cold agent)', result.baseline_agent_run)}

![pair to first answer](pairing.svg)

Nearly all of a pairing's time is the device's agent starting (a container and its first turn, as the baseline shows); pairing itself and the relay's hop add tens of milliseconds.
`,
    );
    const chart = barChartPanel(
      {
        title: 'pair → first answer, p50 / p95 (ms)',
        groupLabel: '',
        groups: ['p50', 'p95'],
        series: [
          {
            name: 'direct',
            color: BRIDGE_COLOR,
            values: [result.direct.total!.p50, result.direct.total!.p95],
          },
          {
            name: 'relay',
            color: RELAY_COLOR,
            values: [result.relay.total!.p50, result.relay.total!.p95],
          },
          {
            name: 'agent.run (baseline)',
            color: BASELINE_COLOR,
            values: [result.baseline_agent_run.p50, result.baseline_agent_run.p95],
          },
        ],
        references: [{ value: AIM_MS, label: 'aim: 60 s' }],
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
          { name: 'direct', color: BRIDGE_COLOR },
          { name: 'relay', color: RELAY_COLOR },
          { name: 'agent.run (baseline)', color: BASELINE_COLOR },
          { name: 'aim', color: '#c00', dashed: true },
        ],
        60,
        16,
      )}\n${chart}\n</svg>\n`,
    );
    console.log(
      `pairing: direct p50 ${f(result.direct.total!.p50)} ms, relay p50 ${f(result.relay.total!.p50)} ms, baseline p50 ${f(result.baseline_agent_run.p50)} ms`,
    );
    return [jsonPath, mdPath, svgPath];
  },
};
