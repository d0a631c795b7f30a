/**
 * What a config attachment may be: its name (a plain file name, never one of the store's own
 * dot-files), type, encoding, metadata and content (strict base64 or valid Unicode text, within
 * the size limit, JSON when the type says so). Every check throws ConfigStoreError 'invalid'.
 */
import path from 'node:path';

export const CONFIG_TYPES = ['env', 'toml', 'yaml', 'json'] as const;
export const CONFIG_ENCODINGS = ['raw', 'base64'] as const;
const MAX_NAME_LENGTH = 255;
const MAX_METADATA_KEYS = 32;
const MAX_METADATA_VALUE_LENGTH = 1024;

export type ConfigType = (typeof CONFIG_TYPES)[number];
export type ConfigEncoding = (typeof CONFIG_ENCODINGS)[number];
export type MetadataValue = string | number | boolean;
export type ConfigMetadata = Record<string, MetadataValue>;

const NAME_PATTERN = /^[A-Za-z0-9._-]+$/;
const METADATA_KEY_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
// Canonical padded base64; the decode/re-encode comparison below also rejects non-zero pad bits.
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// With the `u` flag a well-formed pair is one code point, so this matches lone surrogates only.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** `invalid` maps to InvalidParams (-32602), `io` to InternalError (-32603). */
export type ConfigStoreErrorCode = 'invalid' | 'io';

/** A config store failure; its `code` says which JSON-RPC error it becomes. */
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

/** The 'invalid' error with `message`, for the caller to throw. */
export const invalid = (message: string) => new ConfigStoreError('invalid', message);

/** `name` if it is a storable attachment name. */
export function validateName(name: unknown): string {
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

/** The encoding named (raw when none is). */
export function validateEncoding(encoding: unknown): ConfigEncoding {
  if (encoding === undefined) return 'raw';
  if (!(CONFIG_ENCODINGS as readonly unknown[]).includes(encoding)) {
    throw invalid('encoding must be "raw" or "base64"');
  }
  return encoding as ConfigEncoding;
}

/** The config type named. */
export function validateType(type: unknown): ConfigType {
  if (!(CONFIG_TYPES as readonly unknown[]).includes(type)) {
    throw invalid(`type must be one of ${CONFIG_TYPES.join(', ')}`);
  }
  return type as ConfigType;
}

/** A copy of `metadata` once every key and value is checked. */
export function validateMetadata(metadata: unknown): ConfigMetadata {
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

/** The bytes `content` stands for in `encoding`, at most `maxBytes` of them. */
export function decodeContent(
  content: unknown,
  encoding: ConfigEncoding,
  maxBytes: number,
): Buffer {
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

/** Throws unless `bytes` are UTF-8 JSON (no BOM). */
export function assertJson(bytes: Buffer): void {
  try {
    // ignoreBOM keeps a BOM in the text so JSON.parse rejects it, as the parsers in the
    // containers that read this file would.
    JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch {
    throw invalid('content is not valid JSON (type is "json")');
  }
}
