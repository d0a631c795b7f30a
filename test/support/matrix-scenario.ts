/**
 * A Matrix world for the bridge's Matrix integration tests: a private Synapse with a bot user
 * (the bridge), a trusted person (alice), an untrusted one (mallory) and a second bot account,
 * the rooms they talk in, the bridge process configured for it, a JSON-RPC client that keeps its
 * connection open for `matrix.subscribe` notifications, and helpers to count what a room holds.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import Database from 'better-sqlite3';
import { removeDir, spawnBridge, type BridgeProcess } from './bridge-process';
import { removeTestContainers, rpc, sleep, waitFor } from './containers';
import { freePort } from './ports';
import { call } from './socket-clients';
import { startSynapse, type MatrixEvent, type MatrixSession, type SynapseHandle } from './synapse';

export const BRIDGE_DEVICE_ID = 'ARMORCLAW';

const hex = (n: number) => randomBytes(n).toString('hex');
export const nonce = () => hex(4);

export interface MatrixUser extends MatrixSession {
  localpart: string;
  password: string;
}

export interface MatrixWorld {
  syn: SynapseHandle;
  bot: MatrixUser;
  /** A second bot account, for `matrix.login` over RPC. */
  bot2: MatrixUser;
  alice: MatrixUser;
  mallory: MatrixUser;
  rooms: {
    /** Trusted; alice, mallory and the bot are members; agents are bound to it. */
    agent: string;
    /** Trusted; alice and the bot. */
    other: string;
    /** Not trusted; alice and the bot (who joined it by itself). */
    untrusted: string;
    /** Trusted, but only alice is in it: the bot is invited later by a test. */
    late: string;
  };
  masterKey: string;
  secretsDir: string;
}

async function user(syn: SynapseHandle, localpart: string): Promise<MatrixUser> {
  // Random passwords: searching for them in logs and files finds only real leaks.
  const password = `pw-${localpart}-${hex(12)}`;
  const session = await syn.registerUser(localpart, password);
  return { ...session, localpart, password };
}

/** Synapse, four users and three rooms, the bot already a member of each room. */
export async function setupMatrixWorld(): Promise<MatrixWorld> {
  const syn = await startSynapse();
  try {
    const [bot, bot2, alice, mallory] = await Promise.all([
      user(syn, 'bot'),
      user(syn, 'bot2'),
      user(syn, 'alice'),
      user(syn, 'mallory'),
    ]);
    const c = syn.client;
    const agent = await c.createRoom(alice.accessToken, {
      invite: [bot.userId, mallory.userId],
      name: 'agent room',
    });
    const other = await c.createRoom(alice.accessToken, { invite: [bot.userId], name: 'other' });
    const untrusted = await c.createRoom(alice.accessToken, {
      invite: [bot.userId],
      name: 'untrusted',
    });
    const late = await c.createRoom(alice.accessToken, { name: 'late' });
    // The bot joins with its registration session (another device than the bridge's).
    for (const r of [agent, other, untrusted]) await c.join(bot.accessToken, r);
    await c.join(mallory.accessToken, agent);
    return {
      syn,
      bot,
      bot2,
      alice,
      mallory,
      rooms: { agent, other, untrusted, late },
      masterKey: hex(32),
      secretsDir: mkdtempSync('/dev/shm/armorclaw-mx-secrets-'),
    };
  } catch (err) {
    await syn.stop();
    throw err;
  }
}

export async function teardownMatrixWorld(w: MatrixWorld | undefined): Promise<void> {
  if (!w) return;
  await w.syn.stop();
  removeDir(w.secretsDir);
}

export function bridgeEnv(w: MatrixWorld, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ARMORCLAW_MASTER_KEY: w.masterKey,
    ARMORCLAW_SECRETS_DIR: w.secretsDir,
    ARMORCLAW_MATRIX_HOMESERVER: w.syn.baseUrl,
    ARMORCLAW_MATRIX_USERNAME: w.bot.localpart,
    ARMORCLAW_MATRIX_PASSWORD: w.bot.password,
    ARMORCLAW_MATRIX_TRUSTED_SENDERS: w.alice.userId,
    ARMORCLAW_MATRIX_TRUSTED_ROOMS: [w.rooms.agent, w.rooms.other, w.rooms.late].join(','),
    ARMORCLAW_MATRIX_SYNC_TIMEOUT: '5s',
    ...extra,
  };
}

