/**
 * End-to-end encryption for the bridge's own sync loop (docs/matrix.md, "E2EE").
 *
 * The bridge does not run matrix-js-sdk's sync, so it cannot use the SDK's CryptoApi; it drives
 * the Rust crypto (`@matrix-org/matrix-sdk-crypto-wasm`'s OlmMachine, the same engine the SDK
 * wraps) directly:
 *
 * - every /sync response feeds the machine (`receiveSyncChanges`: to-device events, device-list
 *   changes, one-time key counts, unused fallback keys), then the machine's outgoing requests
 *   (keys upload/query/claim, to-device, signature upload) are sent through the logged-in
 *   client's `authedRequest` and acknowledged with `markRequestAsSent`;
 * - `m.room.encrypted` timeline events of trusted rooms are decrypted (`decryptRoomEvent`)
 *   before they are stored and delivered; an event that cannot be decrypted is kept as
 *   `m.room.encrypted` with an `org.armorclaw.decryption_error` note, never dropped silently;
 * - sends into a room whose state has `m.room.encryption` are encrypted: the room's members are
 *   tracked (`updateTrackedUsers`), their keys queried, missing Olm sessions claimed
 *   (`getMissingSessions`), the room key shared (`shareRoomKey`) and the content encrypted
 *   (`encryptRoomEvent`). A room that says it is encrypted never gets plaintext.
 *
 * The crypto store lives in an in-memory IndexedDB persisted to disk by `CryptoStoreFile`, so
 * the device identity survives restarts. It is saved before a sync batch is committed (room
 * keys that arrived by to-device are never lost with the batch that carried them) and before an
 * encrypted event leaves (a Megolm message index is never reused). All of it stays inside the
 * bridge process: no key, session or plaintext crosses into Temporal history.
 *
 * This file is the bridge-facing side (which session's device, the hooks, status); the device's
 * machine and requests are crypto-device.ts, the room state that decides encryption is
 * crypto-rooms.ts, and the persisted store is crypto-store.ts.
 */
import { randomBytes } from 'node:crypto';
import type { MatrixHttp } from './http';
import type { Logger } from 'pino';
import type { IncomingEvent } from '../services/matrix-store';
import type { Keystore } from '../services/keystore';
import { DeviceCrypto } from './crypto-device';
import { RoomStates, type CryptoSyncResponse } from './crypto-rooms';
import { cryptoStorePath } from './crypto-store';

export type { CryptoSyncResponse } from './crypto-rooms';

/** The keystore secret both crypto store keys derive from. */
const SECRET_CRYPTO_KEY = 'matrix.crypto_store_key';
/** Content key on an event the bridge could not decrypt. */
export const DECRYPTION_ERROR_KEY = 'org.armorclaw.decryption_error';

/** What `MatrixConnection.send` asks before it sends (see matrix/client.ts). */
export interface RoomEncryptionHook {
  /** The content encrypted for `roomId`, or undefined when the room is not encrypted. */
  encrypt(
    roomId: string,
    type: string,
    content: Record<string, unknown>,
  ): Promise<Record<string, unknown> | undefined>;
}

export interface E2eeStatus {
  enabled: boolean;
  ready: boolean;
  device_id?: string;
  /** The device's ed25519 fingerprint: what a person compares when verifying the bridge. */
  ed25519?: string;
  curve25519?: string;
  /** 'restored' (same identity as before), 'new' or 'replaced' (the file was another device's). */
  identity?: 'restored' | 'new' | 'replaced';
  last_error?: string;
}

/**
 * The bridge's E2EE: opens the device's crypto for the logged-in session on first use (and again
 * when a login changes the session), and offers the three hooks the sync loop and the sender
 * use. If the crypto cannot start, the bridge keeps working for plain rooms; encrypted events are
 * stored with an error note and sends into encrypted rooms fail rather than go out in the clear.
 */
export class MatrixE2ee implements RoomEncryptionHook {
  private device?: { key: string; crypto: Promise<DeviceCrypto> };
  private readonly rooms: RoomStates;
  readonly status: E2eeStatus = { enabled: true, ready: false };

  constructor(
    private readonly deps: {
      /** The logged-in client (throws when there is none). */
      client: () => MatrixHttp;
      keystore: Keystore;
      stateDir: string;
      log: Logger;
    },
  ) {
    this.rooms = new RoomStates(() => this.deps.client());
  }

  /** Before the batch is screened and committed: crypto state in, requests out, store saved. */
  async onSync(res: CryptoSyncResponse): Promise<void> {
    this.rooms.observe(res);
    let crypto: DeviceCrypto;
    try {
      crypto = await this.current();
    } catch {
      // Logged and reported in `status`; plain rooms keep working, the next sync tries again.
      return;
    }
    // Failing here fails the batch: it is fetched again, with its to-device events.
    await crypto.onSync(res);
  }

