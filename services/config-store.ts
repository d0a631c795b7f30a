/**
 * Config attachments (docs/api.md, "Config files": attach_config, list_configs).
 *
 * Layout under `dir` (normally `<state_dir>/configs`):
 *   <name>            the content, exactly the decoded bytes, mode 0640
 *   .meta/<name>      sidecar JSON (config_id, type, encoding, metadata, sha256, created), 0640
 *   .tmp-<random>     in-flight writes; renamed into place or removed, never listed
 *
 * Names starting with `.` are rejected: that keeps user names disjoint from `.meta` and the
 * temp files, so no attachment can overwrite a sidecar or be mistaken for a half-written file.
 *
 * The sidecar is `.meta/<name>`, not `.meta/<name>.json`: names may be 255 bytes, the
 * filesystem's NAME_MAX, and a suffix would make the longest legal names unstorable.
 *
 * I/O is synchronous: attachments are at most `maxBytes` (1 MiB by default) and rare, and a
 * synchronous write keeps "validate, write, rename, write sidecar" free of interleaving.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const DEFAULT_CONFIG_MAX_BYTES = 1024 * 1024;
export const CONFIG_TYPES = ['env', 'toml', 'yaml', 'json'] as const;
export const CONFIG_ENCODINGS = ['raw', 'base64'] as const;
export const MAX_NAME_LENGTH = 255;
export const MAX_METADATA_KEYS = 32;
export const MAX_METADATA_VALUE_LENGTH = 1024;

export type ConfigType = (typeof CONFIG_TYPES)[number];
export type ConfigEncoding = (typeof CONFIG_ENCODINGS)[number];
export type MetadataValue = string | number | boolean;
export type ConfigMetadata = Record<string, MetadataValue>;

const FILE_MODE = 0o640;
const DIR_MODE = 0o750;
const META_DIR = '.meta';
const TEMP_PREFIX = '.tmp-';
const NAME_PATTERN = /^[A-Za-z0-9._-]+$/;
const METADATA_KEY_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
// Canonical padded base64; the decode/re-encode comparison below also rejects non-zero pad bits.
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// With the `u` flag a well-formed pair is one code point, so this matches lone surrogates only.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

export interface ConfigStoreOptions {
  /** Where attachments live, normally `<state_dir>/configs`. */
  dir: string;
  /** Largest decoded attachment in bytes (setting `configs.max_bytes`). */
  maxBytes?: number;
  now?: () => Date;
}

export interface AttachInput {
  name: unknown;
  content: unknown;
  encoding?: unknown;
  type?: unknown;
  metadata?: unknown;
}

/** The attach_config result, field for field as the spec shows it. */
export interface AttachResult {
  config_id: string;
  name: string;
  path: string;
  size: number;
  type?: ConfigType;
  encoding: ConfigEncoding;
  metadata?: ConfigMetadata;
}

/** One list_configs entry. */
export interface ConfigListEntry {
  name: string;
  path: string;
  size: number;
  /** ISO 8601 UTC, whole seconds, as the spec's example: 2026-02-11T12:00:00Z. */
  modified: string;
}

/** What the sidecar records about one attach. */
export interface ConfigMeta {
  config_id: string;
  type?: ConfigType;
  encoding: ConfigEncoding;
  metadata?: ConfigMetadata;
  sha256: string;
  created: string;
}

export interface ConfigRecord extends ConfigListEntry {
  /** Of the bytes on disk now, so a mount can be checked against `meta.sha256`. */
  sha256: string;
  /**
   * Null when the sidecar is missing, unreadable or describes other bytes: a crash between
   * the content rename and the sidecar rename leaves the new content with no (or old) meta.
   */
  meta: ConfigMeta | null;
}

/** `invalid` maps to InvalidParams (-32602), `io` to InternalError (-32603). */
export type ConfigStoreErrorCode = 'invalid' | 'io';

export class ConfigStoreError extends Error {
  constructor(
    readonly code: ConfigStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ConfigStoreError';
  }
}

const invalid = (message: string) => new ConfigStoreError('invalid', message);

export class ConfigStore {
  readonly dir: string;
  readonly maxBytes: number;
  private readonly metaDir: string;
  private readonly now: () => Date;

