/**
 * The HTTP gateway's part of the composition root: the method table (every method group
 * registered with the parts it needs), the audit writer and the server. worker/main.ts starts it
 * after the RPC socket and stops it before Temporal.
 */
import type { Logger } from 'pino';
import { GatewayAuditWriter } from '../gateway/audit';
import { registerAgentMethods, type AgentMethodsDeps } from '../gateway/methods/agent';
import { registerBridgeMethods } from '../gateway/methods/bridge';
import { registerCronMethods } from '../gateway/methods/cron';
import { ChannelPacer, registerChatMethods } from '../gateway/methods/chat';
import { registerWorkspaceMethods } from '../gateway/methods/workspace';
import { registerApprovalMethods } from '../gateway/methods/approval';
import { registerIncidentMethods } from '../gateway/methods/incident';
import { ContainmentStatus } from '../gateway/containment-status';
import { GatewayMethods } from '../gateway/protocol';
import { GatewayServer } from '../gateway/server';
import type { StatusPart } from '../gateway/status';
import type { RpcDispatcher } from '../rpc/dispatcher';
import { sendThroughWorkflow } from '../rpc/methods/matrix';
import { roomTrusted } from '../services/matrix-trust';
import { auditLogPath } from '../services/audit-log';
import { AuditLogThread } from '../services/audit-log-thread';
import { queueWarnings } from '../sessions/queue-health';
import { listCronJobs } from '../sessions/schedules';
import { hostTaskQueue } from '../workflows/definitions';
import type { GatewayTokenStore } from '../services/gateway-tokens';
import { deviceEndpoints } from './devices';
import type { BridgeParts } from './rpc-api';

export interface GatewayParts extends BridgeParts {
  /** The socket API, offered over HTTP through gateway/methods/bridge.ts. */
  dispatcher: RpcDispatcher;
  tokens: GatewayTokenStore;
}

export interface RunningGateway {
  url: string;
  server: GatewayServer;
  close(): Promise<void>;
}

/** What agent turns need: agent.run, agent.wait and the devices' chatCompletions. */
function agentDeps(parts: GatewayParts): AgentMethodsDeps {
  return { client: parts.temporal.client, config: parts.config, keystore: parts.keystore };
}

/**
 * Every gateway method group, each registered with its dependencies. One call per group
 * (gateway/methods/<group>.ts); a method needs a row in gateway/scopes.ts too, or the gateway
 * refuses to start.
 */
function registerGatewayMethods(methods: GatewayMethods, parts: GatewayParts): void {
  registerBridgeMethods(methods, { dispatcher: parts.dispatcher });
  registerWorkspaceMethods(methods);
  const { config, temporal, matrix } = parts;
  registerAgentMethods(methods, agentDeps(parts));
  registerCronMethods(methods, {
    client: temporal.client,
    config,
    keystore: parts.keystore,
    roomTrusted: (roomId) => roomTrusted(config.matrix, roomId),
    matrixReady: () => matrix.loggedIn,
  });
  registerChatMethods(methods, {
    matrixReady: () => matrix.loggedIn,
    roomTrusted: (roomId) => roomTrusted(config.matrix, roomId),
    proactiveDisabled: () => parts.incident.proactiveSendsDisabled(),
    recordPolicy: (e) => void parts.incident.log({ kind: e.kind, detail: { send: e.detail } }),
    pacer: new ChannelPacer(config.gateway.chatSendsPerMinute),
    send: (roomId, body, key, threadId) =>
      sendThroughWorkflow(
        {
          client: temporal.client,
          taskQueue: config.temporal.taskQueue,
          hostId: config.hostId,
          matrix,
        },
        roomId,
        body,
        'm.text',
        key,
        threadId,
      ),
  });
  registerApprovalMethods(methods, { client: temporal.client, incident: parts.incident });
  registerIncidentMethods(methods, {
    incident: parts.incident,
    revokeTokens: (tokens) => parts.tokens.revokeTokens(tokens),
  });
}

/**
 * Named parts of `GET /status` besides the gateway's own (`gateway`, `runtimeMetrics`,
 * `policyDecisions`): each a function read when /status is asked.
 */
