/**
 * What the voice tests share: a real bridge process with voice on (signaling on a free port,
 * loopback ICE), Synapse with the Matrix world of matrix-scenario.ts, Docker with the agent image,
 * a Temporal client on the bridge's dev server and a stored credential to start agents with; and
 * a werift caller that plays a tone at real time and keeps what it hears.
 */
import type { Client } from '@temporalio/client';
import { ToneGenerator } from '../../media/echo';
import { AudioPeer, type AudioPeerOptions } from '../../media/peer';
import {
  callWorkflowId,
  type ContainerRunStatus,
  type VoiceCallResult,
} from '../../workflows/definitions';
import { removeDir, type BridgeProcess } from './bridge-process';
import { runStatus, temporalClient, waitFor } from './containers';
import { ensureAgentImage, ensureDocker } from './docker';
import {
  bridgeSlot,
  nonce,
  rpc,
  setupMatrixWorld,
  sleep,
  startBridge,
  stopAgents,
  teardownMatrixWorld,
  type BridgeSlot,
  type MatrixUser,
  type MatrixWorld,
} from './matrix-scenario';

export interface VoiceWorld {
  w: MatrixWorld;
  slot: BridgeSlot;
  /** The running bridge (replaced by `restart`). */
  bridge: BridgeProcess;
  client: Client;
  /** A stored credential: `webrtc.start {key_id}` starts an agent for the call with it. */
  keyId: string;
  /** Containers to remove at the end (add every agent a test starts). */
  names: Set<string>;
  /** A JSON-RPC call on the bridge socket. */
  call(method: string, params?: unknown): Promise<any>;
  /** The call workflow's result, once it has ended. */
  callResult(sessionId: string): Promise<VoiceCallResult>;
  /** The status of an agent's run (open or closed). */
  agentRun(containerName: string): Promise<ContainerRunStatus>;
  /** Waits until the agent's run has ended and cleaned up; answers its status. */
  agentRunCleanedUp(containerName: string, timeoutMs?: number): Promise<ContainerRunStatus>;
  /** kill -9 and start again on the same state and ports. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the world. `prepare` creates what the bridge's configuration names (rooms, users) and
 * returns the extra environment for the bridge.
 */
export async function startVoiceWorld(
  prepare: (w: MatrixWorld) => Promise<NodeJS.ProcessEnv>,
): Promise<VoiceWorld> {
  await ensureDocker();
  await ensureAgentImage();
  const w = await setupMatrixWorld();
  let slot: BridgeSlot | undefined;
  try {
    slot = await bridgeSlot(w, {
      ARMORCLAW_VOICE_SIGNALING_PORT: '0',
      ARMORCLAW_VOICE_ICE_HOST_ADDRESSES: '127.0.0.1',
      ...(await prepare(w)),
    });
    const bridge = await startBridge(slot);
    // The bridge's own dev server, unless `prepare` pointed it at a cluster.
    const { client, close } = await temporalClient(slot.env.TEMPORAL_ADDRESS ?? slot.temporalPort);
    const keyId = `voice-key-${nonce()}`;
    const world: VoiceWorld = {
      w,
      slot,
      bridge,
      client,
      keyId,
      names: new Set(),
      call: (method, params) => rpc(world.bridge.socketPath, method, params, 90_000),
      callResult: (sessionId) =>
        client.workflow.getHandle(callWorkflowId(sessionId)).result() as Promise<VoiceCallResult>,
      agentRun: (containerName) => runStatus(client, containerName),
      agentRunCleanedUp: (containerName, timeoutMs = 30_000) =>
        waitFor(
          `the run of ${containerName} to end and clean up`,
          async () => {
            const s = await runStatus(client, containerName);
            return s.cleanup_done ? s : undefined;
          },
          { timeoutMs },
        ),
      async restart() {
        await world.bridge.stop('SIGKILL');
        world.bridge = await startBridge(world.slot);
      },
      async stop() {
        await stopAgents(world.bridge.socketPath, world.names, [world.slot.dir, w.secretsDir]);
        await world.bridge.stop();
        await close();
        await teardownMatrixWorld(w);
        removeDir(world.slot.dir);
      },
    };
    const stored = await world.call('store_key', {
      id: keyId,
      provider: 'openai',
      token: `sk-${nonce()}${nonce()}`,
    });
    if (stored.error) throw new Error(`store_key: ${JSON.stringify(stored.error)}`);
    return world;
  } catch (err) {
    await teardownMatrixWorld(w);
    if (slot) removeDir(slot.dir);
    throw err;
  }
}

/** A room alice creates (end-to-end encrypted unless told), with the bot and `members` joined. */
export async function joinedRoom(
  w: MatrixWorld,
  name: string,
  opts: { encrypted?: boolean; members?: MatrixUser[] } = {},
): Promise<string> {
  const c = w.syn.client;
  const members = opts.members ?? [];
  const room = await c.createRoom(w.alice.accessToken, {
    invite: [w.bot.userId, ...members.map((m) => m.userId)],
    encrypted: opts.encrypted ?? true,
    name,
  });
  for (const m of [w.bot, ...members]) await c.join(m.accessToken, room);
  return room;
}

/** A new Matrix user (fresh password), for per-user limits. */
export async function matrixUser(w: MatrixWorld, name: string): Promise<MatrixUser> {
  const password = `pw-${name}-${nonce()}`;
  const session = await w.syn.registerUser(`${name}${nonce()}`, password);
  return { ...session, localpart: name, password };
}

export interface Caller {
  peer: AudioPeer;
  offerSdp: string;
  /** Every decoded 20 ms frame heard from the bridge. */
  heard: Buffer[];
  /** Plays a tone at real time (one frame per 20 ms). */
  play(seconds: number, hz?: number): Promise<void>;
}

/** A werift caller offering Opus audio (loopback host candidates unless `options` say more). */
export async function caller(options: AudioPeerOptions = {}): Promise<Caller> {
  const { peer, offerSdp } = await AudioPeer.offer({
    additionalHostAddresses: ['127.0.0.1'],
    ...options,
  });
  const heard: Buffer[] = [];
  peer.onAudioFrame((f) => heard.push(f.pcm));
  return {
    peer,
    offerSdp,
    heard,
    async play(seconds, hz = 440) {
      const tone = new ToneGenerator(hz, 0.5);
      const start = performance.now();
      for (let i = 0; i < seconds * 50; i++) {
        peer.sendAudioFrame(tone.next());
        await sleep(Math.max(0, start + (i + 1) * 20 - performance.now()));
      }
    },
  };
}

/** The call page's URL on the world's bridge (from its ready line), without any fragment. */
export function callPageUrl(world: VoiceWorld): string {
  const found = /voice signaling wss:\/\/([^\s"/]+)\/webrtc/.exec(world.bridge.output());
  if (!found) throw new Error('the bridge has not logged its signaling URL');
  return `https://${found[1]}/call`;
}

/** What an agent reported hearing in one second of a call (its `audio_in` status). */
export interface HeardReport {
  at: number;
  frequencyHz: number;
  rms: number;
  frames: number;
}

/** The agent's latest `audio_in` report that arrived at or after `sinceMs` (epoch ms), if any. */
export async function agentHeard(
  world: VoiceWorld,
  containerName: string,
  sinceMs = 0,
): Promise<HeardReport | undefined> {
  const { notifications } = await world.agentRun(containerName);
  for (const n of [...notifications].reverse()) {
    const m = /audio_in frequency_hz=(\d+) rms=([\d.]+) frames=(\d+)/.exec(n.message);
    const at = Date.parse(n.at);
    if (m && at >= sinceMs) {
      return { at, frequencyHz: Number(m[1]), rms: Number(m[2]), frames: Number(m[3]) };
    }
  }
  return undefined;
}
