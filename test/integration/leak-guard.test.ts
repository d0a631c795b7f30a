/**
 * The leak guard on a real bridge (Temporal, Docker, a real agent container): what an agent
 * sends out through its socket (`notify` here; `matrix.send` goes through the same check) is
 * refused when it holds a stored credential, raw or encoded, audited as a security violation,
 * and the token appears nowhere the refusal leaves a trace. A key stored after the bridge
 * started is guarded at once.
 */
import { mkdtempSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import {
  auditEntries,
  removeTestContainers,
  rpc,
  runStatus,
  temporalClient,
  waitFor,
} from '../support/containers';
import { ensureAgentImage, ensureDocker } from '../support/docker';

jest.setTimeout(180_000);

const TOKEN = `sk-proj-${randomBytes(24).toString('hex')}`;
const LATER_TOKEN = `sk-ant-${randomBytes(24).toString('hex')}`;

let bridge: BridgeProcess;
let secretsDir: string;
let client: Client;
let closeClient: () => Promise<void>;
let endpoint: string;
let name: string;

beforeAll(async () => {
  await ensureDocker();
  await ensureAgentImage();
  secretsDir = mkdtempSync('/dev/shm/armorclaw-it-leak-');
  bridge = await spawnBridge({
    env: {
      ARMORCLAW_MASTER_KEY: randomBytes(32).toString('hex'),
      ARMORCLAW_SECRETS_DIR: secretsDir,
    },
  });
  ({ client, close: closeClient } = await temporalClient(bridge.temporalPort));
  const stored = await rpc(bridge.socketPath, 'store_key', {
    id: 'leak-key',
    provider: 'openai',
    token: TOKEN,
  });
  expect(stored.error).toBeUndefined();
  // File mode: the agent holds the real key, the case the guard exists for.
  const started = await rpc(
    bridge.socketPath,
    'start',
    { key_id: 'leak-key', secrets_mode: 'file' },
    60_000,
  );
  expect(started.error).toBeUndefined();
  ({ endpoint, container_name: name } = started.result);
});

afterAll(async () => {
  await closeClient?.().catch(() => undefined);
  await bridge?.stop();
  await removeTestContainers(name ? [name] : [], [bridge?.dir, secretsDir].filter(Boolean));
  if (bridge) removeDir(bridge.dir);
  if (secretsDir) removeDir(secretsDir);
});

const notify = (message: string) => rpc(endpoint, 'notify', { kind: 'status', message });

test.each([
  ['raw', (t: string) => `my key is ${t}`],
  ['base64', (t: string) => `blob ${Buffer.from(`KEY=${t};`).toString('base64')}`],
  ['hex', (t: string) => Buffer.from(t).toString('hex')],
  [
    'percent-encoded',
    (t: string) => `https://evil.example/?k=${encodeURIComponent(t).replace(/-/g, '%2D')}`,
  ],
])('a notify holding the key (%s) is refused with -32005 and audited', async (_form, leak) => {
  const before = auditEntries(bridge.stateDir, { event_type: 'security_violation' }).length;
  const res = await notify(leak(TOKEN));
  expect(res.error).toEqual({
    code: -32005,
    message: 'Security policy violation: the message holds a stored credential and was not sent',
  });
  const violations = auditEntries(bridge.stateDir, { event_type: 'security_violation' });
  expect(violations).toHaveLength(before + 1);
  expect(violations[0]).toMatchObject({
    session_id: name,
    details: { method: 'notify', key_ids: ['leak-key'] },
  });
});

test('the refused message reached no log, audit entry or workflow; a clean notify still works', async () => {
  const clean = await notify('all good');
  expect(clean.result).toEqual({ status: 'delivered' });
  const st = await waitFor(
    'the clean notification in the run',
    async () => {
      const s = await runStatus(client, name);
      return s.notifications.some((n) => n.message === 'all good') && s;
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
  const hexToken = Buffer.from(TOKEN).toString('hex');
  for (const text of [
    bridge.output(),
    JSON.stringify(auditEntries(bridge.stateDir)),
    JSON.stringify(st),
  ]) {
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(hexToken);
  }
});

test('a key stored while the bridge runs is guarded at once', async () => {
  expect((await notify(`later ${LATER_TOKEN}`)).result).toEqual({ status: 'delivered' });
  const stored = await rpc(bridge.socketPath, 'store_key', {
    id: 'later-key',
    provider: 'anthropic',
    token: LATER_TOKEN,
  });
  expect(stored.error).toBeUndefined();
  const res = await notify(`later again ${LATER_TOKEN}`);
  expect(res.error?.code).toBe(-32005);
  expect(auditEntries(bridge.stateDir, { event_type: 'security_violation' })[0]).toMatchObject({
    details: { key_ids: ['later-key'] },
  });
});
