import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { agentTypeRun, ConfigError, loadConfig } from '../../config/load';
import { OPENCLAW_IMAGE } from '../../config/settings';
import { decodeMasterKey } from '../../formats/master-key';
import { renderSampleConfig } from '../../config/sample';
import { settings } from '../../config/settings';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-config-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const HEX_KEY = 'ab'.repeat(32);

/** Loads with only the given environment (no stray ARMORCLAW_* of the machine). */
const load = (env: NodeJS.ProcessEnv, uid = 1000, configFile?: string) =>
  loadConfig({ env: { HOME: dir, ...env }, uid, configFile });

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  test('the frame cap follows configs.max_bytes unless set', () => {
    expect(load({ ARMORCLAW_CONFIG_MAX_BYTES: '3000' }, 0).socket.maxMessageBytes).toBe(
      4000 + 64 * 1024,
    );
    expect(
      load({ ARMORCLAW_CONFIG_MAX_BYTES: '3000', ARMORCLAW_SOCKET_MAX_MESSAGE_BYTES: '5000' }, 0)
        .socket.maxMessageBytes,
    ).toBe(5000);
  });

  test('as root: the spec socket and /var/lib/armorclaw', () => {
    const c = load({}, 0);
    expect(c.socket.path).toBe('/run/armorclaw/bridge.sock');
    expect(c.stateDir).toBe('/var/lib/armorclaw');
    expect(c.keystore.masterKeyFile).toBe('/var/lib/armorclaw/master.key');
    // A 1 MiB config as base64 (1,398,104 characters) plus 64 KiB for the rest of the request.
    expect(c.socket.maxMessageBytes).toBe(1_463_640);
    expect(c.socket.quietCloseMs).toBe(500);
    expect(c.temporal).toMatchObject({ namespace: 'default', address: undefined });
    expect(c.temporal.devServer).toMatchObject({ port: 7233, uiPort: 8233 });
  });

  test('as a user: under $XDG_RUNTIME_DIR and $XDG_STATE_HOME', () => {
    const c = load({ XDG_RUNTIME_DIR: '/run/user/1000', XDG_STATE_HOME: path.join(dir, 'st') });
    expect(c.socket.path).toBe('/run/user/1000/armorclaw/bridge.sock');
    expect(c.stateDir).toBe(path.join(dir, 'st', 'armorclaw'));
  });
});

describe('environment overrides', () => {
  test('every documented variable is honoured', () => {
    const c = load({
      ARMORCLAW_SOCKET: path.join(dir, 's.sock'),
      ARMORCLAW_STATE_DIR: path.join(dir, 'state'),
      ARMORCLAW_MASTER_KEY: HEX_KEY,
      TEMPORAL_ADDRESS: 'temporal.example:7233',
      TEMPORAL_NAMESPACE: 'armorclaw',
      ARMORCLAW_SOCKET_MAX_MESSAGE_BYTES: '2048',
    });
    expect(c.socket.path).toBe(path.join(dir, 's.sock'));
    expect(c.stateDir).toBe(path.join(dir, 'state'));
    expect(c.keystore.masterKey).toBe(HEX_KEY);
    expect(c.temporal.address).toBe('temporal.example:7233');
    expect(c.temporal.namespace).toBe('armorclaw');
    expect(c.socket.maxMessageBytes).toBe(2048);
  });

  test('the environment beats the file', () => {
    const file = path.join(dir, 'c.toml');
    writeFileSync(file, '[temporal]\nnamespace = "from-file"\n[socket]\nidle_timeout_ms = 5000\n');
    const c = load({ TEMPORAL_NAMESPACE: 'from-env' }, 1000, file);
    expect(c.temporal.namespace).toBe('from-env');
    expect(c.socket.idleTimeoutMs).toBe(5000);
    expect(c.configFile).toBe(file);
  });
});

