import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { chown, mkdir, rename, rm, stat } from 'node:fs/promises';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { StartContainerArgs } from './container-types';
import { POOL_LABEL, MANAGED_LABEL, pooledContainerSpec, type ContainerPolicy } from './docker';
import { secretsDirFor } from './secrets';

/** One agent type's pool: its image and memory limit are what its runs get. */
export interface WarmPoolType {
  agentType: string;
  image: string;
  memoryBytes?: number;
  size: number;
}

/** A started, unclaimed container of the pool. */
export interface PooledContainer {
  name: string;
  id: string;
  agentType: string;
  createdMs: number;
  /** The image id it runs: a tag moved to a new image makes it stale. */
  imageId: string;
}

/** What `status` and `health` show of one agent type's pool. */
export interface WarmPoolTypeStatus {
  image: string;
  size: number;
  ready: number;
  starting: number;
  /** Containers handed to runs since the bridge started. */
  taken: number;
  /** Why the last refill failed (image missing, Docker refused), until one succeeds. */
  last_error?: string;
}

export interface WarmPoolDeps {
  docker: Docker;
  policy: ContainerPolicy;
  hostId: string;
  /** containers.network: pooled containers join the network every run joins. */
  network: string;
  /** The host directory bind-mounted at /run/armorclaw for `containerName`. */
  socketDirFor(containerName: string): string;
  types: WarmPoolType[];
  maxAgeMs: number;
  log: Logger;
  /**
   * How often the pool looks at its containers (deaths, age, image changes); default 10 s, or
   * half of `maxAgeMs` when that is shorter (at least 1 s).
   */
  checkIntervalMs?: number;
}

/** Pooled containers are named `armorclaw-pool-<agent type>-<8 hex>` until a run takes one. */
export const POOL_NAME_PREFIX = 'armorclaw-pool-';
export const isPoolName = (name: string) => name.startsWith(POOL_NAME_PREFIX);

const statusCode = (err: unknown): number | undefined =>
  (err as { statusCode?: number } | null)?.statusCode;

/**
 * The warm pool (`containers.warm_pool`): per agent type, hardened containers created and
 * started ahead with empty secrets and socket directories, their agent waiting for a secrets
 * file (ARMORCLAW_POOLED=1). A run's launch takes one (`take`), moves the two directories and
 * the container's name over to the run (`handOver`), and the run's own steps follow as for a new
 * container: its socket, its secrets file. The pool refills in the background.
 *
 * Its state is Docker's: a pooled container holds no secret and belongs to no run, so a bridge
 * killed at any point finds its pool by label when it starts again, adopts what is sound and
 * removes the rest (`start`). A taken container carries the run's name, which is how the orphan
 * reaper and the Docker event watcher find its run. Containers older than `maxAgeMs`, or whose
 * image's tag has moved, are replaced.
 */
export class WarmPool {
  private readonly ready = new Map<string, PooledContainer[]>();
  private readonly starting = new Map<string, number>();
  private readonly taken = new Map<string, number>();
  private readonly errors = new Map<string, string>();
  /** Pool containers in someone's hands (being created, handed over, removed). */
  private readonly busy = new Set<string>();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private checking?: Promise<void>;

  constructor(private readonly deps: WarmPoolDeps) {
    for (const t of deps.types) this.ready.set(t.agentType, []);
  }

  /** Adopts the pool a previous process left (or removes it), then fills in the background. */
  async start(): Promise<void> {
    await this.adopt();
    this.fill();
    const every =
      this.deps.checkIntervalMs ?? Math.min(10_000, Math.max(1_000, this.deps.maxAgeMs / 2));
    this.timer = setInterval(() => void this.check(), every);
    this.timer.unref();
  }

  /** Stops refilling; the containers stay for the next start to adopt. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.checking;
  }

  /**
   * A ready container for a run with exactly the pool's spec (agent type, image, memory,
   * network), taken out of the pool; undefined when there is none.
   */
  take(args: StartContainerArgs): PooledContainer | undefined {
    const type = this.typeOf(args.agentType);
    if (
      !type ||
      args.image !== type.image ||
      args.memoryBytes !== type.memoryBytes ||
      args.network !== this.deps.network
    ) {
      return undefined;
    }
    const pooled = this.ready.get(type.agentType)!.shift();
    if (!pooled) return undefined;
    this.busy.add(pooled.name);
    this.taken.set(type.agentType, (this.taken.get(type.agentType) ?? 0) + 1);
    this.fill();
    return pooled;
  }

