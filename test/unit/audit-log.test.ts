import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import {
  AuditLog,
  AuditLogError,
  GENESIS_HASH,
  auditLogPath,
  type AuditEntry,
} from '../../services/audit-log';

const T0 = Date.parse('2026-02-08T12:00:00Z');

let dir: string;
let clock: number;
const open: AuditLog[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'armorclaw-audit-'));
  clock = T0;
});
afterEach(() => {
  for (const log of open.splice(0)) log.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const dbPath = () => auditLogPath(dir);
function openLog(): AuditLog {
  // Each append moves the clock a second, so timestamps are distinct and predictable.
  const log = AuditLog.open({ path: dbPath(), now: () => new Date((clock += 1000)) });
  open.push(log);
  return log;
}

function appendCalls(log: AuditLog, n: number, sessionId = 'session-abc123'): AuditEntry[] {
  return Array.from({ length: n }, (_, i) =>
    log.append({
      event_type: i % 2 === 0 ? 'call_created' : 'call_ended',
      session_id: sessionId,
      room_id: '!abc123:matrix.example.com',
      user_id: '@user:matrix.example.com',
      details: { n: i },
    }),
  );
}

/** Runs SQL against the raw file as an attacker with write access would: triggers dropped first. */
function tamper(...statements: string[]): void {
  const db = new Database(dbPath());
  try {
    db.exec('DROP TRIGGER IF EXISTS entries_no_update; DROP TRIGGER IF EXISTS entries_no_delete;');
    for (const sql of statements) db.exec(sql);
  } finally {
    db.close();
  }
}

function expectAuditError(fn: () => unknown, code: string, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(AuditLogError);
  expect((caught as AuditLogError).code).toBe(code);
  if (message) expect((caught as AuditLogError).message).toMatch(message);
}

/** The documented hash, computed independently: SHA-256 of sorted-key JSON, no whitespace. */
function expectedHash(entry: AuditEntry): string {
  const sortKeys = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
        )
      : v;
  const { hash: _hash, ...rest } = entry;
  return createHash('sha256')
    .update(JSON.stringify(sortKeys({ format: 'armorclaw-audit/v1', ...rest })))
    .digest('hex');
}

describe('AuditLog append and list', () => {
  test('appends entries with seq, UTC timestamp and a hash chain from the genesis hash', () => {
    const log = openLog();
    const first = log.append({
      event_type: 'call_created',
      session_id: 'session-abc123',
      room_id: '!abc123:matrix.example.com',
      user_id: '@user:matrix.example.com',
    });
    const second = log.append({
      event_type: 'container_started',
      container_id: 'c-1',
      details: { reason: 'user_hangup', nested: { b: 1, a: [1, 'x'] } },
    });

    expect(first).toEqual({
      seq: 1,
      timestamp: '2026-02-08T12:00:01.000Z',
      event_type: 'call_created',
      session_id: 'session-abc123',
      room_id: '!abc123:matrix.example.com',
      user_id: '@user:matrix.example.com',
      container_id: null,
      details: {},
      dedupe_key: null,
      prev_hash: GENESIS_HASH,
      hash: expectedHash(first),
    });
    expect(GENESIS_HASH).toBe('0'.repeat(64));
    expect(second.seq).toBe(2);
    expect(second.prev_hash).toBe(first.hash);
    expect(second.hash).toBe(expectedHash(second));
    expect(log.head()).toEqual({ seq: 2, hash: second.hash });
  });

  test('lists newest first, with a default limit of 100 and a maximum of 1000', () => {
    const log = openLog();
    expect(log.list()).toEqual([]);
    const entries = appendCalls(log, 105);

    const listed = log.list();
    expect(listed).toHaveLength(100);
    expect(listed[0]).toEqual(entries[104]);
    expect(listed.map((e) => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => 105 - i));
    expect(log.list({ limit: 3 }).map((e) => e.seq)).toEqual([105, 104, 103]);
    expect(log.list({ limit: 1 })).toHaveLength(1);
    expect(log.list({ limit: 1000 })).toHaveLength(105);
  });

  test.each([0, -1, 1001, 1.5, Number.NaN, Infinity, '10' as unknown as number])(
    'rejects limit %p',
    (limit) => {
      const log = openLog();
      expectAuditError(() => log.list({ limit }), 'invalid', /limit: must be an integer from 1/);
    },
  );

  test('filters by event_type, session_id and container_id, alone or together', () => {
    const log = openLog();
    appendCalls(log, 4, 's-1');
    appendCalls(log, 2, 's-2');
    log.append({ event_type: 'container_started', session_id: 's-2', container_id: 'c-9' });
    log.append({ event_type: 'container_exited', container_id: 'c-9' });

    expect(log.list({ event_type: 'call_created' }).map((e) => e.seq)).toEqual([5, 3, 1]);
    expect(log.list({ session_id: 's-2' }).map((e) => e.seq)).toEqual([7, 6, 5]);
    expect(log.list({ container_id: 'c-9' }).map((e) => e.event_type)).toEqual([
      'container_exited',
      'container_started',
    ]);
    expect(log.list({ session_id: 's-2', event_type: 'call_ended' }).map((e) => e.seq)).toEqual([
      6,
    ]);
    expect(log.list({ session_id: 'nope' })).toEqual([]);
    expectAuditError(() => log.list({ session_id: 7 as unknown as string }), 'invalid');
  });

  test('entries survive close and reopen, and the chain continues', () => {
    const log = openLog();
    const [, last] = appendCalls(log, 2);
    log.close();
    const reopened = openLog();
    const third = reopened.append({ event_type: 'budget_warning' });
    expect(third.seq).toBe(3);
    expect(third.prev_hash).toBe(last!.hash);
    expect(reopened.verify()).toEqual({ ok: true, entries: 3 });
  });

  test('rejects malformed entries and non-JSON details without appending', () => {
    const log = openLog();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const bad: [unknown, RegExp][] = [
      [{ event_type: '' }, /event_type/],
      [{ event_type: 'Call Created' }, /event_type/],
      [{ event_type: 'x', session_id: '' }, /session_id/],
      [{ event_type: 'x', room_id: 'a\nb' }, /room_id: must not contain control/],
      [{ event_type: 'x', details: [] }, /details: must be an object/],
      [{ event_type: 'x', details: { n: Number.NaN } }, /details\.n: numbers must be finite/],
      [{ event_type: 'x', details: { at: new Date() } }, /details\.at: must be a plain object/],
      [{ event_type: 'x', details: { f: () => 1 } }, /details\.f: must be JSON/],
      [{ event_type: 'x', details: circular }, /circular/],
      [{ event_type: 'x', details: { big: 'x'.repeat(70_000) } }, /at most/],
    ];
    for (const [input, message] of bad) {
      expectAuditError(() => log.append(input as never), 'invalid', message);
    }
    expect(log.head()).toBeNull();
  });
});

describe('AuditLog secrets', () => {
  test.each([
    [{ api_token: 'sk-live-123' }, /details\.api_token/],
    [{ request: { headers: { Authorization: 'Bearer abc' } } }, /details\.request\.headers\.Auth/],
    [{ users: [{ name: 'a', Password: 'hunter2' }] }, /details\.users\[0\]\.Password/],
    [{ oauth: { client_SECRET: 'x' } }, /client_SECRET/],
  ])('refuses details with a secret-named key: %p', (details, where) => {
    const log = openLog();
    let caught: unknown;
    try {
      log.append({ event_type: 'security_violation', details });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AuditLogError);
    expect((caught as AuditLogError).code).toBe('secret_in_details');
    expect((caught as AuditLogError).message).toMatch(where);
    expect((caught as AuditLogError).message).toMatch(/must never hold credentials/);
    // The message names the key, never the value.
    expect((caught as AuditLogError).message).not.toMatch(/sk-live|Bearer|hunter2/);
    expect(log.head()).toBeNull();
    expect(fs.readFileSync(dbPath()).includes('hunter2')).toBe(false);
  });
});

describe('AuditLog idempotency', () => {
  test('a repeated dedupe_key returns the first entry instead of appending', () => {
    const log = openLog();
    const first = log.append({
      event_type: 'container_started',
      container_id: 'c-1',
      dedupe_key: 'wf-1/run-1/start',
      details: { image: 'a' },
    });
    log.append({ event_type: 'call_created' });
    // A retried activity after a crash: same key, possibly recomputed details.
    const retried = log.append({
      event_type: 'container_started',
      container_id: 'c-1',
      dedupe_key: 'wf-1/run-1/start',
      details: { image: 'b' },
    });
    expect(retried).toEqual(first);
    expect(log.head()?.seq).toBe(2);

    // Across instances (the bridge and the CLI) too.
    const other = openLog();
    expect(
      other.append({ event_type: 'container_started', dedupe_key: 'wf-1/run-1/start' }),
    ).toEqual(first);
    expect(
      other.append({ event_type: 'container_exited', dedupe_key: 'wf-1/run-1/exit' }).seq,
    ).toBe(3);
    expect(log.verify()).toEqual({ ok: true, entries: 3 });
  });
});

describe('AuditLog verify', () => {
  test('an empty log and an intact chain verify', () => {
    const log = openLog();
    expect(log.verify()).toEqual({ ok: true, entries: 0 });
    appendCalls(log, 5);
    expect(log.verify()).toEqual({ ok: true, entries: 5 });
  });

  test('history cannot be changed through SQL while the triggers stand', () => {
    const log = openLog();
    appendCalls(log, 2);
    const db = new Database(dbPath());
    try {
      expect(() => db.exec("UPDATE entries SET details = '{}' WHERE seq = 1")).toThrow(
        /append-only/,
      );
      expect(() => db.exec('DELETE FROM entries WHERE seq = 2')).toThrow(/append-only/);
    } finally {
      db.close();
    }
    expect(log.verify()).toEqual({ ok: true, entries: 2 });
  });

  test('detects edited details', () => {
    const log = openLog();
    appendCalls(log, 4);
    tamper(`UPDATE entries SET details = '{"n":99}' WHERE seq = 3`);
    expect(log.verify()).toEqual({
      ok: false,
      firstBadSeq: 3,
      reason: expect.stringMatching(/hash does not match/),
    });
  });

  test('detects an edited timestamp, and unparsable details', () => {
    const log = openLog();
    appendCalls(log, 3);
    tamper(`UPDATE entries SET timestamp = '2020-01-01T00:00:00.000Z' WHERE seq = 1`);
    expect(log.verify()).toMatchObject({ ok: false, firstBadSeq: 1 });
    tamper(`UPDATE entries SET timestamp = '2026-02-08T12:00:01.000Z' WHERE seq = 1`);
    expect(log.verify()).toEqual({ ok: true, entries: 3 });
    tamper(`UPDATE entries SET details = 'not json' WHERE seq = 2`);
    expect(log.verify()).toMatchObject({ ok: false, firstBadSeq: 2 });
    expectAuditError(() => log.list(), 'corrupt', /entry 2/);
  });

  test('an edit with that row’s hash recomputed is caught at the next entry', () => {
    const log = openLog();
    const entries = appendCalls(log, 4);
    const edited = { ...entries[1]!, details: { n: 42 } };
    tamper(
      `UPDATE entries SET details = '{"n":42}', hash = '${expectedHash(edited)}' WHERE seq = 2`,
    );
    expect(log.verify()).toEqual({
      ok: false,
      firstBadSeq: 3,
      reason: expect.stringMatching(/prev_hash does not match the hash of entry 2/),
    });
  });

  test('detects a deleted middle entry', () => {
    const log = openLog();
    appendCalls(log, 5);
    tamper('DELETE FROM entries WHERE seq = 3');
    expect(log.verify()).toEqual({
      ok: false,
      firstBadSeq: 3,
      reason: expect.stringMatching(/seq gap: expected seq 3, found seq 4/),
    });
  });

  test('detects a deleted first entry', () => {
    const log = openLog();
    appendCalls(log, 2);
    tamper('DELETE FROM entries WHERE seq = 1');
    expect(log.verify()).toMatchObject({ ok: false, firstBadSeq: 1 });
  });

  test('detects two swapped entries', () => {
    const log = openLog();
    appendCalls(log, 5);
    tamper(
      'UPDATE entries SET seq = -1 WHERE seq = 2',
      'UPDATE entries SET seq = 2 WHERE seq = 3',
      'UPDATE entries SET seq = 3 WHERE seq = -1',
    );
    expect(log.verify()).toEqual({
      ok: false,
      firstBadSeq: 2,
      reason: expect.stringMatching(/prev_hash does not match the hash of entry 1/),
    });
  });

  test('truncation is invisible to the chain alone, but caught against an anchored head', () => {
    const log = openLog();
    appendCalls(log, 4);
    const anchor = log.head()!;
    tamper('DELETE FROM entries WHERE seq = 4');
    // Honest limitation: dropping the newest entries leaves a valid, shorter chain.
    expect(log.verify()).toEqual({ ok: true, entries: 3 });
    expect(log.verify({ anchor })).toEqual({
      ok: false,
      firstBadSeq: 4,
      reason: expect.stringMatching(/truncated: the anchor names seq 4 but the log ends at seq 3/),
    });
  });

  test('a rewritten tail with every hash recomputed is caught only against an anchor', () => {
    const log = openLog();
    const entries = appendCalls(log, 3);
    const anchor = log.head()!;
    // Rewrite entry 2 and re-chain entry 3, as an attacker who knows the format would.
    const e2 = { ...entries[1]!, details: { n: 7 } };
    e2.hash = expectedHash(e2);
    const e3 = { ...entries[2]!, prev_hash: e2.hash };
    e3.hash = expectedHash(e3);
    tamper(
      `UPDATE entries SET details = '{"n":7}', hash = '${e2.hash}' WHERE seq = 2`,
      `UPDATE entries SET prev_hash = '${e3.prev_hash}', hash = '${e3.hash}' WHERE seq = 3`,
    );
    expect(log.verify()).toEqual({ ok: true, entries: 3 });
    expect(log.verify({ anchor })).toMatchObject({ ok: false, firstBadSeq: 3 });
    // An anchor older than the edit cannot see it: anchors must be published often.
    expect(log.verify({ anchor: { seq: 1, hash: entries[0]!.hash } })).toEqual({
      ok: true,
      entries: 3,
    });
  });

  test('rejects a malformed anchor', () => {
    const log = openLog();
    expectAuditError(() => log.verify({ anchor: { seq: 0, hash: GENESIS_HASH } }), 'invalid');
    expectAuditError(() => log.verify({ anchor: { seq: 1, hash: 'abc' } }), 'invalid');
  });
});

describe('AuditLog concurrency and storage', () => {
  test('two instances on one file appending alternately keep a single chain', () => {
    const bridge = openLog();
    const cli = openLog();
    const entries: AuditEntry[] = [];
    for (let i = 0; i < 10; i++) {
      const writer = i % 2 === 0 ? bridge : cli;
      entries.push(writer.append({ event_type: 'call_created', details: { i } }));
    }
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    for (let i = 1; i < entries.length; i++) {
      expect(entries[i]!.prev_hash).toBe(entries[i - 1]!.hash);
    }
    expect(bridge.verify()).toEqual({ ok: true, entries: 10 });
    expect(cli.list({ limit: 1 })[0]).toEqual(entries[9]);
  });

  test('two processes appending at once never fork the chain', async () => {
    const tsx = pathToFileURL(require.resolve('tsx')).href;
    const modulePath = path.resolve(__dirname, '../../services/audit-log.ts');
    // Each child opens the log, reports ready, and appends only when told to, so the two
    // really contend for the write lock instead of one finishing before the other starts.
    const script = `
      const { AuditLog } = require(${JSON.stringify(modulePath)});
      const log = AuditLog.open({ path: process.argv[1] });
      process.stdout.write('ready\\n');
      process.stdin.once('data', async () => {
        for (let i = 0; i < 150; i++) {
          log.append({ event_type: 'call_created', details: { who: process.argv[2], i } });
          // A pause between appends, as in the bridge: a writer looping flat out keeps the lock
          // and the other waits in SQLite's busy handler until it is done.
          if (i % 5 === 4) await new Promise((resolve) => setTimeout(resolve, 5));
        }
        log.close();
        process.exit(0);
      });
    `;
    const start = (who: string) => {
      const child = spawn(process.execPath, ['--import', tsx, '-e', script, dbPath(), who], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<void>((resolve, reject) => {
        child.on('error', reject);
        child.on('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`child ${who} exited ${code}: ${stderr}`)),
        );
      });
      const ready = new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        exited.catch(reject);
      });
      return { child, ready, exited };
    };
    openLog().close(); // create the schema first, as the bridge would on start
    const writers = [start('bridge'), start('cli')];
    await Promise.all(writers.map((w) => w.ready));
    for (const w of writers) w.child.stdin.end('go\n');
    await Promise.all(writers.map((w) => w.exited));

    const log = openLog();
    expect(log.verify()).toEqual({ ok: true, entries: 300 });
    const writersInOrder = log
      .list({ limit: 1000 })
      .reverse()
      .map((e) => e.details.who);
    expect(writersInOrder.filter((w) => w === 'bridge')).toHaveLength(150);
    expect(writersInOrder.filter((w) => w === 'cli')).toHaveLength(150);
    const switches = writersInOrder.filter((w, i) => i > 0 && w !== writersInOrder[i - 1]).length;
    // One switch is one writer after the other; more means they took turns at the lock.
    expect(switches).toBeGreaterThanOrEqual(2);
  });

  test('the database and its WAL are mode 0600', () => {
    const log = openLog();
    log.append({ event_type: 'call_created' });
    expect(fs.statSync(dbPath()).mode & 0o777).toBe(0o600);
    expect(fs.statSync(`${dbPath()}-wal`).mode & 0o777).toBe(0o600);
  });

  test('an existing looser file is tightened to 0600 on open', () => {
    fs.writeFileSync(dbPath(), '', { mode: 0o644 });
    fs.chmodSync(dbPath(), 0o644);
    openLog();
    expect(fs.statSync(dbPath()).mode & 0o777).toBe(0o600);
  });
});
