/** Worker thread of `audit.verify`: opens its own connection so the bridge's stays free. */
import { existsSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { AuditLog, type AuditHead } from '../../services/audit-log';

const { dbPath, anchor } = workerData as { dbPath: string; anchor?: AuditHead };

try {
  // The bridge opened (and created) the file at start; a missing one is a fault to report, not
  // an empty log to make.
  if (!existsSync(dbPath)) throw new Error('the audit database does not exist');
  const log = AuditLog.open({ path: dbPath });
  try {
    // The head is read first: the log only grows, so the snapshot verify reads holds it.
    const head = log.head();
    const result = log.verify(anchor ? { anchor } : {});
    parentPort!.postMessage({ result, head });
  } finally {
    log.close();
  }
} catch (err) {
  parentPort!.postMessage({ error: (err as Error).message });
}
