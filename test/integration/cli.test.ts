// The `armorclaw` command as an operator runs it: `node cli/armorclaw.js` as a child process,
// from a directory outside the repository, against the real bridge process on real Docker.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { AuditLog, auditLogPath } from '../../services/audit-log';
import {
  PROJECT_ROOT,
  removeDir,
  spawnBridge,
  type BridgeProcess,
} from '../support/bridge-process';
import { removeTestContainers, rpc, sleep } from '../support/containers';
import { ensureAgentImage, ensureDocker } from '../support/docker';

jest.setTimeout(120_000);

const CLI = path.join(PROJECT_ROOT, 'cli', 'armorclaw.js');
const hex = (n: number) => randomBytes(n).toString('hex');
const KEY_ID = `cli-it-${hex(4)}`;
const TOKEN = `sk-cli-it-${hex(16)}`;

let bridge: BridgeProcess;
let secretsDir: string;
let work: string;
const names = new Set<string>();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from `work` (outside the repository) with the test bridge's socket. */
function cli(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ARMORCLAW_SOCKET: bridge.socketPath };
    // The bridge's own settings must not steer the CLI except through the socket.
    delete env.ARMORCLAW_STATE_DIR;
    delete env.ARMORCLAW_MASTER_KEY;
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: work,
      env: { ...env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** The CLI with --json: must exit `code` and print one JSON document. */
async function cliJson(args: string[], code = 0, input?: string): Promise<any> {
  const r = await cli([...args, '--json'], { input });
  expect({ args, code: r.code }).toEqual({ args, code });
  if (code === 0) expect(r.stderr).toBe('');
  return JSON.parse(r.stdout);
}

/** `list --all --json` until `ok(run)` holds for the named run (visibility lags a little). */
async function waitForRun(name: string, ok: (run: any) => boolean, all = true): Promise<any> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const listed = await cliJson(['list', ...(all ? ['--all'] : [])]);
    const run = listed.containers.runs.find((r: any) => r.container_name === name);
    if (run && ok(run)) return run;
    if (Date.now() > deadline) throw new Error(`run ${name}: ${JSON.stringify(run)}`);
    await sleep(200);
  }
}

beforeAll(async () => {
  await ensureDocker();
  await ensureAgentImage();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'armorclaw-cli-it-'));
  secretsDir = fs.mkdtempSync('/dev/shm/armorclaw-cli-it-secrets-');
  bridge = await spawnBridge({
    env: { ARMORCLAW_MASTER_KEY: hex(32), ARMORCLAW_SECRETS_DIR: secretsDir },
  });
  const stored = await rpc(bridge.socketPath, 'store_key', {
    id: KEY_ID,
    provider: 'openai',
    token: TOKEN,
  });
  expect(stored.error).toBeUndefined();
}, 180_000);

afterAll(async () => {
  if (bridge) {
    for (const name of names) {
      await rpc(bridge.socketPath, 'stop', { container_id: name }, 60_000).catch(() => undefined);
    }
    await bridge.stop();
    await removeTestContainers(names, [bridge.dir, secretsDir]);
    removeDir(bridge.dir);
  }
  if (secretsDir) removeDir(secretsDir);
  if (work) removeDir(work);
}, 120_000);

test('status: a readable summary, and with --json exactly the bridge result', async () => {
  const r = await cli(['status']);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^bridge\s+running \(version 1\.0\.0\)$/m);
  expect(r.stdout).toContain(`socket      ${bridge.socketPath}`);
  expect(r.stdout).toMatch(/^containers\s+0 active$/m);
  // --socket wins over ARMORCLAW_SOCKET, before or after the command.
  for (const args of [
    ['status', '--json', '--socket', bridge.socketPath],
    ['--socket', bridge.socketPath, 'status', '--json'],
  ]) {
    const j = await cli(args, { env: { ARMORCLAW_SOCKET: '/nonexistent/bridge.sock' } });
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toEqual({
      version: '1.0.0',
      state: 'running',
      socket: bridge.socketPath,
      containers: 0,
      container_ids: [],
    });
  }
});