/** A bridge directory and ports that survive restarts of the bridge process. */
export interface BridgeSlot {
  dir: string;
  temporalPort: number;
  uiPort: number;
  env: NodeJS.ProcessEnv;
}

export async function bridgeSlot(
  w: MatrixWorld,
  extra: NodeJS.ProcessEnv = {},
): Promise<BridgeSlot> {
  return {
    dir: mkdtempSync(path.join(os.tmpdir(), 'armorclaw-mx-')),
    temporalPort: await freePort(),
    uiPort: await freePort(),
    env: bridgeEnv(w, extra),
  };
}

/** Starts (or restarts) the bridge of `slot` and waits until its Matrix sync is connected. */
export async function startBridge(
  slot: BridgeSlot,
  connectTimeoutMs = 60_000,
): Promise<BridgeProcess> {
  const b = await spawnBridge({
    dir: slot.dir,
    env: slot.env,
    temporalPort: slot.temporalPort,
    uiPort: slot.uiPort,
  });
  try {
    await waitForStatus(b.socketPath, 'connected', connectTimeoutMs);
  } catch (err) {
    await b.stop('SIGKILL');
    throw new Error(`${(err as Error).message}\n--- bridge output ---\n${b.output().slice(-4000)}`);
  }
  return b;
}

export async function waitForStatus(
  socketPath: string,
  status: 'connected' | 'disconnected',
  timeoutMs = 30_000,
): Promise<number> {
  const t0 = Date.now();
  await waitFor(
    `matrix.status ${status}`,
    async () => (await call(socketPath, 'matrix.status')).result?.status === status,
    { timeoutMs, intervalMs: 100 },
  );
  return Date.now() - t0;
}

// --- what a room holds ------------------------------------------------------------------------

export async function roomMessages(
  w: MatrixWorld,
  roomId: string,
  limit = 1000,
): Promise<MatrixEvent[]> {
  const events = await w.syn.client.messages(w.alice.accessToken, roomId, limit);
  return events.filter((e) => e.type === 'm.room.message');
}

export async function countBody(w: MatrixWorld, roomId: string, body: string): Promise<number> {
  return (await roomMessages(w, roomId)).filter((e) => e.content.body === body).length;
}

/** Waits until `body` is in the room; returns how long that took. */
export async function waitForBody(
  w: MatrixWorld,
  roomId: string,
  body: string,
  timeoutMs = 15_000,
): Promise<number> {
  const t0 = Date.now();
  await waitFor(`"${body}" in ${roomId}`, async () => (await countBody(w, roomId, body)) > 0, {
    timeoutMs,
    intervalMs: 100,
  });
  return Date.now() - t0;
}

/** Calls `matrix.receive` until it returns nothing; every event it returned, in order. */
export async function drainReceive(socketPath: string): Promise<any[]> {
  const all: any[] = [];
  for (;;) {
    const r = await call(socketPath, 'matrix.receive');
    if (r.error) throw new Error(`matrix.receive failed: ${JSON.stringify(r.error)}`);
    all.push(...r.result.events);
    if (r.result.count === 0) return all;
  }
}

// --- agents -----------------------------------------------------------------------------------

export interface StartedAgent {
  container_id: string;
  container_name: string;
}

/** Starts the reference agent bound to `roomId` and waits until it answers `!echo` there. */
export async function startAgent(
  w: MatrixWorld,
  socketPath: string,
  roomId: string,
  names: Set<string>,
): Promise<StartedAgent & { readyMs: number }> {
  const keyId = `mx-key-${nonce()}`;
  const stored = await call(socketPath, 'store_key', {
    id: keyId,
    provider: 'openai',
    token: `sk-mx-${hex(8)}`,
  });
  if (stored.error) throw new Error(`store_key: ${JSON.stringify(stored.error)}`);
  const t0 = Date.now();
  const started = await rpc(socketPath, 'start', { key_id: keyId, room_id: roomId, ttl: '10m' });
  if (started.error) throw new Error(`start: ${JSON.stringify(started.error)}`);
  names.add(started.result.container_name);
  // Anything said in the room after start reaches the agent (redelivered once it connects).
  const probe = `ready-${nonce()}`;
  await w.syn.client.sendText(w.alice.accessToken, roomId, `!echo ${probe}`);
  await waitForBody(w, roomId, `echo: ${probe}`, 60_000);
  return { ...started.result, readyMs: Date.now() - t0 };
}

