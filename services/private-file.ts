/**
 * Writing a small private file of the bridge (tokens' hashes, the device registry, a relay's
 * credential hash) so that a crash leaves the old content or the new, never a mix, and nobody
 * but the owner can read it: a temporary file (mode 0600), fsync, rename over the file, fsync of
 * the directory (the rename is durable only then).
 */
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';

export function writePrivateFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    // A temporary file left by a crashed run keeps its old mode: `openSync`'s mode applies only
    // to a file it creates.
    fchmodSync(fd, 0o600);
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dir = openSync(path.dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
