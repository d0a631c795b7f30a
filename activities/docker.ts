import { ApplicationFailure } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { ContainerFailureType } from '../workflows/definitions';
import type {
  ContainerInspection,
  StartContainerArgs,
  StartContainerResult,
} from './container-types';
import { secretsDirFor } from './secrets';

/**
 * A teardown step taking longer than this is logged while it waits (Docker's stop gives the
 * agent 5 s before it kills; the whole attempt may take 60 s).
 */
const SLOW_TEARDOWN_STEP_MS = 15_000;

export interface ContainerPolicy {
  network: string;
  memoryBytes: number;
  pidsLimit: number;
  agentUid: number;
  secretsDir: string;
  heartbeatIntervalMs: number;
}

/**
 * The per-container sockets as the Docker activities need them: the worker passes the RPC
 * layer's hub, which serves them (activities sit below rpc/ and know only this shape).
 */
export interface ContainerSockets {
  /** Serves the container's socket; `dir` is bind-mounted, `endpoint` is the spec's path. */
  open(
    containerName: string,
    opts?: { roomId?: string },
  ): Promise<{ dir: string; endpoint: string }>;
  close(containerName: string): Promise<void>;
}

/**
 * The provider proxy's side of a `proxy`-mode run: its socket in the run's socket directory,
 * served from the start until the teardown begins (the worker passes it; see worker/providers.ts).
 */
export interface ProviderEndpoints {
  open(
    containerName: string,
    socketDir: string,
    run: { keyId: string; limitMicroUsd: number },
  ): Promise<void>;
  close(containerName: string): Promise<void>;
}

export interface DockerActivitiesDeps {
  docker: Docker;
  sockets: ContainerSockets;
  providers: ProviderEndpoints;
  policy: ContainerPolicy;
  removeSecretsFile(args: { containerName: string }): Promise<void>;
  log: Logger;
}

/** Label that marks containers this bridge manages (Docker events are filtered by it). */
export const MANAGED_LABEL = 'armorclaw.managed';

const statusCode = (err: unknown): number | undefined =>
  (err as { statusCode?: number } | null)?.statusCode;

/** What makes one container: the same hardening for a run's and for a pooled one. */
interface HardenedContainer {
  name: string;
  image: string;
  memoryBytes?: number;
  network: string;
  /** Host directories bind-mounted at /run/secrets (read-only) and /run/armorclaw. */
  secretsDir: string;
  socketDir: string;
  env: string[];
  labels: Record<string, string>;
}

