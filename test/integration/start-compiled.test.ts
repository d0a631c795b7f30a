/**
 * `npm start` as users run it: the bridge compiled to dist/ by scripts/build.ts, with its memory
 * settings, and what an idle bridge has loaded. Neither the build tools nor what waits for its
 * first use: Matrix's SDK without a homeserver, call media before a call, Docker's SSH transport.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildDist,
  NPM_START,
  PROJECT_ROOT,
  spawnBridge,
  type BridgeProcess,
} from '../support/bridge-process';
import { rpc, waitFor } from '../support/containers';

const PROBE = path.join(PROJECT_ROOT, 'test', 'support', 'module-probe.js');
const VERSION: string = JSON.parse(
  readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8'),
).version;

interface ProbeReport {
  argv: string[];
  execArgv: string[];
  files: string[];
}

let dir: string;
let bridge: BridgeProcess;
let pid: number;
let report: ProbeReport;

beforeAll(async () => {
  buildDist();
  dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-compiled-'));
  const probeFile = path.join(dir, 'modules.json');
  bridge = await spawnBridge({
    command: NPM_START,
    env: { NODE_OPTIONS: `--require ${PROBE}`, ARMORCLAW_MODULE_PROBE_FILE: probeFile },
  });
  pid = Number(readFileSync(`${probeFile}.pid`, 'utf8'));
  process.kill(pid, 'SIGUSR2');
  report = await waitFor('the module report', () =>
    existsSync(probeFile) ? (JSON.parse(readFileSync(probeFile, 'utf8')) as ProbeReport) : false,
  );
}, 300_000);

afterAll(async () => {
  await bridge?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('npm start runs dist/worker/main.js with its memory settings, and it answers', async () => {
  expect(report.argv[1]).toBe(path.join(PROJECT_ROOT, 'dist', 'worker', 'main.js'));
  expect(report.execArgv).toContain('--max-semi-space-size=4');
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  expect(environ).toContain('MALLOC_ARENA_MAX=2');
  const status = await rpc(bridge.socketPath, 'status');
  expect(status.result).toMatchObject({ version: VERSION, state: 'running' });
  expect(bridge.output()).toContain(`ArmorClaw bridge ${VERSION} ready`);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1];
  console.log(`compiled bridge, idle: RSS ${Math.round(Number(rss) / 1024)} MB`);
});

test('an idle bridge has loaded its compiled code only, and nothing that waits for first use', () => {
  const loaded = (pkg: string) =>
    report.files.filter((f) => f.includes(`${path.sep}node_modules${path.sep}${pkg}${path.sep}`));
  expect(report.files.some((f) => f.startsWith(path.join(PROJECT_ROOT, 'dist') + path.sep))).toBe(
    true,
  );
  // No TypeScript source, no compiler, no loader: the workflow bundle was built ahead.
  expect(report.files.filter((f) => f.endsWith('.ts'))).toEqual([]);
  for (const pkg of ['typescript', 'tsx', 'esbuild', '@swc/core', 'swc-loader']) {
    expect(loaded(pkg)).toEqual([]);
  }
  // Matrix is not configured; no call has been made; the engine is a Unix socket.
  for (const pkg of ['matrix-js-sdk', 'werift', 'opusscript', 'ssh2']) {
    expect(loaded(pkg)).toEqual([]);
  }
  // What it does need is there (the check above would pass on a probe that saw nothing).
  expect(loaded('@temporalio/worker').length).toBeGreaterThan(0);
  expect(loaded('dockerode').length).toBeGreaterThan(0);
});

test('SIGTERM through npm stops the bridge cleanly', async () => {
  await bridge.stop('SIGTERM');
  await waitFor('the bridge process to exit', () => !existsSync(`/proc/${pid}`), {
    timeoutMs: 30_000,
  });
  expect(bridge.output()).toMatch(/shutting down/);
  expect(bridge.output()).not.toMatch(/"level":(50|60)/);
});
