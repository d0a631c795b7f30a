/**
 * The gateway's audit trail: one `gateway_request` entry per `POST /rpc` answer (audit id,
 * method, role, subject, outcome, latency). The audit log syncs every transaction to disk, which
 * one request at a time would cap the gateway at a few hundred requests a second; so entries are
 * queued and written together in one transaction per tick (FLUSH_INTERVAL_MS), by a worker
 * thread in the bridge (services/audit-log-thread.ts) so neither the hashing nor the fsync
 * holds up requests.
 *
 * Trade-off, by design: entries of the last tick (at most FLUSH_INTERVAL_MS of requests) are lost
 * if the process is killed with SIGKILL; a graceful stop flushes them. The answer a client got
 * never depends on its entry being written.
 */
import type { Logger } from 'pino';
import type { AppendAuditInput } from '../services/audit-log';
import type { GatewayErrorCode, GatewayRole } from './protocol';

export const GATEWAY_AUDIT_EVENT = 'gateway_request';
const FLUSH_INTERVAL_MS = 25;
/** Beyond this many queued entries a flush runs at once instead of waiting for the tick. */
const FLUSH_AT = 2_000;

export interface GatewayAuditRecord {
  auditId: string;
  /** The envelope's method, or null when the request had none (bad JSON, wrong verb). */
  method: string | null;
  role: GatewayRole | null;
  subject: string | null;
  address: string;
  outcome: 'ok' | GatewayErrorCode;
  latencyMs: number;
}

/** Queues gateway audit entries and writes them in one transaction per tick. */
export class GatewayAuditWriter {
  private queue: AppendAuditInput[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** The audit log itself, or services/audit-log-thread.ts writing it from a worker thread. */
    private readonly auditLog: { appendMany(entries: readonly AppendAuditInput[]): unknown },
    private readonly log: Logger,
  ) {}

  record(r: GatewayAuditRecord): void {
    this.queue.push({
      event_type: GATEWAY_AUDIT_EVENT,
      details: {
        audit_id: r.auditId,
        method: r.method,
        role: r.role,
        subject: r.subject,
        address: r.address,
        outcome: r.outcome,
        latency_ms: Math.round(r.latencyMs * 1000) / 1000,
      },
    });
    if (this.queue.length >= FLUSH_AT) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_INTERVAL_MS);
  }

  /** Writes what is queued now (also on close). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    try {
      this.auditLog.appendMany(batch);
    } catch (err) {
      this.log.warn({ err, entries: batch.length }, 'gateway audit write failed');
    }
  }
}
