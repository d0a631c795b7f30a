/**
 * Appends to the audit log from a worker thread, for writers that must not wait on SQLite: each
 * transaction ends in an fsync (synchronous=FULL) that would otherwise stop the event loop for a
 * few milliseconds, and hashing each entry into the chain costs tens of microseconds. The thread
 * opens its own connection; SQLite's write lock orders its transactions with the bridge's other
 * writers (and the CLI), so the chain stays one chain.
 *
 * `appendMany` hands a batch over and returns at once; `close` waits until every batch handed
 * over is written. A batch the thread could not write is reported through `onError`.
 */
import { Worker } from 'node:worker_threads';
import type { AppendAuditInput } from './audit-log';
import { threadSource } from './runtime';

export type AuditThreadMessage =
  { kind: 'batch'; entries: readonly AppendAuditInput[] } | { kind: 'close' };
export type AuditThreadReply = { kind: 'error'; message: string; entries: number };

export class AuditLogThread {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(dbPath: string, onError: (message: string, entries: number) => void) {
    const source = threadSource(__dirname, 'audit-log-thread-main');
    this.worker = new Worker(source, { eval: true, workerData: { dbPath } });
    this.worker.on('message', (m: AuditThreadReply) => onError(m.message, m.entries));
    this.worker.on('error', (err) => onError(err.message, 0));
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
  }

  appendMany(entries: readonly AppendAuditInput[]): void {
    this.worker.postMessage({ kind: 'batch', entries } satisfies AuditThreadMessage);
  }

  /** Writes what was handed over, closes the thread's connection and ends the thread. */
  async close(): Promise<void> {
    this.worker.postMessage({ kind: 'close' } satisfies AuditThreadMessage);
    await this.exited;
  }
}
