// End-to-end encryption (docs/matrix.md, "E2EE") against a real Synapse and the real bridge process.
// Alice is a real E2EE client (matrix-js-sdk + Rust crypto, in a child process: jest cannot load
// the ESM-only SDK). She creates an encrypted room and invites the bot; the bridge joins, and:
// her encrypted messages reach matrix.receive and a bound agent decrypted; the agent's reply
// and matrix.send go out encrypted and decrypt on her side; an event nobody can decrypt is kept
// with an error note; the bridge's device identity and sessions survive a restart; the crypto
// store's secret reaches neither Temporal history nor the logs.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Keystore, keystorePath } from '../../services/keystore';
import { removeDir, spawnBridge, type BridgeProcess } from '../support/bridge-process';
import {
  filesContaining,
  removeTestContainers,
  rpc,
  sleep,
  temporalClient as temporalClientOn,
  temporalHistoryText,
  waitFor,
} from '../support/containers';
import { ensureAgentImage } from '../support/docker';
import { E2eePeer } from '../support/e2ee-peer-process';
import { freePort } from '../support/ports';
import { call } from '../support/socket-clients';
import { startSynapse, type MatrixSession, type SynapseHandle } from '../support/synapse';

jest.setTimeout(240_000);

const hex = (n: number) => randomBytes(n).toString('hex');
const nonce = () => hex(4);
const DEVICE = 'ARMORCLAW';

let syn: SynapseHandle;
let bot: MatrixSession & { password: string };
let alice: MatrixSession & { password: string };
let peer: E2eePeer;
let roomId: string;
let bridge: BridgeProcess;
let dir: string;
let secretsDir: string;
let env: NodeJS.ProcessEnv;
let ports: { temporalPort: number; uiPort: number };
const masterKey = hex(32);
const names = new Set<string>();
const timings: Record<string, unknown> = {};

async function register(localpart: string) {
  const password = `pw-${localpart}-${hex(8)}`;
  return { ...(await syn.registerUser(localpart, password)), password };
}

async function startBridge(): Promise<BridgeProcess> {
  const b = await spawnBridge({ dir, env, ...ports });
  try {
    await waitFor(
      'matrix.status connected',
      async () => (await call(b.socketPath, 'matrix.status')).result?.status === 'connected',
      { timeoutMs: 60_000, intervalMs: 100 },
    );
  } catch (err) {
    await b.stop('SIGKILL');
    throw new Error(`${(err as Error).message}\n${b.output().slice(-4000)}`);
  }
  return b;
}

/** Drains matrix.receive. */
async function receiveAll(socketPath: string): Promise<any[]> {
  const all: any[] = [];
  for (;;) {
    const r = await call(socketPath, 'matrix.receive');
    if (r.error) throw new Error(JSON.stringify(r.error));
    all.push(...r.result.events);
    if (r.result.count === 0) return all;
  }
}

/** Waits until matrix.receive returns `eventId` (other events are drained on the way). */
async function receiveEvent(eventId: string, timeoutMs = 20_000): Promise<any> {
  let got: any;
  await waitFor(
    `${eventId} in matrix.receive`,
    async () => {
      got = (await receiveAll(bridge.socketPath)).find((e) => e.event_id === eventId) ?? got;
      return got;
    },
    { timeoutMs, intervalMs: 200 },
  );
  return got;
}

/** The bridge device's keys as the homeserver publishes them. */
async function botDeviceKeys(): Promise<{ ed25519: string; curve25519: string }> {
  const res = await syn.client.request('POST', '/_matrix/client/v3/keys/query', alice.accessToken, {
    device_keys: { [bot.userId]: [DEVICE] },
  });
  const keys = res.device_keys?.[bot.userId]?.[DEVICE]?.keys ?? {};
  return { ed25519: keys[`ed25519:${DEVICE}`], curve25519: keys[`curve25519:${DEVICE}`] };
}

/** The room's events as stored on the server (what anyone without keys sees). */
const wire = (limit = 200) => syn.client.messages(alice.accessToken, roomId, limit);

