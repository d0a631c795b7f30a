// `armorclaw relay …`, run in-process: `credential` and `serve` on a temporary state directory,
// `link`, `status` and `unlink` against a fake bridge, the credential fed on a fake stdin.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import pino from 'pino';
import { ExitCode } from '../../cli/args';
import { runCli } from '../../cli/cli';
import type { CliContext } from '../../cli/command';
import { relayStateDir, runRelay } from '../../cli/commands/relay';
import { formatTimeAgo } from '../../cli/format';
import { readRelayCredentialHash } from '../../relay/credential';

interface Fake {
  ctx: CliContext;
  out: () => string;
  err: () => string;
  calls: Array<{ socket: string; method: string; params: unknown }>;
}

const NOW = Date.parse('2026-02-11T12:00:00Z');
const CREDENTIAL = 'acrl_' + 'Q'.repeat(43);

/** A context whose bridge answers from `answer` and records every call. */
function fake(answer: (method: string, params: unknown) => unknown = () => ({}), env = {}): Fake {
  let out = '';
  let err = '';
  const calls: Fake['calls'] = [];
  const ctx: CliContext = {
    write: (t) => void (out += t),
    warn: (t) => void (err += t),
    env: { ARMORCLAW_SOCKET: '/env/bridge.sock', ARMORCLAW_RELAY_STATE_DIR: dir, ...env },
    now: () => NOW,
    bridge: (socket) => async (method, params) => {
      calls.push({ socket, method, params });
      return answer(method, params);
    },
  };
  return { ctx, out: () => out, err: () => err, calls };
}

let dir: string;
const stdinDescriptor = Object.getOwnPropertyDescriptor(process, 'stdin')!;