  constructor(options: ConfigStoreOptions) {
    const maxBytes = options.maxBytes ?? DEFAULT_CONFIG_MAX_BYTES;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
    }
    // Results carry full paths (the spec's `path`), so pin the directory once.
    this.dir = path.resolve(options.dir);
    this.metaDir = path.join(this.dir, META_DIR);
    this.maxBytes = maxBytes;
    this.now = options.now ?? (() => new Date());
  }

  /** Validates and stores one attachment, replacing any earlier one of the same name. */
  attach(input: AttachInput): AttachResult {
    if (typeof input !== 'object' || input === null) throw invalid('params must be an object');
    const name = validateName(input.name);
    const encoding = validateEncoding(input.encoding);
    const type = input.type === undefined ? undefined : validateType(input.type);
    const metadata = input.metadata === undefined ? undefined : validateMetadata(input.metadata);
    const bytes = decodeContent(input.content, encoding, this.maxBytes);
    if (type === 'json') assertJson(bytes);

    const now = this.now();
    const configId = `config-${name}-${Math.floor(now.getTime() / 1000)}`;
    const meta: ConfigMeta = {
      config_id: configId,
      ...(type !== undefined && { type }),
      encoding,
      ...(metadata !== undefined && { metadata }),
      sha256: sha256(bytes),
      created: isoSeconds(now),
    };
    const filePath = path.join(this.dir, name);
    try {
      ensureDir(this.dir);
      ensureDir(this.metaDir);
      // Content first: a crash in between leaves content whose sidecar is missing or stale,
      // which get() detects by hash, never a sidecar pointing at bytes that are not there.
      writeFileAtomic(this.dir, filePath, bytes);
      writeFileAtomic(
        this.metaDir,
        path.join(this.metaDir, name),
        Buffer.from(JSON.stringify(meta)),
      );
    } catch (err) {
      throw new ConfigStoreError('io', 'failed to write config file', { cause: err });
    }
    return {
      config_id: configId,
      name,
      path: filePath,
      size: bytes.length,
      ...(type !== undefined && { type }),
      encoding,
      ...(metadata !== undefined && { metadata }),
    };
  }

  /** Lists stored attachments sorted by name; temp files and the sidecar dir are skipped. */
  list(): ConfigListEntry[] {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(this.dir, { withFileTypes: true });
    } catch (err) {
      if (errno(err) === 'ENOENT') return []; // nothing attached yet
      throw new ConfigStoreError('io', 'failed to list configs', { cause: err });
    }
    const out: ConfigListEntry[] = [];
    for (const entry of entries) {
      // Dot names are ours (.meta, .tmp-*); only regular files can be attachments, so a
      // planted symlink or directory is never reported (or later mounted) as one.
      if (entry.name.startsWith('.') || !entry.isFile()) continue;
      const filePath = path.join(this.dir, entry.name);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(filePath);
      } catch (err) {
        if (errno(err) === 'ENOENT') continue; // replaced or removed while we listed
        throw new ConfigStoreError('io', 'failed to list configs', { cause: err });
      }
      out.push({ name: entry.name, path: filePath, size: st.size, modified: isoSeconds(st.mtime) });
    }
    // Code-unit order, not locale order: stable across hosts and ICU builds.
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Returns one attachment's path, size, current hash and sidecar metadata, or null if absent. */
  get(name: unknown): ConfigRecord | null {
    const validName = validateName(name);
    const filePath = path.join(this.dir, validName);
    let bytes: Buffer;
    let st: fs.Stats;
    try {
      // O_NOFOLLOW: whatever is mounted into a container must be the file we wrote.
      const fd = fs.openSync(filePath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      try {
        st = fs.fstatSync(fd);
        if (!st.isFile()) return null;
        bytes = fs.readFileSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT' || code === 'ELOOP' || code === 'EISDIR') return null;
      throw new ConfigStoreError('io', 'failed to read config', { cause: err });
    }
    const hash = sha256(bytes);
    const meta = this.readMeta(validName);
    return {
      name: validName,
      path: filePath,
      size: bytes.length,
      modified: isoSeconds(st.mtime),
      sha256: hash,
      meta: meta !== null && meta.sha256 === hash ? meta : null,
    };
  }

  /** Cheap health probe: rejects unless the directory exists (or can be made) and is writable. */
  async check(): Promise<void> {
    // Async, unlike the rest: the health method runs every check under a timeout, and a
    // probe should not hold the event loop on a slow disk.
    try {
      // Creating the directory here is what the first attach would do anyway.
      const created = await fs.promises.mkdir(this.dir, { recursive: true, mode: DIR_MODE });
      if (created !== undefined) await fs.promises.chmod(this.dir, DIR_MODE);
      await fs.promises.access(this.dir, fs.constants.W_OK | fs.constants.X_OK);
    } catch (err) {
      // The errno only: health answers reach clients and must not carry host paths.
      throw new ConfigStoreError('io', `config directory unusable (${errno(err) ?? 'unknown'})`, {
        cause: err,
      });
    }
  }

  private readMeta(name: string): ConfigMeta | null {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(path.join(this.metaDir, name), 'utf8'));
    } catch {
      return null; // missing or torn: treated as "no metadata", the content is still usable
    }
    if (
      typeof parsed !== 'object' ||
      parsed === null ||
      typeof (parsed as ConfigMeta).config_id !== 'string' ||
      typeof (parsed as ConfigMeta).sha256 !== 'string'
    ) {
      return null;
    }
    return parsed as ConfigMeta;
  }
}

function validateName(name: unknown): string {
  if (typeof name !== 'string') throw invalid('name must be a string');
  if (name.length === 0) throw invalid('name must not be empty');
  if (name.length > MAX_NAME_LENGTH) {
    throw invalid(`name must be at most ${MAX_NAME_LENGTH} characters`);
  }
  // The specific checks come before the pattern only to give a precise message.
  if (name.includes('\0')) throw invalid('name must not contain NUL');
  if (name.includes('/') || name.includes('\\') || path.isAbsolute(name)) {
    throw invalid('name must be a plain file name, without path separators');
  }
  if (name === '.' || name === '..') throw invalid('name must not be "." or ".."');
  if (name.startsWith('.')) throw invalid('name must not start with "." (reserved for the store)');
  if (!NAME_PATTERN.test(name)) throw invalid('name may contain only A-Z a-z 0-9 . _ -');
  return name;
}

