import fs from 'node:fs';
import Database from 'better-sqlite3';

/**
 * Opens an SQLite file that only the bridge's user may read (0600): the keystore, the audit log,
 * the Matrix store. WAL so another process (the CLI) can read while the bridge writes;
 * `synchronous = FULL` so a commit is on disk before the call that made it returns.
 */
export function openPrivateDatabase(
  file: string,
  opts: { busyTimeoutMs?: number; secureDelete?: boolean } = {},
): Database.Database {
  // Born 0600 rather than 0644 & ~umask; SQLite gives its -wal/-shm files the main file's mode.
  fs.closeSync(fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600));
  fs.chmodSync(file, 0o600);
  const db = new Database(file);
  try {
    db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 5_000}`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    // Freed pages are zeroed rather than left for anyone who copies the file.
    if (opts.secureDelete) db.pragma('secure_delete = ON');
    restrictSidecarModes(file);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * SQLite creates -wal/-shm with the main file's mode, but a file left by an older run (or made
 * under another umask before the main file was fixed) may be looser.
 */
export function restrictSidecarModes(dbPath: string): void {
  for (const suffix of ['-wal', '-shm', '-journal']) {
    try {
      fs.chmodSync(dbPath + suffix, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