/** Feeds `text` as stdin (not a terminal) for the next command. */
function feedStdin(text: string): void {
  Object.defineProperty(process, 'stdin', {
    configurable: true,
    value: Readable.from([Buffer.from(text)]),
  });
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'armorclaw-relay-cli-'));
});
afterEach(() => {
  Object.defineProperty(process, 'stdin', stdinDescriptor);
  fs.rmSync(dir, { recursive: true, force: true });
});

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('relay credential', () => {
  test('prints a new credential once and keeps only its hash, in a 0600 file', async () => {
    const f = fake();
    expect(await runCli(['relay', 'credential'], f.ctx)).toBe(ExitCode.Ok);
    const credential = f.out().trim();
    expect(credential).toMatch(/^acrl_[A-Za-z0-9_-]{43}$/);
    expect(f.out()).toBe(credential + '\n');
    expect(f.err()).toMatch(/shown only this once/);
    expect(f.err()).toMatch(/previous credential no longer links/);
    expect(f.err()).not.toContain(credential);

    const file = path.join(dir, 'relay.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const text = fs.readFileSync(file, 'utf8');
    expect(text).not.toContain(credential);
    expect(text).not.toContain(credential.slice(5));
    expect(JSON.parse(text)).toEqual({
      credential_sha256: sha256(credential),
      created_at: new Date(NOW).toISOString(),
    });
    expect(readRelayCredentialHash(dir)).toBe(sha256(credential));
    expect(fs.readdirSync(dir)).toEqual(['relay.json']);
  });

  test('a new credential replaces the old one', async () => {
    const a = fake();
    await runCli(['relay', 'credential'], a.ctx);
    const b = fake();
    await runCli(['relay', 'credential'], b.ctx);
    expect(b.out()).not.toBe(a.out());
    expect(readRelayCredentialHash(dir)).toBe(sha256(b.out().trim()));
  });

  test('--state picks the directory (made 0700); --json prints {credential}', async () => {
    const state = path.join(dir, 'elsewhere');
    const f = fake();
    expect(await runCli(['relay', 'credential', '--state', state, '--json'], f.ctx)).toBe(0);
    const { credential } = JSON.parse(f.out()) as { credential: string };
    expect(readRelayCredentialHash(state)).toBe(sha256(credential));
    expect(fs.statSync(state).mode & 0o777).toBe(0o700);
    expect(fs.existsSync(path.join(dir, 'relay.json'))).toBe(false);
  });

  test('the state directory: --state, else the environment, else ~/.armorclaw-relay', () => {
    expect(relayStateDir('/x/y', { ARMORCLAW_RELAY_STATE_DIR: '/a' })).toBe('/x/y');
    expect(relayStateDir(undefined, { ARMORCLAW_RELAY_STATE_DIR: '/a' })).toBe('/a');
    expect(relayStateDir(undefined, { HOME: '/home/op' })).toBe('/home/op/.armorclaw-relay');
  });

  test('it takes no arguments', async () => {
    const f = fake();
    expect(await runCli(['relay', 'credential', 'extra'], f.ctx)).toBe(ExitCode.Usage);
    expect(f.err()).not.toContain('extra');
    expect(fs.existsSync(path.join(dir, 'relay.json'))).toBe(false);
  });
});

describe('relay serve', () => {
  test('refuses to start without a credential', async () => {
    const f = fake();
    expect(await runCli(['relay', 'serve', '--port', '0'], f.ctx)).toBe(ExitCode.Error);
    expect(f.err()).toMatch(/run `armorclaw relay credential` first/);
  });

  test.each([
    [['--port', 'http'], /--port must be a whole number from 0 to 65535/],
    [['--port', '70000'], /--port must be/],
    [['--tls-cert', '/c.pem'], /--tls-cert and --tls-key go together/],
    [['--tls-key', '/k.pem'], /--tls-cert and --tls-key go together/],
    [['--socket', '/s'], /--socket/],
    [['extra'], /unexpected argument/],
  ])('usage error: %j', async (args, message) => {
    const f = fake();
    expect(await runCli(['relay', 'serve', ...args], f.ctx)).toBe(ExitCode.Usage);
    expect(f.err()).toMatch(message);
  });

  test('an unreadable certificate is a clear failure', async () => {
    await runCli(['relay', 'credential'], fake().ctx);
    const f = fake();
    const args = ['--port', '0', '--tls-cert', path.join(dir, 'no.pem'), '--tls-key', 'no.key'];
    expect(await runCli(['relay', 'serve', ...args], f.ctx)).toBe(ExitCode.Error);
    expect(f.err()).toMatch(/cannot start the relay: .*no\.pem/);
  });

  test('runRelay listens, logs its URL, and closes when told to stop', async () => {
    let logged = '';
    const log = pino(
      { base: null },
      new Writable({
        write(chunk, _enc, done) {
          logged += String(chunk);
          done();
        },
      }),
    );
    let stop!: () => void;
    const stopped = new Promise<void>((r) => (stop = r));
    const running = runRelay(
      { host: '127.0.0.1', port: 0, credentialSha256: sha256(CREDENTIAL), log },
      stopped,
    );
    let url: string | undefined;
    for (let i = 0; i < 100 && !url; i++) {
      await new Promise((r) => setTimeout(r, 20));
      url = /relay listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(logged)?.[1];
    }
    expect(url).toBeDefined();
    const health = await fetch(`${url}/health`, { headers: { connection: 'close' } });
    expect(await health.json()).toEqual({ ok: true, bridge: 'disconnected' });
    stop();
    await running;
    expect(logged).toMatch(/relay stopped/);
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });
});

describe('relay link', () => {
  const LINKED = { url: 'https://relay.example.com', linked: true };

  test('reads the credential from stdin and sends it to the bridge, never printing it', async () => {
    const f = fake(() => LINKED);
    feedStdin(CREDENTIAL + '\n');
    expect(await runCli(['relay', 'link', 'https://relay.example.com'], f.ctx)).toBe(0);
    expect(f.calls).toEqual([
      {
        socket: '/env/bridge.sock',
        method: 'relay.link',
        params: { url: 'https://relay.example.com', credential: CREDENTIAL },
      },
    ]);
    expect(f.out()).toMatch(/^linked to the relay at https:\/\/relay\.example\.com/);
    expect(f.out() + f.err()).not.toContain(CREDENTIAL);
  });

  test('--json prints the raw result', async () => {
    const f = fake(() => LINKED);
    feedStdin(CREDENTIAL);
    expect(await runCli(['relay', 'link', 'wss://relay.example.com', '--json'], f.ctx)).toBe(0);
    expect(JSON.parse(f.out())).toEqual(LINKED);
  });

  test.each([
    [['--credential', CREDENTIAL, 'https://r.example']],
    [[`--credential=${CREDENTIAL}`, 'https://r.example']],
    [['https://r.example', CREDENTIAL]],
    [[CREDENTIAL]],
  ])('a credential on the command line is refused without echo: %#', async (args) => {
    const f = fake(() => LINKED);
    feedStdin(CREDENTIAL);
    expect(await runCli(['relay', 'link', ...args], f.ctx)).toBe(ExitCode.Usage);
    expect(f.calls).toEqual([]);
    expect(f.out() + f.err()).not.toContain(CREDENTIAL.slice(5));
    expect(f.err()).toMatch(/stdin/);
  });

  test.each([
    [[], /missing URL/],
    [['https://a.example', 'https://b.example'], /too many arguments/],
    [['relay.example.com'], /URL must be the relay's URL/],
    [['ftp://relay.example.com'], /URL must be https:\/\/, wss:\/\//],
    [['https://user:pw@relay.example.com'], /no user, password, query or fragment/],
    [['https://relay.example.com/?key=1'], /no user, password, query or fragment/],
  ])('usage error: %j', async (args, message) => {
    const f = fake(() => LINKED);
    feedStdin(CREDENTIAL);
    expect(await runCli(['relay', 'link', ...args], f.ctx)).toBe(ExitCode.Usage);
    expect(f.err()).toMatch(message);
    expect(f.calls).toEqual([]);
  });

  test('an empty stdin or something that is no credential is refused, not echoed', async () => {
    const empty = fake(() => LINKED);
    feedStdin('\n');
    expect(await runCli(['relay', 'link', 'https://r.example'], empty.ctx)).toBe(ExitCode.Error);
    expect(empty.err()).toMatch(/no credential given/);

    const other = fake(() => LINKED);
    feedStdin('sk-proj-not-a-relay-credential');
    expect(await runCli(['relay', 'link', 'https://r.example'], other.ctx)).toBe(ExitCode.Error);
    expect(other.err()).toMatch(/not a relay credential/);
    expect(other.err()).not.toContain('sk-proj');
    expect(empty.calls.concat(other.calls)).toEqual([]);
  });
});

describe('relay status and unlink', () => {
  test('status of a connected link', async () => {
    const status = {
      linked: true,
      url: 'https://relay.example.com',
      connected: true,
      connectedSince: '2026-02-11T11:55:00.000Z',
      reconnects: 2,
      lastError: 'ECONNRESET',
    };
    const f = fake(() => status);
    expect(await runCli(['relay', 'status', '--socket', '/s'], f.ctx)).toBe(0);
    expect(f.calls).toEqual([{ socket: '/s', method: 'relay.status', params: {} }]);
    expect(f.out()).toBe(
      'relay       https://relay.example.com\n' +
        `connected   yes, since ${formatTimeAgo(status.connectedSince, NOW)}\n` +
        'reconnects  2\n' +
        'last error  ECONNRESET\n',
    );
  });

  test('status of a link that is down, and of no link', async () => {
    const down = fake(() => ({
      linked: true,
      url: 'https://r.example',
      connected: false,
      reconnects: 5,
    }));
    await runCli(['relay', 'status'], down.ctx);
    expect(down.out()).toMatch(/connected +no \(the bridge keeps retrying\)\n/);
    expect(down.out()).toMatch(/last error +-\n/);

    const none = fake(() => ({ linked: false, connected: false, reconnects: 0 }));
    await runCli(['relay', 'status'], none.ctx);
    expect(none.out()).toBe('not linked to a relay (armorclaw relay link URL links it)\n');
  });

  test('status --json prints the raw result', async () => {
    const raw = { linked: false, connected: false, reconnects: 0 };
    const f = fake(() => raw);
    await runCli(['relay', 'status', '--json'], f.ctx);
    expect(JSON.parse(f.out())).toEqual(raw);
  });

  test('unlink', async () => {
    const f = fake(() => ({ linked: false }));
    expect(await runCli(['relay', 'unlink'], f.ctx)).toBe(0);
    expect(f.calls.map((c) => c.method)).toEqual(['relay.unlink']);
    expect(f.out()).toBe('unlinked: the bridge no longer dials a relay\n');
    const j = fake(() => ({ linked: false }));
    await runCli(['relay', 'unlink', '--json'], j.ctx);
    expect(JSON.parse(j.out())).toEqual({ linked: false });
  });

  test.each([
    [['relay'], /relay needs serve, credential, link, status or unlink/],
    [['relay', 'bogus'], /unknown relay subcommand "bogus"/],
    [['relay', 'status', 'extra'], /unexpected argument/],
    [['relay', 'unlink', '--bogus'], /--bogus/],
  ])('usage error: %j', async (args, message) => {
    const f = fake();
    expect(await runCli(args, f.ctx)).toBe(ExitCode.Usage);
    expect(f.err()).toMatch(message);
    expect(f.calls).toEqual([]);
  });

  test('--help prints the usage', async () => {
    for (const args of [
      ['relay', '--help'],
      ['relay', 'link', '--help'],
      ['help', 'relay'],
    ]) {
      const f = fake();
      expect(await runCli(args, f.ctx)).toBe(0);
      expect(f.out()).toMatch(/armorclaw relay serve/);
    }
  });
});
