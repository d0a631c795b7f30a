/**
 * Appends to the audit log from a worker thread, for writers that must not wait on SQLite: each
 * transaction ends in an fsync (synchronous=FULL) that would otherwise stop the event loop for a
 * few milliseconds, and hashing each entry into the chain costs tens of microseconds. The thread
 * opens its own connection; SQLite's write lock orders its transactions with the bridge's other
 * writers (and the CLI), so the chain stays one chain.
 *
 * The thread runs only while there is writing to do: it starts with the first batch and ends
 * after `idleMs` without one (a thread holds several MB of its own, and a bridge at rest writes
 * nothing). A batch handed over while the previous thread is still ending waits for it, so
 * batches are written in the order they were handed over.
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

/** How long the thread waits for another batch before it ends. */
export const AUDIT_THREAD_IDLE_MS = 60_000;

export class AuditLogThread {
  private worker: Worker | undefined;
  /** Batches handed over while no thread runs, for the next one. */
  private waiting: Array<readonly AppendAuditInput[]> | undefined;
  /** When the last thread started has ended (at once before any). */
  private ended: Promise<void> = Promise.resolve();
  private starting: Promise<void> = Promise.resolve();
  private idle: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly dbPath: string,
    private readonly onError: (message: string, entries: number) => void,
    private readonly idleMs = AUDIT_THREAD_IDLE_MS,
  ) {}

  /** Whether a thread is running now. */
  get running(): boolean {
    return this.worker !== undefined;
  }

  appendMany(entries: readonly AppendAuditInput[]): void {
    if (this.closed) {
      this.onError('the audit log writer is closed', entries.length);
      return;
    }
    if (this.worker) {
      this.worker.postMessage({ kind: 'batch', entries } satisfies AuditThreadMessage);
      this.idle?.refresh();
      return;
    }
    if (this.waiting) {
      this.waiting.push(entries);
      return;
    }
    this.waiting = [entries];
    this.starting = this.ended.then(() => this.start());
  }

  /** Writes what was handed over, closes the thread's connection and ends the thread. */
  async close(): Promise<void> {
    this.closed = true;
    await this.starting;
    await this.stop();
  }

  private start(): void {
    const batches = this.waiting ?? [];
    this.waiting = undefined;
    const source = threadSource(__dirname, 'audit-log-thread-main');
    const worker = new Worker(source, { eval: true, workerData: { dbPath: this.dbPath } });
    worker.on('message', (m: AuditThreadReply) => this.onError(m.message, m.entries));
    worker.on('error', (err) => this.onError(err.message, 0));
    this.ended = new Promise((resolve) =>
      worker.once('exit', () => {
        // A thread that died is not written to again: the next batch starts another.
        if (this.worker === worker) void this.stop();
        resolve();
      }),
    );
    this.worker = worker;
    for (const entries of batches) {
      worker.postMessage({ kind: 'batch', entries } satisfies AuditThreadMessage);
    }
    this.idle = setTimeout(() => void this.stop(), this.idleMs);
    this.idle.unref();
  }

  /** Ends the running thread once it has written what it was handed; resolves when it has. */
  private stop(): Promise<void> {
    clearTimeout(this.idle);
    this.idle = undefined;
    this.worker?.postMessage({ kind: 'close' } satisfies AuditThreadMessage);
    this.worker = undefined;
    return this.ended;
  }
}
