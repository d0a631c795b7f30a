/** The worker thread of services/audit-log-thread.ts: batches in, transactions out, in order. */
import { parentPort, workerData } from 'node:worker_threads';
import { AuditLog } from './audit-log';
import type { AuditThreadMessage, AuditThreadReply } from './audit-log-thread';

const log = AuditLog.open({ path: (workerData as { dbPath: string }).dbPath });

parentPort!.on('message', (m: AuditThreadMessage) => {
  if (m.kind === 'close') {
    log.close();
    parentPort!.close();
    return;
  }
  try {
    log.appendMany(m.entries);
  } catch (err) {
    const reply: AuditThreadReply = {
      kind: 'error',
      message: (err as Error).message,
      entries: m.entries.length,
    };
    parentPort!.postMessage(reply);
  }
});
