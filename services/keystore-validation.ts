/**
 * What a stored key is and what `store` accepts: the providers, the record shape, the limits,
 * the keystore's error codes, and the checks a new key passes before anything is sealed.
 */

import { isProvider, PROVIDERS, type Provider } from '../formats/providers';

// Providers a key may belong to (docs/api.md, "Keystore").
export { isProvider, PROVIDERS, type Provider };

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const MAX_TOKEN_BYTES = 16 * 1024;
export const MAX_DISPLAY_NAME_CHARS = 256;
export const MAX_TAGS = 32;
export const MAX_TAG_CHARS = 64;

export type KeystoreErrorCode =
  'invalid' | 'not_found' | 'expired' | 'exists' | 'tampered' | 'wrong_master_key';

/** A keystore failure the caller can act on; `code` is stable, `message` is for humans. */
export class KeystoreError extends Error {
  constructor(
    readonly code: KeystoreErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'KeystoreError';
  }
}

/** A stored key as `list_keys` shows it: never the token. */
export interface KeyRecord {
  id: string;
  provider: Provider;
  display_name: string;
  created_at: number;
  expires_at: number | null;
  tags: string[];
}

export interface StoreKeyInput {
  id: string;
  provider: string;
  token: string;
  display_name?: string;
  expires_at?: number;
  tags?: string[];
}

// Control characters are refused in text that `armorclaw list-keys` prints to a terminal.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** The record `input` stores at `now`; throws KeystoreError 'invalid' naming the field. */
export function validateKeyInput(input: StoreKeyInput, now: number): KeyRecord {
  const bad = (message: string) => new KeystoreError('invalid', message);
  if (typeof input !== 'object' || input === null) throw bad('input: expected an object');
  const { id, provider, token, display_name, expires_at, tags } = input;

  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw bad(
      'id: must be 1-128 characters of letters, digits, ".", "_", ":" or "-", starting with a letter or digit',
    );
  }
  if (!isProvider(provider)) throw bad(`provider: must be one of ${PROVIDERS.join(', ')}`);
  if (typeof token !== 'string' || token.length === 0)
    throw bad('token: must be a non-empty string');
  if (Buffer.byteLength(token, 'utf8') > MAX_TOKEN_BYTES) {
    throw bad(`token: must be at most ${MAX_TOKEN_BYTES} bytes`);
  }
  if (token.includes('\0')) throw bad('token: must not contain NUL characters');
  if (display_name !== undefined) {
    if (typeof display_name !== 'string' || display_name.length === 0) {
      throw bad('display_name: must be a non-empty string');
    }
    if (display_name.length > MAX_DISPLAY_NAME_CHARS) {
      throw bad(`display_name: must be at most ${MAX_DISPLAY_NAME_CHARS} characters`);
    }
    if (CONTROL_CHARS.test(display_name))
      throw bad('display_name: must not contain control characters');
  }
  if (expires_at !== undefined) {
    if (typeof expires_at !== 'number' || !Number.isSafeInteger(expires_at) || expires_at <= 0) {
      throw bad('expires_at: must be a positive integer (unix seconds)');
    }
    if (expires_at <= now) throw bad('expires_at: must be in the future');
  }
  if (tags !== undefined) {
    if (!Array.isArray(tags)) throw bad('tags: must be an array of strings');
    if (tags.length > MAX_TAGS) throw bad(`tags: at most ${MAX_TAGS} tags`);
    for (const tag of tags as unknown[]) {
      if (typeof tag !== 'string' || tag.length === 0 || tag.length > MAX_TAG_CHARS) {
        throw bad(`tags: each tag must be a string of 1-${MAX_TAG_CHARS} characters`);
      }
      if (CONTROL_CHARS.test(tag)) throw bad('tags: must not contain control characters');
    }
  }
  return {
    id,
    provider,
    display_name: display_name ?? id,
    created_at: now,
    expires_at: expires_at ?? null,
    tags: tags ? [...tags] : [],
  };
}
