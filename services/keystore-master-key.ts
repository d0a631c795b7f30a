/**
 * The keystore's master key: from ARMORCLAW_MASTER_KEY when set, else from a key file in the
 * state directory, created on first use (32 random bytes, mode 0600) so that two processes
 * starting at once agree on one key.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { decodeMasterKey } from '../formats/master-key';
import { KeystoreError } from './keystore-validation';

/**
 * The master key from the environment value if given, else from `keyFile`, creating that file
 * (32 random bytes, mode 0600) on first use.
 */
export function loadOrCreateMasterKey(opts: { fromEnv?: string; keyFile: string }): Buffer {
  if (opts.fromEnv !== undefined && opts.fromEnv !== '') {
    const key = decodeMasterKey(opts.fromEnv);
    if (!key) {
      throw new KeystoreError(
        'invalid',
        'ARMORCLAW_MASTER_KEY: must be 32 bytes as 64 hex characters or base64',
      );
    }
    return key;
  }
  return readKeyFile(opts.keyFile) ?? createKeyFile(opts.keyFile);
}

function readKeyFile(keyFile: string): Buffer | null {
  let fd: number;
  try {
    // O_NOFOLLOW: a symlink planted in the state directory must not redirect us to another file.
    fd = fs.openSync(keyFile, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new KeystoreError(
        'invalid',
        `master key file ${keyFile} is a symbolic link; refusing to use it`,
      );
    }
    throw err;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile())
      throw new KeystoreError('invalid', `master key file ${keyFile} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new KeystoreError(
        'invalid',
        `master key file ${keyFile} is accessible by group or others (mode ${mode}); ` +
          `run: chmod 600 ${keyFile}`,
      );
    }
    const bytes = fs.readFileSync(fd);
    if (bytes.length === 32) return bytes;
    const key = decodeMasterKey(bytes.toString('latin1'));
    bytes.fill(0);
    if (!key) {
      throw new KeystoreError(
        'invalid',
        `master key file ${keyFile} must hold 32 raw bytes, 64 hex characters or base64 of 32 bytes`,
      );
    }
    return key;
  } finally {
    fs.closeSync(fd);
  }
}

function createKeyFile(keyFile: string): Buffer {
  const dir = path.dirname(keyFile);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  const tmp = `${keyFile}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.fchmodSync(fd, 0o600);
    fs.writeFileSync(fd, key);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    // link(), not rename(): if another process created the key first, rename would silently
    // replace it, and whatever that process already sealed would be unreadable. link fails
    // with EEXIST instead, and we adopt the winner's key.
    fs.linkSync(tmp, keyFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const existing = readKeyFile(keyFile);
    if (!existing) throw err;
    return existing;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDir(dir);
  return key;
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