function hardenedSpec(
  c: HardenedContainer,
  policy: ContainerPolicy,
): Docker.ContainerCreateOptions {
  const uid = policy.agentUid;
  return {
    name: c.name,
    Image: c.image,
    User: `${uid}:${uid}`,
    Env: [...c.env, `ARMORCLAW_HEARTBEAT_MS=${policy.heartbeatIntervalMs}`],
    Labels: { [MANAGED_LABEL]: 'true', ...c.labels },
    NetworkDisabled: c.network === 'none',
    HostConfig: {
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      // Docker's default seccomp profile applies unless unconfined; we never unconfine it.
      SecurityOpt: ['no-new-privileges:true'],
      PidsLimit: policy.pidsLimit,
      Memory: c.memoryBytes ?? policy.memoryBytes,
      MemorySwap: c.memoryBytes ?? policy.memoryBytes,
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,nodev,size=64m' },
      Init: true,
      NetworkMode: c.network,
      PortBindings: {},
      PublishAllPorts: false,
      Privileged: false,
      RestartPolicy: { Name: 'no' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
      // Directories, not files: the socket is recreated on restart (docs/architecture.md, rule 8).
      Binds: [`${c.secretsDir}:/run/secrets:ro`, `${c.socketDir}:/run/armorclaw:rw`],
    },
  };
}

/** The hardened container spec of a run (docs/container-runs.md). Nothing in it is secret. */
export function containerSpec(
  args: StartContainerArgs,
  socketDir: string,
  policy: ContainerPolicy,
): Docker.ContainerCreateOptions {
  return hardenedSpec(
    {
      name: args.containerName,
      image: args.image,
      memoryBytes: args.memoryBytes,
      network: args.network,
      secretsDir: secretsDirFor(policy.secretsDir, args.containerName),
      socketDir,
      env: [`ARMORCLAW_CONTAINER_NAME=${args.containerName}`],
      labels: {
        'armorclaw.workflow-id': args.workflowId,
        'armorclaw.agent-type': args.agentType,
        'armorclaw.key-id': args.keyId,
        'armorclaw.host': args.hostId,
      },
    },
    policy,
  );
}

/**
 * A warm pool's container (activities/warm-pool.ts): the run's hardening, image and limits, but
 * no run yet: no name of a run, workflow or key in it, and ARMORCLAW_POOLED=1 tells the agent to
 * wait for its secrets file. `start` later renames it to the run's name.
 */
export function pooledContainerSpec(
  c: { name: string; image: string; memoryBytes?: number; network: string; agentType: string },
  dirs: { secretsDir: string; socketDir: string },
  hostId: string,
  policy: ContainerPolicy,
): Docker.ContainerCreateOptions {
  return hardenedSpec(
    {
      ...c,
      ...dirs,
      env: ['ARMORCLAW_POOLED=1'],
      labels: {
        'armorclaw.agent-type': c.agentType,
        'armorclaw.host': hostId,
        [POOL_LABEL]: 'true',
      },
    },
    policy,
  );
}

/** Marks a container started ahead by the warm pool (taken or not). */
export const POOL_LABEL = 'armorclaw.pool';

/** Docker work for container runs, on the host's task queue. Every function is idempotent. */
export function createDockerActivities(deps: DockerActivitiesDeps) {
  const { docker, sockets, policy, log } = deps;

  async function inspectByName(name: string): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      return await docker.getContainer(name).inspect();
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  }

  /** The run's socket and, in `proxy` mode, its provider proxy socket; idempotent. */
  async function openEndpoints(
    args: StartContainerArgs,
  ): Promise<{ dir: string; endpoint: string }> {
    const paths = await sockets.open(args.containerName, { roomId: args.roomId });
    if (args.secretsMode === 'proxy') {
      await deps.providers.open(args.containerName, paths.dir, {
        keyId: args.keyId,
        limitMicroUsd: args.limitMicroUsd,
      });
    }
    return paths;
  }

  async function startContainer(args: StartContainerArgs): Promise<StartContainerResult> {
    const paths = await openEndpoints(args);
    const existing = await inspectByName(args.containerName);
    if (existing?.State.Running) {
      // A retry after the start succeeded but before its result was recorded.
      return { containerId: existing.Id, endpoint: paths.endpoint };
    }
    if (existing) {
      await docker
        .getContainer(existing.Id)
        .remove({ force: true })
        .catch(() => undefined);
    }
    try {
      await docker.getImage(args.image).inspect();
    } catch (err) {
      if (statusCode(err) === 404) {
        throw ApplicationFailure.nonRetryable(
          `image ${args.image} not found`,
          ContainerFailureType.ImageNotFound,
        );
      }
      throw err;
    }
    let container: Docker.Container;
    try {
      container = await docker.createContainer(containerSpec(args, paths.dir, policy));
    } catch (err) {
      if (statusCode(err) === 409) {
        const raced = await inspectByName(args.containerName);
        if (raced) container = docker.getContainer(raced.Id);
        else throw err;
      } else if (statusCode(err) === 400) {
        throw ApplicationFailure.nonRetryable(
          `container spec refused: ${(err as Error).message}`,
          ContainerFailureType.InvalidSpec,
        );
      } else throw err;
    }
    await container.start().catch((err) => {
      if (statusCode(err) !== 304) throw err; // 304: already started
    });
    log.info({ containerName: args.containerName, containerId: container.id }, 'container started');
    return { containerId: container.id, endpoint: paths.endpoint };
  }

  async function inspectContainer(args: { containerName: string }): Promise<ContainerInspection> {
    const info = await inspectByName(args.containerName);
    if (!info) return { exists: false, running: false, exitCode: -1, oomKilled: false };
    return {
      exists: true,
      running: info.State.Running,
      exitCode: info.State.ExitCode,
      oomKilled: info.State.OOMKilled,
    };
  }

  async function teardownContainer(args: { containerName: string }): Promise<void> {
    const { containerName } = args;
    // Each step's time goes in the log line; one that takes long is told at once, so a
    // teardown that never finishes (the attempt times out) still says where it waits.
    const ms: Record<string, number> = {};
    const step = async (name: string, fn: () => Promise<unknown>): Promise<void> => {
      const t0 = Date.now();
      const slow = setTimeout(
        () => log.warn({ containerName, step: name }, 'teardown step slow'),
        SLOW_TEARDOWN_STEP_MS,
      );
      try {
        await fn();
      } finally {
        clearTimeout(slow);
        ms[name] = Date.now() - t0;
      }
    };
    // The model first: an ending run spends nothing more, even in its stop grace period.
    await step('providers', () => deps.providers.close(containerName));
    await step('container', async () => {
      const info = await inspectByName(containerName);
      if (!info) return;
      const c = docker.getContainer(info.Id);
      if (info.State.Running) {
        await c.stop({ t: 5 }).catch((err) => {
          if (![304, 404].includes(statusCode(err) ?? 0)) throw err;
        });
      }
      await c.remove({ force: true, v: true }).catch((err) => {
        if (statusCode(err) !== 404) throw err;
      });
    });
    await step('secrets', () => deps.removeSecretsFile({ containerName }));
    await step('sockets', () => sockets.close(containerName));
    log.info({ containerName, ms }, 'container torn down');
  }

  return { openEndpoints, startContainer, inspectContainer, teardownContainer };
}
