/**
 * Drives test/support/e2ee-peer.ts (a matrix-js-sdk user with Rust crypto) from a jest test:
 * one child process per user, JSON commands over its stdin, answers matched by id.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { PROJECT_ROOT, TSX_ARGS } from './bridge-process';

export interface PeerMessage {
  event_id: string;
  /** The type on the wire (`m.room.encrypted` for an encrypted event). */
  wire_type: string;
  /** The type after decryption. */
  type: string;
  body?: string;
  encrypted: boolean;
  decryption_failure: string | null;
}

export class E2eePeer {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(v: any): void; reject(e: Error): void }>();
  private stderr = '';
  userId = '';
  deviceId = '';

  private constructor(private readonly child: ChildProcess) {}

  /** Logs `localpart` in with a new device and starts its sync and crypto. */
  static async start(baseUrl: string, localpart: string, password: string): Promise<E2eePeer> {
    const child = spawn(
      process.execPath,
      [
        ...TSX_ARGS,
        path.join(PROJECT_ROOT, 'test/support/e2ee-peer.ts'),
        baseUrl,
        localpart,
        password,
      ],
      { cwd: PROJECT_ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const peer = new E2eePeer(child);
    child.stderr!.on('data', (d) => {
      peer.stderr = (peer.stderr + d).slice(-20_000);
    });
    const ready = new Promise<void>((resolve, reject) => {
      const rl = readline.createInterface({ input: child.stdout! });
      rl.on('line', (line) => {
        let msg: any;
        try {
          msg = JSON.parse(line);
        } catch {
          return;
        }
        if (msg.ready) {
          peer.userId = msg.user_id;
          peer.deviceId = msg.device_id;
          resolve();
        } else if (typeof msg.id === 'number') {
          const w = peer.waiting.get(msg.id);
          peer.waiting.delete(msg.id);
          if (msg.ok) w?.resolve(msg.result);
          else w?.reject(new Error(`peer ${msg.id}: ${msg.error}`));
        }
      });
      child.once('exit', (code) => {
        const err = new Error(`peer exited with ${code}\n${peer.stderr.slice(-4000)}`);
        reject(err);
        for (const w of peer.waiting.values()) w.reject(err);
        peer.waiting.clear();
      });
    });
    const timeout = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      await ready;
    } finally {
      clearTimeout(timeout);
    }
    return peer;
  }

  command<T = any>(cmd: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, cmd, ...params })}\n`);
    });
  }

  createRoom(invite: string[], encrypted = true): Promise<string> {
    return this.command<{ room_id: string }>('createRoom', { invite, encrypted }).then(
      (r) => r.room_id,
    );
  }

  waitJoined(roomId: string, userId: string, timeoutMs = 30_000): Promise<void> {
    return this.command('waitJoined', { room_id: roomId, user_id: userId, timeout_ms: timeoutMs });
  }

  send(roomId: string, body: string): Promise<string> {
    return this.command<{ event_id: string }>('send', { room_id: roomId, body }).then(
      (r) => r.event_id,
    );
  }

  /** Sends with the room key withheld from unverified devices (the bridge's included). */
  sendWithheld(roomId: string, body: string): Promise<string> {
    return this.command<{ event_id: string }>('sendWithheld', { room_id: roomId, body }).then(
      (r) => r.event_id,
    );
  }

  waitMessage(
    roomId: string,
    sender: string,
    bodyPrefix?: string,
    timeoutMs = 30_000,
  ): Promise<PeerMessage> {
    return this.command('waitMessage', {
      room_id: roomId,
      sender,
      body_prefix: bodyPrefix,
      timeout_ms: timeoutMs,
    });
  }

  /** What the peer printed (the SDK's logs), for failure messages. */
  log(): string {
    return this.stderr;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    await Promise.race([this.command('stop').catch(() => undefined), gone]);
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(t);
  }
}