  /**
   * Gives a taken container to `containerName`: its secrets and socket directories are renamed
   * to the run's first (the bind mounts follow the directories); then the container is renamed
   * while `meanwhile` (the run's own steps in those directories) runs, and its result is
   * returned. A failure to move the container removes it; the run's launch then makes a new one.
   */
  async handOver<T>(
    pooled: PooledContainer,
    containerName: string,
    meanwhile: () => Promise<T>,
  ): Promise<T> {
    const { policy, docker } = this.deps;
    let steps: Promise<T> | undefined;
    try {
      await rename(
        secretsDirFor(policy.secretsDir, pooled.name),
        secretsDirFor(policy.secretsDir, containerName),
      );
      await rename(this.deps.socketDirFor(pooled.name), this.deps.socketDirFor(containerName));
      steps = meanwhile();
      await docker.getContainer(pooled.id).rename({ name: containerName });
    } catch (err) {
      this.deps.log.warn(
        { err, pooled: pooled.name, containerName },
        'pooled container not handed over; starting a new one',
      );
      await steps?.catch(() => undefined);
      await this.remove(pooled.name, pooled.id);
      throw err;
    } finally {
      this.busy.delete(pooled.name);
    }
    const result = await steps;
    this.deps.log.info({ pooled: pooled.name, containerName }, 'pooled container taken');
    return result;
  }

  status(): Record<string, WarmPoolTypeStatus> {
    const out: Record<string, WarmPoolTypeStatus> = {};
    for (const t of this.deps.types) {
      const error = this.errors.get(t.agentType);
      out[t.agentType] = {
        image: t.image,
        size: t.size,
        ready: this.ready.get(t.agentType)!.length,
        starting: this.starting.get(t.agentType) ?? 0,
        taken: this.taken.get(t.agentType) ?? 0,
        ...(error ? { last_error: error } : {}),
      };
    }
    return out;
  }

  /** For `health`: throws when a type's pool is empty and cannot fill (its last error). */
  assertFilling(): void {
    for (const [agentType, s] of Object.entries(this.status())) {
      if (s.ready === 0 && s.last_error) throw new Error(`${agentType}: ${s.last_error}`);
    }
  }

  /** Docker said a container died: a pooled one leaves the pool and is replaced. */
  noteDied(name: string): void {
    if (!isPoolName(name)) return;
    for (const list of this.ready.values()) {
      const i = list.findIndex((p) => p.name === name);
      if (i < 0) continue;
      const [dead] = list.splice(i, 1);
      this.deps.log.warn({ pooled: name }, 'pooled container died; replacing it');
      void this.remove(dead!.name, dead!.id).then(() => this.fill());
    }
  }