describe('validation names the key and where it came from', () => {
  test.each([
    [
      { ARMORCLAW_SOCKET_MAX_MESSAGE_BYTES: 'big' },
      'socket.max_message_bytes (env ARMORCLAW_SOCKET_MAX_MESSAGE_BYTES): expected an integer',
    ],
    [{ ARMORCLAW_SOCKET_MAX_MESSAGE_BYTES: '10' }, 'must be at least 1024'],
    [
      { ARMORCLAW_TEMPORAL_UI_PORT: '70000' },
      'temporal.dev_server.ui_port (env ARMORCLAW_TEMPORAL_UI_PORT): must be at most 65535',
    ],
    [{ ARMORCLAW_LOG_LEVEL: 'loud' }, 'log.level (env ARMORCLAW_LOG_LEVEL): must be one of'],
    [
      { TEMPORAL_ADDRESS: 'localhost' },
      'temporal.address (env TEMPORAL_ADDRESS): expected host:port',
    ],
    [
      { ARMORCLAW_MASTER_KEY: 'abc' },
      'keystore.master_key (env ARMORCLAW_MASTER_KEY): must be 32 bytes',
    ],
  ])('%o', (env, message) => {
    const problems = problemsOf(() => load(env as NodeJS.ProcessEnv));
    expect(problems.join('\n')).toContain(message);
  });

  test('a bad master key is never echoed', () => {
    const secret = 'not-a-valid-key-but-still-secret';
    expect(problemsOf(() => load({ ARMORCLAW_MASTER_KEY: secret })).join('\n')).not.toContain(
      secret,
    );
  });

  test('file problems: unknown keys, wrong types, a secret in the file, broken TOML', () => {
    const file = path.join(dir, 'c.toml');
    writeFileSync(
      file,
      'state_dirr = "/x"\n[socket]\nmax_message_bytes = "1MB"\n[keystore]\nmaster_key = "' +
        HEX_KEY +
        '"\n',
    );
    const problems = problemsOf(() => load({}, 1000, file)).join('\n');
    expect(problems).toContain(`state_dirr (in ${file}): unknown setting`);
    expect(problems).toContain(
      `socket.max_message_bytes (in ${file}): expected an integer, got "1MB"`,
    );
    expect(problems).toContain(
      `keystore.master_key (in ${file}): secrets are read from ARMORCLAW_MASTER_KEY only`,
    );
    expect(problems).not.toContain(HEX_KEY);

    writeFileSync(file, '[socket\n');
    expect(problemsOf(() => load({}, 1000, file))[0]).toMatch(/not valid TOML/);
  });

  test('ARMORCLAW_CONFIG naming a missing file is an error', () => {
    expect(problemsOf(() => load({ ARMORCLAW_CONFIG: path.join(dir, 'nope.toml') }))[0]).toMatch(
      /ARMORCLAW_CONFIG: file .* does not exist/,
    );
  });
});

describe('master key encodings', () => {
  test('hex and base64 of 32 bytes decode; anything else does not', () => {
    const bytes = Buffer.alloc(32, 7);
    expect(decodeMasterKey(bytes.toString('hex'))).toEqual(bytes);
    expect(decodeMasterKey(bytes.toString('base64'))).toEqual(bytes);
    expect(decodeMasterKey(bytes.toString('base64url'))).toEqual(bytes);
    expect(decodeMasterKey(Buffer.alloc(31).toString('hex'))).toBeNull();
    expect(decodeMasterKey(Buffer.alloc(33).toString('base64'))).toBeNull();
    expect(decodeMasterKey('z'.repeat(64))).toBeNull();
  });
});

describe('the generated sample', () => {
  test('names every setting and its environment variable, and loads as valid TOML', () => {
    const sample = renderSampleConfig();
    for (const s of settings) {
      expect(sample).toContain(s.key.split('.').pop()!);
      if (s.env) expect(sample).toContain(`env: ${s.env}`);
    }
    const file = path.join(dir, 'sample.toml');
    writeFileSync(file, sample);
    expect(() => load({}, 1000, file)).not.toThrow();
  });
});

describe('provider proxy settings', () => {
  test('defaults: proxy mode, no base URL overrides, 10 s to connect, 5 min of silence', () => {
    const c = load({});
    expect(c.containers.secretsMode).toBe('proxy');
    expect(c.proxy).toEqual({ baseUrls: {}, connectTimeoutMs: 10_000, idleTimeoutMs: 300_000 });
  });

  test('base URLs per provider from the file, trailing slash dropped; file mode from the environment', () => {
    const file = path.join(dir, 'proxy.toml');
    writeFileSync(
      file,
      '[proxy.base_urls]\nopenai = "https://gw.example/openai/"\nanthropic = "http://127.0.0.1:9000"\n',
    );
    const c = load({ ARMORCLAW_SECRETS_MODE: 'file' }, 1000, file);
    expect(c.proxy.baseUrls).toEqual({
      openai: 'https://gw.example/openai',
      anthropic: 'http://127.0.0.1:9000',
    });
    expect(c.containers.secretsMode).toBe('file');
  });

  test.each([
    [{ ARMORCLAW_SECRETS_MODE: 'env' }, /containers\.secrets_mode/],
    [
      { ARMORCLAW_PROXY_BASE_URLS: '{"mistral":"https://x.example"}' },
      /unknown provider "mistral"/,
    ],
    [
      { ARMORCLAW_PROXY_BASE_URLS: '{"openai":"ftp://x.example"}' },
      /proxy\.base_urls\.openai: expected an http\(s\) URL/,
    ],
    [{ ARMORCLAW_PROXY_BASE_URLS: '{"openai":"not a url"}' }, /proxy\.base_urls\.openai/],
    [{ ARMORCLAW_BUDGET_RUN_LIMIT_USD: '-2' }, /budget\.run_limit_usd/],
    [
      { ARMORCLAW_BUDGET_RUN_LIMIT_USD: '2' },
      /budget\.run_limit_usd: needs prices in budget\.models/,
    ],
  ])('%j is refused, naming the key', (env, problem) => {
    expect(problemsOf(() => load(env)).join('\n')).toMatch(problem);
  });
});