beforeAll(async () => {
  await ensureAgentImage();
  syn = await startSynapse();
  [bot, alice] = await Promise.all([register('bot'), register('alice')]);
  const t0 = Date.now();
  peer = await E2eePeer.start(syn.baseUrl, 'alice', alice.password);
  timings.peer_start_ms = Date.now() - t0;
  roomId = await peer.createRoom([bot.userId], true);

  dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-e2ee-'));
  secretsDir = mkdtempSync('/dev/shm/armorclaw-e2ee-secrets-');
  ports = { temporalPort: await freePort(), uiPort: await freePort() };
  env = {
    ARMORCLAW_MASTER_KEY: masterKey,
    ARMORCLAW_SECRETS_DIR: secretsDir,
    ARMORCLAW_MATRIX_HOMESERVER: syn.baseUrl,
    ARMORCLAW_MATRIX_USERNAME: 'bot',
    ARMORCLAW_MATRIX_PASSWORD: bot.password,
    ARMORCLAW_MATRIX_DEVICE_ID: DEVICE,
    ARMORCLAW_MATRIX_TRUSTED_SENDERS: alice.userId,
    ARMORCLAW_MATRIX_TRUSTED_ROOMS: roomId,
    ARMORCLAW_MATRIX_SYNC_TIMEOUT: '5s',
  };
  const b0 = Date.now();
  bridge = await startBridge();
  timings.bridge_connected_ms = Date.now() - b0;
  // The bridge accepts the trusted invitation by itself.
  await peer.waitJoined(roomId, bot.userId, 60_000);
});

afterAll(async () => {
  try {
    const st = bridge && (await rpc(bridge.socketPath, 'status', undefined, 10_000));
    await Promise.all(
      (st?.result?.container_ids ?? []).map((id: string) =>
        rpc(bridge.socketPath, 'stop', { container_id: id }, 60_000).catch(() => undefined),
      ),
    );
  } catch {
    // the bridge is gone
  }
  await removeTestContainers(names, [dir, secretsDir].filter(Boolean));
  await bridge?.stop();
  if (process.env.E2EE_TEST_LOG)
    require('node:fs').writeFileSync(process.env.E2EE_TEST_LOG, bridge.output());
  await peer?.stop();
  await syn?.stop();
  if (dir) removeDir(dir);
  if (secretsDir) removeDir(secretsDir);
  console.info(`matrix-e2ee timings: ${JSON.stringify(timings, null, 2)}`);
});

test('the room is encrypted and the bridge published its device keys', async () => {
  const state = await syn.client.request(
    'GET',
    `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.encryption/`,
    alice.accessToken,
  );
  expect(state.algorithm).toBe('m.megolm.v1.aes-sha2');
  const keys = await botDeviceKeys();
  expect(keys.ed25519).toMatch(/^[A-Za-z0-9+/]{43}$/);
  expect(keys.curve25519).toMatch(/^[A-Za-z0-9+/]{43}$/);
});

