/**
 * One device's end-to-end encryption: its OlmMachine (`@matrix-org/matrix-sdk-crypto-wasm`), the
 * persisted crypto store it lives in, and the requests between the machine and the homeserver.
 * The store is saved before a sync batch is committed and before an encrypted event leaves
 * (matrix/crypto.ts says why).
 */
import { createHash } from 'node:crypto';
import * as Rust from '@matrix-org/matrix-sdk-crypto-wasm';
import type { Logger } from 'pino';
import type { IncomingEvent } from '../services/matrix-store';
import type { CryptoSyncResponse, HttpApi } from './crypto-rooms';
import type { HttpMethod, RequestOpts } from './http';
import { CryptoStoreFile, deriveStoreKeys, installIndexedDb } from './crypto-store';
import { initCryptoWasm } from './crypto-wasm';

const MEGOLM = 'm.megolm.v1.aes-sha2';

/** Serialises async work: each call runs after the previous one settled. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/** One device's OlmMachine, its persisted store and the plumbing between it and the homeserver. */
export class DeviceCrypto {
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
    await initCryptoWasm();
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
    let method: HttpMethod = 'POST';
    let path: string;
    let query: Record<string, string> = {};
    if (req instanceof Rust.KeysUploadRequest) path = '/_matrix/client/v3/keys/upload';
    else if (req instanceof Rust.KeysQueryRequest) path = '/_matrix/client/v3/keys/query';
    else if (req instanceof Rust.KeysClaimRequest) path = '/_matrix/client/v3/keys/claim';
    else if (req instanceof Rust.SignatureUploadRequest)
      path = '/_matrix/client/v3/keys/signatures/upload';
    else if (req instanceof Rust.ToDeviceRequest) {
      method = 'PUT';
      path = `/_matrix/client/v3/sendToDevice/${encodeURIComponent(req.event_type)}/${encodeURIComponent(req.txn_id)}`;
    } else if (req instanceof Rust.RoomMessageRequest) {
      method = 'PUT';
      path = `/_matrix/client/v3/rooms/${encodeURIComponent(req.room_id)}/send/${encodeURIComponent(req.event_type)}/${encodeURIComponent(req.txn_id)}`;
    } else if (req instanceof Rust.KeysBackupRequest) {
      method = 'PUT';
      path = '/_matrix/client/v3/room_keys/keys';
      query = { version: req.version };
    } else {
      this.log.warn({ request: requestName(req) }, 'unsupported E2EE request; ignored');
      return;
    }
    // The body is JSON already and the path carries its prefix (as the SDK's own processor does).
    const opts: RequestOpts = {
      json: false,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      prefix: '',
      localTimeoutMs: 60_000,
    };
    const response = await this.http().authedRequest<string>(method, path, query, req.body, opts);
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