export async function stopAgents(
  socketPath: string | undefined,
  names: Set<string>,
  hostDirs: string[],
): Promise<void> {
  if (socketPath) {
    try {
      const st = await rpc(socketPath, 'status', undefined, 10_000);
      await Promise.all(
        (st.result?.container_ids ?? []).map((id: string) =>
          rpc(socketPath, 'stop', { container_id: id }, 60_000).catch(() => undefined),
        ),
      );
    } catch {
      // the bridge is gone: removal below does it
    }
  }
  await removeTestContainers(names, hostDirs);
}

// --- secrets ----------------------------------------------------------------------------------

/** Every access token Synapse holds for `userId` on `deviceId` (Synapse keeps them in plain text). */
export function synapseTokens(
  w: MatrixWorld,
  userId: string,
  deviceId = BRIDGE_DEVICE_ID,
): string[] {
  const db = new Database(path.join(w.syn.dir, 'homeserver.db'), {
    readonly: true,
    fileMustExist: true,
  });
  try {
    db.pragma('busy_timeout = 5000');
    return (
      db
        .prepare('SELECT token FROM access_tokens WHERE user_id = ? AND device_id = ?')
        .all(userId, deviceId) as { token: string }[]
    ).map((r) => r.token);
  } finally {
    db.close();
  }
}

// --- a JSON-RPC client that stays connected -----------------------------------------------------

export interface Notification {
  method: string;
  params: any;
  /** Date.now() when its line arrived. */
  at: number;
}

/**
 * One open connection to the bridge socket: requests with ids, responses matched by id, and
 * every notification kept (with its arrival time) for `matrix.subscribe` tests.
 */
export class RpcStream {
  readonly notifications: Notification[] = [];
  private buffer = '';
  private nextId = 1;
  private readonly waiting = new Map<number, (msg: any) => void>();
  private wakers: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffer += d;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (line.trim() === '') continue;
        const msg = JSON.parse(line);
        if (msg.id !== undefined && msg.id !== null && this.waiting.has(msg.id)) {
          this.waiting.get(msg.id)!(msg);
          this.waiting.delete(msg.id);
        } else if (typeof msg.method === 'string') {
          this.notifications.push({ method: msg.method, params: msg.params, at: Date.now() });
        }
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static connect(socketPath: string): Promise<RpcStream> {
    return new Promise((resolve, reject) => {
      const s = net.connect(socketPath);
      s.once('connect', () => resolve(new RpcStream(s)));
      s.once('error', reject);
    });
  }

  request(method: string, params?: unknown, timeoutMs = 10_000): Promise<any> {
    const id = this.nextId++;
    const req: Record<string, unknown> = { jsonrpc: '2.0', id, method };
    if (params !== undefined) req.params = params;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (msg) => {
        clearTimeout(t);
        resolve(msg);
      });
      this.socket.write(JSON.stringify(req) + '\n');
    });
  }

  /** `matrix.event` notifications of one subscription. */
  events(subscription: string): Notification[] {
    return this.notifications.filter(
      (n) => n.method === 'matrix.event' && n.params?.subscription === subscription,
    );
  }

  /** Waits until `pred` holds (checked on every arrival). */
  async until(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (this.closed) throw new Error(`connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.wakers.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }
}

/** A client that subscribes and then never reads again: the kernel buffers fill, then the bridge's. */
export async function stalledSubscriber(
  socketPath: string,
  params: unknown = {},
): Promise<net.Socket> {
  const s = net.connect(socketPath);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  s.on('error', () => undefined);
  s.write(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'matrix.subscribe', params }) + '\n');
  // Read the subscription answer, then stop reading for good.
  await new Promise<void>((resolve) => s.once('data', () => resolve()));
  s.pause();
  return s;
}

export { sleep, waitFor, rpc };
