/**
 * The bridge's JSON-RPC API: every method group registered on one dispatcher with the parts it
 * needs. Part of the composition root (worker/main.ts), kept apart so that file reads as the
 * order things start in.
 */
import path from 'node:path';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/load';
import type { MatrixConnection } from '../matrix/client';
import type { MatrixInbox } from '../matrix/inbox';
import { RpcDispatcher } from '../rpc/dispatcher';
import { registerAuditMethods } from '../rpc/methods/audit';
import { createBudgetGate, registerBudgetMethods } from '../rpc/methods/budget';
import { registerConfigMethods } from '../rpc/methods/configs';
import { registerContainerMethods } from '../rpc/methods/containers';
import { registerCoreMethods } from '../rpc/methods/core';
import { registerDeviceMethods } from '../rpc/methods/devices';
import { registerGatewayTokenMethods } from '../rpc/methods/gateway';
import { registerHostMethods } from '../rpc/methods/hosts';
import { registerIncidentMethods } from '../rpc/methods/incident';
import { registerKeyMethods } from '../rpc/methods/keys';
import { registerMatrixMethods } from '../rpc/methods/matrix';
import { registerWebrtcMethods } from '../rpc/methods/webrtc';
import { auditLogPath, type AuditLog } from '../services/audit-log';
import type { ConfigStore } from '../services/config-store';
import type { GatewayTokenStore } from '../services/gateway-tokens';
import type { Keystore } from '../services/keystore';
import type { MatrixStore } from '../services/matrix-store';
import { SingleFlightCache } from '../services/single-flight-cache';
import { PROJECT_ROOT } from '../services/runtime';
import { listActiveContainerIds } from '../sessions/containers';
import { probeTemporal, type TemporalHandle } from './temporal';
import { RelayLinkError, type DeviceHub } from './devices';
import { invalidParams } from '../rpc/errors';
import type { Voice } from './voice';
import type { WarmPool } from '../activities/warm-pool';
import { matrixSyncSettings, type MatrixReplica } from './matrix-replica';
import type { IncidentControl } from '../sessions/incident';

export const BRIDGE_VERSION: string = require(path.join(PROJECT_ROOT, 'package.json')).version;

export interface BridgeParts {
  config: BridgeConfig;
  temporal: TemporalHandle;
  keystore: Keystore;
  configStore: ConfigStore;
  auditLog: AuditLog;
  docker: Docker;
  matrix: MatrixConnection;
  matrixStore: MatrixStore;
  matrixReplica: MatrixReplica;
  inbox: MatrixInbox;
  voice: Voice;
  log: Logger;
  /** The HTTP gateway's tokens, managed over the socket (`gateway.token_*`). */
  gatewayTokens: GatewayTokenStore;
  /** Paired devices: the registry, and the device endpoints' state once the gateway serves. */
  devices: DeviceHub;
  /** Incident containment's state (sessions/incident.ts), shared by the gateway and the socket. */
  incident: IncidentControl;
  /** containers.warm_pool; absent when it is off. */
  pool?: WarmPool;
  /** The `gateway` health check; absent when the gateway is off. */
  gatewayCheck?: () => Promise<void>;
}

