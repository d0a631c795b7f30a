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
 */
import { createHash, randomBytes } from 'node:crypto';
import * as Rust from '@matrix-org/matrix-sdk-crypto-wasm';
import {
  Method,
  type IHttpOpts,
  type IRequestOpts,
  type MatrixClient,
  type MatrixHttpApi,
} from 'matrix-js-sdk';
import type { Logger } from 'pino';
import type { IncomingEvent } from '../services/matrix-store';
import type { Keystore } from '../services/keystore';
import {
  CryptoStoreFile,
  cryptoStorePath,
  deriveStoreKeys,
  installIndexedDb,
} from './crypto-store';

/** The keystore secret both crypto store keys derive from. */
const SECRET_CRYPTO_KEY = 'matrix.crypto_store_key';
/** Content key on an event the bridge could not decrypt. */
export const DECRYPTION_ERROR_KEY = 'org.armorclaw.decryption_error';
const MEGOLM = 'm.megolm.v1.aes-sha2';

/** A /sync response, as far as crypto reads it. */
export interface CryptoSyncResponse {
  to_device?: { events?: unknown[] };
  device_lists?: { changed?: string[]; left?: string[] };
  device_one_time_keys_count?: Record<string, number>;
  device_unused_fallback_key_types?: string[];
  'org.matrix.msc2732.device_unused_fallback_key_types'?: string[];
  rooms?: {
    join?: Record<
      string,
      {
        state?: { events?: StateEvent[] };
        timeline?: { events?: StateEvent[]; limited?: boolean };
      }
    >;
    leave?: Record<string, unknown>;
  };
}

interface StateEvent {
  type: string;
  state_key?: string;
  content?: Record<string, unknown>;
  sender?: string;
}

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

type HttpApi = MatrixHttpApi<IHttpOpts & { onlyData: true }>;

/** Serialises async work: each call runs after the previous one settled. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/**
 * The state the bridge needs to encrypt for a room: its encryption settings, history visibility
 * and who is in it. Filled from `/rooms/{id}/state` on the first send and kept current from the
 * state events of each sync; a gappy (limited) timeline drops the entry, since lazy-loaded
 * members may hide changes in the gap.
 */
class RoomStates {
  private readonly rooms = new Map<
    string,
    {
      encryption: Record<string, unknown> | null;
      historyVisibility: string;
      members: Map<string, string>;
    }
  >();
  /** Rooms whose m.room.encryption was seen in a sync before their state was loaded. */
  private readonly seenEncrypted = new Map<string, Record<string, unknown>>();
  /** Counts state changes seen per room: a state read that raced with one is not kept. */
  private readonly changes = new Map<string, number>();

  constructor(private readonly http: () => HttpApi) {}

  observe(res: CryptoSyncResponse): void {
    for (const roomId of Object.keys(res.rooms?.leave ?? {})) this.rooms.delete(roomId);
    for (const [roomId, room] of Object.entries(res.rooms?.join ?? {})) {
      const known = this.rooms.get(roomId);
      if (room.timeline?.limited) this.rooms.delete(roomId);
      for (const e of [...(room.state?.events ?? []), ...(room.timeline?.events ?? [])]) {
        if (e.state_key === undefined) continue;
        this.changes.set(roomId, (this.changes.get(roomId) ?? 0) + 1);
        if (e.type === 'm.room.encryption' && e.state_key === '' && e.content) {
          this.seenEncrypted.set(roomId, e.content);
          if (known) known.encryption = e.content;
        }
        if (!known || room.timeline?.limited) continue;
        if (e.type === 'm.room.history_visibility' && e.state_key === '')
          known.historyVisibility = String(e.content?.history_visibility ?? 'shared');
        if (e.type === 'm.room.member')
          known.members.set(e.state_key, String(e.content?.membership ?? 'leave'));
      }
    }
  }

