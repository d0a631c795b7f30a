/**
 * What the history recorders share: a real bridge with its own state, secrets tmpfs and Temporal
 * client, and saving a workflow's history as `temporal workflow show --output json` prints it
 * (the format the replay tests load), refusing one that carries the recording's token.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import {
  PROJECT_ROOT,
  removeDir,
  spawnBridge,
  type BridgeProcess,
} from '../test/support/bridge-process';

export const VERSION: string = require('../package.json').version;
/** The token the recordings store; it must never appear in a history. */
export const RECORDING_TOKEN = 'sk-recording-only';
const OUT = path.join(PROJECT_ROOT, 'test', 'replay', 'histories');
const TEMPORAL = path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'temporal');

export interface RecordingBridge {
  bridge: BridgeProcess;
  client: Client;
  secretsDir: string;
  /**
   * Stops the bridge and removes its directories; call in `finally`. `beforeRemoving` runs
   * between the two (e.g. to remove containers that still hold files in them).
   */
  close(beforeRemoving?: () => Promise<unknown>): Promise<void>;
}

/** The real bridge (embedded Temporal, real Docker), its settings overridden by `env`. */
export async function recordingBridge(env: NodeJS.ProcessEnv): Promise<RecordingBridge> {
  const secretsDir = mkdtempSync(path.join('/dev/shm', 'armorclaw-record-'));
  const bridge = await spawnBridge({ env: { ARMORCLAW_SECRETS_DIR: secretsDir, ...env } });
  const connection = await Connection.connect({ address: `127.0.0.1:${bridge.temporalPort}` });
  return {
    bridge,
    client: new Client({ connection }),
    secretsDir,
    async close(beforeRemoving) {
      await connection.close();
      await bridge.stop();
      await beforeRemoving?.();
      removeDir(bridge.dir);
      removeDir(secretsDir);
    },
  };
}

/** Saves a workflow's history under test/replay/histories/<name>; answers the relative path. */
export function saveHistory(bridge: BridgeProcess, workflowId: string, name: string): string {
  const json = execFileSync(
    TEMPORAL,
    [
      'workflow',
      'show',
      '--output',
      'json',
      '--address',
      `127.0.0.1:${bridge.temporalPort}`,
      '--workflow-id',
      workflowId,
    ],
    { encoding: 'utf8' },
  );
  if (json.includes(RECORDING_TOKEN))
    throw new Error(`a token reached the history of ${workflowId}`);
  const file = path.join(OUT, name);
  writeFileSync(file, json);
  return path.relative(PROJECT_ROOT, file);
}
