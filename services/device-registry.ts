/**
 * Paired devices (VoiceClaw bridge spec, "Pairing Flow" and "Security Model"): pairing codes, the
 * devices they admitted, each device's token and scope, revocation and rotation.
 *
 * What is kept, and what protects it. `<state_dir>/devices.json` (0600, rewritten atomically:
 * temporary file, fsync, rename, directory fsync) holds no code and no token:
 *  - a device token is `acdv_` + 32 random bytes (base64url), shown once; the file keeps its
 *    SHA-256. 256 random bits cannot be guessed from their hash, so a copy of the file lets
 *    nobody connect as a device (as for the gateway's tokens, services/gateway-tokens.ts).
 *  - a pairing code has only 40 bits, so a plain hash would give it up to anyone who reads the
 *    file in seconds. The file keeps scrypt(code, salt) instead, the salt random per registry and
 *    kept beside it. The salt only stops precomputed tables; the work factor (~50 ms a guess) is
 *    what keeps a reader of the file from recovering a live code within its 10 minutes (2^39
 *    guesses on average). Online guessing is bounded by the lockout (services/pairing-lockout.ts).
 *
 * One live code at a time: starting a pairing supersedes any pending code (refused afterwards as
 * `expired`). A guess then hits with probability 2^-40 whatever an admin did before, and a code
 * someone forgot about cannot be used later. The last `CODE_HISTORY` codes are remembered (by
 * hash) so a used or stale code is refused with a reason instead of `invalid_code`.
 *
 * The bridge process owns the file, and every method is synchronous, so a code is marked used and
 * its device written in one atomic write before anyone else is served: a code pairs once, even
 * across a crash, and a revocation or rotation is on disk before it is acknowledged.
 */