test('health: each check in a table; --json is the bridge result', async () => {
  const r = await cli(['health']);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^bridge healthy \(checked \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
  expect(r.stdout).toMatch(/^CHECK\s+STATUS\s+LATENCY\s+ERROR$/m);
  for (const check of ['temporal', 'keystore', 'configs', 'docker']) {
    expect(r.stdout).toMatch(new RegExp(`^${check}\\s+ok\\s+[\\d.]+ ms`, 'm'));
  }
  const j = await cliJson(['health']);
  expect(j.status).toBe('healthy');
  expect(j.checks.temporal.status).toBe('ok');
});

test('start, list (Active), stop, list --all (Ended); errors exit 1 with the code', async () => {
  const started = await cli([
    'start',
    '--key-id',
    KEY_ID,
    '--agent-type',
    'clitest',
    '--ttl',
    '10m',
  ]);
  expect(started.stderr).toBe('');
  expect(started.code).toBe(0);
  const name = /^started\s+(armorclaw-clitest-\d+)$/m.exec(started.stdout)?.[1];
  expect(name).toBeDefined();
  names.add(name!);
  expect(started.stdout).toMatch(/^container\s+[0-9a-f]{12}$/m);
  expect(started.stdout).toMatch(/^status\s+running$/m);

  const active = await waitForRun(name!, (run) => run.state === 'Active', false);
  expect(active).toMatchObject({ agent_type: 'clitest', key_id: KEY_ID, closed_at: null });
  expect(active.container_id).toMatch(/^[0-9a-f]{64}$/);
  const table = await cli(['list']);
  expect(table.code).toBe(0);
  expect(table.stdout).toMatch(/^CONTAINER RUNS \(\d+\)$/m);
  expect(table.stdout).toMatch(/^NAME\s+STATE\s+CONTAINER\s+AGENT\s+KEY\s+STARTED\s+ENDED$/m);
  expect(table.stdout).toMatch(
    new RegExp(
      `^${name}\\s+Active\\s+${active.container_id.slice(0, 12)}\\s+clitest\\s+${KEY_ID}\\s`,
      'm',
    ),
  );
  expect(table.stdout).toMatch(/^VOICE CALLS \(0\)\n {2}none$/m);
  const status = await cliJson(['status']);
  expect(status.container_ids).toContain(active.container_id);

  // stop by a 12-character id prefix, as docker ps shows it.
  const stopped = await cli(['stop', active.container_id.slice(0, 12)]);
  expect(stopped).toMatchObject({ code: 0, stderr: '' });
  expect(stopped.stdout).toBe(`stopped ${name} (container ${active.container_id.slice(0, 12)})\n`);
  const ended = await waitForRun(name!, (run) => run.state === 'Ended' && run.closed_at !== null);
  expect(ended.workflow_status).toBe('COMPLETED');
  const all = await cli(['list', '--all', '--limit', '5']);
  expect(all.stdout).toMatch(new RegExp(`^${name}\\s+Ended\\s`, 'm'));
  const open = await cliJson(['list']);
  expect(open.containers.runs.map((r: any) => r.container_name)).not.toContain(name);

  const again = await cli(['stop', name!]);
  expect(again.code).toBe(1);
  expect(again.stderr).toBe(
    `armorclaw: the bridge answered: Container not found: ${name} (JSON-RPC code -2)\n`,
  );
  const againJson = await cli(['stop', name!, '--json']);
  expect(againJson.code).toBe(1);
  expect(JSON.parse(againJson.stdout)).toEqual({
    error: { code: -2, message: `Container not found: ${name}` },
  });
  const unknownKey = await cli(['start', '--key-id', 'no-such-key']);
  expect(unknownKey.code).toBe(1);
  expect(unknownKey.stderr).toMatch(/credential no-such-key not found \(JSON-RPC code -32602\)/);
});

test('start --json answers the spec fields', async () => {
  const r = await cliJson(['start', '--key-id', KEY_ID, '--agent-type', 'clijson']);
  names.add(r.container_name);
  expect(Object.keys(r).sort()).toEqual(['container_id', 'container_name', 'endpoint', 'status']);
  expect(await cliJson(['stop', r.container_name])).toMatchObject({
    status: 'stopped',
    container_name: r.container_name,
  });
});

test('show: a run while it runs and once it is over; audit tail shows its container entries', async () => {
  const r = await cliJson(['start', '--key-id', KEY_ID, '--agent-type', 'clishow']);
  const name: string = r.container_name;
  names.add(name);
  const live = await cli(['show', name]);
  expect(live).toMatchObject({ code: 0, stderr: '' });
  expect(live.stdout).toMatch(
    new RegExp(`^run\\s+${name}\ncontainer\\s+${r.container_id.slice(0, 12)}$`, 'm'),
  );
  expect(live.stdout).toMatch(/^state\s+Active\nend reason\s+-$/m);
  expect(live.stdout).toMatch(/^cleanup\s+not yet$/m);

  await cliJson(['stop', name]);
  const shown = await cli(['show', name]);
  expect(shown).toMatchObject({ code: 0, stderr: '' });
  for (const line of [
    /^state\s+Ended$/m,
    /^end reason\s+stop_requested$/m,
    new RegExp(`^agent\\s+clishow \\(key ${KEY_ID}, image armorclaw/agent:v1\\)$`, 'm'),
    /^secrets mode\s+proxy \(secrets file removed\)$/m,
    /^requests\s+0$/m,
    /^tokens\s+0 input, 0 output$/m,
    /^cost\s+\$0\.00 no limit$/m,
    /^cleanup\s+done$/m,
    /^NOTIFICATIONS \(\d+\)$/m,
  ]) {
    expect(shown.stdout).toMatch(line);
  }
  expect(await cliJson(['show', name])).toMatchObject({
    state: 'Ended',
    end_reason: 'stop_requested',
    cleanup_done: true,
    container_id: r.container_id,
    secrets_mode: 'proxy',
    usage: { requests: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0, limit_usd: null },
  });
  const unknown = await cli(['show', 'armorclaw-none-1']);
  expect(unknown).toMatchObject({ code: 1, stdout: '' });
  expect(unknown.stderr).toBe(
    'armorclaw: the bridge answered: Container not found: armorclaw-none-1 (JSON-RPC code -2)\n',
  );
  const bad = await cli(['show', 'not/an/id']);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(
    /container_id must be a container id or name \(JSON-RPC code -32602\)/,
  );

  // audit tail reads every event type, not only the voice ones; oldest first.
  const table = await cli(['audit', 'tail', '--session', name]);
  expect(table).toMatchObject({ code: 0, stderr: '' });
  const rows = table.stdout.trimEnd().split('\n').slice(1);
  const rowSeqs = rows.map((row) => Number(row.split(' ')[0]));
  expect(rowSeqs).toEqual([...rowSeqs].sort((a, b) => a - b));
  // (The agent's first notification may be audited before container_started.)
  expect(rows).toContainEqual(
    expect.stringMatching(
      new RegExp(
        `^\\d+\\s+\\S+ \\S+\\s+container_started\\s+${name}\\s+-\\s+-\\s+agent_type=clishow`,
      ),
    ),
  );
  expect(rows.at(-1)).toMatch(
    new RegExp(`\\s+container_ended\\s+${name}\\s+-\\s+-\\s+agent_type=clishow .*reason=stop_`),
  );
  const ended = await cliJson(['audit', 'tail', '--type', 'container_ended', '--session', name]);
  expect(ended.entries).toEqual([
    expect.objectContaining({
      event_type: 'container_ended',
      session_id: name,
      container_id: r.container_id,
      details: expect.objectContaining({ reason: 'stop_requested', agent_type: 'clishow' }),
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    }),
  ]);
  const all = await cliJson(['audit', 'tail', '-n', '1000']);
  const seqs = all.entries.map((e: any) => e.seq);
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b)); // --json: newest last
  expect(all.entries).toContainEqual(
    expect.objectContaining({ event_type: 'container_started', session_id: name }),
  );
  // since_seq: only what came after it (a reader that keeps the last seq it saw).
  const started = all.entries.find(
    (e: any) => e.event_type === 'container_started' && e.session_id === name,
  );
  const after = await rpc(bridge.socketPath, 'audit.tail', {
    session_id: name,
    since_seq: started.seq,
  });
  expect(after.result.entries.length).toBeGreaterThan(0);
  expect(after.result.entries.every((e: any) => e.seq > started.seq)).toBe(true);
  expect(after.result.entries.at(-1).event_type).toBe('container_ended');
  for (const bad of [{ limit: 0 }, { limit: 1001 }, { since_seq: -1 }, { event_type: '' }]) {
    const res = await rpc(bridge.socketPath, 'audit.tail', bad);
    expect({ bad, code: res.error?.code }).toEqual({ bad, code: -32602 });
  }
});

