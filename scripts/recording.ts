/**
 * What the history recorders share: a real bridge with its own state, secrets tmpfs and Temporal
 * client, and saving a workflow's history as `temporal workflow show --output json` prints it
 * (the format the replay tests load), refusing one that carries the recording's token or another
 * secret (decoded payloads included).
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

/** Each secret as it could show in a history: raw, hex and base64 (at any alignment). */
export function secretEncodings(secret: string): string[] {
  const out = [secret, Buffer.from(secret).toString('hex')];
  for (let shift = 0; shift < 3; shift++) {
    // The secret's base64 behind `shift` other bytes: only the groups of 3 bytes all its own,
    // which read the same whatever precedes or follows it.
    const b64 = Buffer.from('x'.repeat(shift) + secret).toString('base64');
    const skip = shift === 0 ? 0 : 4;
    const own = secret.length - (shift === 0 ? 0 : 3 - shift);
    out.push(b64.slice(skip, skip + Math.floor(own / 3) * 4));
  }
  return out;
}

/** The history's text with every payload's data decoded beside it (payloads are base64). */
function withDecodedPayloads(json: string): string {
  const decoded: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) {
        if (k === 'data' && typeof child === 'string') {
          decoded.push(Buffer.from(child, 'base64').toString('utf8'));
        } else walk(child);
      }
    }
  };
  walk(JSON.parse(json));
  return [json, ...decoded].join('\n');
}

/**
 * Saves a workflow's history under test/replay/histories/<name>; answers the relative path.
 * Refuses (writing nothing) a history that holds the recording's token or any of `secrets`, in
 * any encoding, in its text or inside a payload.
 */
export function saveHistory(
  bridge: BridgeProcess,
  workflowId: string,
  name: string,
  secrets: readonly string[] = [],
): string {
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
  const text = withDecodedPayloads(json);
  if ([RECORDING_TOKEN, ...secrets].flatMap(secretEncodings).some((e) => text.includes(e))) {
    throw new Error(`a secret reached the history of ${workflowId}`);
  }
  const file = path.join(OUT, name);
  writeFileSync(file, json);
  return path.relative(PROJECT_ROOT, file);
}
