/**
 * One bridge as `npm start` runs it, for the suites that measure it against raw Docker: private
 * temporary directories (state, and secrets on tmpfs), a host id of its own that labels every
 * container it creates, and the cleanups that stop it and remove what it and the baseline made.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildDist,
  NPM_START,
  spawnBridge,
  type BridgeProcess,
} from '../../test/support/bridge-process';
import { removeContainers } from './burst';
import { onCleanup } from './cleanup';

export interface BenchSpace {
  /** Scratch directory (the bridge's state under `bridge/`). */
  dir: string;
  /** A tmpfs directory for secrets (the bridge's under `bridge/`). */
  secretsRoot: string;
  /** The bridge's host id, and the `armorclaw.bench` label of the baseline's containers. */
  label: string;
  /** Cleanups registered so far, in order; run them in reverse when done. */
  stops: Array<() => Promise<void>>;
}

/** Directories and a label for a suite (`name` in their names). */
export function benchSpace(name: string): BenchSpace {
  const dir = mkdtempSync(path.join(os.tmpdir(), `armorclaw-bench-${name}-`));
  const secretsRoot = mkdtempSync(path.join('/dev/shm', `armorclaw-bench-${name}-`));
  const label = `bench-${name}-${process.pid}`;
  const stops = [
    onCleanup(async () => {
      await removeContainers(`label=armorclaw.host=${label}`);
      await removeContainers(`label=armorclaw.bench=${label}`);
      rmSync(dir, { recursive: true, force: true });
      rmSync(secretsRoot, { recursive: true, force: true });
    }),
  ];
  return { dir, secretsRoot, label, stops };
}

/**
 * Builds if needed and starts the bridge (`npm start`) in `space`, with `env` added; its stop is
 * registered with the space's cleanups. BENCH_BRIDGE_NODE_OPTIONS is passed on as NODE_OPTIONS.
 */
export async function startBenchBridge(
  space: BenchSpace,
  env: NodeJS.ProcessEnv,
): Promise<BridgeProcess> {
  buildDist();
  mkdirSync(path.join(space.dir, 'bridge'));
  const secrets = path.join(space.secretsRoot, 'bridge');
  mkdirSync(secrets, { mode: 0o700 });
  const bridge = await spawnBridge({
    dir: path.join(space.dir, 'bridge'),
    command: NPM_START,
    env: {
      ...(process.env.BENCH_BRIDGE_NODE_OPTIONS
        ? { NODE_OPTIONS: process.env.BENCH_BRIDGE_NODE_OPTIONS }
        : {}),
      ARMORCLAW_MASTER_KEY: 'b2'.repeat(32),
      ARMORCLAW_SECRETS_DIR: secrets,
      ARMORCLAW_HOST_ID: space.label,
      ARMORCLAW_LOG_LEVEL: 'warn',
      ...env,
    },
  });
  space.stops.push(
    onCleanup(async () => {
      const killer = setTimeout(() => bridge.child.kill('SIGKILL'), 20_000);
      await bridge.stop();
      clearTimeout(killer);
    }),
  );
  return bridge;
}
