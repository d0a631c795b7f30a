/**
 * The gateway's bearer tokens (docs/gateway.md, "Tokens"). A token is `acgw_` + 32 random bytes
 * (base64url), shown once when created; the store keeps only its SHA-256, so a copy of the state
 * directory lets nobody call the gateway. `<state_dir>/gateway-tokens.json` (0600) is rewritten
 * atomically (temporary file, fsync, rename) on every change, so a revocation is on disk before
 * it is acknowledged and holds across restarts.
 *
 * The bridge process owns the file: the CLI creates and revokes tokens through the socket
 * (`gateway.token_*`), so the in-memory table is always the file's content.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { writePrivateFileAtomic } from './private-file';

export const GATEWAY_TOKEN_PREFIX = 'acgw_';
const TOKEN_BYTES = 32;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9 _.:@-]{0,63}$/;
const ID_PATTERN = /^gwt_[0-9a-f]{16}$/;

/** A token as stored and listed: never the token itself. */
export interface GatewayTokenRecord {
  id: string;
  name: string;
  /** SHA-256 of the token text, hex. */
  sha256: string;
  created_at: string;
  revoked_at: string | null;
}

export class GatewayTokenError extends Error {
  constructor(
    readonly code: 'invalid' | 'not_found',
    message: string,
  ) {
    super(message);
    this.name = 'GatewayTokenError';
  }
}

/** The token file inside the state directory. */
export function gatewayTokensPath(stateDir: string): string {
  return path.join(stateDir, 'gateway-tokens.json');
}

/** SHA-256 of a presented token, hex: what the store and incident bundles hold. */
export function hashGatewayToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The gateway token table, persisted as hashes. */
export class GatewayTokenStore {
  private readonly records: GatewayTokenRecord[];
  /** sha256 hex → record, live and revoked alike (a revoked token is recognised as such). */
  private readonly byHash = new Map<string, GatewayTokenRecord>();

  private constructor(
    private readonly file: string,
    records: GatewayTokenRecord[],
    private readonly now: () => Date,
  ) {
    this.records = records;
    for (const r of records) this.byHash.set(r.sha256, r);
  }

  /** Opens the store at `file` (absent: empty; created on the first change). */
  static open(file: string, now: () => Date = () => new Date()): GatewayTokenStore {
    let records: GatewayTokenRecord[] = [];
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== undefined) {
      const parsed = JSON.parse(text) as { tokens?: unknown };
      if (!Array.isArray(parsed.tokens)) throw new Error(`${file}: expected { "tokens": [...] }`);
      records = parsed.tokens.map((t, i) => checkRecord(t, `${file}: tokens[${i}]`));
    }
    return new GatewayTokenStore(file, records, now);
  }

  /** Creates a token named `name`; the returned `token` is the only time its text exists. */
  create(name: string): { id: string; token: string; record: GatewayTokenRecord } {
    if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
      throw new GatewayTokenError(
        'invalid',
        'name: 1-64 characters of letters, digits, space, "_", ".", ":", "@" or "-", starting with a letter or digit',
      );
    }
    const token = GATEWAY_TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString('base64url');
    const record: GatewayTokenRecord = {
      id: `gwt_${randomBytes(8).toString('hex')}`,
      name,
      sha256: hashGatewayToken(token),
      created_at: this.now().toISOString(),
      revoked_at: null,
    };
    this.persist([...this.records, record]);
    this.records.push(record);
    this.byHash.set(record.sha256, record);
    return { id: record.id, token, record: { ...record } };
  }

  /**
   * The live token `token` is, or why not: `unknown` (never issued here) or `revoked`. The hash
   * lookup is of a digest (learning which digests exist reveals nothing); the final compare is
   * constant-time.
   */
  verify(
    token: string,
  ): { ok: true; record: GatewayTokenRecord } | { ok: false; reason: 'unknown' | 'revoked' } {
    const digest = hashGatewayToken(token);
    const record = this.byHash.get(digest);
    if (
      !record ||
      !timingSafeEqual(Buffer.from(record.sha256, 'hex'), Buffer.from(digest, 'hex'))
    ) {
      return { ok: false, reason: 'unknown' };
    }
    if (record.revoked_at !== null) return { ok: false, reason: 'revoked' };
    return { ok: true, record };
  }

  /** Every token, oldest first (hashes and metadata, never the token text). */
  list(): GatewayTokenRecord[] {
    return this.records.map((r) => ({ ...r }));
  }

  /** Revokes the token with id `id`; revoking a revoked token is a no-op returning it. */
  revokeById(id: string): GatewayTokenRecord {
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
      throw new GatewayTokenError('invalid', 'id: expected a token id like gwt_0123456789abcdef');
    }
    const record = this.records.find((r) => r.id === id);
    if (!record) throw new GatewayTokenError('not_found', `no gateway token with id ${id}`);
    this.revoke([record]);
    return { ...record };
  }

  /**
   * Revokes the presented tokens (an incident: whoever holds them must be cut off). Returns the
   * SHA-256 of every token given, known here or not, so the bundle names each without its text.
   */
  revokeTokens(tokens: readonly string[]): string[] {
    const hashes = tokens.map(hashGatewayToken);
    const found = hashes
      .map((h) => this.byHash.get(h))
      .filter((r): r is GatewayTokenRecord => r !== undefined);
    this.revoke(found);
    return [...new Set(hashes)];
  }

  private revoke(records: GatewayTokenRecord[]): void {
    const live = records.filter((r) => r.revoked_at === null);
    if (live.length === 0) return;
    const at = this.now().toISOString();
    const ids = new Set(live.map((r) => r.id));
    // On disk first: a revocation acknowledged is a revocation that survives a crash.
    this.persist(this.records.map((r) => (ids.has(r.id) ? { ...r, revoked_at: at } : r)));
    for (const r of live) r.revoked_at = at;
  }

  private persist(records: GatewayTokenRecord[]): void {
    writePrivateFileAtomic(this.file, JSON.stringify({ tokens: records }, null, 2) + '\n');
  }
}

function checkRecord(value: unknown, where: string): GatewayTokenRecord {
  const r = value as Partial<GatewayTokenRecord> | null;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.id !== 'string' ||
    typeof r.name !== 'string' ||
    typeof r.sha256 !== 'string' ||
    !/^[0-9a-f]{64}$/.test(r.sha256) ||
    typeof r.created_at !== 'string' ||
    (r.revoked_at !== null && typeof r.revoked_at !== 'string')
  ) {
    throw new Error(`${where}: not a token record`);
  }
  return {
    id: r.id,
    name: r.name,
    sha256: r.sha256,
    created_at: r.created_at,
    revoked_at: r.revoked_at,
  };
}