test('configs attach sends the file (base64) and configs list shows it', async () => {
  const file = path.join(work, 'agent.toml');
  const content = 'model = "gpt-4"\n# ünïcode and a NUL-free binary-ish line \u00ff\n';
  fs.writeFileSync(file, content);
  const r = await cli(['configs', 'attach', file]);
  expect(r).toMatchObject({ code: 0, stderr: '' });
  const stored = path.join(bridge.stateDir, 'configs', 'agent.toml');
  expect(r.stdout).toContain(
    `attached agent.toml (toml, ${Buffer.byteLength(content)} B) at ${stored}`,
  );
  expect(fs.readFileSync(stored, 'utf8')).toBe(content);

  // A relative path, resolved against the CLI's own working directory.
  const j = await cliJson([
    'configs',
    'attach',
    'agent.toml',
    '--name',
    'other.json',
    '--type',
    'env',
  ]);
  expect(j).toMatchObject({ name: 'other.json', type: 'env', encoding: 'base64' });
  const badJson = await cli(['configs', 'attach', file, '--name', 'x.json', '--type', 'json']);
  expect(badJson.code).toBe(1);
  expect(badJson.stderr).toMatch(/not valid JSON.*\(JSON-RPC code -32602\)/);
  const missing = await cli(['configs', 'attach', path.join(work, 'nope.env')]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/cannot read .*nope\.env: ENOENT/);

  const table = await cli(['configs', 'list']);
  expect(table.code).toBe(0);
  expect(table.stdout).toMatch(/^NAME\s+SIZE\s+MODIFIED\s+PATH$/m);
  expect(table.stdout).toMatch(
    new RegExp(
      `^agent\\.toml\\s+\\d+ B\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+${stored}$`,
      'm',
    ),
  );
  const listed = await cliJson(['configs', 'list']);
  expect(listed.map((c: any) => c.name).sort()).toEqual(['agent.toml', 'other.json']);
});