import { createHash, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import { DEFAULT_DEVICE_SCOPE, isDeviceScope, type DeviceScope } from '../formats/device-scopes';
import { generatePairCode, normalizePairCode } from '../formats/pair-code';
import {
  BRIDGE_ID_PATTERN,
  readRegistryFile,
  writeRegistryFile,
  type CodeRow,
  type DeviceRow,
  type RegistryFile,
} from './device-registry-file';
import { PairingLockout, type PairingLockoutOptions } from './pairing-lockout';

export const DEVICE_TOKEN_PREFIX = 'acdv_';
const TOKEN_BYTES = 32;
/** Longest presented token hashed at all (a real one is 48 characters). */
const MAX_TOKEN_LENGTH = 128;
export const PAIR_CODE_TTL_MS = 10 * 60_000;
const CODE_HISTORY = 20;
// scrypt's default cost: ~50 ms and 16 MiB per hash. Paid once per start and once per checked
// attempt, and the lockout bounds checked attempts to a few dozen per window.
const SCRYPT = { N: 1 << 14, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
// Device metadata is the device's own word: bounded, and no control characters (it ends up in
// logs, audit entries and a dashboard).
const NAME_PATTERN = /^[^\p{C}]{1,64}$/u;
const OS_PATTERN = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,31}$/;
const VERSION_PATTERN = /^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$/;
const PUBKEY_PATTERN = /^[A-Za-z0-9+/_-]{16,1024}={0,2}$/;
const MAX_ADDRESS_LENGTH = 64;

export type DeviceRegistryErrorCode =
  'invalid_code' | 'expired' | 'used' | 'locked_out' | 'invalid_request' | 'not_found' | 'revoked';

export class DeviceRegistryError extends Error {
  constructor(
    readonly code: DeviceRegistryErrorCode,
    message: string,
    /** For `locked_out`: when an attempt will be checked again. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'DeviceRegistryError';
  }
}

/** A device as listed and returned: never its token or token hash. */
export interface DeviceRecord {
  bridgeId: string;
  name: string;
  os: string;
  bridgeVersion: string;
  pubKey: string;
  scope: DeviceScope;
  pairedAt: string;
  rotatedAt: string | null;
  revokedAt: string | null;
}

/** What the registry tells its auditor; never a code, a token or a hash of either. */
export type DeviceRegistryEvent =
  | { type: 'pair_started'; codeId: string; scope: DeviceScope; expiresAt: string }
  | {
      type: 'pair_completed';
      codeId: string;
      bridgeId: string;
      name: string;
      os: string;
      bridgeVersion: string;
      scope: DeviceScope;
      address: string;
    }
  | {
      type: 'pair_failed';
      reason: 'invalid_code' | 'expired' | 'used' | 'locked_out' | 'invalid_request';
      address: string;
      /** The code the attempt named, when it named a known (used or stale) one. */
      codeId?: string;
      lockout?: 'address' | 'global';
    }
  | { type: 'device_revoked'; bridgeId: string }
  | { type: 'device_rotated'; bridgeId: string }
  | { type: 'device_scope_changed'; bridgeId: string; from: DeviceScope; to: DeviceScope };

export interface DeviceRegistryOptions extends PairingLockoutOptions {
  /** Called after each change is on disk. Errors it throws are swallowed (see `emit`). */
  onEvent?: (event: DeviceRegistryEvent) => void;
  /** The clock for calls that are not given `now`. */
  now?: () => Date;
  codeTtlMs?: number;
}

export interface PairingDevice {
  name: string;
  os: string;
  bridgeVersion: string;
}

/** The registry file inside the state directory. */
export function deviceRegistryPath(stateDir: string): string {
  return path.join(stateDir, 'devices.json');
}

/** SHA-256 of a presented device token, hex: what the file holds. */
export function hashDeviceToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The device registry, persisted without secrets. */
export class DeviceRegistry {
  private state: RegistryFile;
  /** token sha256 → device row, live and revoked (a revoked token is recognised as such). */
  private readonly byTokenHash = new Map<string, DeviceRow>();
  private readonly lockout: PairingLockout;
  private readonly clock: () => Date;
  private readonly codeTtlMs: number;

  private constructor(
    private readonly file: string,
    state: RegistryFile,
    private readonly options: DeviceRegistryOptions,
  ) {
    this.state = state;
    for (const d of state.devices) this.byTokenHash.set(d.token_sha256, d);
    this.lockout = new PairingLockout(options);
    this.clock = options.now ?? (() => new Date());
    this.codeTtlMs = options.codeTtlMs ?? PAIR_CODE_TTL_MS;
  }

  /** Opens the registry at `file` (absent: empty; created on the first change). */
  static open(file: string, options: DeviceRegistryOptions = {}): DeviceRegistry {
    const state = readRegistryFile(file);
    return new DeviceRegistry(file, state, options);
  }

  /** Issues a pairing code (admin only, by the caller's check); the only time its text exists. */
  startPairing(params: { now?: Date; scope?: DeviceScope } = {}): {
    pairCode: string;
    expiresAt: string;
  } {
    const scope = params.scope ?? DEFAULT_DEVICE_SCOPE;
    if (!isDeviceScope(scope)) throw invalid('scope: chat_only, tools_safe or full');
    const now = params.now ?? this.clock();
    const pairCode = generatePairCode(randomBytes);
    const row: CodeRow = {
      id: `pc_${randomBytes(8).toString('hex')}`,
      scrypt: this.hashCode(pairCode),
      scope,
      created_at: now.toISOString(),
      expires_at: new Date(now.getTime() + this.codeTtlMs).toISOString(),
      state: 'pending',
      bridge_id: null,
    };
    const codes = [
      ...this.state.codes.map((c) =>
        c.state === 'pending' ? { ...c, state: 'superseded' as const } : c,
      ),
      row,
    ].slice(-CODE_HISTORY);
    this.commit({ ...this.state, codes });
    this.emit({ type: 'pair_started', codeId: row.id, scope, expiresAt: row.expires_at });
    return { pairCode, expiresAt: row.expires_at };
  }

  /**
   * Redeems a pairing code for a device and its token, shown once. Refused, with a typed error:
   * `locked_out` (too many failures; the code is not even looked at), `invalid_request` (bad
   * metadata; not counted, the code is not looked at), `invalid_code`, `expired`, `used`.
   */
  completePairing(params: {
    pairCode: unknown;
    device: unknown;
    pubKey: unknown;
    address: string;
    now?: Date;
  }): { bridgeId: string; wsToken: string; scope: DeviceScope } {
    const now = params.now ?? this.clock();
    const nowMs = now.getTime();
    const address = String(params.address).slice(0, MAX_ADDRESS_LENGTH);

    const lock = this.lockout.check(address, nowMs);
    if (lock.locked) {
      this.emit({ type: 'pair_failed', reason: 'locked_out', address, lockout: lock.scope });
      throw new DeviceRegistryError(
        'locked_out',
        `too many failed pairing attempts: try again in ${Math.ceil(lock.retryAfterMs / 1000)} s`,
        lock.retryAfterMs,
      );
    }

    let device: PairingDevice;
    let pubKey: string;
    try {
      device = checkDevice(params.device);
      pubKey = checkPubKey(params.pubKey);
    } catch (err) {
      this.emit({ type: 'pair_failed', reason: 'invalid_request', address });
      throw err;
    }

    const fail = (code: 'invalid_code' | 'expired' | 'used', message: string, codeId?: string) => {
      this.lockout.recordFailure(address, nowMs);
      this.emit({ type: 'pair_failed', reason: code, address, ...(codeId ? { codeId } : {}) });
      return new DeviceRegistryError(code, message);
    };

    const normalized = normalizePairCode(params.pairCode);
    if (normalized === null) {
      throw fail('invalid_code', 'not a pairing code: expected VC-XXXX-XXXX');
    }
    const presented = Buffer.from(this.hashCode(normalized), 'hex');
    // Every remembered code is compared, in constant time, whichever matches.
    let match: CodeRow | undefined;
    for (const c of this.state.codes) {
      const equal = timingSafeEqual(Buffer.from(c.scrypt, 'hex'), presented);
      if (equal) match = c;
    }
    if (!match) throw fail('invalid_code', 'no such pairing code: check it or start pairing again');
    if (match.state === 'used') {
      throw fail('used', 'this pairing code has already been used: start pairing again', match.id);
    }
    if (match.state === 'superseded' || nowMs >= Date.parse(match.expires_at)) {
      throw fail(
        'expired',
        'this pairing code has expired or was replaced by a newer one: start pairing again',
        match.id,
      );
    }

    const wsToken = newToken();
    const row: DeviceRow = {
      bridge_id: `br_${randomBytes(8).toString('hex')}`,
      name: device.name,
      os: device.os,
      bridge_version: device.bridgeVersion,
      pub_key: pubKey,
      scope: match.scope,
      token_sha256: hashDeviceToken(wsToken),
      paired_at: now.toISOString(),
      rotated_at: null,
      revoked_at: null,
    };
    const used = match;
    // The code is spent and the device admitted in one write.
    this.commit({
      ...this.state,
      codes: this.state.codes.map((c) =>
        c === used ? { ...c, state: 'used' as const, bridge_id: row.bridge_id } : c,
      ),
      devices: [...this.state.devices, row],
    });
    this.emit({
      type: 'pair_completed',
      codeId: used.id,
      bridgeId: row.bridge_id,
      name: row.name,
      os: row.os,
      bridgeVersion: row.bridge_version,
      scope: row.scope,
      address,
    });
    return { bridgeId: row.bridge_id, wsToken, scope: row.scope };
  }

  /**
   * The device `token` belongs to, or why not: `unknown` (never issued, or replaced by a rotation)
   * or `revoked`. The lookup is by the token's digest (which digests exist reveals nothing about
   * a token); the final compare is constant-time.
   */
  verifyDeviceToken(
    token: unknown,
  ):
    | { ok: true; device: DeviceRecord }
    | { ok: false; reason: 'unknown' }
    | { ok: false; reason: 'revoked'; bridgeId: string } {
    if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) {
      return { ok: false, reason: 'unknown' };
    }
    const digest = hashDeviceToken(token);
    const row = this.byTokenHash.get(digest);
    if (
      !row ||
      !timingSafeEqual(Buffer.from(row.token_sha256, 'hex'), Buffer.from(digest, 'hex'))
    ) {
      return { ok: false, reason: 'unknown' };
    }
    if (row.revoked_at !== null) return { ok: false, reason: 'revoked', bridgeId: row.bridge_id };
    return { ok: true, device: toRecord(row) };
  }

  /** Every device, oldest first, revoked ones included. */
  list(): DeviceRecord[] {
    return this.state.devices.map(toRecord);
  }

  /** The device `bridgeId`, or undefined. */
  get(bridgeId: string): DeviceRecord | undefined {
    const row = this.state.devices.find((d) => d.bridge_id === bridgeId);
    return row ? toRecord(row) : undefined;
  }

  /** Revokes a device for good (its token is refused from now on); revoking again is a no-op. */
  revoke(bridgeId: string, params: { now?: Date } = {}): DeviceRecord {
    const row = this.find(bridgeId);
    if (row.revoked_at !== null) return toRecord(row);
    const at = (params.now ?? this.clock()).toISOString();
    this.replaceDevice(row, { ...row, revoked_at: at });
    this.emit({ type: 'device_revoked', bridgeId });
    return this.get(bridgeId)!;
  }

  /** A new token for a live device, shown once; the old one is refused from now on. */
  rotate(bridgeId: string, params: { now?: Date } = {}): { bridgeId: string; wsToken: string } {
    const row = this.liveDevice(bridgeId);
    const wsToken = newToken();
    const at = (params.now ?? this.clock()).toISOString();
    this.replaceDevice(row, { ...row, token_sha256: hashDeviceToken(wsToken), rotated_at: at });
    this.emit({ type: 'device_rotated', bridgeId });
    return { bridgeId, wsToken };
  }

  /** Changes a live device's scope; setting the scope it has is a no-op. */
  setScope(bridgeId: string, scope: DeviceScope): DeviceRecord {
    if (!isDeviceScope(scope)) throw invalid('scope: chat_only, tools_safe or full');
    const row = this.liveDevice(bridgeId);
    if (row.scope === scope) return toRecord(row);
    this.replaceDevice(row, { ...row, scope });
    this.emit({ type: 'device_scope_changed', bridgeId, from: row.scope, to: scope });
    return this.get(bridgeId)!;
  }

  private find(bridgeId: string): DeviceRow {
    if (typeof bridgeId !== 'string' || !BRIDGE_ID_PATTERN.test(bridgeId)) {
      throw invalid('bridgeId: expected a device id like br_0123456789abcdef');
    }
    const row = this.state.devices.find((d) => d.bridge_id === bridgeId);
    if (!row) throw new DeviceRegistryError('not_found', `no device with id ${bridgeId}`);
    return row;
  }

  private liveDevice(bridgeId: string): DeviceRow {
    const row = this.find(bridgeId);
    if (row.revoked_at !== null) {
      throw new DeviceRegistryError('revoked', `device ${bridgeId} is revoked: pair it again`);
    }
    return row;
  }

  private replaceDevice(old: DeviceRow, next: DeviceRow): void {
    this.commit({
      ...this.state,
      devices: this.state.devices.map((d) => (d === old ? next : d)),
    });
  }

  /** On disk first, then in memory: nothing is acknowledged that a crash could undo. */
  private commit(next: RegistryFile): void {
    writeRegistryFile(this.file, next);
    this.state = next;
    this.byTokenHash.clear();
    for (const d of next.devices) this.byTokenHash.set(d.token_sha256, d);
  }

  private hashCode(normalizedCode: string): string {
    return scryptSync(
      normalizedCode,
      Buffer.from(this.state.code_salt, 'hex'),
      32,
      SCRYPT,
    ).toString('hex');
  }

  /**
   * Events follow a change already made: an auditor that throws must not turn an issued token
   * into an error the device never sees (it would be paired with no way to connect), so its
   * errors are dropped here and the auditor reports its own failures.
   */
  private emit(event: DeviceRegistryEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // See above.
    }
  }
}

function newToken(): string {
  return DEVICE_TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString('base64url');
}

function invalid(message: string): DeviceRegistryError {
  return new DeviceRegistryError('invalid_request', message);
}

function checkDevice(value: unknown): PairingDevice {
  const d = value as Partial<Record<keyof PairingDevice, unknown>> | null;
  if (typeof d !== 'object' || d === null)
    throw invalid('device: expected {name, os, bridgeVersion}');
  const { name, os, bridgeVersion } = d;
  if (typeof name !== 'string' || !NAME_PATTERN.test(name) || name.trim() === '') {
    throw invalid('device.name: 1-64 characters, no control characters');
  }
  if (typeof os !== 'string' || !OS_PATTERN.test(os)) {
    throw invalid('device.os: 1-32 letters, digits, space, ".", "_" or "-"');
  }
  if (typeof bridgeVersion !== 'string' || !VERSION_PATTERN.test(bridgeVersion)) {
    throw invalid('device.bridgeVersion: 1-32 letters, digits, ".", "+" or "-"');
  }
  return { name, os, bridgeVersion };
}

function checkPubKey(value: unknown): string {
  if (typeof value !== 'string' || !PUBKEY_PATTERN.test(value)) {
    throw invalid('pubKey: base64, 16-1024 characters');
  }
  return value;
}

function toRecord(d: DeviceRow): DeviceRecord {
  return {
    bridgeId: d.bridge_id,
    name: d.name,
    os: d.os,
    bridgeVersion: d.bridge_version,
    pubKey: d.pub_key,
    scope: d.scope,
    pairedAt: d.paired_at,
    rotatedAt: d.rotated_at,
    revokedAt: d.revoked_at,
  };
}