  /** Looks at every pooled container now (the periodic check); resolves when done. */
  check(): Promise<void> {
    this.checking ??= this.checkOnce().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private typeOf(agentType: string): WarmPoolType | undefined {
    return this.deps.types.find((t) => t.agentType === agentType);
  }

  private async listPoolContainers(): Promise<Docker.ContainerInfo[]> {
    const found = await this.deps.docker.listContainers({
      all: true,
      filters: {
        label: [
          `${MANAGED_LABEL}=true`,
          `${POOL_LABEL}=true`,
          `armorclaw.host=${this.deps.hostId}`,
        ],
      },
    });
    // Taken containers keep the label but carry their run's name; a pool whose secrets
    // directories are elsewhere is another bridge's.
    const secretsDir = path.resolve(this.deps.policy.secretsDir);
    return found.filter(
      (c) =>
        isPoolName(nameOf(c)) &&
        c.Mounts.some(
          (m) => m.Destination === '/run/secrets' && path.dirname(m.Source) === secretsDir,
        ),
    );
  }

  private async adopt(): Promise<void> {
    const images = new Map<string, string | undefined>();
    for (const c of await this.listPoolContainers()) {
      const name = nameOf(c);
      const type = this.typeOf(c.Labels['armorclaw.agent-type'] ?? '');
      let keep = false;
      if (type && c.State === 'running') {
        if (!images.has(type.image)) images.set(type.image, await this.imageId(type.image));
        const info = await this.deps.docker
          .getContainer(c.Id)
          .inspect()
          .catch(() => undefined);
        keep =
          info !== undefined &&
          this.ready.get(type.agentType)!.length < type.size &&
          info.Image === images.get(type.image) &&
          info.Config.Image === type.image &&
          info.HostConfig.Memory === (type.memoryBytes ?? this.deps.policy.memoryBytes) &&
          info.HostConfig.NetworkMode === this.deps.network &&
          Date.now() - Date.parse(info.Created) < this.deps.maxAgeMs &&
          (await this.dirsExist(name));
        if (keep) {
          this.ready.get(type.agentType)!.push({
            name,
            id: c.Id,
            agentType: type.agentType,
            createdMs: Date.parse(info!.Created),
            imageId: info!.Image,
          });
        }
      }
      if (!keep) await this.remove(name, c.Id);
    }
    const adopted = [...this.ready.values()].reduce((n, l) => n + l.length, 0);
    if (adopted > 0) this.deps.log.info({ adopted }, 'warm pool adopted');
  }

  private async checkOnce(): Promise<void> {
    if (this.stopped) return;
    try {
      const listed = new Map((await this.listPoolContainers()).map((c) => [nameOf(c), c]));
      const images = new Map<string, string | undefined>();
      for (const t of this.deps.types) images.set(t.image, await this.imageId(t.image));
      for (const [agentType, list] of this.ready) {
        const image = images.get(this.typeOf(agentType)!.image);
        for (const p of [...list]) {
          const seen = listed.get(p.name);
          const stale =
            seen?.State !== 'running' ||
            Date.now() - p.createdMs >= this.deps.maxAgeMs ||
            p.imageId !== image;
          if (!stale) continue;
          list.splice(list.indexOf(p), 1);
          await this.remove(p.name, p.id);
        }
      }
      // Strays: a creation that failed half way, or one a stop interrupted.
      const known = new Set([...this.ready.values()].flat().map((p) => p.name));
      for (const [name, c] of listed) {
        if (!known.has(name) && !this.busy.has(name)) await this.remove(name, c.Id);
      }
    } catch (err) {
      this.deps.log.warn({ err }, 'warm pool check failed');
    }
    this.fill();
  }

  /** Starts as many creations as each type is short of. */
  private fill(): void {
    if (this.stopped) return;
    for (const type of this.deps.types) {
      const have =
        this.ready.get(type.agentType)!.length + (this.starting.get(type.agentType) ?? 0);
      for (let i = have; i < type.size; i++) void this.createOne(type);
    }
  }

  private async createOne(type: WarmPoolType): Promise<void> {
    const { docker, policy, log } = this.deps;
    const name = `${POOL_NAME_PREFIX}${type.agentType}-${randomBytes(4).toString('hex')}`;
    this.starting.set(type.agentType, (this.starting.get(type.agentType) ?? 0) + 1);
    this.busy.add(name);
    let id: string | undefined;
    try {
      const imageId = await this.imageId(type.image);
      if (!imageId) throw new Error(`image ${type.image} not found`);
      const secretsDir = secretsDirFor(policy.secretsDir, name);
      const socketDir = this.deps.socketDirFor(name);
      await mkdir(policy.secretsDir, { recursive: true, mode: 0o711 });
      await mkdir(secretsDir, { mode: 0o700 });
      await mkdir(socketDir, { recursive: true, mode: 0o750 });
      if (process.getuid?.() === 0) {
        await chown(secretsDir, policy.agentUid, policy.agentUid);
        await chown(socketDir, 0, policy.agentUid);
      }
      const container = await docker.createContainer(
        pooledContainerSpec(
          { name, ...type, network: this.deps.network },
          { secretsDir, socketDir },
          this.deps.hostId,
          policy,
        ),
      );
      id = container.id;
      await container.start();
      if (this.stopped) return;
      this.ready.get(type.agentType)!.push({
        name,
        id,
        agentType: type.agentType,
        createdMs: Date.now(),
        imageId,
      });
      this.errors.delete(type.agentType);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // Said once per cause; the periodic check tries again.
      if (this.errors.get(type.agentType) !== message) {
        log.warn({ agentType: type.agentType, err: message }, 'warm pool: container not started');
      }
      this.errors.set(type.agentType, message);
      await this.remove(name, id);
    } finally {
      this.busy.delete(name);
      this.starting.set(type.agentType, this.starting.get(type.agentType)! - 1);
    }
  }

  private async imageId(image: string): Promise<string | undefined> {
    try {
      return (await this.deps.docker.getImage(image).inspect()).Id;
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  }

  private async dirsExist(name: string): Promise<boolean> {
    const dirs = [secretsDirFor(this.deps.policy.secretsDir, name), this.deps.socketDirFor(name)];
    const found = await Promise.all(
      dirs.map((d) =>
        stat(d).then(
          (s) => s.isDirectory(),
          () => false,
        ),
      ),
    );
    return found.every(Boolean);
  }

  /** Removes a pooled container (by id, when known) and its two directories. */
  private async remove(name: string, id?: string): Promise<void> {
    this.busy.add(name);
    try {
      if (id) {
        await this.deps.docker
          .getContainer(id)
          .remove({ force: true, v: true })
          .catch((err) => {
            if (statusCode(err) !== 404) throw err;
          });
      }
      await rm(secretsDirFor(this.deps.policy.secretsDir, name), { recursive: true, force: true });
      await rm(this.deps.socketDirFor(name), { recursive: true, force: true });
    } catch (err) {
      this.deps.log.warn({ err, pooled: name }, 'warm pool: container not removed');
    } finally {
      this.busy.delete(name);
    }
  }
}

const nameOf = (c: Docker.ContainerInfo) => (c.Names[0] ?? '').replace(/^\//, '');
