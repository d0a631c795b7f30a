/**
 * A real end-to-end-encrypting Matrix user for the integration tests, as a child process: jest
 * cannot load matrix-js-sdk (ESM-only), so the test drives this script over stdin/stdout.
 *
 *   node --import tsx test/support/e2ee-peer.ts <homeserver URL> <localpart> <password>
 *
 * It logs in with a fresh device, starts matrix-js-sdk's Rust crypto (`initRustCrypto` with
 * `useIndexedDB: false`, so the device lives as long as the process) and the SDK's own sync,
 * then answers one JSON command per stdin line with one JSON line on stdout:
 *   {id, cmd: 'whoami'}                                   → {user_id, device_id, ed25519}
 *   {id, cmd: 'createRoom', invite, encrypted}            → {room_id}
 *   {id, cmd: 'waitJoined', room_id, user_id, timeout_ms} → {joined: true}
 *   {id, cmd: 'send', room_id, body}                      → {event_id}
 *   {id, cmd: 'sendWithheld', room_id, body}              → {event_id} (key for verified devices only)
 *   {id, cmd: 'waitMessage', room_id, sender, body_prefix?, timeout_ms}
 *        → {event_id, wire_type, type, body, encrypted, decryption_failure}
 *   {id, cmd: 'bodies', room_id, sender}               → {bodies} (every event's, decrypted)
 *   {id, cmd: 'stop'}                                     → {stopped: true}, then exits
 * Answers are `{id, ok: true, result}` or `{id, ok: false, error}`. Everything the SDK prints
 * goes to stderr.
 */
import readline from 'node:readline';
import { randomBytes } from 'node:crypto';

// stdout carries the protocol only.
for (const level of ['log', 'info', 'debug', 'warn', 'error', 'trace'] as const) {
  console[level] = (...args: unknown[]) =>
    process.stderr.write(`[peer ${level}] ${args.map((a) => String(a)).join(' ')}\n`);
}

import type { MatrixClient, MatrixEvent } from 'matrix-js-sdk';

// Loaded after the console is redirected: the SDK's logger binds console methods when it loads.
type Sdk = typeof import('matrix-js-sdk');
let sdk: Sdk;

const [baseUrl, localpart, password] = process.argv.slice(2);
if (!baseUrl || !localpart || !password) {
  process.stderr.write('usage: e2ee-peer.ts <homeserver> <localpart> <password>\n');
  process.exit(2);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function start(): Promise<MatrixClient> {
  const anon = sdk.createClient({ baseUrl: baseUrl! });
  const login = await anon.loginRequest({
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user: localpart! },
    password: password!,
    device_id: `PEER${randomBytes(4).toString('hex').toUpperCase()}`,
  });
  const client = sdk.createClient({
    baseUrl: baseUrl!,
    accessToken: login.access_token,
    userId: login.user_id,
    deviceId: login.device_id,
  });
  await client.initRustCrypto({ useIndexedDB: false });
  const prepared = new Promise<void>((resolve) =>
    client.on(sdk.ClientEvent.Sync, (state) => {
      if (state === 'PREPARED') resolve();
    }),
  );
  await client.startClient({ initialSyncLimit: 20 });
  await prepared;
  return client;
}

async function describe(client: MatrixClient, ev: MatrixEvent) {
  if (ev.shouldAttemptDecryption() || ev.isBeingDecrypted()) {
    await client.decryptEventIfNeeded(ev);
  }
  if (ev.isBeingDecrypted()) {
    await new Promise<void>((resolve) => ev.once(sdk.MatrixEventEvent.Decrypted, () => resolve()));
  }
  return {
    event_id: ev.getId(),
    wire_type: ev.getWireType(),
    type: ev.getType(),
    body: ev.getContent().body as string | undefined,
    encrypted: ev.isEncrypted(),
    decryption_failure: ev.isDecryptionFailure() ? (ev.decryptionFailureReason ?? 'unknown') : null,
  };
}