/** The dispatcher of the bridge's socket, with every method the API offers. */
export function createBridgeDispatcher(parts: BridgeParts): RpcDispatcher {
  const { config, temporal, keystore, configStore, auditLog, docker, matrix } = parts;
  const { inbox, voice, log } = parts;
  const dispatcher = new RpcDispatcher(log.child({ component: 'rpc' }));
  const containerIds = new SingleFlightCache(
    () =>
      temporal.connection.withDeadline(Date.now() + 3_000, () =>
        listActiveContainerIds(temporal.client),
      ),
    500,
  );
  registerCoreMethods(dispatcher, {
    version: BRIDGE_VERSION,
    socketPath: config.socket.path,
    containerIds,
    ...(parts.pool ? { warmPool: () => parts.pool!.status() } : {}),
    checks: {
      temporal: () => probeTemporal(temporal.connection),
      keystore: async () => keystore.check(),
      configs: () => configStore.check(),
      docker: async () => {
        await docker.ping();
      },
      signaling: () => voice.check(),
      ...(parts.pool ? { warm_pool: async () => parts.pool!.assertFilling() } : {}),
      ...(parts.gatewayCheck ? { gateway: parts.gatewayCheck } : {}),
      ...(matrix.status.enabled
        ? {
            matrix: async () => {
              if (matrix.status.status !== 'connected') {
                throw new Error(matrix.status.last_error ?? 'not connected to the homeserver');
              }
            },
          }
        : {}),
    },
  });
  registerMatrixMethods(dispatcher, {
    matrix,
    store: parts.matrixStore,
    copyQueue: (userId, upTo) => parts.matrixReplica.copyUpTo(userId, upTo),
    inbox,
    client: temporal.client,
    taskQueue: config.temporal.taskQueue,
    hostId: config.hostId,
    sync: matrixSyncSettings(config),
    log: log.child({ component: 'matrix-rpc' }),
  });
  registerHostMethods(dispatcher, {
    client: temporal.client,
    namespace: temporal.namespace,
    hostId: config.hostId,
    auditLog,
  });
  registerBudgetMethods(dispatcher, {
    client: temporal.client,
    log: log.child({ component: 'budget' }),
  });
  registerContainerMethods(dispatcher, {
    client: temporal.client,
    onRunsChanged: () => containerIds.invalidate(),
    budget: createBudgetGate({
      client: temporal.client,
      limited: config.budget.dailyLimitUsd > 0 || config.budget.monthlyLimitUsd > 0,
      log: log.child({ component: 'budget' }),
    }),
    matrixReady: () => matrix.loggedIn,
    keystore,
    taskQueue: config.temporal.taskQueue,
    hostId: config.hostId,
    defaults: {
      image: config.containers.defaultImage,
      agentTypes: config.containers.agentTypes,
      ttlMs: config.containers.defaultTtlMs,
      maxTtlMs: config.containers.maxTtlMs,
      secretsDeadlineMs: config.containers.secretsDeadlineMs,
      healthCheckIntervalMs: config.containers.healthCheckIntervalMs,
      hostGraceMs: config.hostGraceMs,
      network: config.containers.network,
      secretsMode: config.containers.secretsMode,
      runLimitUsd: config.budget.runLimitUsd,
      modelsPriced: Object.keys(config.budget.models).length > 0,
    },
    log: log.child({ component: 'containers' }),
  });
  registerWebrtcMethods(dispatcher, {
    client: temporal.client,
    taskQueue: config.temporal.taskQueue,
    hostId: config.hostId,
    hostGraceMs: config.hostGraceMs,
    hub: voice.hub,
    auditLog,
    keystore,
    matrixReady: () => matrix.loggedIn,
    tokenKey: voice.tokenKey,
    voice: config.voice,
    matrixPolicy: {
      trustedRooms: config.matrix.trustedRooms,
      emptyListAllowsAll: config.matrix.emptyListAllowsAll,
    },
    containers: config.containers,
    runLimitUsd: config.budget.runLimitUsd,
    signalingUrl: voice.signalingUrl,
    callPageUrl: voice.callPageUrl,
    log: log.child({ component: 'webrtc' }),
  });
  registerKeyMethods(dispatcher, keystore);
  registerConfigMethods(dispatcher, configStore);
  registerGatewayTokenMethods(dispatcher, parts.gatewayTokens);
  registerDeviceMethods(dispatcher, {
    registry: parts.devices.registry,
    pairUrl: (code) => parts.devices.pairUrl(code),
    connections: (bridgeId) => parts.devices.connections(bridgeId),
    relay: {
      link: (url, credential) => {
        try {
          return parts.devices.linkRelay(url, credential);
        } catch (err) {
          if (err instanceof RelayLinkError) throw invalidParams(`Invalid params: ${err.message}`);
          throw err;
        }
      },
      unlink: () => parts.devices.unlinkRelay(),
      status: () => parts.devices.relayStatus(),
    },
  });
  registerIncidentMethods(dispatcher, parts.incident);
  registerAuditMethods(dispatcher, {
    dbPath: auditLogPath(config.stateDir),
    auditLog,
    log: log.child({ component: 'audit' }),
  });
  return dispatcher;
}
