/**
 * Suite `rpc-roundtrip`: request→response latency and throughput of the bridge's JSON-RPC
 * socket (`health`, `status`) against a bare echo server, and of the HTTP gateway's `POST /rpc`
 * (`health` with a token, every guard and the audit entry on the path) against that socket, all
 * measured in the same run on the same machine. Every server and the load generator run in
 * separate processes.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnBridge } from '../test/support/bridge-process';
import { freePort } from '../test/support/ports';
import { call } from '../test/support/socket-clients';
import { PROJECT_ROOT, forkHelper, nextMessage, send, stopChild } from './lib/child';
import { onCleanup } from './lib/cleanup';
import { machineInfo } from './lib/machine';
import type { GatewayTarget, LoadResult } from './lib/protocol';
import type { BenchSettings, Suite } from './lib/suite';
import { writeRoundtripReport, type RoundtripRun, type Target } from './rpc-roundtrip-report';

/** What one row of the table measures: a server, the method sent to it and where it listens. */
interface Scenario {
  target: Target;
  method: string;
  socketPath: string;
  /** Set for gateway rows: requests go to its POST /rpc instead of the socket. */
  gateway?: GatewayTarget;
  expectResultStatus?: string;
  watchPids: Record<string, number>;
}

export const rpcRoundtrip: Suite = {
  name: 'rpc-roundtrip',
  budgetMs(settings) {
    // Bridge + Temporal start (about 5 s, 60 s at worst), then five rows per connection count,
    // each a fresh load generator (about 1 s) plus warmup and window; doubled for slow machines.
    const rows = 5 * settings.connectionCounts.length;
    return 60_000 + 2 * rows * (settings.warmupMs + settings.measureMs + 2_000);
  },
  async run(settings: BenchSettings): Promise<string[]> {
    // Taken before anything starts, so the load average says how busy the machine already was.
    const machine = machineInfo(PROJECT_ROOT);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-bench-'));
    const removeDir = onCleanup(() => rmSync(dir, { recursive: true, force: true }));

    const echoSocket = path.join(dir, 'echo.sock');
    const echo = forkHelper('echo-server.ts', [echoSocket]);
    const stopEcho = onCleanup(() => stopChild(echo));
    await expectMessage(echo, 'ready', 15_000, 'the echo server');
    const httpEchoPort = await freePort();
    const httpEcho = forkHelper('echo-server.ts', [`http:${httpEchoPort}`]);
    const stopHttpEcho = onCleanup(() => stopChild(httpEcho));
    await expectMessage(httpEcho, 'ready', 15_000, 'the HTTP echo server');

    const bridgeDir = path.join(dir, 'bridge');
    mkdirSync(bridgeDir);
    console.log('starting the bridge (embedded Temporal dev server)...');
    const gatewayPort = await freePort();
    const bridge = await spawnBridge({
      dir: bridgeDir,
      env: {
        ARMORCLAW_GATEWAY_PORT: String(gatewayPort),
        // The gateway's rate limit would measure itself: unlimited for the measured methods.
        ARMORCLAW_GATEWAY_RATE_LIMITS: JSON.stringify({ health: 0, status: 0 }),
      },
    });
    // The bridge finishes in-flight work on SIGTERM; one that hangs there is killed.
    const stopBridge = onCleanup(async () => {
      const exited = await Promise.race([bridge.stop(), delay(15_000).then(() => 'hung' as const)]);
      if (exited === 'hung') await bridge.stop('SIGKILL');
    });
    const temporalPid = readPid(path.join(bridge.stateDir, 'temporal', 'dev-server.pid'));
    const healthAtStart = await expectResult(bridge.socketPath, 'health');
    await expectResult(bridge.socketPath, 'status');
    const { token } = (await expectResult(bridge.socketPath, 'gateway.token_create', {
      name: 'bench',
    })) as { token: string };

    const bridgePids: Record<string, number> = { server: bridge.child.pid! };
    if (temporalPid) bridgePids.temporal = temporalPid;
    const scenarios: Scenario[] = [
      // The echo server answers any method alike; send it the same bytes as a health call.
      {
        target: 'echo',
        method: 'health',
        socketPath: echoSocket,
        watchPids: { server: echo.pid! },
      },
      {
        target: 'bridge',
        method: 'health',
        socketPath: bridge.socketPath,
        watchPids: bridgePids,
        expectResultStatus: 'healthy',
      },
      { target: 'bridge', method: 'status', socketPath: bridge.socketPath, watchPids: bridgePids },
      // Node's bare HTTP server on loopback: what HTTP itself costs here, before any gateway work.
      {
        target: 'echo-http',
        method: 'health',
        socketPath: '',
        gateway: { host: '127.0.0.1', port: httpEchoPort, token: 'none' },
        watchPids: { server: httpEcho.pid! },
      },
      {
        target: 'gateway',
        method: 'health',
        socketPath: bridge.socketPath,
        gateway: { host: '127.0.0.1', port: gatewayPort, token },
        watchPids: bridgePids,
        expectResultStatus: 'healthy',
      },
    ];

    const runs: RoundtripRun[] = [];
    for (const scenario of scenarios) {
      for (const connections of settings.connectionCounts) {
        const result = await measure(scenario, connections, settings);
        const run: RoundtripRun = {
          target: scenario.target,
          method: scenario.method,
          connections,
          ...result,
        };
        runs.push(run);
        console.log(progressLine(run));
      }
    }

    await stopBridge();
    await stopEcho();
    await stopHttpEcho();
    await removeDir();
    return writeRoundtripReport(settings.outDir, {
      suite: 'rpc-roundtrip',
      machine,
      settings: {
        warmupSeconds: settings.warmupMs / 1e3,
        measureSeconds: settings.measureMs / 1e3,
        connectionCounts: settings.connectionCounts,
      },
      bridgeHealthAtStart: healthAtStart,
      runs,
    });
  },
};

