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
 * synchronous write keeps "validate, write, rename, write sidecar" free of interleaving. *
 * This file is the store (files, sidecars, atomic writes); what an attachment may be called and
 * hold is checked in config-store-validation.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  assertJson,
  ConfigStoreError,
  decodeContent,
  invalid,
  validateEncoding,
  validateMetadata,
  validateName,
  validateType,
  type ConfigEncoding,
  type ConfigMetadata,
  type ConfigType,
} from './config-store-validation';

export {
  ConfigStoreError,
  type ConfigEncoding,
  type ConfigMetadata,
  type ConfigType,
} from './config-store-validation';

export const DEFAULT_CONFIG_MAX_BYTES = 1024 * 1024;

const FILE_MODE = 0o640;
const DIR_MODE = 0o750;
const META_DIR = '.meta';
const TEMP_PREFIX = '.tmp-';

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