describe('agent types', () => {
  test('by default the echo type runs the reference agent; a type not listed runs the default image', () => {
    const c = load({ ARMORCLAW_AGENT_IMAGE: 'armorclaw/other:v2' });
    expect(agentTypeRun(c.containers, 'echo')).toEqual({ image: 'armorclaw/agent:v1' });
    // The spec's default type runs OpenClaw, the image the build script pins, with room to think.
    expect(agentTypeRun(c.containers, 'openclaw')).toEqual({
      image: OPENCLAW_IMAGE,
      memoryBytes: 2 * 1024 ** 3,
    });
    const script = readFileSync(
      path.join(__dirname, '../../scripts/build-openclaw-image.sh'),
      'utf8',
    );
    const pinned = /^OPENCLAW_VERSION=\$\{ARMORCLAW_OPENCLAW_VERSION:-([^}]+)\}$/m.exec(
      script,
    )?.[1];
    expect(OPENCLAW_IMAGE).toBe(`armorclaw/openclaw:${pinned}`);
    expect(agentTypeRun(c.containers, 'mystery')).toEqual({ image: 'armorclaw/other:v2' });
    // `start`'s own image wins; the type's memory limit still applies.
    const withTypes = load({
      ARMORCLAW_AGENT_TYPES: JSON.stringify({ big: { image: 'x/big:1', memory_bytes: 2 ** 31 } }),
    });
    expect(agentTypeRun(withTypes.containers, 'big')).toEqual({
      image: 'x/big:1',
      memoryBytes: 2 ** 31,
    });
    expect(agentTypeRun(withTypes.containers, 'big', 'y/own:2')).toEqual({
      image: 'y/own:2',
      memoryBytes: 2 ** 31,
    });
    expect(agentTypeRun(withTypes.containers, 'constructor').image).toBe('armorclaw/agent:v1');
    // A configured table adds to the built-in types; it does not drop them.
    expect(agentTypeRun(withTypes.containers, 'openclaw').image).toBe(OPENCLAW_IMAGE);
    const replaced = load({ ARMORCLAW_AGENT_TYPES: '{"openclaw":{"image":"my/claw:1"}}' });
    expect(agentTypeRun(replaced.containers, 'openclaw')).toEqual({ image: 'my/claw:1' });
    expect(agentTypeRun(replaced.containers, 'echo').image).toBe('armorclaw/agent:v1');
  });

  test.each([
    ['{"Bad Name":{"image":"a/b:1"}}', /containers\.agent_types\.Bad Name: a type name/],
    ['{"t":{"image":"A B"}}', /containers\.agent_types\.t\.image: expected an image reference/],
    [
      '{"t":{"image":"a/b:1","memory_bytes":1024}}',
      /memory_bytes: expected an integer of at least/,
    ],
    ['{"t":{"image":"a/b:1","cpus":2}}', /unknown field\(s\) cpus/],
    ['{"t":"a/b:1"}', /expected a table/],
  ])('%s is refused, naming the key', (json, problem) => {
    expect(problemsOf(() => load({ ARMORCLAW_AGENT_TYPES: json })).join('\n')).toMatch(problem);
  });

  test('containers.warm_pool: off by default, sizes per agent type, zero dropped', () => {
    expect(load({}).containers.warmPool).toEqual({});
    expect(load({}).containers.warmPoolMaxAgeMs).toBe(30 * 60_000);
    const c = load({
      ARMORCLAW_WARM_POOL: '{"echo":3,"openclaw":0}',
      ARMORCLAW_WARM_POOL_MAX_AGE: '10m',
    }).containers;
    expect(c.warmPool).toEqual({ echo: 3 });
    expect(c.warmPoolMaxAgeMs).toBe(600_000);
  });

  test.each([
    ['{"nosuch":1}', /containers\.warm_pool\.nosuch: not an agent type .*echo/],
    ['{"echo":-1}', /containers\.warm_pool\.echo: expected a whole number from 0 to 20/],
    ['{"echo":21}', /containers\.warm_pool\.echo: expected a whole number from 0 to 20/],
    ['{"echo":1.5}', /containers\.warm_pool\.echo: expected a whole number/],
    ['{"echo":"2"}', /containers\.warm_pool\.echo: expected a whole number/],
  ])('warm_pool %s is refused, naming the key', (json, problem) => {
    expect(problemsOf(() => load({ ARMORCLAW_WARM_POOL: json })).join('\n')).toMatch(problem);
  });
});
