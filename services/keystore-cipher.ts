/**
 * The keystore's cryptography: AES-256-GCM sealing under a data key derived from the master key,
 * the associated data that binds each ciphertext to its row, and the key-check value that tells
 * a wrong master key apart from a tampered record.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { KeystoreError, type KeyRecord } from './keystore-validation';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
// Bumping the format changes every AAD, so old rows can never be misread as new ones.
const FORMAT = 'armorclaw-keystore/v1';
const KEY_CHECK_PLAINTEXT = Buffer.from(`${FORMAT} key check`);
const KEY_CHECK_AAD = Buffer.from(`${FORMAT}:key-check`);

/** A sealed value: the nonce and the ciphertext with its tag appended. */
export interface Sealed {
  nonce: Buffer;
  sealed: Buffer;
}

/** Encrypts `plaintext` under `dataKey`, authenticating `aad` with it. */
export function seal(dataKey: Buffer, plaintext: string, aad: Buffer): Sealed {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', dataKey, nonce);
  cipher.setAAD(aad);
  const sealed = Buffer.concat([
    cipher.update(plaintext, 'utf8'),
    cipher.final(),
    cipher.getAuthTag(),
  ]);
  return { nonce, sealed };
}

/** Decrypts a sealed value; KeystoreError 'tampered' (naming `what`) if it fails authentication. */
export function unseal(
  dataKey: Buffer,
  { nonce, sealed }: Sealed,
  aad: Buffer,
  what: string,
): string {
  try {
    if (nonce.length !== NONCE_BYTES || sealed.length < TAG_BYTES) throw new Error('short');
    const decipher = createDecipheriv('aes-256-gcm', dataKey, nonce);
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const plain = Buffer.concat([
      decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)),
      decipher.final(),
    ]);
    const text = plain.toString('utf8');
    plain.fill(0);
    return text;
  } catch {
    throw new KeystoreError('tampered', `${what} failed authentication`);
  }
}

/**
 * The AAD of a key record. A JSON array is an unambiguous encoding: no choice of field values can
 * make two different records produce the same AAD.
 */
export function recordAad(r: KeyRecord): Buffer {
  return Buffer.from(
    JSON.stringify([FORMAT, r.id, r.provider, r.created_at, r.expires_at, r.display_name, r.tags]),
  );
}

/** The AAD of one of the bridge's own secrets. */
export const secretAad = (name: string): Buffer => Buffer.from(`${FORMAT}:secret:${name}`);

/**
 * The data key of a keystore. The master key is never used directly: a per-keystore salt gives
 * each keystore its own data key, and the info string keeps this key apart from anything else
 * derived from the master key.
 */
export function deriveDataKey(masterKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, salt, `${FORMAT} data key`, 32));
}

/** A fresh key-check value for `dataKey`: nonce, sealed known plaintext, tag. */
export function makeKeyCheck(dataKey: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', dataKey, nonce);
  cipher.setAAD(KEY_CHECK_AAD);
  return Buffer.concat([
    nonce,
    cipher.update(KEY_CHECK_PLAINTEXT),
    cipher.final(),
    cipher.getAuthTag(),
  ]);
}

/** Whether `check` was made with `dataKey` (false for a wrong key or a damaged value). */
export function verifyKeyCheck(dataKey: Buffer, check: Buffer): boolean {
  if (check.length !== NONCE_BYTES + KEY_CHECK_PLAINTEXT.length + TAG_BYTES) return false;
  try {
    const decipher = createDecipheriv('aes-256-gcm', dataKey, check.subarray(0, NONCE_BYTES));
    decipher.setAAD(KEY_CHECK_AAD);
    decipher.setAuthTag(check.subarray(check.length - TAG_BYTES));
    const plain = Buffer.concat([
      decipher.update(check.subarray(NONCE_BYTES, check.length - TAG_BYTES)),
      decipher.final(),
    ]);
    return plain.equals(KEY_CHECK_PLAINTEXT);
  } catch {
    return false;
  }
}