test('audit tail shows the newest entries oldest first; -n, --session and --json', async () => {
  // A voice entry as the call workflow writes it (a call needs Matrix, which this bridge lacks);
  // the CLI and the bridge share the file the way the audit log is built for.
  const log = AuditLog.open({ path: auditLogPath(bridge.stateDir) });
  const session = randomBytes(16).toString('hex');
  try {
    for (const reason of ['rate_limited', 'room_not_allowed']) {
      log.append({
        event_type: 'call_rejected',
        session_id: session,
        room_id: '!room:example.org',
        user_id: '@alice:example.org',
        details: { reason },
      });
    }
  } finally {
    log.close();
  }
  const r = await cli(['audit', 'tail', '-n', '2']);
  expect(r.code).toBe(0);
  const lines = r.stdout.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^SEQ\s+TIME\s+EVENT\s+SESSION\s+ROOM\s+USER\s+DETAILS$/);
  expect(lines).toHaveLength(3);
  expect(lines[1]).toMatch(
    /call_rejected\s+\S+\s+!room:example\.org\s+@alice:example\.org\s+reason=rate_limited$/,
  );
  expect(lines[2]).toMatch(/reason=room_not_allowed$/);
  const j = await cliJson(['audit', 'tail', '--session', session, '-n', '1']);
  expect(j.entries).toHaveLength(1);
  expect(j.entries[0]).toMatchObject({
    event_type: 'call_rejected',
    details: { reason: 'room_not_allowed' },
  });
  const none = await cli(['audit', 'tail', '--session', 'no-such-session']);
  expect(none.stdout).toBe('no audit entries\n');
});

test('audit verify: ok with the head; a wrong or future anchor exits 4', async () => {
  const r = await cli(['audit', 'verify']);
  expect(r.code).toBe(0);
  const m = /^audit chain ok: (\d+) entries verified\nhead (\d+):([0-9a-f]{64})\n$/.exec(r.stdout);
  expect(m).not.toBeNull();
  expect(Number(m![1])).toBeGreaterThanOrEqual(2);
  const j = await cliJson(['audit', 'verify', '--anchor', `${m![2]}:${m![3]}`]);
  expect(j).toMatchObject({ ok: true, head: { seq: Number(m![2]), hash: m![3] } });

  const rewritten = await cli(['audit', 'verify', '--anchor', `${m![2]}:${'0'.repeat(64)}`]);
  expect(rewritten.code).toBe(4);
  expect(rewritten.stdout).toMatch(/^audit chain BROKEN at entry \d+: rewritten/);
  const truncated = await cliJson(['audit', 'verify', '--anchor', `999999:${m![3]}`], 4);
  expect(truncated).toMatchObject({ ok: false, reason: expect.stringMatching(/^truncated/) });
  expect((await cli(['audit', 'verify', '--anchor', 'nonsense'])).code).toBe(2);
});

