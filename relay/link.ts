/**
 * One bridge link at the relay (formats/relay-frames.ts): the bridge's WebSocket, the device
 * sockets served over it, the device requests waiting for the bridge's answer and the heartbeat.
 * When the link drops, everything that hung on it goes too: device sockets are closed with
 * RELAY_CLOSE.bridgeGone, waiting requests are answered 503, waiting upgrades refused 503.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import {
  RELAY_CLOSE,
  parseBridgeToRelay,
  type BridgeToRelay,
  type RelayForwardedPath,
  type RelayToBridge,
} from '../formats/relay-frames';
import { closeSoon, rawText } from '../services/http-wire';

export const BRIDGE_GONE_REASON = 'the bridge is not connected';
export const NO_BRIDGE_MESSAGE = 'the bridge is not connected to this relay';
/** Past this much unsent data on the link, a device's message is refused, not queued. */
const MAX_LINK_BACKLOG = 16 * 1024 * 1024;
/** Past this much unsent data to a device, the device is too slow and is closed. */
const MAX_DEVICE_BACKLOG = 4 * 1024 * 1024;

/** The bridge's answer to a forwarded request (or the relay's own when it has none). */
export interface ForwardedAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Whether a device socket that came with a token may be upgraded. */
export type AdmitVerdict = { ok: true } | { ok: false; status: number; message: string };

export interface BridgeLinkOptions {
  heartbeatTimeoutMs: number;
  devicePingMs: number;
  requestTimeoutMs: number;
  admitTimeoutMs: number;
  log: Logger;
  /** Called once, when the link is gone for whatever reason. */
  onDropped(link: BridgeLink): void;
}

interface Waiting<T> {
  settle(value: T): void;
  timer: NodeJS.Timeout;
}

const errorBody = (code: string, message: string) =>
  JSON.stringify({ ok: false, error: { code, message } });

const unavailable = (): ForwardedAnswer => ({
  status: 503,
  headers: {},
  body: errorBody('RUN_UNAVAILABLE', NO_BRIDGE_MESSAGE),
});

/** A fresh id for a device socket or a request: a prefix and 12 random hex digits. */
export const newId = (prefix: string): string => prefix + randomBytes(6).toString('hex');

/** The upgrade status for a device close code the bridge sent instead of an admit. */
function statusOfCloseCode(code: number): number {
  if (code === 4403) return 403;
  if (code === 4429) return 429;
  return 401;
}

