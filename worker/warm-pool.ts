import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { agentTypeRun, type BridgeConfig } from '../config/load';
import type { ContainerPolicy } from '../activities/docker';
import { WarmPool } from '../activities/warm-pool';

/** The warm pool `containers.warm_pool` asks for; undefined when it is off (the default). */
export function createWarmPool(
  config: BridgeConfig,
  docker: Docker,
  policy: ContainerPolicy,
  sockets: { dirFor(containerName: string): string },
  log: Logger,
): WarmPool | undefined {
  const { containers } = config;
  const types = Object.entries(containers.warmPool).map(([agentType, size]) => ({
    agentType,
    size,
    ...agentTypeRun(containers, agentType),
  }));
  if (types.length === 0) return undefined;
  return new WarmPool({
    docker,
    policy,
    hostId: config.hostId,
    network: containers.network,
    socketDirFor: (name) => sockets.dirFor(name),
    types,
    maxAgeMs: containers.warmPoolMaxAgeMs,
    log: log.child({ component: 'warm-pool' }),
  });
}