test('matrix login: --password refused, the password read from stdin, bridge errors exit 1', async () => {
  const secret = `pw-${hex(8)}`;
  for (const args of [['--password', secret], [`--password=${secret}`]]) {
    const r = await cli(['matrix', 'login', '--username', 'bot', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^armorclaw: refusing --password/);
    expect(r.stdout + r.stderr).not.toContain(secret);
  }
  const stray = await cli(['matrix', 'login', '--username', 'bot', secret]);
  expect(stray.code).toBe(2);
  expect(stray.stdout + stray.stderr).not.toContain(secret);
  expect((await cli(['matrix', 'login', '--homeserver', 'https://x'])).code).toBe(2);
  expect((await cli(['matrix', 'login'], { input: secret })).stderr).toMatch(/needs --username/);

  // This bridge has no homeserver: the password travels and the bridge's refusal comes back.
  const r = await cli(['matrix', 'login', '--username', 'bot', '--json'], { input: secret + '\n' });
  expect(r.code).toBe(1);
  expect(JSON.parse(r.stdout)).toEqual({
    error: { code: -32603, message: expect.stringMatching(/Matrix login failed/) },
  });
  expect(r.stdout + r.stderr).not.toContain(secret);
  const empty = await cli(['matrix', 'login', '--username', 'bot'], { input: '' });
  expect(empty.code).toBe(1);
  expect(empty.stderr).toMatch(/no password given/);
});

test('rpc METHOD [JSON] prints the raw result; secrets only on stdin', async () => {
  const r = await cli(['rpc', 'webrtc.get_audit_log', '{"limit": 1}']);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout).entries).toHaveLength(1);
  expect(await cliJson(['rpc', 'list_configs'])).toHaveLength(2);

  const token = `sk-rpc-${hex(8)}`;
  const refused = await cli([
    'rpc',
    'store_key',
    JSON.stringify({ id: 'rpc-key', provider: 'xai', token }),
  ]);
  expect(refused.code).toBe(2);
  expect(refused.stdout + refused.stderr).not.toContain(token);
  const piped = await cli(['rpc', 'store_key', '-'], {
    input: JSON.stringify({ id: 'rpc-key', provider: 'xai', token }),
  });
  expect(piped.code).toBe(0);
  expect(JSON.parse(piped.stdout)).toMatchObject({ id: 'rpc-key', provider: 'xai' });
  expect(piped.stdout).not.toContain(token);

  const unknown = await cli(['rpc', 'no.such.method']);
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toMatch(/\(JSON-RPC code -32601\)/);
  const badParams = await cli(['rpc', 'status', '{"extra": 1}']);
  expect(badParams.code).toBe(1);
  expect(badParams.stderr).toMatch(/unknown field extra \(JSON-RPC code -32602\)/);
  expect((await cli(['rpc', 'status', 'not json'])).code).toBe(2);
});

test('every command has --help (exit 0); usage errors exit 2', async () => {
  for (const args of [
    ['--help'],
    ['help', 'start'],
    ...[
      'status',
      'health',
      'start',
      'stop',
      'list',
      'show',
      'configs',
      'audit',
      'matrix',
      'rpc',
    ].map((c) => [c, '--help']),
    ['configs', 'attach', '--help'],
    ['audit', 'verify', '--help'],
    ['matrix', 'login', '--help'],
    ['add-key', '--help'],
    ['list-keys', '--help'],
  ]) {
    const r = await cli(args);
    expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^usage:/);
  }
  const top = await cli(['--help']);
  expect(top.stdout).toMatch(/^ {2}3 {2}cannot reach the bridge/m);
  for (const args of [
    ['start'],
    ['stop'],
    ['show'],
    ['show', 'a', 'b'],
    ['list', '--limit', '0'],
    ['configs'],
    ['bogus'],
  ]) {
    const r = await cli(args);
    expect({ args, code: r.code }).toEqual({ args, code: 2 });
    expect(r.stderr).toMatch(/usage:/);
  }
});

test('exit 3 when no bridge answers: no socket, or a file nobody listens on', async () => {
  const stale = path.join(work, 'stale.sock');
  fs.writeFileSync(stale, '');
  for (const socket of [path.join(work, 'missing.sock'), stale]) {
    for (const args of [['status'], ['audit', 'verify'], ['list', '--json']]) {
      const r = await cli(args, { env: { ARMORCLAW_SOCKET: socket } });
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 3, stdout: '' });
      expect(r.stderr).toMatch(/^armorclaw: cannot reach the bridge: .*`bash scripts\/start\.sh`/);
    }
  }
});

// Last: it breaks this bridge's audit chain for good.
test('audit verify exits 4 once an entry of the live log is edited', async () => {
  const db = new Database(auditLogPath(bridge.stateDir));
  try {
    db.exec('DROP TRIGGER IF EXISTS entries_no_update');
    db.prepare('UPDATE entries SET details = \'{"reason":"edited"}\' WHERE seq = 1').run();
  } finally {
    db.close();
  }
  const r = await cli(['audit', 'verify']);
  expect(r.code).toBe(4);
  expect(r.stdout).toMatch(
    /^audit chain BROKEN at entry 1: hash does not match the entry content \(entry edited\)$/m,
  );
  const j = await cliJson(['audit', 'verify'], 4);
  expect(j).toMatchObject({ ok: false, first_bad_seq: 1 });
});