  async get(roomId: string) {
    let room = this.rooms.get(roomId);
    if (!room) {
      const generation = this.changes.get(roomId) ?? 0;
      const state = await this.http().authedRequest<StateEvent[]>(
        Method.Get,
        `/rooms/${encodeURIComponent(roomId)}/state`,
      );
      room = { encryption: null, historyVisibility: 'shared', members: new Map() };
      for (const e of state) {
        if (e.type === 'm.room.encryption' && e.state_key === '') room.encryption = e.content ?? {};
        if (e.type === 'm.room.history_visibility' && e.state_key === '')
          room.historyVisibility = String(e.content?.history_visibility ?? 'shared');
        if (e.type === 'm.room.member' && e.state_key)
          room.members.set(e.state_key, String(e.content?.membership ?? 'leave'));
      }
      // Encryption can only be switched on: a sync that saw it wins over an older state read.
      room.encryption ??= this.seenEncrypted.get(roomId) ?? null;
      if ((this.changes.get(roomId) ?? 0) === generation) this.rooms.set(roomId, room);
    }
    return room;
  }
}

/** One device's OlmMachine, its persisted store and the plumbing between it and the homeserver. */
class DeviceCrypto {
  private readonly outgoing = new Serial();
  private readonly encrypting = new Serial();
  private readonly saving = new Serial();
  private dirty = false;
  private closed = false;
  private conflictReported = false;

  private constructor(
    readonly machine: Rust.OlmMachine,
    private readonly store: CryptoStoreFile,
    private readonly http: () => HttpApi,
    private readonly log: Logger,
    /** A lasting problem, for the log (error) and `status.last_error`. */
    private readonly report: (problem: string, detail: string) => void,
  ) {}

  static async open(opts: {
    userId: string;
    deviceId: string;
    storeFile: string;
    secret: Buffer;
    http: () => HttpApi;
    log: Logger;
    report: (problem: string, detail: string) => void;
  }): Promise<{ crypto: DeviceCrypto; identity: 'restored' | 'new' | 'replaced' }> {
    installIndexedDb();
    await Rust.initAsync();
    const { storeKey, fileKey } = deriveStoreKeys(opts.secret);
    const prefix = `armorclaw-${createHash('sha256')
      .update(`${opts.userId}|${opts.deviceId}`)
      .digest('hex')
      .slice(0, 16)}`;
    const store = new CryptoStoreFile(opts.storeFile, fileKey, prefix, {
      userId: opts.userId,
      deviceId: opts.deviceId,
    });
    const loaded = await store.load();
    const handle = await Rust.StoreHandle.openWithKey(prefix, storeKey);
    const machine = (await Rust.OlmMachine.initFromStore(
      new Rust.UserId(opts.userId),
      new Rust.DeviceId(opts.deviceId),
      handle,
    )) as Rust.OlmMachine;
    handle.free();
    const crypto = new DeviceCrypto(machine, store, opts.http, opts.log, opts.report);
    // A new identity is written at once: keys uploaded below must be the ones kept.
    crypto.dirty = loaded !== 'restored';
    await crypto.save();
    const identity =
      loaded === 'restored' ? 'restored' : loaded === 'other-device' ? 'replaced' : 'new';
    return { crypto, identity };
  }

  /** Feeds one sync response to the machine and sends what it asks for. */
  async onSync(res: CryptoSyncResponse): Promise<void> {
    const toDevice = res.to_device?.events ?? [];
    const changed = res.device_lists?.changed ?? [];
    const left = res.device_lists?.left ?? [];
    const counts = new Map(Object.entries(res.device_one_time_keys_count ?? {}));
    const fallback =
      res.device_unused_fallback_key_types ??
      res['org.matrix.msc2732.device_unused_fallback_key_types'];
    await this.machine.receiveSyncChanges(
      JSON.stringify(toDevice),
      new Rust.DeviceLists(
        changed.map((u) => new Rust.UserId(u)),
        left.map((u) => new Rust.UserId(u)),
      ),
      counts,
      fallback ? new Set(fallback) : undefined,
    );
    if (toDevice.length > 0 || changed.length > 0 || left.length > 0) this.dirty = true;
    for (const f of await this.processOutgoing()) {
      if (f.conflict) this.onIdentityConflict(f.message);
      else this.log.warn({ err: f.message, request: f.request }, 'E2EE request failed; will retry');
    }
    await this.save();
  }