  /**
   * Replaces each `m.room.encrypted` event by its plaintext event (same id, sender, room, time).
   * Plaintext of types outside `deliveredTypes` is left out, as it would be in a plain room.
   * What cannot be decrypted stays, with the reason under `org.armorclaw.decryption_error`.
   */
  async decryptEvents(
    events: IncomingEvent[],
    deliveredTypes: readonly string[],
  ): Promise<IncomingEvent[]> {
    if (!events.some((e) => e.type === 'm.room.encrypted')) return events;
    let crypto: DeviceCrypto | undefined;
    let unavailable: string | undefined;
    try {
      crypto = await this.current();
    } catch (err) {
      unavailable = (err as Error).message;
    }
    const out: IncomingEvent[] = [];
    for (const e of events) {
      if (e.type !== 'm.room.encrypted') {
        out.push(e);
        continue;
      }
      const r = crypto
        ? await crypto.decrypt(e)
        : { ok: false as const, code: 'CryptoUnavailable', message: unavailable ?? 'no crypto' };
      if (r.ok) {
        if (!deliveredTypes.includes(r.type) || r.type === 'm.room.encrypted') {
          this.deps.log.debug(
            { eventId: e.event_id, type: r.type },
            'decrypted event not delivered',
          );
          continue;
        }
        out.push({ ...e, type: r.type, content: r.content });
      } else {
        this.deps.log.warn(
          { eventId: e.event_id, roomId: e.room_id, sender: e.sender, code: r.code },
          `could not decrypt a Matrix event: ${r.message}`,
        );
        const { ok: _, ...note } = r;
        out.push({ ...e, content: { ...e.content, [DECRYPTION_ERROR_KEY]: note } });
      }
    }
    return out;
  }

  async encrypt(
    roomId: string,
    type: string,
    content: Record<string, unknown>,
  ): Promise<Record<string, unknown> | undefined> {
    const room = await this.rooms.get(roomId);
    if (!room.encryption) return undefined;
    const crypto = await this.current();
    // Joined members, and invited ones unless history is visible to joined members only.
    const members = [...room.members]
      .filter(([, m]) => m === 'join' || (m === 'invite' && room.historyVisibility !== 'joined'))
      .map(([u]) => u);
    return crypto.encrypt(roomId, room.encryption, room.historyVisibility, members, type, content);
  }

  async close(): Promise<void> {
    const device = this.device;
    this.device = undefined;
    if (device) await (await device.crypto.catch(() => undefined))?.close();
  }

  /** The crypto of the current session, opened on first use. */
  private current(): Promise<DeviceCrypto> {
    const client = this.deps.client();
    const userId = client.getUserId();
    const deviceId = client.getDeviceId();
    if (!userId || !deviceId) throw new Error('no Matrix session');
    const key = `${userId}|${deviceId}`;
    if (this.device?.key !== key) {
      const previous = this.device;
      const crypto = (async () => {
        if (previous) await (await previous.crypto.catch(() => undefined))?.close();
        const { crypto, identity } = await DeviceCrypto.open({
          userId,
          deviceId,
          storeFile: cryptoStorePath(this.deps.stateDir),
          secret: this.storeSecret(),
          http: () => this.deps.client(),
          log: this.deps.log,
          report: (problem, detail) => {
            this.status.last_error = problem;
            this.deps.log.error({ detail }, `E2EE: ${problem}`);
          },
        });
        Object.assign(this.status, {
          ready: true,
          device_id: deviceId,
          ed25519: crypto.machine.identityKeys.ed25519.toBase64(),
          curve25519: crypto.machine.identityKeys.curve25519.toBase64(),
          identity,
          last_error: undefined,
        });
        this.deps.log.info(
          { deviceId, ed25519: this.status.ed25519, identity },
          identity === 'restored'
            ? 'E2EE ready: device identity restored'
            : 'E2EE ready: new device identity',
        );
        return crypto;
      })();
      this.device = { key, crypto };
      crypto.catch((err: Error) => {
        this.status.ready = false;
        this.status.last_error = err.message;
        this.deps.log.error({ err: err.message }, 'E2EE could not start');
        // The next call tries again.
        if (this.device?.crypto === crypto) this.device = undefined;
      });
    }
    return this.device!.crypto;
  }

  private storeSecret(): Buffer {
    let secret = this.deps.keystore.getSecret(SECRET_CRYPTO_KEY);
    if (!secret) {
      secret = randomBytes(32).toString('base64');
      this.deps.keystore.putSecret(SECRET_CRYPTO_KEY, secret);
    }
    return Buffer.from(secret, 'base64');
  }
}
