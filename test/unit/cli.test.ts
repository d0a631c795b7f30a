import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Keystore, keystorePath } from '../../services/keystore';

// The real entry point, as `npm install -g` would run it: node + the tsx shim.
const CLI = path.resolve(__dirname, '../../cli/armorclaw.js');
const TOKEN = 'sk-proj-cli-SECRET-' + randomBytes(8).toString('hex');

let dir: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'armorclaw-cli-'));
  // Nothing from the developer's own environment or config may leak into the run.
  env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith('ARMORCLAW_') && k !== 'TEMPORAL_ADDRESS',
    ),
  );
  Object.assign(env, {
    ARMORCLAW_STATE_DIR: path.join(dir, 'state'),
    ARMORCLAW_MASTER_KEY: randomBytes(32).toString('hex'),
    XDG_CONFIG_HOME: path.join(dir, 'xdg'),
  });
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], input = '') {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: dir, // no armorclaw.toml here
    env,
    input,
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('add-key reads the token from stdin and list-keys shows the key', () => {
  const added = run(
    [
      'add-key',
      '--provider',
      'openai',
      '--id',
      'openai-key-1',
      '--display-name',
      'Prod',
      '--tag',
      'production',
      '--tag',
      'gpt-4',
    ],
    TOKEN + '\n',
  );
  expect(added).toMatchObject({ code: 0, stderr: '' });
  expect(added.stdout).toContain('openai-key-1');

  const table = run(['list-keys']);
  expect(table.code).toBe(0);
  expect(table.stdout).toMatch(/^ID\s+PROVIDER\s+DISPLAY NAME/);
  expect(table.stdout).toMatch(/openai-key-1\s+openai\s+Prod\s+.*production,gpt-4/);
  expect(table.stdout).not.toContain(TOKEN);

  const json = run(['list-keys', '--json', '--provider', 'openai']);
  expect(json.code).toBe(0);
  expect(JSON.parse(json.stdout)).toEqual([
    {
      id: 'openai-key-1',
      provider: 'openai',
      display_name: 'Prod',
      created_at: expect.any(Number),
      expires_at: null,
      tags: ['production', 'gpt-4'],
    },
  ]);
  expect(JSON.parse(run(['list-keys', '--json', '--provider', 'xai']).stdout)).toEqual([]);

  // The state directory was created private, and the token is not stored in the clear.
  expect(fs.statSync(path.join(dir, 'state')).mode & 0o777).toBe(0o700);
  expect(fs.statSync(path.join(dir, 'state', 'keystore.db')).mode & 0o777).toBe(0o600);
  expect(fs.readFileSync(path.join(dir, 'state', 'keystore.db')).includes(TOKEN)).toBe(false);
});

test('only one trailing newline is trimmed from stdin', () => {
  expect(run(['add-key', '--provider', 'xai', '--id', 'k'], 'tok \r\n').code).toBe(0);
  const ks = Keystore.open({
    dbPath: keystorePath(path.join(dir, 'state')),
    masterKey: Buffer.from(env.ARMORCLAW_MASTER_KEY!, 'hex'),
  });
  expect(ks.get('k').token).toBe('tok ');
  ks.close();
});

test('without ARMORCLAW_MASTER_KEY a 0600 key file is created in the state directory', () => {
  delete env.ARMORCLAW_MASTER_KEY;
  expect(run(['add-key', '--provider', 'google', '--id', 'g'], TOKEN).code).toBe(0);
  const keyFile = path.join(dir, 'state', 'master.key');
  expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
  expect(run(['list-keys']).stdout).toContain('g ');
});

test('list-keys on a fresh host creates nothing', () => {
  delete env.ARMORCLAW_MASTER_KEY;
  expect(run(['list-keys'])).toEqual({ code: 0, stdout: 'no keys stored\n', stderr: '' });
  expect(fs.existsSync(path.join(dir, 'state', 'master.key'))).toBe(false);
  expect(fs.existsSync(path.join(dir, 'state', 'keystore.db'))).toBe(false);
});

test.each([[['--token', TOKEN]], [[`--token=${TOKEN}`]]])(
  'a token in argv (%#) is refused with exit 2 and not echoed',
  (tokenArgs) => {
    const r = run(['add-key', '--provider', 'openai', '--id', 'k', ...tokenArgs]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refusing --token/);
    expect(r.stderr).toMatch(/printf '%s' "\$TOKEN" \| armorclaw add-key/);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
    expect(fs.existsSync(path.join(dir, 'state', 'keystore.db'))).toBe(false);
  },
);

test('a stray argument (a token typed in the wrong place) is refused and not echoed', () => {
  const r = run(['add-key', '--provider', 'openai', '--id', 'k', TOKEN]);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/unexpected argument/);
  expect(r.stdout + r.stderr).not.toContain(TOKEN);
});

test.each([
  [[], /missing command/],
  [['frobnicate'], /unknown command "frobnicate"/],
  [['add-key', '--id', 'k'], /needs --provider/],
  [['add-key', '--provider', 'openai'], /needs --id/],
  [['add-key', '--provider', 'azure', '--id', 'k'], /--provider must be one of/],
  [['add-key', '--provider', 'openai', '--id', 'k', '--expires-at', 'tomorrow'], /--expires-at/],
  [['add-key', '--provider', 'openai', '--id', 'k', '--bogus'], /--bogus/],
  [['list-keys', '--provider', 'azure'], /--provider must be one of/],
])('usage error %j exits 2', (args, message) => {
  const r = run(args, TOKEN);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toMatch(/usage:/);
});

test('errors exit 1 with a message and no stack', () => {
  expect(run(['add-key', '--provider', 'openai', '--id', 'k'], TOKEN).code).toBe(0);

  const dup = run(['add-key', '--provider', 'openai', '--id', 'k'], 'other');
  expect(dup.code).toBe(1);
  expect(dup.stderr).toMatch(/^armorclaw: a key with id "k" already exists/);

  const empty = run(['add-key', '--provider', 'openai', '--id', 'k2'], '\n');
  expect(empty.code).toBe(1);
  expect(empty.stderr).toMatch(/no token given/);

  const badId = run(['add-key', '--provider', 'openai', '--id', 'has/slash'], TOKEN);
  expect(badId.code).toBe(1);
  expect(badId.stderr).toMatch(/^armorclaw: id: /);

  env.ARMORCLAW_MASTER_KEY = randomBytes(32).toString('hex');
  const wrongKey = run(['list-keys']);
  expect(wrongKey.code).toBe(1);
  expect(wrongKey.stderr).toMatch(/the master key does not match this keystore/);

  for (const r of [dup, empty, badId, wrongKey]) {
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  }
});