  /**
   * Sends every request the machine has queued, one batch at a time; returns the errors (the
   * machine hands a request out again until it is marked as sent).
   */
  processOutgoing(): Promise<RequestFailure[]> {
    return this.outgoing.run(async () => {
      const failures: RequestFailure[] = [];
      for (const req of await this.machine.outgoingRequests()) {
        try {
          await this.send(req);
        } catch (err) {
          const message = (err as Error).message;
          failures.push({
            request: requestName(req),
            message,
            // The homeserver holds one-time keys of an earlier identity of this device.
            conflict: req instanceof Rust.KeysUploadRequest && /already exists/i.test(message),
          });
        }
      }
      return failures;
    });
  }

  /** Once per process: the device id carries another identity's keys on the homeserver. */
  private onIdentityConflict(detail: string): void {
    if (this.conflictReported) return;
    this.conflictReported = true;
    this.report(
      'the homeserver still holds one-time keys of an earlier identity of this device (the crypto ' +
        'store was lost or replaced): others cannot start new encrypted sessions with the bridge. ' +
        'Set a new matrix.device_id and log in again (docs/matrix.md, "E2EE").',
      detail,
    );
  }

  async decrypt(
    event: IncomingEvent,
  ): Promise<
    | { ok: true; type: string; content: Record<string, unknown> }
    | { ok: false; code: string; message: string; withheld?: string }
  > {
    try {
      const res = await this.machine.decryptRoomEvent(
        JSON.stringify({
          event_id: event.event_id,
          type: event.type,
          room_id: event.room_id,
          sender: event.sender,
          origin_server_ts: event.origin_server_ts,
          content: event.content,
        }),
        new Rust.RoomId(event.room_id),
        new Rust.DecryptionSettings(Rust.TrustRequirement.Untrusted),
      );
      const clear = JSON.parse(res.event) as { type?: string; content?: Record<string, unknown> };
      // The room key's owner must be the event's sender: nobody speaks for a trusted user.
      const owner = res.sender?.toString();
      if (owner !== undefined && owner !== event.sender) {
        return {
          ok: false,
          code: 'MismatchedSender',
          message: `the room key belongs to ${owner}, not to the sender`,
        };
      }
      if (typeof clear.type !== 'string' || typeof clear.content !== 'object' || !clear.content)
        return {
          ok: false,
          code: 'MalformedPlaintext',
          message: 'decrypted event has no type or content',
        };
      return { ok: true, type: clear.type, content: clear.content };
    } catch (err) {
      if (err instanceof Rust.MegolmDecryptionError) {
        return {
          ok: false,
          code: Rust.DecryptionErrorCode[err.code] ?? String(err.code),
          message: err.description,
          ...(err.maybe_withheld ? { withheld: err.maybe_withheld } : {}),
        };
      }
      return { ok: false, code: 'UnableToDecrypt', message: (err as Error).message };
    }
  }

  /** Shares the room key with the members' devices as needed, then encrypts one event. */
  encrypt(
    roomId: string,
    settings: Record<string, unknown>,
    historyVisibility: string,
    members: string[],
    type: string,
    content: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    return this.encrypting.run(async () => {
      if (settings.algorithm !== MEGOLM)
        throw new Error(`cannot encrypt for algorithm ${String(settings.algorithm)}`);
      const users = () => members.map((u) => new Rust.UserId(u));
      await this.machine.updateTrackedUsers(users());
      // Key queries for newly tracked members must be answered before keys are shared.
      // Our own keys upload is not needed to encrypt; the others' key queries are.
      const failures = (await this.processOutgoing()).filter(
        (f) => f.request !== 'KeysUploadRequest',
      );
      if (failures.length > 0)
        throw new Error(
          `E2EE key requests failed: ${failures.map((f) => `${f.request}: ${f.message}`).join('; ')}`,
        );
      const claim = await this.machine.getMissingSessions(users());
      if (claim) await this.send(claim);
      const es = new Rust.EncryptionSettings();
      es.algorithm = Rust.EncryptionAlgorithm.MegolmV1AesSha2;
      es.historyVisibility = rustHistoryVisibility(historyVisibility);
      if (typeof settings.rotation_period_ms === 'number')
        es.rotationPeriod = BigInt(Math.round(settings.rotation_period_ms * 1000));
      if (typeof settings.rotation_period_msgs === 'number')
        es.rotationPeriodMessages = BigInt(settings.rotation_period_msgs);
      const shares = (await this.machine.shareRoomKey(
        new Rust.RoomId(roomId),
        users(),
        es,
      )) as Rust.ToDeviceRequest[];
      for (const r of shares) await this.send(r);
      const encrypted = await this.machine.encryptRoomEvent(
        new Rust.RoomId(roomId),
        type,
        JSON.stringify(content),
      );
      // Saved before the event leaves: a restart never reuses this Megolm message index.
      this.dirty = true;
      await this.save();
      return JSON.parse(encrypted) as Record<string, unknown>;
    });
  }

