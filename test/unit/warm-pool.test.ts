/**
 * The warm pool's bookkeeping against a stand-in Docker (test/integration/warm-pool.test.ts runs
 * it on the real engine): what it takes and what it leaves, refills, deaths, a missing image.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import pino from 'pino';
import { WarmPool } from '../../activities/warm-pool';
import type { StartContainerArgs } from '../../activities/container-types';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Enough of dockerode for the pool: images that exist, containers created and removed. */
function fakeDocker(images: Record<string, string>) {
  const created: Docker.ContainerCreateOptions[] = [];
  const removed: string[] = [];
  let n = 0;
  const docker = {
    listContainers: async () => [],
    getImage: (name: string) => ({
      inspect: async () => {
        if (!images[name]) throw Object.assign(new Error('no such image'), { statusCode: 404 });
        return { Id: images[name] };
      },
    }),
    createContainer: async (spec: Docker.ContainerCreateOptions) => {
      created.push(spec);
      return { id: `id-${++n}`, start: async () => undefined };
    },
    getContainer: (id: string) => ({
      remove: async () => void removed.push(id),
      rename: async () => undefined,
    }),
  };
  return { docker: docker as unknown as Docker, created, removed };
}

function pool(docker: Docker, types = [{ agentType: 'echo', image: 'a/agent:1', size: 2 }]) {
  const base = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-pool-unit-'));
  dirs.push(base);
  return new WarmPool({
    docker,
    policy: {
      network: 'none',
      memoryBytes: 512 * 2 ** 20,
      pidsLimit: 128,
      agentUid: 10001,
      secretsDir: path.join(base, 'secrets'),
      heartbeatIntervalMs: 5000,
    },
    hostId: 'h1',
    network: 'none',
    socketDirFor: (name) => path.join(base, 'sockets', name),
    types,
    maxAgeMs: 60_000,
    log: pino({ level: 'silent' }),
  });
}

const run = (over: Partial<StartContainerArgs> = {}): StartContainerArgs => ({
  containerName: 'armorclaw-echo-1',
  workflowId: 'container-armorclaw-echo-1',
  image: 'a/agent:1',
  agentType: 'echo',
  keyId: 'k',
  hostId: 'h1',
  network: 'none',
  secretsMode: 'proxy',
  limitMicroUsd: 0,
  ...over,
});

const until = async (what: () => boolean) => {
  for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(what()).toBe(true);
};

describe('WarmPool', () => {
  test('fills to its size with pool-named, pool-labelled containers holding nothing of a run', async () => {
    const { docker, created } = fakeDocker({ 'a/agent:1': 'sha256:1' });
    const p = pool(docker);
    await p.start();
    await until(() => p.status().echo!.ready === 2);
    expect(created).toHaveLength(2);
    for (const spec of created) {
      expect(spec.name).toMatch(/^armorclaw-pool-echo-[0-9a-f]{8}$/);
      expect(spec.Labels).toMatchObject({ 'armorclaw.pool': 'true', 'armorclaw.host': 'h1' });
      expect(spec.Labels!['armorclaw.key-id']).toBeUndefined();
      expect(spec.Env).toContain('ARMORCLAW_POOLED=1');
      expect(spec.HostConfig?.ReadonlyRootfs).toBe(true);
    }
    await p.stop();
  });

  test('takes only for the pool spec, then refills', async () => {
    const { docker, created } = fakeDocker({ 'a/agent:1': 'sha256:1' });
    const p = pool(docker);
    await p.start();
    await until(() => p.status().echo!.ready === 2);
    expect(p.take(run({ image: 'a/other:1' }))).toBeUndefined();
    expect(p.take(run({ memoryBytes: 2 ** 31 }))).toBeUndefined();
    expect(p.take(run({ network: 'bridge' }))).toBeUndefined();
    expect(p.take(run({ agentType: 'openclaw' }))).toBeUndefined();
    const taken = p.take(run());
    expect(taken?.id).toBe('id-1');
    expect(p.status().echo).toMatchObject({ taken: 1 });
    await until(() => p.status().echo!.ready === 2);
    expect(created).toHaveLength(3);
    await p.stop();
  });

  test('a pooled container that dies is removed and replaced', async () => {
    const { docker, created, removed } = fakeDocker({ 'a/agent:1': 'sha256:1' });
    const p = pool(docker);
    await p.start();
    await until(() => p.status().echo!.ready === 2);
    const name = String(created[0]!.name);
    p.noteDied(name);
    expect(p.status().echo!.ready).toBe(1);
    await until(() => removed.includes('id-1') && p.status().echo!.ready === 2);
    p.noteDied('armorclaw-echo-123'); // a run's container: not the pool's business
    expect(p.status().echo!.ready).toBe(2);
    await p.stop();
  });

  test('an image that is missing: nothing started, the reason in status, health fails', async () => {
    const { docker, created } = fakeDocker({});
    const p = pool(docker);
    await p.start();
    await until(() => p.status().echo!.last_error !== undefined);
    expect(created).toHaveLength(0);
    expect(p.status().echo).toMatchObject({ ready: 0, last_error: 'image a/agent:1 not found' });
    expect(() => p.assertFilling()).toThrow('echo: image a/agent:1 not found');
    await p.stop();
  });
});