async function main(): Promise<void> {
  sdk = await import('matrix-js-sdk');
  const client = await start();
  const crypto = client.getCrypto()!;
  /** Every timeline event seen, in order. */
  const timeline: MatrixEvent[] = [];
  client.on(sdk.RoomEvent.Timeline, (ev) => {
    timeline.push(ev);
  });

  const handlers: Record<string, (p: any) => Promise<unknown>> = {
    whoami: async () => ({
      user_id: client.getUserId(),
      device_id: client.getDeviceId(),
      ed25519: (await crypto.getOwnDeviceKeys()).ed25519,
    }),
    createRoom: async (p) => {
      const { room_id } = await client.createRoom({
        preset: 'private_chat' as never,
        invite: p.invite ?? [],
        initial_state: p.encrypted
          ? [
              {
                type: 'm.room.encryption',
                state_key: '',
                content: { algorithm: 'm.megolm.v1.aes-sha2' },
              },
            ]
          : [],
      });
      await until('the room in the client', 10_000, () => client.getRoom(room_id) ?? undefined);
      if (p.encrypted)
        await until('encryption in the room', 10_000, async () =>
          (await crypto.isEncryptionEnabledInRoom(room_id)) ? true : undefined,
        );
      return { room_id };
    },
    waitJoined: async (p) => {
      await until(`${p.user_id} to join ${p.room_id}`, p.timeout_ms ?? 30_000, () =>
        client.getRoom(p.room_id)?.getMember(p.user_id)?.membership === 'join' ? true : undefined,
      );
      return { joined: true };
    },
    send: async (p) => {
      const res = await client.sendTextMessage(p.room_id, p.body);
      return { event_id: res.event_id };
    },
    waitMessage: async (p) => {
      const ev = await until(`a message from ${p.sender}`, p.timeout_ms ?? 30_000, async () => {
        for (const e of timeline) {
          if (e.getRoomId() !== p.room_id || e.getSender() !== p.sender) continue;
          if (e.getWireType() !== 'm.room.encrypted' && e.getWireType() !== 'm.room.message')
            continue;
          const d = await describe(client, e);
          if (d.type === 'm.room.encrypted' && !d.decryption_failure) continue; // not yet
          if (p.body_prefix && !(d.body ?? '').startsWith(p.body_prefix) && !d.decryption_failure)
            continue;
          return d;
        }
        return undefined;
      });
      return ev;
    },
    // Sends in a new Megolm session shared with verified devices only: every other device
    // (the bridge's included) gets the event but not its key, as from an Element that "never
    // sends to unverified sessions". The next send starts a session for everyone again.
    sendWithheld: async (p) => {
      await crypto.forceDiscardSession(p.room_id);
      crypto.globalBlacklistUnverifiedDevices = true;
      try {
        const res = await client.sendTextMessage(p.room_id, p.body);
        return { event_id: res.event_id };
      } finally {
        crypto.globalBlacklistUnverifiedDevices = false;
        await crypto.forceDiscardSession(p.room_id);
      }
    },
    bodies: async (p) => {
      const out: Array<string | undefined> = [];
      for (const e of timeline) {
        if (e.getRoomId() !== p.room_id || e.getSender() !== p.sender) continue;
        out.push((await describe(client, e)).body);
      }
      return { bodies: out };
    },
    stop: async () => {
      client.stopClient();
      return { stopped: true };
    },
  };

  const reply = (obj: unknown) => process.stdout.write(`${JSON.stringify(obj)}\n`);
  reply({ ready: true, user_id: client.getUserId(), device_id: client.getDeviceId() });

  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let msg: { id: number; cmd: string };
    try {
      msg = JSON.parse(line);
    } catch {
      reply({ ok: false, error: 'bad JSON' });
      continue;
    }
    const handler = handlers[msg.cmd];
    if (!handler) {
      reply({ id: msg.id, ok: false, error: `unknown command ${msg.cmd}` });
      continue;
    }
    // Commands run concurrently: a waitMessage may be pending while another command runs.
    void handler(msg).then(
      (result) => {
        reply({ id: msg.id, ok: true, result });
        if (msg.cmd === 'stop') setTimeout(() => process.exit(0), 50);
      },
      (err: Error) => reply({ id: msg.id, ok: false, error: err.message }),
    );
  }
  client.stopClient();
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`peer failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
