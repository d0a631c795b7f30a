import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort } from './ports';

export const PROJECT_ROOT = path.join(__dirname, '..', '..');

/**
 * `containers.agent_types` for test bridges: the spec's default type `openclaw` runs the reference
 * agent, as `echo` does. Tests about OpenClaw itself set their own.
 */
export const ECHO_AGENT_TYPES = JSON.stringify({
  openclaw: { image: 'armorclaw/agent:v1' },
  echo: { image: 'armorclaw/agent:v1' },
});

/** node's argv prefix that runs a TypeScript file of the project from any working directory. */
export const TSX_ARGS = ['--import', pathToFileURL(require.resolve('tsx')).href];

export interface BridgeProcess {
  child: ChildProcess;
  dir: string;
  socketPath: string;
  stateDir: string;
  uiPort: number;
  temporalPort: number;
  env: NodeJS.ProcessEnv;
  /** Everything the bridge printed so far. */
  output(): string;
  /** The HTTP gateway's base URL (http://127.0.0.1:<port>), from the bridge's start banner. */
  gatewayUrl(): Promise<string>;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Waits for the process to exit by itself. */
  exited: Promise<number | null>;
}

export interface SpawnOptions {
  /** Reuse an existing directory (state survives across bridges). */
  dir?: string;
  env?: NodeJS.ProcessEnv;
  /** Do not wait for the socket (for start failures). */
  noWait?: boolean;
  temporalPort?: number;
  uiPort?: number;
  /** The command that runs the bridge instead of its source through tsx, e.g. {@link NPM_START}. */
  command?: string[];
}

/** `npm start` as users run it: the compiled bridge in dist/ with its memory settings. */
export const NPM_START = ['npm', 'start', '--silent', '--prefix', PROJECT_ROOT];

/** Builds dist/ as setup does (quick when it is current), for what runs `npm start` or its bundle. */
export function buildDist(): void {
  const build = spawnSync(
    process.execPath,
    [...TSX_ARGS, path.join(PROJECT_ROOT, 'scripts', 'build.ts')],
    { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 300_000 },
  );
  if (build.status !== 0) throw new Error(`the build failed:\n${build.stderr}`);
}

/**
 * Runs the real bridge as a child process with its state, socket and ports private to the test:
 * from source (`worker/main.ts` through tsx, as `npm run dev` does) unless `command` says
 * otherwise.
 */
export async function spawnBridge(opts: SpawnOptions = {}): Promise<BridgeProcess> {
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'armorclaw-it-'));
  // A port found free can be taken by another process before the embedded Temporal server binds
  // it (the suites start many servers): with ports of our choosing, try again on fresh ones.
  const portsChosenHere = opts.temporalPort === undefined && opts.uiPort === undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await launchBridge(dir, {
        ...opts,
        temporalPort: opts.temporalPort ?? (await freePort()),
        uiPort: opts.uiPort ?? (await freePort()),
      });
    } catch (err) {
      const raced = /address already in use/.test((err as Error).message);
      if (!raced || !portsChosenHere || attempt === 3) throw err;
    }
  }
}

async function launchBridge(
  dir: string,
  opts: SpawnOptions & { temporalPort: number; uiPort: number },
): Promise<BridgeProcess> {
  const socketPath = path.join(dir, 'run', 'bridge.sock');
  const stateDir = path.join(dir, 'state');
  const { temporalPort, uiPort } = opts;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ARMORCLAW_SOCKET: socketPath,
    ARMORCLAW_STATE_DIR: stateDir,
    ARMORCLAW_TEMPORAL_PORT: String(temporalPort),
    ARMORCLAW_TEMPORAL_UI_PORT: String(uiPort),
    ARMORCLAW_CONFIG: '',
    ARMORCLAW_LOG_LEVEL: 'info',
    // Several bridges run at once in the tests: each signaling server on a free port.
    ARMORCLAW_VOICE_SIGNALING_PORT: '0',
    // …and each HTTP gateway too (the banner names its URL: gatewayUrl()).
    ARMORCLAW_GATEWAY_PORT: '0',
    // Tests not about OpenClaw run the reference agent for the default type (test/support/docker.ts).
    ARMORCLAW_AGENT_TYPES: ECHO_AGENT_TYPES,
    ...opts.env,
  };
  const [command, ...args] = opts.command ?? [
    process.execPath,
    ...TSX_ARGS,
    path.join(PROJECT_ROOT, 'worker', 'main.ts'),
  ];
  const child = spawn(command!, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const bridge: BridgeProcess = {
    child,
    dir,
    socketPath,
    stateDir,
    uiPort,
    temporalPort,
    env,
    output: () => out,
    gatewayUrl: () => waitForGatewayUrl(() => out, exited),
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  if (!opts.noWait) {
    try {
      await waitForSocket(socketPath, exited, 60_000);
    } catch (err) {
      await bridge.stop('SIGKILL');
      throw new Error(`${(err as Error).message}\n--- bridge output ---\n${out}`);
    }
  }
  return bridge;
}

async function waitForSocket(
  socketPath: string,
  exited: Promise<unknown>,
  timeoutMs: number,
): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gone) throw new Error('the bridge exited before its socket answered');
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(socketPath);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the bridge socket ${socketPath} did not answer within ${timeoutMs} ms`);
}

/** The gateway URL of the start banner ("…, gateway http://127.0.0.1:41234"), waited for. */
async function waitForGatewayUrl(output: () => string, exited: Promise<unknown>): Promise<string> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const found = /ready: .*?, gateway (https?:\/\/[^\s"',]+)/.exec(output());
    if (found) return found[1]!;
    if (gone || Date.now() > deadline) {
      throw new Error(
        `the bridge has not logged its gateway URL\n--- bridge output ---\n${output()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Removes a test directory. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
