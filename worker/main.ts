import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, loadConfig, type BridgeConfig } from '../config/load';
import { RpcSocketServer, assertSocketPathFree } from '../rpc/socket-server';
import { ConfigStore } from '../services/config-store';
import { Keystore, keystorePath, loadOrCreateMasterKey } from '../services/keystore';
import { LiveLeakGuard } from '../services/leak-guard';
import { createHostActivities, createSharedActivities } from '../activities/index';
import { ContainerSocketHub } from '../rpc/container-socket';
import { ensureBudgetWorkflow } from '../rpc/methods/budget';
import { ApprovalReplyWatcher } from '../rpc/approval-replies';
import { ensureIncidentWorkflow, IncidentControl } from '../sessions/incident';
import { sendThroughWorkflow } from '../rpc/methods/matrix';
import { listOpenContainerNames } from '../sessions/containers';
import { ensureMatrixSync } from '../sessions/matrix-sync';
import { MatrixReplica, matrixSyncSettings } from './matrix-replica';
import { MatrixConnection } from '../matrix/client';
import { MatrixE2ee } from '../matrix/crypto';
import { MatrixInbox } from '../matrix/inbox';
import { MatrixStore, matrixStorePath } from '../services/matrix-store';
import { AuditLog, auditLogPath } from '../services/audit-log';
import { DockerEventWatcher } from './docker-events';
import { connectDocker } from './docker-engine';
import { reapOrphans } from './orphans';
import { startWorkers } from './workers';
import { createLogger, logScrubber } from './logger';
import { BRIDGE_VERSION, createBridgeDispatcher, type BridgeParts } from './rpc-api';
import { checkGateway, startGateway, type RunningGateway } from './gateway';
import { GatewayTokenStore, gatewayTokensPath } from '../services/gateway-tokens';
import { DeviceHub } from './devices';
import { connectTemporal, type TemporalHandle } from './temporal';
import { startMallocTrim } from './malloc-trim';
import { createVoice } from './voice';
import { createAgentRunActivities, createVoiceHostActivities } from '../activities/voice';
import { createAdmissionActivities } from '../activities/admission';
import { createTurnHostActivities, createTurnSharedActivities } from '../activities/turn';
import { createProviderAccess } from './providers';
import { createWarmPool } from './warm-pool';

export interface RunningBridge {
  config: BridgeConfig;
  socketPath: string;
  temporal: TemporalHandle;
  /** The per-container sockets and agents' audio channels this bridge serves. */
  containerSockets: ContainerSocketHub;
  /** Stops accepting requests, finishes those in flight, stops what the bridge started. */
  stop(): Promise<void>;
  /** Settles when a Temporal worker stopped by itself (RunningWorkers.failed). */
  failed: Promise<Error>;
}

/**
 * The composition root: builds every dependency, starts Temporal (or connects to it) and the
 * RPC socket. `npm start` calls it through `main()`; test entries (test/support/*-entry.ts) call
 * it in a child process and reach inside through what it returns.
 */