function validateEncoding(encoding: unknown): ConfigEncoding {
  if (encoding === undefined) return 'raw';
  if (!(CONFIG_ENCODINGS as readonly unknown[]).includes(encoding)) {
    throw invalid('encoding must be "raw" or "base64"');
  }
  return encoding as ConfigEncoding;
}

function validateType(type: unknown): ConfigType {
  if (!(CONFIG_TYPES as readonly unknown[]).includes(type)) {
    throw invalid(`type must be one of ${CONFIG_TYPES.join(', ')}`);
  }
  return type as ConfigType;
}

function validateMetadata(metadata: unknown): ConfigMetadata {
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw invalid('metadata must be an object');
  }
  const proto: unknown = Object.getPrototypeOf(metadata);
  if (proto !== Object.prototype && proto !== null)
    throw invalid('metadata must be a plain object');
  const entries = Object.entries(metadata);
  if (entries.length > MAX_METADATA_KEYS) {
    throw invalid(`metadata must have at most ${MAX_METADATA_KEYS} keys`);
  }
  for (const [key, value] of entries) {
    if (!METADATA_KEY_PATTERN.test(key)) {
      throw invalid('metadata keys must be 1-64 characters of A-Z a-z 0-9 . _ -');
    }
    if (typeof value === 'string') {
      if (value.length > MAX_METADATA_VALUE_LENGTH) {
        throw invalid(`metadata.${key} must be at most ${MAX_METADATA_VALUE_LENGTH} characters`);
      }
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw invalid(`metadata.${key} must be a finite number`);
    } else if (typeof value !== 'boolean') {
      throw invalid(`metadata.${key} must be a string, number or boolean`);
    }
  }
  // fromEntries defines own properties, so a "__proto__" key stays data, not a prototype.
  return Object.fromEntries(entries) as ConfigMetadata;
}

function decodeContent(content: unknown, encoding: ConfigEncoding, maxBytes: number): Buffer {
  if (typeof content !== 'string') throw invalid('content must be a string');
  const tooLarge = (size: number) =>
    invalid(`content is ${size} bytes decoded; the limit is ${maxBytes} bytes`);
  if (encoding === 'raw') {
    // Buffer would turn a lone surrogate into U+FFFD: the file would not be what was sent.
    if (LONE_SURROGATE.test(content)) throw invalid('content must be valid Unicode text');
    const size = Buffer.byteLength(content, 'utf8');
    if (size > maxBytes) throw tooLarge(size);
    return Buffer.from(content, 'utf8');
  }
  // Node's decoder skips bad characters silently; strictness means a typo is an error,
  // not a quietly different file.
  if (!BASE64_PATTERN.test(content)) {
    throw invalid('content must be strict base64 (standard alphabet, padded, no whitespace)');
  }
  const padding = content.endsWith('==') ? 2 : content.endsWith('=') ? 1 : 0;
  const size = (content.length / 4) * 3 - padding; // known before decoding anything large
  if (size > maxBytes) throw tooLarge(size);
  const bytes = Buffer.from(content, 'base64');
  if (bytes.toString('base64') !== content) {
    throw invalid('content must be strict base64 (non-canonical padding bits)');
  }
  return bytes;
}

function assertJson(bytes: Buffer): void {
  try {
    // ignoreBOM keeps a BOM in the text so JSON.parse rejects it, as the parsers in the
    // containers that read this file would.
    JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch {
    throw invalid('content is not valid JSON (type is "json")');
  }
}

function ensureDir(dir: string): void {
  const created = fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  // mkdir's mode is filtered by the umask; the store's modes must not depend on it.
  if (created !== undefined) fs.chmodSync(dir, DIR_MODE);
}

/** Temp file in the same dir + fsync + rename: readers see the old bytes or the new, never part. */
function writeFileAtomic(dir: string, finalPath: string, data: Uint8Array): void {
  const tmp = path.join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, FILE_MODE);
    fs.fchmodSync(fd, FILE_MODE); // the umask may have narrowed the open() mode
    for (let off = 0; off < data.length;) off += fs.writeSync(fd, data, off);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, finalPath);
  } catch (err) {
    // Best-effort cleanup; the original error is the one worth reporting.
    if (fd !== undefined) ignoreErrors(() => fs.closeSync(fd as number));
    ignoreErrors(() => fs.rmSync(tmp, { force: true }));
    throw err;
  }
  // The rename is durable only once the directory entry is on disk.
  const dirFd = fs.openSync(dir, fs.constants.O_RDONLY);
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}

function ignoreErrors(fn: () => void): void {
  try {
    fn();
  } catch {
    // deliberately ignored
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** ISO 8601 UTC without milliseconds, the form the spec's examples use. */
function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function errno(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}
