import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { AuditLog } from '../services/audit-log';
import type { Keystore } from '../services/keystore';
import type { Client } from '@temporalio/client';
import { createAuditActivities } from './audit';
import { createBudgetActivities, type BudgetActivities } from './budget';
import type { HostContainerActivities, SharedActivities } from './container-types';
import {
  createDockerActivities,
  type ContainerPolicy,
  type ContainerSockets,
  type ProviderEndpoints,
} from './docker';
import { createMatrixActivities, type MatrixActivities, type MatrixActivityDeps } from './matrix';
import { createSecretsActivities } from './secrets';
import type { WarmPool } from './warm-pool';
import { Context } from '@temporalio/activity';

export interface ActivityDeps {
  matrix: Omit<MatrixActivityDeps, 'auditLog' | 'log'>;
  docker: Docker;
  keystore: Keystore;
  auditLog: AuditLog;
  sockets: ContainerSockets;
  providers: ProviderEndpoints;
  policy: ContainerPolicy;
  /** containers.warm_pool: absent when no agent type has one. */
  pool?: WarmPool;
  log: Logger;
}

/** Activities for the host's task queue (Docker, secrets tmpfs, container sockets, Matrix). */
export function createHostActivities(
  deps: ActivityDeps,
): HostContainerActivities & MatrixActivities {
  const secrets = createSecretsActivities({
    keystore: deps.keystore,
    secretsDir: deps.policy.secretsDir,
    agentUid: deps.policy.agentUid,
    log: deps.log.child({ component: 'secrets' }),
  });
  const { openEndpoints, ...docker } = createDockerActivities({
    docker: deps.docker,
    sockets: deps.sockets,
    providers: deps.providers,
    policy: deps.policy,
    removeSecretsFile: secrets.removeSecretsFile,
    log: deps.log.child({ component: 'docker' }),
  });
  const matrix = createMatrixActivities({
    ...deps.matrix,
    auditLog: deps.auditLog,
    log: deps.log.child({ component: 'matrix' }),
  });
  return {
    ...secrets,
    ...docker,
    ...matrix,
    async launchContainer({ audit, ...args }) {
      const secretsArgs = {
        containerName: args.containerName,
        keyId: args.keyId,
        secretsMode: args.secretsMode,
      };
      // Only a first attempt takes from the pool: a retry finds whatever the first one left
      // (the container under the run's name, or only its directories) and goes on from there.
      const pooled =
        deps.pool && Context.current().info.attempt === 1 ? deps.pool.take(args) : undefined;
      let started;
      if (pooled) {
        // The container is renamed while its sockets open and then its secrets file is written
        // (the agent, waiting for the file, finds its sockets there when the file appears).
        const endpoint = await deps.pool!.handOver(pooled, args.containerName, async () => {
          const paths = await openEndpoints(args);
          await secrets.writeSecretsFile(secretsArgs);
          return paths.endpoint;
        });
        started = { containerId: pooled.id, endpoint };
      } else {
        await secrets.writeSecretsFile(secretsArgs);
        started = await docker.startContainer(args);
      }
      // `dedupe_key` makes a retried launch write it once.
      deps.auditLog.append({ ...audit, container_id: started.containerId });
      return started;
    },
  };
}

/** Activities for the shared task queue: audit, and budget enforcement (needs Temporal). */
export function createSharedActivities(
  deps: Pick<ActivityDeps, 'auditLog' | 'log'> & { client: Client },
): SharedActivities & BudgetActivities {
  return {
    ...createAuditActivities(deps),
    ...createBudgetActivities({
      client: deps.client,
      log: deps.log.child({ component: 'budget' }),
    }),
  };
}
