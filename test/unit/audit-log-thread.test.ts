import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AuditLog } from '../../services/audit-log';
import { AuditLogThread } from '../../services/audit-log-thread';

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'armorclaw-audit-thread-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('AuditLogThread', () => {
  it('writes every batch handed over, in order, on one chain with the process’s own writes', async () => {
    const dbPath = path.join(dir, 'audit.db');
    const own = AuditLog.open({ path: dbPath });
    own.append({ event_type: 'before', details: { n: 0 } });
    const errors: string[] = [];
    const thread = new AuditLogThread(dbPath, (message) => errors.push(message));
    for (let b = 0; b < 5; b++) {
      thread.appendMany(
        Array.from({ length: 100 }, (_, i) => ({
          event_type: 'gateway_request',
          details: { n: b * 100 + i + 1 },
        })),
      );
    }
    await thread.close();
    own.append({ event_type: 'after', details: { n: 501 } });

    const entries = own.list({ limit: 1000 });
    expect(errors).toEqual([]);
    expect(entries).toHaveLength(502);
    const ns = entries.map((e) => (e.details as { n: number }).n).sort((a, b) => a - b);
    expect(ns).toEqual(Array.from({ length: 502 }, (_, i) => i));
    const threadNs = entries
      .filter((e) => e.event_type === 'gateway_request')
      .sort((a, b) => a.seq - b.seq)
      .map((e) => (e.details as { n: number }).n);
    expect(threadNs).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(own.verify()).toMatchObject({ ok: true });
    own.close();
  });

  it('reports a batch it cannot write, and keeps writing the next ones', async () => {
    const dbPath = path.join(dir, 'audit.db');
    const errors: { message: string; entries: number }[] = [];
    const thread = new AuditLogThread(dbPath, (message, entries) =>
      errors.push({ message, entries }),
    );
    thread.appendMany([{ event_type: '', details: {} }]);
    thread.appendMany([{ event_type: 'fine', details: {} }]);
    await thread.close();
    expect(errors).toHaveLength(1);
    expect(errors[0]!.entries).toBe(1);
    const log = AuditLog.open({ path: dbPath });
    expect(log.list({ limit: 10 }).map((e) => e.event_type)).toEqual(['fine']);
    log.close();
  });

  it('runs a thread only while there is writing: none before the first batch, none after idling', async () => {
    const dbPath = path.join(dir, 'audit.db');
    const errors: string[] = [];
    const thread = new AuditLogThread(dbPath, (message) => errors.push(message), 300);
    expect(thread.running).toBe(false);
    thread.appendMany([{ event_type: 'first', details: { n: 1 } }]);
    thread.appendMany([{ event_type: 'first', details: { n: 2 } }]);
    await until(() => thread.running);
    await until(() => !thread.running);
    // Handed over while the idle thread may still be ending: written after it, in order.
    for (let n = 3; n <= 6; n++) thread.appendMany([{ event_type: 'later', details: { n } }]);
    await thread.close();
    expect(thread.running).toBe(false);
    thread.appendMany([{ event_type: 'after close', details: {} }]);
    expect(errors).toEqual(['the audit log writer is closed']);

    const log = AuditLog.open({ path: dbPath });
    const entries = log.list({ limit: 10 }).sort((a, b) => a.seq - b.seq);
    expect(entries.map((e) => (e.details as { n: number }).n)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(log.verify()).toMatchObject({ ok: true });
    log.close();
  });
});

async function until(check: () => boolean): Promise<void> {
  for (const t0 = Date.now(); !check(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() - t0 > 10_000) throw new Error('timed out');
  }
}