export class BridgeLink {
  /** The device sockets served over this link, by conn id. */
  private readonly conns = new Map<string, WebSocket>();
  private readonly alive = new WeakMap<WebSocket, boolean>();
  private readonly requests = new Map<string, Waiting<ForwardedAnswer>>();
  private readonly admits = new Map<string, Waiting<AdmitVerdict>>();
  /**
   * Messages for admitted sockets not yet upgraded: the bridge sends `ready` right after its
   * `admit`, and both may arrive in one read, before the upgrade has run.
   */
  private readonly early = new Map<string, string[]>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly devicePing: NodeJS.Timeout;
  private dropped = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly options: BridgeLinkOptions,
  ) {
    this.heartbeat = setTimeout(() => {
      options.log.warn(
        { silentMs: options.heartbeatTimeoutMs },
        'the bridge link went silent; dropping it',
      );
      ws.terminate();
      this.drop();
    }, options.heartbeatTimeoutMs);
    this.heartbeat.unref();
    this.devicePing = setInterval(() => this.pingDevices(), options.devicePingMs);
    this.devicePing.unref();
    const heard = () => this.heartbeat.refresh();
    ws.on('ping', heard);
    ws.on('pong', heard);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      heard();
      if (isBinary) return options.log.warn('binary message on the bridge link; dropped');
      const frame = parseBridgeToRelay(rawText(data));
      if (!frame) return options.log.warn('malformed frame on the bridge link; dropped');
      this.onFrame(frame);
    });
    ws.on('close', () => this.drop());
    ws.on('error', (err) => options.log.debug({ err: err.message }, 'bridge link error'));
  }

  get open(): boolean {
    return !this.dropped && this.ws.readyState === this.ws.OPEN;
  }

  /** How many device sockets this link serves now. */
  get deviceCount(): number {
    return this.conns.size;
  }

  /** Forwards a device's POST; resolves with the bridge's answer, 503 or 504. */
  request(
    path: RelayForwardedPath,
    address: string,
    authorization: string | undefined,
    body: string,
  ): Promise<ForwardedAnswer> {
    const id = newId('h_');
    return this.wait(this.requests, id, this.options.requestTimeoutMs, unavailable(), {
      type: 'http',
      id,
      path,
      address,
      ...(authorization !== undefined ? { authorization } : {}),
      body,
    }).then(
      (answer) =>
        answer ?? {
          status: 504,
          headers: {},
          body: errorBody('RUN_UNAVAILABLE', 'the bridge did not answer in time'),
        },
    );
  }

  /** Asks the bridge whether a device socket with `token` may be upgraded. */
  async admit(conn: string, address: string, token: string): Promise<AdmitVerdict> {
    const verdict = await this.wait(
      this.admits,
      conn,
      this.options.admitTimeoutMs,
      { ok: false, status: 503, message: NO_BRIDGE_MESSAGE },
      { type: 'open', conn, address, token },
    );
    if (verdict) return verdict;
    // Too late: should the bridge still admit it, it learns the socket is gone.
    this.send({ type: 'gone', conn });
    return { ok: false, status: 504, message: 'the bridge did not answer in time' };
  }

  /** Serves an upgraded device socket over this link; `open` tells the bridge when no admit did. */
  attach(conn: string, ws: WebSocket, address: string, admitted: boolean): void {
    if (!this.open) return closeSoon(ws, RELAY_CLOSE.bridgeGone, BRIDGE_GONE_REASON);
    this.conns.set(conn, ws);
    for (const text of this.early.get(conn) ?? []) ws.send(text);
    this.early.delete(conn);
    this.alive.set(ws, true);
    ws.on('pong', () => this.alive.set(ws, true));
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) return closeSoon(ws, 1003, 'messages are JSON text');
      if (!this.open) return closeSoon(ws, RELAY_CLOSE.bridgeGone, BRIDGE_GONE_REASON);
      if (this.ws.bufferedAmount > MAX_LINK_BACKLOG) {
        return closeSoon(ws, 1013, 'the relay is overloaded; try again later');
      }
      this.send({ type: 'frame', conn, text: rawText(data) });
    });
    ws.on('close', () => {
      if (this.conns.get(conn) !== ws) return;
      this.conns.delete(conn);
      this.send({ type: 'gone', conn });
    });
    ws.on('error', (err) => this.options.log.debug({ err: err.message }, 'device socket error'));
    if (!admitted) this.send({ type: 'open', conn, address });
  }

  /** Tells the bridge a device socket it admitted is gone before it was ever served. */
  gone(conn: string): void {
    this.early.delete(conn);
    this.send({ type: 'gone', conn });
  }

  /**
   * Ends the link (with `code` when it is still open) and everything on it: device sockets are
   * closed with `deviceCode`, waiting requests answered 503. Once only.
   */
  drop(
    code: number = 1000,
    reason = '',
    deviceCode: number = RELAY_CLOSE.bridgeGone,
    deviceReason = BRIDGE_GONE_REASON,
  ): void {
    if (this.dropped) return;
    this.dropped = true;
    this.early.clear();
    clearTimeout(this.heartbeat);
    clearInterval(this.devicePing);
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) {
      closeSoon(this.ws, code, reason);
    }
    const devices = [...this.conns.values()];
    this.conns.clear();
    for (const ws of devices) closeSoon(ws, deviceCode, deviceReason);
    for (const [id, w] of [...this.requests]) {
      this.requests.delete(id);
      clearTimeout(w.timer);
      w.settle(unavailable());
    }
    for (const [conn, w] of [...this.admits]) {
      this.admits.delete(conn);
      clearTimeout(w.timer);
      w.settle({ ok: false, status: 503, message: NO_BRIDGE_MESSAGE });
    }
    this.options.onDropped(this);
  }

  private onFrame(frame: BridgeToRelay): void {
    switch (frame.type) {
      case 'ping':
        this.send({ type: 'pong' });
        return;
      case 'response': {
        const status = frame.status < 200 ? 502 : frame.status;
        return this.settle(this.requests, frame.id, {
          status,
          headers: frame.headers,
          body: frame.body,
        });
      }
      case 'admit':
        if (this.admits.has(frame.conn)) {
          if (frame.ok) this.early.set(frame.conn, []);
          return this.settle(
            this.admits,
            frame.conn,
            frame.ok
              ? { ok: true }
              : {
                  ok: false,
                  status: [401, 403, 429].includes(frame.status ?? 0) ? frame.status! : 401,
                  message: frame.message ?? 'the bridge refused this device',
                },
          );
        }
        // An admit for a socket the relay no longer waits on: it is gone, whatever the bridge says.
        if (frame.ok && !this.conns.has(frame.conn)) this.send({ type: 'gone', conn: frame.conn });
        return;
      case 'send': {
        const ws = this.conns.get(frame.conn);
        if (!ws) {
          this.early.get(frame.conn)?.push(frame.text);
          return;
        }
        if (ws.readyState !== ws.OPEN) return;
        if (ws.bufferedAmount > MAX_DEVICE_BACKLOG) {
          return closeSoon(ws, 1008, 'the device does not read its messages');
        }
        ws.send(frame.text);
        return;
      }
      case 'close': {
        if (this.admits.has(frame.conn)) {
          return this.settle(this.admits, frame.conn, {
            ok: false,
            status: statusOfCloseCode(frame.code),
            message: frame.reason || 'the bridge refused this device',
          });
        }
        const ws = this.conns.get(frame.conn);
        if (ws) closeSoon(ws, frame.code, frame.reason);
        return;
      }
    }
  }

  /** Sends a frame when the link is open; false when it is not. */
  private send(frame: RelayToBridge): boolean {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Sends `frame` and waits for the answer keyed `key` in `table`: `whenDown` at once when the
   * link is down, undefined after `timeoutMs`.
   */
  private wait<T>(
    table: Map<string, Waiting<T>>,
    key: string,
    timeoutMs: number,
    whenDown: T,
    frame: RelayToBridge,
  ): Promise<T | undefined> {
    if (!this.open) return Promise.resolve(whenDown);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        table.delete(key);
        resolve(undefined);
      }, timeoutMs);
      table.set(key, { settle: resolve, timer });
      this.send(frame);
    });
  }

  private settle<T>(table: Map<string, Waiting<T>>, key: string, value: T): void {
    const w = table.get(key);
    if (!w) return;
    table.delete(key);
    clearTimeout(w.timer);
    w.settle(value);
  }

  /** Drops device sockets that missed the last ping, pings the rest. */
  private pingDevices(): void {
    for (const ws of this.conns.values()) {
      if (this.alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      this.alive.set(ws, false);
      ws.ping();
    }
  }
}