  save(): Promise<void> {
    return this.saving.run(async () => {
      if (!this.dirty || this.closed) return;
      this.dirty = false;
      try {
        await this.store.save();
      } catch (err) {
        this.dirty = true;
        throw err;
      }
    });
  }

  /** Lets encryptions and requests in flight finish, saves, then frees the machine. */
  async close(): Promise<void> {
    await this.encrypting.run(async () => undefined);
    await this.outgoing.run(async () => undefined);
    await this.save().catch((err) =>
      this.log.error({ err: (err as Error).message }, 'could not save the crypto store'),
    );
    this.closed = true;
    this.machine.close();
  }

  /** One outgoing request over the logged-in client, then its acknowledgement to the machine. */
  private async send(
    req: Rust.OutgoingRequest | Rust.ToDeviceRequest | Rust.KeysClaimRequest,
  ): Promise<void> {
    let method = Method.Post;
    let path: string;
    let query: Record<string, string> = {};
    if (req instanceof Rust.KeysUploadRequest) path = '/_matrix/client/v3/keys/upload';
    else if (req instanceof Rust.KeysQueryRequest) path = '/_matrix/client/v3/keys/query';
    else if (req instanceof Rust.KeysClaimRequest) path = '/_matrix/client/v3/keys/claim';
    else if (req instanceof Rust.SignatureUploadRequest)
      path = '/_matrix/client/v3/keys/signatures/upload';
    else if (req instanceof Rust.ToDeviceRequest) {
      method = Method.Put;
      path = `/_matrix/client/v3/sendToDevice/${encodeURIComponent(req.event_type)}/${encodeURIComponent(req.txn_id)}`;
    } else if (req instanceof Rust.RoomMessageRequest) {
      method = Method.Put;
      path = `/_matrix/client/v3/rooms/${encodeURIComponent(req.room_id)}/send/${encodeURIComponent(req.event_type)}/${encodeURIComponent(req.txn_id)}`;
    } else if (req instanceof Rust.KeysBackupRequest) {
      method = Method.Put;
      path = '/_matrix/client/v3/room_keys/keys';
      query = { version: req.version };
    } else {
      this.log.warn({ request: requestName(req) }, 'unsupported E2EE request; ignored');
      return;
    }
    // The body is JSON already and the path carries its prefix (as the SDK's own processor does).
    const opts: Omit<IRequestOpts, 'priority'> = {
      json: false,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      prefix: '',
      localTimeoutMs: 60_000,
    };
    const response = await this.http().authedRequest<string>(
      method,
      path,
      query,
      req.body,
      opts as IRequestOpts,
    );
    if (req.id) {
      await this.machine.markRequestAsSent(req.id, req.type, response);
      this.dirty = true;
    }
  }
}

const requestName = (req: object): string => req.constructor?.name ?? 'request';

interface RequestFailure {
  request: string;
  message: string;
  conflict: boolean;
}

function rustHistoryVisibility(v: string): Rust.HistoryVisibility {
  switch (v) {
    case 'invited':
      return Rust.HistoryVisibility.Invited;
    case 'joined':
      return Rust.HistoryVisibility.Joined;
    case 'world_readable':
      return Rust.HistoryVisibility.WorldReadable;
    default:
      return Rust.HistoryVisibility.Shared;
  }
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
      client: () => MatrixClient;
      keystore: Keystore;
      stateDir: string;
      log: Logger;
    },
  ) {
    this.rooms = new RoomStates(() => this.deps.client().http as HttpApi);
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
          http: () => this.deps.client().http as HttpApi,
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