function gatewayStatusParts(parts: GatewayParts): Record<string, StatusPart> {
  const containment = new ContainmentStatus(parts.temporal.client, parts.incident);
  const { config, temporal } = parts;
  const turns = config.turns;
  return {
    // What a gateway turn runs: the agent type and the credential by id (never the key).
    defaultModel: () => ({
      agentType: turns.agentType,
      keyId: turns.keyId ?? null,
      // From the key's metadata: nothing is decrypted for /status.
      provider: parts.keystore.list().find((k) => k.id === turns.keyId)?.provider ?? null,
    }),
    queueWarnings: () =>
      queueWarnings(temporal.client, config.temporal.namespace, [
        { name: config.temporal.taskQueue, kinds: ['workflow', 'activity'] },
        { name: hostTaskQueue(config.hostId), kinds: ['activity'] },
      ]),
    schedulerBacklog: async () => {
      const jobs = await listCronJobs(temporal.client);
      const next = jobs.map((j) => j.nextRunAt).filter((t): t is number => t !== null);
      // A job whose next firing is over a minute past is behind (workers down or overloaded).
      const behind = next.filter((t) => t < Date.now() - 60_000).length;
      return {
        jobs: jobs.length,
        nextRunAt: next.length > 0 ? Math.min(...next) : null,
        behind,
      };
    },
    approvals: () => containment.approvals(),
    incident: () => containment.incidentFlags(),
  };
}

/** Starts the gateway when `gateway.enabled`; undefined when it is off. */
export async function startGateway(parts: GatewayParts): Promise<RunningGateway | undefined> {
  const { config, log } = parts;
  const settings = config.gateway;
  if (!settings.enabled) return undefined;
  const methods = new GatewayMethods();
  registerGatewayMethods(methods, parts);
  const gatewayLog: Logger = log.child({ component: 'gateway' });
  // One entry per request: written from a worker thread, off the requests' event loop; the
  // thread runs only while requests come.
  const auditThread = new AuditLogThread(auditLogPath(config.stateDir), (message, entries) =>
    gatewayLog.warn({ err: message, entries }, 'gateway audit write failed'),
  );
  const auth = {
    authMode: settings.authMode,
    ...(settings.passwordSha256 ? { passwordSha256: settings.passwordSha256 } : {}),
    ...(settings.trustedIdentityHeader
      ? { trustedIdentityHeader: settings.trustedIdentityHeader }
      : {}),
    trustedProxyIps: settings.trustedProxyIps,
  };
  const audit = new GatewayAuditWriter(auditThread, gatewayLog);
  const devices = deviceEndpoints({
    config,
    hub: parts.devices,
    methods,
    agent: agentDeps(parts),
    audit,
    tokens: parts.tokens,
    auth,
    log,
  });
  const server = new GatewayServer({
    host: settings.host,
    port: settings.port,
    ...(settings.tls ? { tls: settings.tls } : {}),
    bodyLimitBytes: settings.bodyLimitBytes,
    auth,
    rateLimits: { ratePerMinute: settings.ratePerMinute, methodRates: settings.methodRates },
    tokens: parts.tokens,
    methods,
    audit,
    statusParts: gatewayStatusParts(parts),
    ...(devices ? { routes: devices.routes, upgrade: devices.upgrade } : {}),
    log: gatewayLog,
  });
  let url: string;
  try {
    ({ url } = await server.listen());
  } catch (err) {
    devices?.close();
    await auditThread.close();
    throw err;
  }
  devices?.serving(url);
  gatewayLog.info({ url, authMode: settings.authMode }, 'gateway listening');
  return {
    url,
    server,
    async close() {
      devices?.close();
      await server.close();
      await auditThread.close();
    },
  };
}

/** The `gateway` health check: the gateway answers its own GET /health. */
export async function checkGateway(gateway: RunningGateway | undefined): Promise<void> {
  if (!gateway) throw new Error('the gateway is not running');
  const url = new URL('/health', gateway.url);
  const mod = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  await new Promise<void>((resolve, reject) => {
    const req = mod.get(
      url,
      // Its own certificate may be self-signed; this probe checks that it serves, not who it is.
      { rejectUnauthorized: false, timeout: 2_000 },
      (res) => {
        res.resume();
        if (res.statusCode === 200) resolve();
        else reject(new Error(`GET /health answered ${res.statusCode}`));
      },
    );
    req.on('timeout', () => req.destroy(new Error('GET /health timed out')));
    req.on('error', reject);
  });
}