export async function start(
  config: BridgeConfig,
  log: Logger = createLogger({ level: config.log.level }),
): Promise<RunningBridge> {
  await assertSocketPathFree(config.socket.path);
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  await chmod(config.stateDir, 0o700);

  const masterKey = loadOrCreateMasterKey({
    fromEnv: config.keystore.masterKey,
    keyFile: config.keystore.masterKeyFile,
  });
  const keystore = Keystore.open({ dbPath: keystorePath(config.stateDir), masterKey });
  masterKey.fill(0);
  const configStore = new ConfigStore({
    dir: path.join(config.stateDir, 'configs'),
    maxBytes: config.configs.maxBytes,
  });

  const auditLog = AuditLog.open({ path: auditLogPath(config.stateDir) });
  const docker = connectDocker(config.docker.socket);
  const matrixStore = MatrixStore.open(matrixStorePath(config.stateDir));
  const inbox = new MatrixInbox();
  const matrix = new MatrixConnection(keystore, {
    homeserver: config.matrix.homeserver,
    deviceId: config.matrix.deviceId,
    log: log.child({ component: 'matrix' }),
  });
  const e2ee = new MatrixE2ee({
    client: () => matrix.requireClient(),
    keystore,
    stateDir: config.stateDir,
    log: log.child({ component: 'matrix-e2ee' }),
  });
  matrix.e2ee = e2ee;
  const cleanups: Array<() => Promise<void> | void> = [
    () => keystore.close(),
    () => auditLog.close(),
    () => matrixStore.close(),
    () => e2ee.close(),
  ];
  const cleanup = async () => {
    for (const fn of cleanups.reverse())
      await Promise.resolve(fn()).catch((err) => log.error({ err }, 'cleanup failed'));
  };
  try {
    const temporal = await connectTemporal(config, log.child({ component: 'temporal' }));
    cleanups.push(() => temporal.close());

    const sendToRoom = (roomId: string, body: string, msgtype: string, key?: string) =>
      sendThroughWorkflow(
        {
          client: temporal.client,
          taskQueue: config.temporal.taskQueue,
          hostId: config.hostId,
          matrix,
        },
        roomId,
        body,
        msgtype,
        key,
      );
    const leakGuard = new LiveLeakGuard(keystore);
    // From here on every line, from any logger, is scrubbed of the stored keys.
    cleanups.push(logScrubber.use(() => leakGuard.current()));
    // Agents' usage also counts against the call they are on (set once voice exists).
    let onAgentUsage: (containerName: string, tokens: number) => void = () => undefined;
    const audit = (entry: Parameters<AuditLog['append']>[0]) => {
      try {
        auditLog.append(entry);
      } catch (err) {
        log.warn({ err }, 'audit write failed');
      }
    };
    // Incident containment and approvals: state in their workflows, read through these.
    const incident = new IncidentControl(temporal.client);
    const approvalSettings = {
      client: temporal.client,
      taskQueue: config.temporal.taskQueue,
      hostId: config.hostId,
      requestTimeoutMs: config.approvals.requestTimeoutMs,
      ...(config.matrix.adminRoom ? { adminRoomId: config.matrix.adminRoom } : {}),
    };
    // Paired devices: their agents' approval requests are held to the device's scope.
    const devices = new DeviceHub(config, keystore, audit, log);
    const sockets = new ContainerSocketHub({
      bridgeSocketPath: config.socket.path,
      matrix: { store: matrixStore, inbox, send: sendToRoom },
      agentGid: config.containers.agentUid,
      client: temporal.client,
      budget: {
        client: temporal.client,
        prices: config.budget.models,
        unknownModel: config.budget.unknownModelCost,
        onUsage: (name, tokens) => onAgentUsage(name, tokens),
      },
      approvals: {
        settings: approvalSettings,
        incident,
        deviceScope: (containerName) => devices.deviceScopeOf(containerName),
      },
      audit,
      leakGuard: () => leakGuard.current(),
      reportViolation: (text) => {
        const adminRoom = config.matrix.adminRoom;
        if (!adminRoom || !matrix.loggedIn) return;
        sendToRoom(adminRoom, text, 'm.notice').catch((err: Error) =>
          log.warn({ err: err.message }, 'security report to the admin room failed'),
        );
      },
      log: log.child({ component: 'container-socket' }),
    });
    cleanups.push(() => sockets.closeAll());
    const providers = createProviderAccess({
      config,
      client: temporal.client,
      keystore,
      audit,
      onTokens: (name, tokens) => onAgentUsage(name, tokens),
      log,
    });
    cleanups.push(() => providers.close());
    const voice = createVoice({
      config,
      client: temporal.client,
      agents: sockets,
      keystore,
      auditLog,
      log,
    });
    onAgentUsage = voice.onAgentUsage;
    cleanups.push(() => voice.close());
    // Runs outlive the process: serve the sockets of the runs that are still live.
    const reopened: Array<{ name: string; dir: string }> = [];
    for (const name of await listOpenContainerNames(temporal.client)) {
      reopened.push({ name, dir: (await sockets.open(name)).dir });
    }

    const policy = {
      network: config.containers.network,
      memoryBytes: config.containers.memoryBytes,
      pidsLimit: config.containers.pidsLimit,
      agentUid: config.containers.agentUid,
      secretsDir: config.containers.secretsDir,
      heartbeatIntervalMs: config.containers.heartbeatIntervalMs,
    };
    const pool = createWarmPool(config, docker, policy, sockets, log);
    const hostContainerActivities = createHostActivities({
      docker,
      keystore,
      auditLog,
      sockets,
      providers: providers.endpoints,
      matrix: {
        matrix,
        store: matrixStore,
        inbox,
        trust: {
          trustedSenders: config.matrix.trustedSenders,
          trustedRooms: config.matrix.trustedRooms,
          emptyListAllowsAll: config.matrix.emptyListAllowsAll,
        },
        rejectNotice: config.matrix.rejectNotice,
        syncTimeoutMs: config.matrix.syncTimeoutMs,
        e2ee,
      },
      policy,
      pool,
      log,
    });
    const workers = await startWorkers({
      address: temporal.address,
      namespace: temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      hostId: config.hostId,
      hostActivities: {
        ...createVoiceHostActivities({
          hub: voice.hub,
          matrix,
          log: log.child({ component: 'voice' }),
        }),
        ...hostContainerActivities,
        ...createTurnHostActivities({ agents: sockets, log: log.child({ component: 'turns' }) }),
      },
      sharedActivities: {
        ...createSharedActivities({ auditLog, client: temporal.client, log }),
        ...createAgentRunActivities({
          client: temporal.client,
          taskQueue: config.temporal.taskQueue,
          log: log.child({ component: 'voice' }),
        }),
        ...createAdmissionActivities({
          client: temporal.client,
          taskQueue: config.temporal.taskQueue,
          log: log.child({ component: 'admission' }),
        }),
        ...createTurnSharedActivities({
          client: temporal.client,
          taskQueue: config.temporal.taskQueue,
          log: log.child({ component: 'turns' }),
        }),
      },
      log: log.child({ component: 'worker' }),
    });
    cleanups.push(() => workers.stop());
    // Their provider proxies too, from each run's status (a query needs the workers running).
    for (const { name, dir } of reopened) {
      await providers.restore(name, dir).catch((err: Error) => {
        log.error({ run: name, err: err.message }, 'provider proxy not restored for the run');
      });
    }

    await reapOrphans({
      docker,
      client: temporal.client,
      hostId: config.hostId,
      teardown: hostContainerActivities.teardownContainer,
      poolOn: pool !== undefined,
      log: log.child({ component: 'orphans' }),
    }).catch((err: Error) =>
      log.error({ err: err.message }, 'could not look for orphaned containers'),
    );

    // After the reaper: what it leaves of the pool's label is the pool's to adopt or remove.
    if (pool) {
      await pool.start();
      cleanups.push(() => pool.stop());
    }

    // The budget outlives bridges; each start applies this bridge's limits to it.
    await ensureBudgetWorkflow(temporal.client, config.temporal.taskQueue, {
      dailyLimitUsd: config.budget.dailyLimitUsd,
      monthlyLimitUsd: config.budget.monthlyLimitUsd,
      alertThresholds: config.budget.alertThresholds,
      adminRoomId: config.matrix.adminRoom,
      hostId: config.hostId,
    });

    // Incident mode outlives bridges: started once, read back by every start.
    await ensureIncidentWorkflow(temporal.client, config.temporal.taskQueue);

    const dockerEvents = new DockerEventWatcher(
      docker,
      temporal.client,
      log.child({ component: 'docker-events' }),
      (name) => pool?.noteDied(name),
    );
    await dockerEvents.start();
    cleanups.push(() => dockerEvents.stop());

    await startMatrix(config, matrix, temporal, log);
    const replica = new MatrixReplica({
      client: temporal.client,
      hostId: config.hostId,
      matrix,
      store: matrixStore,
      inbox,
      log: log.child({ component: 'matrix-replica' }),
    });
    replica.start();
    cleanups.push(() => replica.stop());
    if (config.matrix.adminRoom) {
      const replies = new ApprovalReplyWatcher({
        store: matrixStore,
        inbox,
        client: temporal.client,
        adminRoomId: config.matrix.adminRoom,
        admins: config.approvals.admins,
        incident,
        audit,
        send: sendToRoom,
        log: log.child({ component: 'approval-replies' }),
      });
      replies.start();
      cleanups.push(() => replies.stop());
    }
    await voice.reconcile();
    await voice.listen();

    // The HTTP gateway starts after the socket; its health check looks it up when asked.
    const gatewayTokens = GatewayTokenStore.open(gatewayTokensPath(config.stateDir));
    const started: { gateway?: RunningGateway } = {};
    const parts: BridgeParts = {
      config,
      temporal,
      keystore,
      configStore,
      auditLog,
      docker,
      matrix,
      matrixStore,
      matrixReplica: replica,
      inbox,
      voice,
      pool,
      log,
      gatewayTokens,
      devices,
      incident,
      ...(config.gateway.enabled ? { gatewayCheck: () => checkGateway(started.gateway) } : {}),
    };
    const dispatcher = createBridgeDispatcher(parts);

    const rpc = new RpcSocketServer(
      dispatcher,
      {
        socketPath: config.socket.path,
        maxMessageBytes: config.socket.maxMessageBytes,
        idleTimeoutMs: config.socket.idleTimeoutMs,
        quietCloseMs: config.socket.quietCloseMs,
        maxConnections: config.socket.maxConnections,
        maxInFlightPerConnection: 64,
      },
      log.child({ component: 'socket' }),
    );
    await rpc.listen();
    cleanups.push(() => rpc.close());
    // Closed before the socket and Temporal (cleanups run in reverse).
    const gateway = await startGateway({ ...parts, dispatcher, tokens: gatewayTokens });
    started.gateway = gateway;
    if (gateway) cleanups.push(() => gateway.close());

    log.info(
      {
        socket: config.socket.path,
        temporalUi: temporal.uiUrl,
        temporal: temporal.address,
        namespace: temporal.namespace,
        signaling: voice.signalingUrl(),
        gateway: gateway?.url,
      },
      `ArmorClaw bridge ${BRIDGE_VERSION} ready: socket ${config.socket.path}` +
        (temporal.uiUrl ? `, Temporal Web UI ${temporal.uiUrl}` : '') +
        `, voice signaling ${voice.signalingUrl()}` +
        (gateway ? `, gateway ${gateway.url}` : ''),
    );
    const trim = startMallocTrim({ log: log.child({ component: 'memory' }) });
    cleanups.push(() => trim.stop());
    let stopped: Promise<void> | undefined;
    return {
      config,
      socketPath: config.socket.path,
      temporal,
      containerSockets: sockets,
      stop: () => (stopped ??= cleanup()),
      failed: workers.failed,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * Logs in from the configuration when there is no stored session, then makes sure the sync
 * workflow runs. A failed login is logged, not fatal: `matrix.login` can still do it.
 */
async function startMatrix(
  config: BridgeConfig,
  matrix: MatrixConnection,
  temporal: TemporalHandle,
  log: Logger,
): Promise<void> {
  const { username, password, homeserver } = config.matrix;
  if (!matrix.loggedIn && homeserver && username && password) {
    try {
      await matrix.login(username, password);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'Matrix login from the configuration failed');
    }
  }
  if (matrix.loggedIn && matrix.userId)
    await ensureMatrixSync(temporal.client, {
      ...matrixSyncSettings(config),
      userId: matrix.userId,
      hostId: config.hostId,
      log: log.child({ component: 'matrix' }),
    });
}

async function main(): Promise<void> {
  let config: BridgeConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`armorclaw: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ level: config.log.level, format: config.log.format });
  let bridge: RunningBridge;
  try {
    bridge = await start(config, log);
  } catch (err) {
    log.fatal({ err }, `the bridge could not start: ${(err as Error).message}`);
    process.exit(1);
  }
  let signals = 0;
  const shutdown = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ signal }, 'shutting down');
    bridge.stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // Without its workers the bridge would answer requests it cannot carry out (a start or an end
  // that never happens): it exits instead, and its supervisor (systemd, compose) starts it again;
  // the runs live on in Temporal.
  void bridge.failed.then((err) => {
    log.fatal(
      { err: err.message },
      'a Temporal worker stopped: exiting so the bridge is restarted',
    );
    const killer = setTimeout(() => process.exit(1), 10_000);
    killer.unref();
    void bridge.stop().finally(() => process.exit(1));
  });
}

if (require.main === module) {
  void main();
}