test('an encrypted message reaches matrix.receive decrypted; matrix.send goes out encrypted', async () => {
  const word = `in-${nonce()}`;
  const eventId = await peer.send(roomId, `hello ${word}`);
  // On the wire it is ciphertext.
  const onWire = (await wire()).find((e) => e.event_id === eventId);
  expect(onWire?.type).toBe('m.room.encrypted');
  expect(JSON.stringify(onWire)).not.toContain(word);

  let got: any;
  await waitFor(
    'the decrypted event in matrix.receive',
    async () => {
      got = (await receiveAll(bridge.socketPath)).find((e) => e.event_id === eventId) ?? got;
      return got;
    },
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  expect(got).toMatchObject({
    type: 'm.room.message',
    room_id: roomId,
    sender: alice.userId,
    content: { msgtype: 'm.text', body: `hello ${word}` },
  });

  const reply = `out-${nonce()}`;
  const sent = await rpc(bridge.socketPath, 'matrix.send', { room_id: roomId, message: reply });
  expect(sent.error).toBeUndefined();
  const replyWire = (await wire()).find((e) => e.event_id === sent.result.event_id);
  expect(replyWire?.type).toBe('m.room.encrypted');
  expect(replyWire?.sender).toBe(bot.userId);
  expect(JSON.stringify(replyWire)).not.toContain(reply);
  const seen = await peer.waitMessage(roomId, bot.userId, reply);
  expect(seen).toMatchObject({
    event_id: sent.result.event_id,
    wire_type: 'm.room.encrypted',
    type: 'm.room.message',
    body: reply,
    encrypted: true,
    decryption_failure: null,
  });
});

test('an agent bound to the encrypted room gets the plaintext and its reply goes out encrypted', async () => {
  const keyId = `e2ee-key-${nonce()}`;
  const stored = await call(bridge.socketPath, 'store_key', {
    id: keyId,
    provider: 'openai',
    token: `sk-e2ee-${hex(8)}`,
  });
  expect(stored.error).toBeUndefined();
  const t0 = Date.now();
  const started = await rpc(bridge.socketPath, 'start', {
    key_id: keyId,
    room_id: roomId,
    ttl: '10m',
  });
  expect(started.error).toBeUndefined();
  names.add(started.result.container_name);

  const word = `agent-${nonce()}`;
  const asked = await peer.send(roomId, `!echo ${word}`);
  const echo = await peer.waitMessage(roomId, bot.userId, `echo: ${word}`, 90_000);
  timings.agent_echo_after_start_ms = Date.now() - t0;
  expect(echo).toMatchObject({
    wire_type: 'm.room.encrypted',
    type: 'm.room.message',
    body: `echo: ${word}`,
    encrypted: true,
    decryption_failure: null,
  });

  // A second round trip, with the agent already running: the push latency of an encrypted room.
  const word2 = `agent2-${nonce()}`;
  const t1 = Date.now();
  await peer.send(roomId, `!echo ${word2}`);
  await peer.waitMessage(roomId, bot.userId, `echo: ${word2}`, 30_000);
  timings.encrypted_echo_roundtrip_ms = Date.now() - t1;

  // Once each, and nothing in the clear on the server.
  await sleep(6_000);
  const events = await wire(500);
  expect(events.filter((e) => e.event_id === asked)).toHaveLength(1);
  const fromBot = events.filter((e) => e.sender === bot.userId && e.type.startsWith('m.room.'));
  expect(fromBot.filter((e) => e.type === 'm.room.message')).toHaveLength(0);
  expect(JSON.stringify(events)).not.toContain(word);
  // The peer's view: exactly one decrypted echo of the word.
  const peerEcho = await peer.command<{ bodies: string[] }>('bodies', {
    room_id: roomId,
    sender: bot.userId,
  });
  expect(peerEcho.bodies.filter((b) => b === `echo: ${word}`)).toHaveLength(1);
});

test('an event whose key was withheld is kept as m.room.encrypted with the reason, not dropped', async () => {
  const word = `withheld-${nonce()}`;
  const eventId = await peer.sendWithheld(roomId, `secret ${word}`);
  const got = await receiveEvent(eventId);
  expect(got.type).toBe('m.room.encrypted');
  expect(got.sender).toBe(alice.userId);
  expect(got.content).toMatchObject({ algorithm: 'm.megolm.v1.aes-sha2' });
  expect(JSON.stringify(got)).not.toContain(word);
  const note = got.content['org.armorclaw.decryption_error'];
  timings.withheld_note = note;
  expect(note).toMatchObject({ code: 'MissingRoomKey' });
  expect(typeof note.message).toBe('string');
  expect(bridge.output()).toContain('could not decrypt a Matrix event');

  // Garbage that only looks like Megolm is kept the same way.
  const content = {
    algorithm: 'm.megolm.v1.aes-sha2',
    sender_key: 'x'.repeat(43),
    session_id: 'A'.repeat(43),
    device_id: 'NOWHERE',
    ciphertext: Buffer.from(`not a megolm message ${nonce()}`)
      .toString('base64')
      .replace(/=+$/, ''),
  };
  const bogusId = await syn.client.sendEvent(
    alice.accessToken,
    roomId,
    'm.room.encrypted',
    content,
  );
  const bogus = await receiveEvent(bogusId);
  expect(bogus.type).toBe('m.room.encrypted');
  expect(bogus.content).toMatchObject(content);
  expect(bogus.content['org.armorclaw.decryption_error'].code).toBe('UnableToDecrypt');

  // The session after it is shared with the bridge again.
  const next = `after-withheld-${nonce()}`;
  const nextId = await peer.send(roomId, next);
  expect(await receiveEvent(nextId)).toMatchObject({
    type: 'm.room.message',
    content: { body: next },
  });
});

test('the device identity and its sessions survive a restart of the bridge', async () => {
  const before = await botDeviceKeys();
  const file = path.join(bridge.stateDir, 'matrix-crypto.bin');
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(await bridge.stop()).toBe(0);

  const t0 = Date.now();
  bridge = await startBridge();
  timings.bridge_restart_connected_ms = Date.now() - t0;
  await waitFor('E2EE ready after restart', () => /E2EE ready/.test(bridge.output()), {
    timeoutMs: 20_000,
  });
  expect(bridge.output()).toContain('device identity restored');
  expect(await botDeviceKeys()).toEqual(before);

  // Alice's Megolm session from before the restart still decrypts at the bridge: the inbound
  // session was restored, not re-shared.
  const word = `after-restart-${nonce()}`;
  const eventId = await peer.send(roomId, `hello ${word}`);
  let got: any;
  await waitFor(
    'the decrypted event after restart',
    async () => {
      got = (await receiveAll(bridge.socketPath)).find((e) => e.event_id === eventId) ?? got;
      return got;
    },
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  expect(got).toMatchObject({ type: 'm.room.message', content: { body: `hello ${word}` } });

  // And the bridge's own sends still decrypt on Alice's side.
  const reply = `reply-after-restart-${nonce()}`;
  const sent = await rpc(bridge.socketPath, 'matrix.send', { room_id: roomId, message: reply });
  expect(sent.error).toBeUndefined();
  const seen = await peer.waitMessage(roomId, bot.userId, reply);
  expect(seen).toMatchObject({
    wire_type: 'm.room.encrypted',
    body: reply,
    decryption_failure: null,
  });
});

test('the crypto store and its key stay out of Temporal history, logs and plain files', async () => {
  const keystore = Keystore.open({
    dbPath: keystorePath(bridge.stateDir),
    masterKey: Buffer.from(masterKey, 'hex'),
  });
  let secret: string | undefined;
  try {
    secret = keystore.getSecret('matrix.crypto_store_key');
  } finally {
    keystore.close();
  }
  expect(secret).toBeTruthy();
  const { curve25519 } = await botDeviceKeys();

  // The dump on disk is sealed: neither the key nor the device's public keys show through.
  const dump = readFileSync(path.join(bridge.stateDir, 'matrix-crypto.bin'));
  expect(dump.includes(Buffer.from(curve25519))).toBe(false);
  expect(dump.includes(Buffer.from('pickle'))).toBe(false);
  expect(filesContaining(dir, secret!)).toEqual([]);
  expect(bridge.output()).not.toContain(secret!);

  // No workflow's history holds the key or any ciphertext.
  const { client, close } = await temporalClientOn(ports.temporalPort);
  try {
    const ids: string[] = [];
    for await (const wf of client.workflow.list()) ids.push(wf.workflowId);
    expect(ids.some((id) => id.startsWith('matrix-sync-'))).toBe(true);
    expect(ids.some((id) => id.startsWith('matrix-send-'))).toBe(true);
    for (const id of new Set(ids)) {
      const text = await temporalHistoryText(ports.temporalPort, id);
      expect(text).not.toContain(secret!);
      expect(text).not.toContain('ciphertext');
      expect(text).not.toContain('m.megolm.v1.aes-sha2');
    }
  } finally {
    await close();
  }
});

// What docs/matrix.md ("E2EE") says happens when matrix-crypto.bin (or the keystore secret that
// opens it) is lost while the device id stays the same.
test('a lost crypto store: a new identity, the key conflict reported, nothing dropped', async () => {
  const before = await botDeviceKeys();
  expect(await bridge.stop()).toBe(0);
  rmSync(path.join(bridge.stateDir, 'matrix-crypto.bin'));
  bridge = await startBridge();
  await waitFor(
    'the key conflict report',
    () => /earlier identity of this device/.test(bridge.output()),
    { timeoutMs: 20_000 },
  );
  expect(bridge.output()).toContain('E2EE ready: new device identity');
  // The homeserver took the new device keys, but not the new one-time keys.
  const after = await botDeviceKeys();
  expect(after.ed25519).not.toBe(before.ed25519);

  // Alice still encrypts for the identity she knew: her message is kept, undecrypted.
  const word = `lost-${nonce()}`;
  const got = await receiveEvent(await peer.send(roomId, `hello ${word}`));
  expect(got.type).toBe('m.room.encrypted');
  expect(got.content['org.armorclaw.decryption_error']).toMatchObject({ code: 'MissingRoomKey' });

  // The bridge's own sends still reach her encrypted and readable.
  const reply = `reply-lost-${nonce()}`;
  const sent = await rpc(bridge.socketPath, 'matrix.send', { room_id: roomId, message: reply });
  expect(sent.error).toBeUndefined();
  expect(await peer.waitMessage(roomId, bot.userId, reply, 15_000)).toMatchObject({
    wire_type: 'm.room.encrypted',
    body: reply,
    decryption_failure: null,
  });
});