/** One closed-loop load run, in a fresh load-generator process. */
async function measure(
  scenario: Scenario,
  connections: number,
  settings: BenchSettings,
): Promise<LoadResult> {
  const client = forkHelper('load-client.ts');
  const stopClient = onCleanup(() => stopChild(client));
  try {
    await expectMessage(client, 'ready', 15_000, 'the load generator');
    const requestTimeoutMs = 10_000;
    send(client, {
      type: 'run',
      spec: {
        socketPath: scenario.socketPath,
        ...(scenario.gateway ? { gateway: scenario.gateway } : {}),
        method: scenario.method,
        connections,
        warmupMs: settings.warmupMs,
        measureMs: settings.measureMs,
        requestTimeoutMs,
        watchPids: scenario.watchPids,
        expectResultStatus: scenario.expectResultStatus,
      },
    });
    const budgetMs = settings.warmupMs + settings.measureMs + requestTimeoutMs + 5_000;
    const message = await nextMessage(client, budgetMs, 'the load generator');
    if (message.type === 'failed') {
      throw new Error(`${scenario.target} ${scenario.method} x${connections}: ${message.reason}`);
    }
    if (message.type !== 'result')
      throw new Error(`unexpected message from the load generator: ${message.type}`);
    return message.result;
  } finally {
    await stopClient();
  }
}

async function expectMessage(
  child: Parameters<typeof nextMessage>[0],
  type: 'ready',
  timeoutMs: number,
  what: string,
): Promise<void> {
  const message = await nextMessage(child, timeoutMs, what);
  if (message.type !== type) throw new Error(`${what} sent ${message.type}, expected ${type}`);
}

/** One call before measuring: a bridge answering errors would make fast, meaningless numbers. */
async function expectResult(
  socketPath: string,
  method: string,
  params?: Record<string, unknown>,
): Promise<unknown> {
  const response = await call(socketPath, method, params);
  if (response.error)
    throw new Error(`the bridge answered ${method} with ${JSON.stringify(response.error)}`);
  if (method === 'health' && response.result?.status !== 'healthy') {
    throw new Error(
      `the bridge is not healthy before the bench: ${JSON.stringify(response.result)}`,
    );
  }
  return response.result;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function progressLine(run: RoundtripRun): string {
  const cpu = Object.entries(run.cpuPercent)
    .map(([role, pct]) => `${role} ${pct === null ? '?' : pct.toFixed(0)}%`)
    .join(', ');
  return (
    `  ${run.target.padEnd(7)} ${run.method.padEnd(6)} x${String(run.connections).padEnd(3)} ` +
    (run.latencyMs
      ? `p50 ${run.latencyMs.p50.toFixed(3)} ms  p99 ${run.latencyMs.p99.toFixed(3)} ms  `
      : 'no request completed  ') +
    `${Math.round(run.requestsPerSecond)} req/s  errors ${run.errors}` +
    (run.unexpectedStatus > 0 ? `  unhealthy ${run.unexpectedStatus}` : '') +
    `  (cpu: ${cpu})`
  );
}
