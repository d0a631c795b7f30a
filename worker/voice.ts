/**
 * The voice part of the composition root: the call media hub (this process's peers), the call
 * token key, the signaling server, and what a restarted bridge owes the calls it held.
 */
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/load';
import { CallMediaHub, type AgentAudio } from '../media/call-hub';
import { InProcessPeers, type CallPeers } from '../media/call-peer';
import { MediaThreads } from '../media/media-threads';
import { SignalingServer, signalingUrl, CALL_PAGE_PATH } from '../media/signaling-server';
import type { AuditLog } from '../services/audit-log';
import type { Keystore } from '../services/keystore';
import {
  callHangupSignal,
  callMediaLostSignal,
  callPeerSignal,
  callUsageSignal,
  callWorkflowId,
} from '../workflows/definitions';
import { ArmorclawHost, ArmorclawKind } from '../workflows/search-attributes';

const TOKEN_KEY_SECRET = 'voice.call_token_key';

export interface Voice {
  hub: CallMediaHub;
  tokenKey: Buffer;
  /** Starts the signaling server; afterwards `signalingUrl` / `callPageUrl` are known. */
  listen(): Promise<void>;
  signalingUrl(): string;
  callPageUrl(): string;
  /** Calls this host held before a restart have lost their peers: tell their workflows. */
  reconcile(): Promise<number>;
  /** The health check: the signaling server answers its /healthz over TLS. */
  check(): Promise<void>;
  /** An agent reported usage: count it against its call, if it is on one. */
  onAgentUsage(containerName: string, tokens: number): void;
  close(): Promise<void>;
}

export function createVoice(deps: {
  config: BridgeConfig;
  client: Client;
  agents: AgentAudio;
  keystore: Keystore;
  auditLog: AuditLog;
  log: Logger;
}): Voice {
  const { config, client, log } = deps;
  const voice = config.voice;
  const signal = (sessionId: string) => client.workflow.getHandle(callWorkflowId(sessionId));

  const hub = new CallMediaHub({
    agents: deps.agents,
    events: {
      peer: async (sessionId, event) => {
        await signal(sessionId).signal(callPeerSignal, { event });
      },
      hangup: async (sessionId, reason) => {
        await signal(sessionId).signal(callHangupSignal, { reason });
      },
    },
    peers: callPeers(voice, log),
    log: log.child({ component: 'call-media' }),
  });

  const tokenKey = loadTokenKey(deps.keystore);
  const server = new SignalingServer({
    host: voice.signaling.host,
    port: voice.signaling.port,
    publicUrl: voice.signaling.publicUrl,
    tls:
      voice.signaling.tlsCert && voice.signaling.tlsKey
        ? { certFile: voice.signaling.tlsCert, keyFile: voice.signaling.tlsKey }
        : { selfSignedDir: path.join(config.stateDir, 'tls') },
    tokenKey,
    backend: hub,
    allowedOrigins: voice.signaling.allowedOrigins,
    maxMessageBytes: voice.signaling.maxMessageBytes,
    messagesPerSecond: voice.signaling.messagesPerSecond,
    audit: (entry) => {
      try {
        deps.auditLog.append(entry);
      } catch (err) {
        log.warn({ err }, 'audit write failed');
      }
    },
    log: log.child({ component: 'signaling' }),
  });
  let url: string | undefined;

  return {
    hub,
    tokenKey,
    async listen() {
      const { port } = await server.listen();
      url = signalingUrl(voice.signaling.publicUrl, voice.signaling.host, port);
    },
    signalingUrl: () => {
      if (!url) throw new Error('the signaling server is not listening');
      return url;
    },
    callPageUrl: () => {
      const page = new URL(CALL_PAGE_PATH, url!.replace(/^ws/, 'http'));
      return page.toString();
    },
    async reconcile() {
      const query = `${ArmorclawKind.name} = 'call' AND ExecutionStatus = 'Running' AND ${ArmorclawHost.name} = '${config.hostId.replace(/'/g, "''")}'`;
      let told = 0;
      for await (const wf of client.workflow.list({ query })) {
        const sessionId = wf.workflowId.slice('call-'.length);
        if (hub.has(sessionId)) continue;
        await client.workflow
          .getHandle(wf.workflowId)
          .signal(callMediaLostSignal, {
            detail: "the bridge restarted; the call's media was lost",
          })
          .then(() => told++)
          .catch((err) => log.warn({ err, sessionId }, 'could not tell a call its media is gone'));
      }
      if (told > 0) log.warn({ calls: told }, 'calls held before the restart were ended');
      return told;
    },
    check: () =>
      new Promise<void>((resolve, reject) => {
        const healthz = new URL('/healthz', (url ?? '').replace(/^ws/, 'http'));
        const req = https.get(healthz, { rejectUnauthorized: false, timeout: 2_000 }, (res) => {
          res.resume();
          if (res.statusCode === 200) resolve();
          else reject(new Error(`signaling server answered ${res.statusCode}`));
        });
        req.on('timeout', () => req.destroy(new Error('signaling server did not answer')));
        req.on('error', reject);
      }),
    onAgentUsage(containerName, tokens) {
      const sessionId = hub.sessionOfAgent(containerName);
      if (!sessionId) return;
      signal(sessionId)
        .signal(callUsageSignal, { tokens })
        .catch((err) => log.warn({ err, sessionId }, 'call usage not counted'));
    },
    async close() {
      await server.close();
      await hub.closeAll();
    },
  };
}

/** Where calls' media runs: media threads, or the main thread when `voice.media_threads` is 0. */
function callPeers(voice: BridgeConfig['voice'], log: Logger): CallPeers {
  const peerOptions = { iceServers: [], additionalHostAddresses: voice.iceHostAddresses };
  if (voice.mediaThreads === 0) return new InProcessPeers(peerOptions);
  return new MediaThreads({
    peerOptions,
    maxThreads: voice.mediaThreads,
    callsPerThread: voice.callsPerMediaThread,
    onThreadExit: ({ calls, error }) =>
      log.error({ calls, err: error }, 'a media thread stopped; its calls failed'),
  });
}

/** The call-token signing key: random, made once, kept encrypted in the keystore. */
function loadTokenKey(keystore: Keystore): Buffer {
  let encoded = keystore.getSecret(TOKEN_KEY_SECRET);
  if (!encoded) {
    encoded = randomBytes(32).toString('base64');
    keystore.putSecret(TOKEN_KEY_SECRET, encoded);
  }
  return Buffer.from(encoded, 'base64');
}
