import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import type { Logger } from 'pino';
import type { RpcDispatcher } from '../dispatcher';
import { internalError } from '../errors';
import { parseParams } from '../params';
import type { AuditEntry, AuditHead, AuditLog, VerifyResult } from '../../services/audit-log';
import { SingleFlightCache } from '../../services/single-flight-cache';
import { threadSource } from '../../services/runtime';

export interface AuditMethodsDeps {
  /** The audit database the bridge appends to (`auditLogPath(stateDir)`). */
  dbPath: string;
  /** The bridge's open audit log on that database (`audit.tail` reads through it). */
  auditLog: AuditLog;
  log: Logger;
}

const verifyParams = z.strictObject({
  anchor: z
    .strictObject({
      seq: z.number().int().min(1),
      hash: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters'),
    })
    .optional(),
});

const tailParams = z.strictObject({
  limit: z.number().int().min(1).max(1000).optional(),
  event_type: z.string().min(1).max(64).optional(),
  session_id: z.string().min(1).max(512).optional(),
  since_seq: z.number().int().min(0).optional(),
});

/** An entry as `audit.tail` answers it: the stored entry without its internal dedupe key. */
export type AuditTailEntry = Omit<AuditEntry, 'dedupe_key'>;

export interface AuditVerifyResult {
  ok: boolean;
  entries: number;
  /** The newest entry when the check ran, to keep outside this host as the next anchor. */
  head: AuditHead | null;
  first_bad_seq?: number;
  reason?: string;
}

/**
 * Two bridge extensions on the audit log: `audit.tail` reads its newest entries of every event
 * type (`webrtc.get_audit_log` keeps to voice events), `audit.verify` recomputes the whole hash
 * chain.
 *
 * The bridge reads its own file, rather than the CLI opening it, because the bridge is the one
 * process sure to resolve the same state directory and to be allowed to read it (0600, owned by
 * the bridge's user): the CLI only needs the socket, like every other command, and never leaves
 * SQLite sidecar files owned by another user next to the bridge's database. SQLite's WAL lets a
 * read see a consistent snapshot while the bridge keeps appending.
 */
export function registerAuditMethods(dispatcher: RpcDispatcher, deps: AuditMethodsDeps): void {
  // At most 1000 rows through an index: cheap enough for the event loop, unlike a full verify.
  dispatcher.addMethod('audit.tail', async (params) => {
    const p = parseParams(tailParams, params);
    let newestFirst: AuditEntry[];
    try {
      newestFirst = deps.auditLog.list({
        limit: p.limit ?? 50,
        event_type: p.event_type,
        session_id: p.session_id,
      });
    } catch (err) {
      deps.log.error({ err }, 'audit log read failed');
      throw internalError('Internal error: the audit log could not be read');
    }
    // The newest `limit` entries after since_seq are the newest `limit` cut at since_seq.
    const since = p.since_seq ?? 0;
    const entries = newestFirst
      .filter((e) => e.seq > since)
      .reverse()
      .map(({ dedupe_key: _internal, ...e }): AuditTailEntry => e);
    return { entries };
  });

  // Checks without an anchor share one run: a busy client cannot queue full scans.
  const plain = new SingleFlightCache(() => verifyInWorker(deps.dbPath), 0);
  dispatcher.addMethod('audit.verify', async (params) => {
    const { anchor } = parseParams(verifyParams, params);
    let outcome: { result: VerifyResult; head: AuditHead | null };
    try {
      outcome = anchor ? await verifyInWorker(deps.dbPath, anchor) : await plain.get();
    } catch (err) {
      deps.log.error({ err }, 'audit verification failed to run');
      throw internalError('Internal error: the audit log could not be read');
    }
    const { result, head } = outcome;
    if (result.ok) return { ok: true, entries: result.entries, head } satisfies AuditVerifyResult;
    return {
      ok: false,
      entries: head?.seq ?? 0,
      head,
      first_bad_seq: result.firstBadSeq,
      reason: result.reason,
    } satisfies AuditVerifyResult;
  });
}

/**
 * Runs the check on a worker thread: hashing every entry takes about 14 µs each (over a second
 * for 100k entries), time the event loop needs for live calls' media and signaling.
 */
function verifyInWorker(
  dbPath: string,
  anchor?: AuditHead,
): Promise<{ result: VerifyResult; head: AuditHead | null }> {
  const source = threadSource(__dirname, 'audit-verify-worker');
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: { dbPath, anchor } });
    let settled = false;
    worker.once(
      'message',
      (msg: { result: VerifyResult; head: AuditHead | null } | { error: string }) => {
        settled = true;
        if ('error' in msg) reject(new Error(msg.error));
        else resolve(msg);
      },
    );
    worker.once('error', (err) => {
      settled = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`audit verify worker exited with code ${code}`));
    });
  });
}
