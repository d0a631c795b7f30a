/**
 * Suite `voice`: what the bridge adds to a voice call, against two werift peers talking to each
 * other directly, measured in the same run. The callers live in processes of their own
 * (bench/voice-callers.ts), so the load generator is not what runs out of time.
 *
 * - Round trip: the caller sends silence with a tone burst at a known frame; the time from
 *   sending the burst's first frame to the arrival of the first frame heard back above an RMS
 *   threshold. Bridge path: caller → bridge (Opus decode) → echo agent container (PCM over its
 *   socket) → bridge (Opus encode) → caller. Direct path: caller → a second AudioPeer that
 *   sends every decoded frame straight back. Same codec passes either way (two encodes, two
 *   decodes).
 * - Connect time: `webrtc.start` sent → caller connected, against offer made → connected.
 * - Bridge CPU per call with N concurrent calls streaming a tone both ways, idle bridge as
 *   baseline; and the most concurrent calls with no packet or frame lost.
 *
 * One call per agent container (`key_id` in `webrtc.start`), as a deployment runs them.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { emptyAudioPeerStats, type AudioPeerStats } from '../media/peer';
import {
  buildDist,
  NPM_START,
  removeDir,
  spawnBridge,
  type BridgeProcess,
} from '../test/support/bridge-process';
import { rpc } from '../test/support/containers';
import { docker, ensureAgentImage, ensureDocker } from '../test/support/docker';
import {
  bridgeSlot,
  setupMatrixWorld,
  waitForStatus,
  teardownMatrixWorld,
  type BridgeSlot,
  type MatrixWorld,
} from '../test/support/matrix-scenario';
import { summariseProfile } from './lib/cpu-profile';
import { forkHelper, PROJECT_ROOT, stopChild } from './lib/child';
import { onCleanup } from './lib/cleanup';
import {
  containersCpuSeconds,
  prepareCpuSampling,
  processCpuSeconds,
  threadCpuSeconds,
  systemBusyCpuSeconds,
} from './lib/cpu';
import { machineInfo } from './lib/machine';
import type { BenchSettings, Suite } from './lib/suite';
import { summariseMs, type MsSummary } from './lib/stats';
import {
  barChartPanel,
  BASELINE_COLOR,
  BRIDGE_COLOR,
  latencyChart,
  legend,
  REFERENCE_COLOR,
} from './lib/svg';
import {
  FRAME_MS,
  ONSET_RMS,
  SILENCE_FRAMES,
  TONE_FRAMES,
  type CallerRequest,
  type CallerStats,
} from './lib/voice-callers-protocol';

const intEnv = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
  return v;
};

/** Sequential calls per path for connect time; the first LATENCY_CALLS also carry bursts. */
const CONNECT_CALLS = intEnv('BENCH_VOICE_CONNECT_CALLS', 10);
const LATENCY_CALLS = Math.min(CONNECT_CALLS, intEnv('BENCH_VOICE_LATENCY_CALLS', 10));
const BURSTS_PER_CALL = intEnv('BENCH_VOICE_BURSTS', 3);
const WINDOW_S = intEnv('BENCH_VOICE_WINDOW_SECONDS', 10);
const LEVELS = (process.env.BENCH_VOICE_LEVELS ?? '1,10,20,30,40')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n) && n > 0 && n <= 50)
  .sort((a, b) => a - b);
/** The ramp goes on up to this many calls even with loss, so CPU is measured at 1, 10 and 20. */
const CPU_LEVELS = 20;
/** Calls started at once while ramping (1: one after another, as calls arrive in practice). */
const START_BATCH = intEnv('BENCH_VOICE_START_BATCH', 1);
/** Failed starts tolerated per level (each retried) before the ramp stops. */
const MAX_START_FAILURES = 2;

const AIM_ADDED_P95_MS = 20;
const AIM_CALLS = 40;
/** Processes the callers are spread over (round robin), each with its own 20 ms schedule. */
const CALLER_PROCESSES = intEnv('BENCH_VOICE_CALLER_PROCESSES', 2);
/** The bridge's `voice.media_threads` (unset: its default, one per CPU; 0: media on the main thread). */
const MEDIA_THREADS = process.env.BENCH_VOICE_MEDIA_THREADS?.trim() || undefined;
if (MEDIA_THREADS !== undefined && !/^\d+$/.test(MEDIA_THREADS))
  throw new Error('BENCH_VOICE_MEDIA_THREADS must be a whole number');
const WARMUP_S = 2;
/** Quiet after the tone, so every echo still on its way is back before the counters are read. */
const DRAIN_MS = 3000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

/** One process of callers (bench/voice-callers.ts), asked over its IPC pipe. */
class CallerProcess {
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void }
  >();

  constructor(readonly child: ChildProcess) {
    child.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.ok) w?.resolve(m.result);
      else w?.reject(new Error(m.error));
    });
    child.once('exit', (code: number | null) => {
      for (const w of this.waiting.values()) w.reject(new Error(`the callers exited (${code})`));
      this.waiting.clear();
    });
  }

  ask<T>(req: CallerRequest, timeoutMs = 60_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`the callers did not answer ${req.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, ...req });
    });
  }
}

/** A call's caller: which process holds it, its number there, and the bridge's session. */
interface Caller {
  farm: CallerProcess;
  caller: number;
  sessionId?: string;
  containerName?: string;
}

/** One group of a CPU profile (lib/cpu-profile.ts): its share of the busy time and of a core. */
interface ProfileShare {
  group: string;
  pct_of_busy: number;
  pct_of_core: number;
}

interface StartedCall {
  caller: Caller;
  rpcMs: number;
  connectMs: number;
}

interface LevelResult {
  calls: number;
  window_s: number;
  bridge_cpu_s: number;
  bridge_cpu_pct: number;
  bridge_cpu_pct_per_call: number;
  /** The bridge's main thread alone (its event loop). */
  bridge_main_cpu_pct?: number | null;
  /** The callers' processes and the suite's own. */
  bench_process_cpu_pct: number;
  /** Every agent container of the calls (their cgroups). */
  agents_cpu_pct?: number | null;
  /** The bridge's embedded Temporal dev server. */
  temporal_cpu_pct?: number | null;
  machine_busy_pct: number | null;
  frames_sent: number;
  frames_received: number;
  /** Over the calls' lives (sent − decoded back), read after the drain. */
  frames_missing: number;
  lifetime_frames_sent: number;
  lifetime_frames_received: number;
  packets_received: number;
  packets_lost: number;
  packets_late: number;
  decode_errors: number;
  calls_disconnected: number;
  sender_gaps: number;
  start_failures: number;
  calls_ended_by_bridge: number;
  driver_late_ms: MsSummary;
  loss_free: boolean;
  added_calls_connect_ms: MsSummary | null;
}

const sumStats = (list: AudioPeerStats[]): AudioPeerStats =>
  list.reduce((a, s) => {
    for (const k of Object.keys(a) as Array<keyof AudioPeerStats>) a[k] += s[k];
    return a;
  }, emptyAudioPeerStats());

export const voice: Suite = {
  name: 'voice',
  budgetMs: () => 25 * 60_000,
  async run(settings: BenchSettings): Promise<string[]> {
    if (LEVELS.length === 0) throw new Error('BENCH_VOICE_LEVELS names no level from 1 to 50');
    prepareCpuSampling();
    await ensureDocker();
    await ensureAgentImage();
    const machine = machineInfo(PROJECT_ROOT);
    const stops: Array<() => Promise<void>> = [];
    const farms = Array.from(
      { length: Math.max(1, CALLER_PROCESSES) },
      () => new CallerProcess(forkHelper('voice-callers.ts')),
    );
    stops.push(onCleanup(() => Promise.all(farms.map((f) => stopChild(f.child))).then(() => {})));
    let nextFarm = 0;
    const everyFarm = <T>(req: CallerRequest) => Promise.all(farms.map((f) => f.ask<T>(req)));
    const live = new Set<Caller>();
    try {
      console.log('starting Synapse...');
      const w: MatrixWorld = await setupMatrixWorld();
      stops.push(onCleanup(() => teardownMatrixWorld(w)));
      const hostId = `bench-voice-${process.pid}`;
      const slot: BridgeSlot = await bridgeSlot(w, {
        ARMORCLAW_HOST_ID: hostId,
        ARMORCLAW_LOG_LEVEL: 'warn',
        ARMORCLAW_MATRIX_TRUSTED_ROOMS: w.rooms.agent,
        ARMORCLAW_VOICE_SIGNALING_PORT: '0',
        ARMORCLAW_VOICE_REQUIRE_ENCRYPTED_ROOM: 'false',
        ARMORCLAW_VOICE_REQUIRE_MEMBERSHIP: 'false',
        ARMORCLAW_VOICE_RATE_LIMIT_CALLS: '10000',
        ARMORCLAW_VOICE_MAX_CONCURRENT_CALLS: '1000',
        ARMORCLAW_VOICE_MAX_CALL_DURATION: '1h',
        ARMORCLAW_VOICE_ICE_HOST_ADDRESSES: '127.0.0.1',
        ...(MEDIA_THREADS !== undefined ? { ARMORCLAW_VOICE_MEDIA_THREADS: MEDIA_THREADS } : {}),
      });
      stops.push(onCleanup(() => removeDir(slot.dir)));
      console.log('starting the bridge (embedded Temporal, Matrix login, Docker)...');
      // As `npm start` runs it (compiled), with the profile probe preloaded: it names the
      // bridge's pid (npm and sh sit between) and profiles its main thread on request.
      buildDist();
      const profileFile = path.join(slot.dir, 'bridge.cpuprofile');
      const bridge: BridgeProcess = await spawnBridge({
        dir: slot.dir,
        temporalPort: slot.temporalPort,
        uiPort: slot.uiPort,
        command: NPM_START,
        env: {
          ...slot.env,
          NODE_OPTIONS: `--require ${path.join(__dirname, 'lib', 'profile-probe.js')}`,
          ARMORCLAW_PROFILE_FILE: profileFile,
        },
      });
      await waitForStatus(bridge.socketPath, 'connected', 60_000);
      stops.push(
        onCleanup(async () => {
          // End what is still live, stop the bridge, then remove anything its host id labels.
          await Promise.all(
            [...live].map((c) =>
              c.sessionId
                ? rpc(bridge.socketPath, 'webrtc.end', { session_id: c.sessionId }, 60_000).catch(
                    () => undefined,
                  )
                : undefined,
            ),
          );
          const killer = setTimeout(() => bridge.child.kill('SIGKILL'), 30_000);
          await bridge.stop();
          clearTimeout(killer);
          const left = await docker(['ps', '-aq', '--filter', `label=armorclaw.host=${hostId}`]);
          const ids = left.stdout.split('\n').filter(Boolean);
          if (ids.length > 0) await docker(['rm', '-f', ...ids]);
        }),
      );
      const pid = Number(readFileSync(`${profileFile}.pid`, 'utf8'));
      const call = (method: string, params?: unknown) =>
        rpc(bridge.socketPath, method, params, 120_000);
      const keyId = 'bench-voice';
      const stored = await call('store_key', { id: keyId, provider: 'openai', token: 'sk-bench' });
      if (stored.error) throw new Error(`store_key: ${JSON.stringify(stored.error)}`);

      const startCall = async (): Promise<StartedCall> => {
        const farm = farms[nextFarm++ % farms.length]!;
        const offered = await farm.ask<{ caller: number; offerSdp: string }>({ op: 'offer' });
        const caller: Caller = { farm, caller: offered.caller };
        live.add(caller);
        const t0 = now();
        const res = await call('webrtc.start', {
          room_id: w.rooms.agent,
          user_id: w.alice.userId,
          key_id: keyId,
          ttl: '1h',
          sdp_offer: offered.offerSdp,
        });
        const rpcMs = now() - t0;
        if (res.error) {
          live.delete(caller);
          await farm.ask({ op: 'close', caller: caller.caller }).catch(() => undefined);
          throw new Error(`webrtc.start: ${JSON.stringify(res.error)}`);
        }
        caller.sessionId = res.result.session_id;
        caller.containerName = res.result.container_name;
        await farm.ask({ op: 'connect', caller: caller.caller, answerSdp: res.result.sdp_answer });
        const connectMs = now() - t0;
        return { caller, rpcMs, connectMs };
      };
      const endCall = async (c: Caller): Promise<void> => {
        try {
          if (c.sessionId) {
            const r = await call('webrtc.end', { session_id: c.sessionId, reason: 'user_hangup' });
            if (r.error) console.warn(`webrtc.end ${c.sessionId}: ${JSON.stringify(r.error)}`);
          }
        } finally {
          live.delete(c);
          await c.farm.ask({ op: 'close', caller: c.caller }).catch(() => undefined);
        }
      };
      const startDirect = async (): Promise<StartedCall> => {
        const farm = farms[0]!;
        const d = await farm.ask<{ caller: number; rpcMs: number; connectMs: number }>({
          op: 'direct',
        });
        return { caller: { farm, caller: d.caller }, rpcMs: d.rpcMs, connectMs: d.connectMs };
      };
      const bursts = (c: Caller, n: number) =>
        c.farm.ask<{ roundTrips: number[]; missed: number }>(
          { op: 'bursts', caller: c.caller, n },
          n * 35 * FRAME_MS + 30_000,
        );
      const closeDirect = (c: Caller) => c.farm.ask({ op: 'close', caller: c.caller });

      // --- warmup: one call each way, unrecorded (image, workflow bundle, codec JIT) -------
      console.log('warmup: one bridge call, one direct pair...');
      {
        const b = await startCall();
        await bursts(b.caller, 3);
        await endCall(b.caller);
        const d = await startDirect();
        await bursts(d.caller, 3);
        await closeDirect(d.caller);
      }

      // --- connect time and round trip ------------------------------------------------------
      const paths = {
        bridge: {
          connect: [] as number[],
          rpc: [] as number[],
          rtt: [] as number[],
          byCall: [] as number[][],
          missed: 0,
        },
        direct: {
          connect: [] as number[],
          rpc: [] as number[],
          rtt: [] as number[],
          byCall: [] as number[][],
          missed: 0,
        },
      };
      console.log(
        `connect: ${CONNECT_CALLS} sequential calls per path; round trip: ${LATENCY_CALLS} × ${BURSTS_PER_CALL} bursts per path...`,
      );
      for (let i = 0; i < CONNECT_CALLS; i++) {
        for (const which of ['bridge', 'direct'] as const) {
          const s = which === 'bridge' ? await startCall() : await startDirect();
          const p = paths[which];
          p.connect.push(s.connectMs);
          p.rpc.push(s.rpcMs);
          if (i < LATENCY_CALLS) {
            await sleep(500);
            const heard = await bursts(s.caller, BURSTS_PER_CALL);
            p.rtt.push(...heard.roundTrips);
            p.byCall.push(heard.roundTrips);
            p.missed += heard.missed;
          }
          if (which === 'bridge') await endCall(s.caller);
          else await closeDirect(s.caller);
        }
      }
      const rtt = { bridge: summariseMs(paths.bridge.rtt), direct: summariseMs(paths.direct.rtt) };
      const connect = {
        bridge: summariseMs(paths.bridge.connect),
        direct: summariseMs(paths.direct.connect),
      };
      const addedP50 = rtt.bridge.p50 - rtt.direct.p50;
      const addedP95 = rtt.bridge.p95 - rtt.direct.p95;
      console.log(
        `round trip p50/p95: bridge ${rtt.bridge.p50.toFixed(1)}/${rtt.bridge.p95.toFixed(1)} ms, direct ${rtt.direct.p50.toFixed(1)}/${rtt.direct.p95.toFixed(1)} ms; connect p50 bridge ${connect.bridge.p50.toFixed(0)} ms, direct ${connect.direct.p50.toFixed(0)} ms`,
      );

      // --- idle bridge CPU ------------------------------------------------------------------
      const devServerPid = Number(
        readFileSync(path.join(bridge.stateDir, 'temporal', 'dev-server.pid'), 'utf8'),
      );
      const agentIds = async () =>
        (
          await docker(['ps', '-q', '--no-trunc', '--filter', `label=armorclaw.host=${hostId}`])
        ).stdout
          .split('\n')
          .filter(Boolean);
      const cpuOf = (pids: number[]) =>
        pids.reduce((sum, p) => sum + (processCpuSeconds(p) ?? 0), 0);
      /** CPU over `seconds`, as cores used: the bridge, the callers, the agents, Temporal. */
      const measureCpu = async (seconds: number) => {
        const ids = await agentIds();
        const farmPids = farms.map((f) => f.child.pid!);
        const b0 = processCpuSeconds(pid);
        const main0 = threadCpuSeconds(pid, pid);
        const m0 = systemBusyCpuSeconds();
        const c0 =
          cpuOf(farmPids) + process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6;
        const a0 = containersCpuSeconds(ids);
        const t0cpu = processCpuSeconds(devServerPid);
        const t0 = now();
        await sleep(seconds * 1e3);
        const elapsed = (now() - t0) / 1e3;
        const b1 = processCpuSeconds(pid);
        const main1 = threadCpuSeconds(pid, pid);
        const m1 = systemBusyCpuSeconds();
        const c1 =
          cpuOf(farmPids) + process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6;
        const a1 = containersCpuSeconds(ids);
        const t1cpu = processCpuSeconds(devServerPid);
        return {
          elapsed,
          bridge: (b1! - b0!) / elapsed,
          bridgeMain: main0 !== null && main1 !== null ? (main1 - main0) / elapsed : null,
          bench: (c1 - c0) / elapsed,
          agents: a0 !== null && a1 !== null ? (a1 - a0) / elapsed : null,
          temporal: t0cpu !== null && t1cpu !== null ? (t1cpu - t0cpu) / elapsed : null,
          machine: m0 !== null && m1 !== null ? (m1 - m0) / elapsed / machine.nproc : null,
        };
      };
      console.log(`idle bridge CPU over ${WINDOW_S} s...`);
      const idle = await measureCpu(WINDOW_S);

      // --- concurrent calls: CPU and loss ---------------------------------------------------
      const levels: LevelResult[] = [];
      const calls: Caller[] = [];
      let stopReason = '';
      for (const level of LEVELS) {
        console.log(`level ${level}: starting ${level - calls.length} more calls...`);
        const added: number[] = [];
        let failure: Error | undefined;
        let startFailures = 0;
        while (calls.length < level && startFailures <= MAX_START_FAILURES) {
          const n = Math.min(START_BATCH, level - calls.length);
          const results = await Promise.allSettled(Array.from({ length: n }, () => startCall()));
          for (const r of results) {
            if (r.status === 'fulfilled') {
              calls.push(r.value.caller);
              added.push(r.value.connectMs);
            } else {
              failure = r.reason as Error;
              startFailures++;
              console.warn(
                `level ${level}: a call failed to start: ${failure.message.slice(0, 200)}`,
              );
            }
          }
        }
        // Calls that would not start end the ramp, but the calls that did are still measured
        // (the level is then not loss-free: its starts failed).
        const shortOfLevel = calls.length < level;
        if (shortOfLevel) {
          stopReason = `at ${level} calls, ${startFailures} starts failed (last: ${failure?.message.slice(0, 300)}); ${calls.length} calls measured`;
          console.warn(`level ${level}: ${stopReason}`);
          if (calls.length === (levels.at(-1)?.calls ?? 0)) break;
        }
        await sleep(1000);
        // Quiet (nothing in flight), count, stream a tone, quiet again, count.
        await everyFarm({ op: 'mode', mode: 'pause' });
        await sleep(1000);
        const statsNow = async () =>
          new Map(
            (await everyFarm<CallerStats[]>({ op: 'stats' })).flatMap((list, f) =>
              list.map((c): [string, CallerStats] => [`${f}:${c.caller}`, c]),
            ),
          );
        const before = await statsNow();
        await everyFarm({ op: 'mode', mode: 'tone' });
        await everyFarm({ op: 'driver', reset: true });
        await sleep(WARMUP_S * 1e3);
        const cpu = await measureCpu(WINDOW_S);
        const schedules = await everyFarm<{ lateMs: number[]; gaps: number }>({
          op: 'driver',
          reset: false,
        });
        const lateness = summariseMs(schedules.flatMap((d) => d.lateMs));
        const senderGaps = schedules.reduce((n, d) => n + d.gaps, 0);
        await everyFarm({ op: 'mode', mode: 'pause' });
        await sleep(DRAIN_MS);
        const afterAll = await statsNow();
        await everyFarm({ op: 'mode', mode: 'silence' });
        const after = [...afterAll.values()].map((c) => c.stats);
        const delta = sumStats(
          [...afterAll].map(([k, a]) => {
            const b = before.get(k)?.stats ?? emptyAudioPeerStats();
            const d = { ...a.stats };
            for (const key of Object.keys(d) as Array<keyof AudioPeerStats>) d[key] -= b[key];
            return d;
          }),
        );
        const disconnected = [...afterAll.values()].filter((c) => c.state !== 'connected').length;
        const listed = (await call('webrtc.list')).result?.sessions as
          Array<{ session_id: string }> | undefined;
        const ids = new Set((listed ?? []).map((x) => x.session_id));
        const ended = calls.filter((c) => !ids.has(c.sessionId!)).length;
        // Over each call's life, after the drain: every frame sent must be back by now. (Window
        // deltas alone mislead on a starved machine: echoes of frames sent before the window
        // can still be queued in the bridge's play-out pacer when the window opens.)
        const lifetime = sumStats(after);
        const missing = lifetime.framesSent - lifetime.framesDecoded;
        const lossFree =
          startFailures === 0 &&
          missing === 0 &&
          delta.packetsLost === 0 &&
          delta.decodeErrors === 0 &&
          !disconnected &&
          ended === 0;
        const bridgePct = (cpu.bridge - idle.bridge) * 100;
        const r: LevelResult = {
          calls: calls.length,
          window_s: cpu.elapsed,
          bridge_cpu_s: cpu.bridge * cpu.elapsed,
          bridge_cpu_pct: cpu.bridge * 100,
          bridge_cpu_pct_per_call: bridgePct / calls.length,
          bridge_main_cpu_pct: cpu.bridgeMain === null ? null : cpu.bridgeMain * 100,
          bench_process_cpu_pct: cpu.bench * 100,
          agents_cpu_pct: cpu.agents === null ? null : cpu.agents * 100,
          temporal_cpu_pct: cpu.temporal === null ? null : cpu.temporal * 100,
          machine_busy_pct: cpu.machine === null ? null : cpu.machine * 100,
          frames_sent: delta.framesSent,
          frames_received: delta.framesDecoded,
          frames_missing: missing,
          lifetime_frames_sent: lifetime.framesSent,
          lifetime_frames_received: lifetime.framesDecoded,
          packets_received: delta.packetsReceived,
          packets_lost: delta.packetsLost,
          packets_late: delta.packetsLate,
          decode_errors: delta.decodeErrors,
          calls_disconnected: disconnected,
          sender_gaps: senderGaps,
          start_failures: startFailures,
          calls_ended_by_bridge: ended,
          driver_late_ms: lateness,
          loss_free: lossFree,
          added_calls_connect_ms: added.length ? summariseMs(added) : null,
        };
        levels.push(r);
        console.log(
          `level ${level}: bridge ${r.bridge_cpu_pct.toFixed(1)}% of a core (${r.bridge_cpu_pct_per_call.toFixed(2)}%/call over idle), frames ${r.frames_received}/${r.frames_sent}, packets lost ${r.packets_lost}, bench process ${r.bench_process_cpu_pct.toFixed(0)}%, machine ${r.machine_busy_pct?.toFixed(0)}%, driver late p95 ${lateness.p95.toFixed(1)} ms, sender gaps ${senderGaps}`,
        );
        if (shortOfLevel) break;
        if (!lossFree && level >= CPU_LEVELS) {
          stopReason = `loss at ${level} calls`;
          break;
        }
        if (lateness.p95 > 4 * FRAME_MS && level >= CPU_LEVELS) {
          stopReason = `the bench process could not keep the 20 ms send schedule at ${level} calls (tick lateness p95 ${lateness.p95.toFixed(0)} ms)`;
          break;
        }
      }
      // --- where the bridge's time goes at the highest level: its main thread, profiled -------
      let bridgeProfile: ProfileShare[] | null = null;
      if (calls.length > 0) {
        console.log(`profiling the bridge at ${calls.length} calls for ${WINDOW_S} s...`);
        rmSync(profileFile, { force: true });
        await everyFarm({ op: 'mode', mode: 'tone' });
        await sleep(WARMUP_S * 1e3);
        process.kill(pid, 'SIGUSR2');
        await sleep(WINDOW_S * 1e3);
        process.kill(pid, 'SIGUSR2');
        for (let i = 0; i < 100 && !existsSync(profileFile); i++) await sleep(100);
        await everyFarm({ op: 'mode', mode: 'silence' });
        if (existsSync(profileFile)) {
          const groups = summariseProfile(JSON.parse(readFileSync(profileFile, 'utf8')));
          const busy = groups.filter((g) => g.group !== 'idle').reduce((n, g) => n + g.ms, 0);
          const total = groups.reduce((n, g) => n + g.ms, 0);
          bridgeProfile = groups
            .filter((g) => g.group !== 'idle')
            .map((g) => ({
              group: g.group,
              pct_of_busy: (g.ms / busy) * 100,
              pct_of_core: (g.ms / total) * 100,
            }));
        }
      }
      const concurrentCalls = calls.length;
      console.log(`ending ${calls.length} calls...`);
      // The callers stop sending first: ending calls is timed without the others' media.
      await everyFarm({ op: 'mode', mode: 'pause' });
      const tEnd = now();
      const endFailures: string[] = [];
      for (let i = 0; i < calls.length; i += 10) {
        await Promise.all(
          calls.slice(i, i + 10).map((c) =>
            endCall(c).catch((err: Error) => {
              endFailures.push(`${c.sessionId}: ${err.message.slice(0, 200)}`);
            }),
          ),
        );
      }
      const endAllMs = now() - tEnd;
      if (endFailures.length > 0)
        console.warn(`${endFailures.length} calls did not end cleanly: ${endFailures[0]}`);

      const best = levels.filter((l) => l.loss_free).reduce((m, l) => Math.max(m, l.calls), 0);
      // The highest level counts only if every level below it was loss-free too.
      let clean = 0;
      for (const l of levels) {
        if (!l.loss_free) break;
        clean = l.calls;
      }
      const result = {
        machine,
        settings: {
          connect_calls: CONNECT_CALLS,
          latency_calls: LATENCY_CALLS,
          bursts_per_call: BURSTS_PER_CALL,
          burst: { silence_frames: SILENCE_FRAMES, tone_frames: TONE_FRAMES, onset_rms: ONSET_RMS },
          window_s: WINDOW_S,
          warmup_s: WARMUP_S,
          drain_ms: DRAIN_MS,
          levels: LEVELS,
          caller_processes: farms.length,
          media_threads: MEDIA_THREADS === undefined ? ('default' as const) : Number(MEDIA_THREADS),
        },
        round_trip_ms: {
          bridge: rtt.bridge,
          direct: rtt.direct,
          added_p50: addedP50,
          added_p95: addedP95,
          missed_bursts: { bridge: paths.bridge.missed, direct: paths.direct.missed },
          aim_added_p95_ms: AIM_ADDED_P95_MS,
          aim_met: addedP95 <= AIM_ADDED_P95_MS,
        },
        connect_ms: {
          bridge: connect.bridge,
          direct: connect.direct,
          bridge_webrtc_start_answer: summariseMs(paths.bridge.rpc),
          direct_answer_made: summariseMs(paths.direct.rpc),
        },
        idle_bridge_cpu_pct: idle.bridge * 100,
        idle_machine_busy_pct: idle.machine === null ? null : idle.machine * 100,
        levels,
        most_loss_free_calls: clean,
        bridge_profile: bridgeProfile
          ? { calls: concurrentCalls, window_s: WINDOW_S, groups: bridgeProfile }
          : null,
        highest_loss_free_level: best,
        concurrent_calls_reached: concurrentCalls,
        stop_reason: stopReason || null,
        aim_calls: AIM_CALLS,
        aim_calls_met: clean >= AIM_CALLS,
        end_all_calls_ms: endAllMs,
        end_failures: endFailures,
        samples: {
          round_trip: { bridge: paths.bridge.rtt, direct: paths.direct.rtt },
          round_trip_by_call: { bridge: paths.bridge.byCall, direct: paths.direct.byCall },
          connect: { bridge: paths.bridge.connect, direct: paths.direct.connect },
        },
      };
      mkdirSync(settings.outDir, { recursive: true });
      const name = reportName(result);
      const jsonPath = path.join(settings.outDir, `${name}.json`);
      const svgPath = path.join(settings.outDir, `${name}.svg`);
      writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');
      writeFileSync(svgPath, drawSvg(result));
      const mdPath = path.join(settings.outDir, `${name}.md`);
      writeFileSync(mdPath, renderVoiceMarkdown(result));
      console.log(
        `voice: added round trip p50 ${addedP50.toFixed(1)} / p95 ${addedP95.toFixed(1)} ms; ${clean} concurrent calls loss-free`,
      );
      return [jsonPath, mdPath, svgPath];
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    }
  },
};

interface SvgInput {
  round_trip_ms: { bridge: MsSummary; direct: MsSummary; aim_added_p95_ms: number };
  connect_ms: { bridge: MsSummary; direct: MsSummary };
  levels: LevelResult[];
  idle_bridge_cpu_pct: number;
}

/** docs/benchmarks/voice.svg from a run's results. */
export function drawSvg(r: SvgInput): string {
  const blue = BRIDGE_COLOR;
  const grey = BASELINE_COLOR;
  const rt = barChartPanel(
    latencyChart(
      'audio round trip (ms)',
      r.round_trip_ms.bridge,
      { name: 'direct', bars: r.round_trip_ms.direct },
      [
        {
          value: r.round_trip_ms.direct.p95 + r.round_trip_ms.aim_added_p95_ms,
          label: `aim: direct p95 + ${r.round_trip_ms.aim_added_p95_ms} ms`,
          group: 1,
        },
      ],
    ),
    0,
    20,
    300,
    320,
  );
  const ct = barChartPanel(
    {
      title: 'connect time (ms)',
      groupLabel: '',
      groups: ['p50', 'p95'],
      series: [
        { name: 'bridge', color: blue, values: [r.connect_ms.bridge.p50, r.connect_ms.bridge.p95] },
        { name: 'direct', color: grey, values: [r.connect_ms.direct.p50, r.connect_ms.direct.p95] },
      ],
      format: (v) => v.toFixed(0),
    },
    300,
    20,
    260,
    320,
  );
  const cpu = barChartPanel(
    {
      title: 'bridge CPU, % of a core',
      groupLabel: 'concurrent calls (✗ = loss)',
      groups: ['idle', ...r.levels.map((l) => `${l.calls}${l.loss_free ? '' : ' ✗'}`)],
      series: [
        {
          name: 'bridge',
          color: blue,
          values: [r.idle_bridge_cpu_pct, ...r.levels.map((l) => l.bridge_cpu_pct)],
        },
      ],
      format: (v) => (v < 10 ? v.toFixed(1) : v.toFixed(0)),
    },
    560,
    20,
    340,
    320,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="360" viewBox="0 0 900 360"><rect width="900" height="360" fill="#fff"/>\n${legend(
    [
      { name: 'via the bridge + echo agent', color: blue },
      { name: 'direct werift loopback', color: grey },
      { name: 'aim', color: REFERENCE_COLOR, dashed: true },
    ],
    60,
    16,
  )}\n${rt}\n${ct}\n${cpu}\n</svg>\n`;
}

/** What the Markdown report reads (voice.json has the same shape). */
export interface VoiceResult extends SvgInput {
  machine: ReturnType<typeof machineInfo>;
  settings: {
    connect_calls: number;
    latency_calls: number;
    bursts_per_call: number;
    burst: { silence_frames: number; tone_frames: number; onset_rms: number };
    window_s: number;
    warmup_s: number;
    drain_ms?: number;
    levels: number[];
    caller_processes?: number;
    /** The bridge's voice.media_threads: `default` (one per CPU) or the number set. */
    media_threads?: number | 'default';
  };
  round_trip_ms: SvgInput['round_trip_ms'] & {
    added_p50: number;
    added_p95: number;
    missed_bursts: { bridge: number; direct: number };
    aim_met: boolean;
  };
  connect_ms: SvgInput['connect_ms'] & {
    bridge_webrtc_start_answer: MsSummary;
    direct_answer_made: MsSummary;
  };
  idle_machine_busy_pct: number | null;
  most_loss_free_calls: number;
  /** The bridge's main thread, profiled at the highest level reached. */
  bridge_profile?: { calls: number; window_s: number; groups: ProfileShare[] } | null;
  concurrent_calls_reached: number;
  stop_reason: string | null;
  aim_calls: number;
  aim_calls_met: boolean;
  end_all_calls_ms: number;
  /** `webrtc.end` calls that failed or timed out (session: reason). */
  end_failures?: string[];
  samples: {
    round_trip: { bridge: number[]; direct: number[] };
    round_trip_by_call?: { bridge: number[][]; direct: number[][] };
  };
}

/**
 * The report's file name: `voice`, or `voice-main-thread` for a run with the media on the
 * bridge's main thread (BENCH_VOICE_MEDIA_THREADS=0), kept beside it for comparison.
 */
export function reportName(r: VoiceResult): string {
  return r.settings.media_threads === 0 ? 'voice-main-thread' : 'voice';
}

/** docs/benchmarks/voice.md (or voice-main-thread.md) from a run's results. */
export function renderVoiceMarkdown(r: VoiceResult): string {
  const m = r.machine;
  const f1 = (v: number | null | undefined) =>
    v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(1);
  const f0 = (v: number | null | undefined) =>
    v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(0);
  const row = (what: string, s: MsSummary) =>
    `| ${what} | ${s.n} | ${f1(s.p50)} | ${f1(s.p95)} | ${f1(s.min)} | ${f1(s.max)} | ${f1(s.mean)} |`;
  const rt = r.round_trip_ms;
  const ct = r.connect_ms;
  const median = (xs: number[]) => (xs.length ? summariseMs(xs).p50 : NaN);
  const byCall = r.samples.round_trip_by_call;
  const callMedians = byCall ? byCall.bridge.map(median) : [];
  const directMedians = byCall ? byCall.direct.map(median) : [];
  const levelRows = r.levels
    .map(
      (l) =>
        `| ${l.calls} | ${f1(l.bridge_cpu_pct)} | ${f1(l.bridge_main_cpu_pct)} | ${l.bridge_cpu_pct_per_call.toFixed(2)} | ${l.frames_sent} | ${l.frames_received} | ${l.frames_missing} | ${l.packets_lost} | ${l.calls_disconnected + (l.calls_ended_by_bridge ?? 0)} | ${l.sender_gaps ?? 'n/a'} | ${l.start_failures ?? 'n/a'} | ${f1(l.driver_late_ms.p95)} | ${f0(l.bench_process_cpu_pct)} | ${f0(l.agents_cpu_pct)} | ${f0(l.temporal_cpu_pct)} | ${f0(l.machine_busy_pct)} | ${l.loss_free ? 'yes' : '**no**'} |`,
    )
    .join('\n');
  const busy = (m.loadAverage[0] ?? 0) > m.nproc * 0.5;
  const perCallCpu = r.levels.filter((l) => l.calls >= 10);
  return `# Voice calls: added latency, connect time, CPU per call, concurrent calls

Generated by \`BENCH_SUITES=voice npm run bench\` (bench/voice.ts) on ${m.date}: ${m.nproc} CPUs (${m.cpuModel}), ${(m.totalMemoryBytes / 2 ** 30).toFixed(0)} GiB, Node ${m.node}, ${m.platform} ${m.kernel}, commit ${m.gitCommit?.slice(0, 12) ?? 'n/a'}, 1-minute load ${m.loadAverage[0]?.toFixed(2)} at start. Raw numbers: [${reportName(r)}.json](${reportName(r)}.json). ${reportName(r) === 'voice' ? 'The same bench with the media on the main thread (`BENCH_VOICE_MEDIA_THREADS=0`), for comparison: [voice-main-thread.md](voice-main-thread.md).' : 'The same bench with the media on media threads (the default): [voice.md](voice.md).'}

Run: \`BENCH_SUITES=voice npm run bench\` (needs Docker, the reference agent image \`armorclaw/agent:v1\`, built if missing, and Synapse from \`bash scripts/setup.sh --test\`; about 5–8 minutes). Knobs: \`BENCH_VOICE_CONNECT_CALLS\` (10), \`BENCH_VOICE_LATENCY_CALLS\` (10), \`BENCH_VOICE_BURSTS\` per call (3), \`BENCH_VOICE_WINDOW_SECONDS\` (10), \`BENCH_VOICE_LEVELS\` (\`1,10,20,30,40\`, at most 50), \`BENCH_VOICE_START_BATCH\` (1), \`BENCH_VOICE_CALLER_PROCESSES\` (2), \`BENCH_VOICE_MEDIA_THREADS\` (the bridge's \`voice.media_threads\`; unset: its default; 0: media on the main thread). The ramp always measures up to 20 calls (for CPU), then stops at the first level with loss.

Everything real: a private Synapse, the bridge process exactly as \`npm start\` runs it (embedded Temporal, Docker) with \`ARMORCLAW_VOICE_ICE_HOST_ADDRESSES=127.0.0.1\`, room checks relaxed (\`REQUIRE_ENCRYPTED_ROOM\`/\`REQUIRE_MEMBERSHIP\` false, rate and concurrency limits raised) so the bench measures media, not policy. Each call is \`webrtc.start\` with \`key_id\`, so **each call gets its own agent container** (the reference agent, echoing the caller's PCM), as a deployment runs them. ${r.settings.caller_processes ? `The callers are werift \`AudioPeer\`s over loopback UDP in ${r.settings.caller_processes} processes of their own (bench/voice-callers.ts, calls spread round robin), each with its own 20 ms send schedule, so the load generator shares no event loop with the suite or the bridge.` : 'The caller is a werift `AudioPeer` in the bench process over loopback UDP.'} The **baseline**, measured in the same run, is two \`AudioPeer\`s in one caller process, the far one sending every decoded frame straight back (\`sendAudioFrame\`): the same two Opus encodes and two decodes as the bridge path, without the bridge, the agent socket and the container.

${busy ? `> **The machine was shared** (1-minute load ${m.loadAverage[0]?.toFixed(2)} on ${m.nproc} CPUs at start; other work was running on it). The bench process, the bridge, Temporal, Synapse and every agent container share these ${m.nproc} CPUs. Absolute numbers are inflated; the concurrency ramp in particular is limited by the machine (see the notes).\n\n` : ''}## Aims

- Added round trip ≤ ${rt.aim_added_p95_ms} ms at p95: **${rt.aim_met ? 'met' : 'not met'}** — bridge p95 ${f1(rt.bridge.p95)} ms − direct p95 ${f1(rt.direct.p95)} ms = **${f1(rt.added_p95)} ms** (p50: ${f1(rt.added_p50)} ms added).
- ≥ ${r.aim_calls} concurrent calls with no loss: **${r.aim_calls_met ? 'met' : 'not met'}** — highest loss-free level: **${r.most_loss_free_calls}** calls${r.stop_reason ? ` (ramp stopped: ${r.stop_reason})` : ''}.

## Audio round trip (ms)

The caller streams 20 ms frames at real time (silence, 50 frames/s, as browsers send), with a ${r.settings.burst.tone_frames}-frame 440 Hz burst every ${r.settings.burst.silence_frames + r.settings.burst.tone_frames} frames. A round trip is the time from sending the burst's first frame to the arrival (decode) of the first frame heard back with RMS above ${r.settings.burst.onset_rms} (the tone is sent at RMS 0.354). ${r.settings.latency_calls} calls per path × ${r.settings.bursts_per_call} bursts; one unrecorded call per path first. Missed bursts (no onset heard before the next): bridge ${rt.missed_bursts.bridge}, direct ${rt.missed_bursts.direct}.

| path | n | p50 | p95 | min | max | mean |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${row('caller → bridge → echo agent → bridge → caller', rt.bridge)}
${row('direct werift loopback (baseline)', rt.direct)}
| **added by the bridge** | | **${f1(rt.added_p50)}** | **${f1(rt.added_p95)}** | | | |
${
  callMedians.length
    ? `
Median round trip of each bridge call, in order: ${callMedians.map((v) => f1(v)).join(', ')} ms (direct pairs: ${directMedians.map((v) => f1(v)).join(', ')} ms).
`
    : ''
}
## Connect time (ms)

${r.settings.connect_calls} sequential calls per path (the round-trip calls among them), each a fresh agent container. Bridge: from \`webrtc.start\` sent (the caller's offer inside, already gathered) to the caller's peer \`connected\`; it includes starting the agent's container run. Direct: from the offer made to the caller's peer \`connected\`, including the far peer's answer.

| what | n | p50 | p95 | min | max | mean |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${row('bridge: `webrtc.start` sent → connected', ct.bridge)}
${row('… of which `webrtc.start` answered (SDP answer back)', ct.bridge_webrtc_start_answer)}
${row('direct: offer → connected (baseline)', ct.direct)}
${row('… of which the far peer answered', ct.direct_answer_made)}

## Concurrent calls: bridge CPU and loss

Calls are added ${START_BATCH === 1 ? 'one after another' : `${START_BATCH} at a time`} up to each level (a failed \`webrtc.start\` is retried; ${MAX_START_FAILURES + 1} failures at a level stop the ramp, and any failure makes the level not loss-free) and kept (one container each). At each level all callers go quiet for 1 s, their counters are read, every call streams a 440 Hz tone both ways (caller → bridge → agent → bridge → caller) for ${r.settings.warmup_s} s + a ${r.settings.window_s} s window over which the bridge process's CPU (\`/proc/<pid>/stat\` utime + stime, all threads) is read (and its main thread's alone, \`/proc/<pid>/task/<pid>/stat\`), then the callers go quiet for ${((r.settings.drain_ms ?? 1500) / 1e3).toFixed(1)} s so every echo is back, and the counters are read again. **Frames missing** = frames the callers sent − frames they decoded back over the calls' whole lives, read after the drain (the echo answers one frame per frame; the window columns are the counts between the two reads); **packets lost** = RTP sequence gaps on the bridge → caller leg (AudioPeer \`stats\`). A level is loss-free when both are 0, no decode error, no failed start, every caller still \`connected\` and every call still listed by \`webrtc.list\`. **Sender gaps**: ticks of the bench's 20 ms send schedule that came more than 60 ms after the previous one (the load generator itself falling behind real time; AudioPeer then starts a new talkspurt). Idle bridge (no call, Matrix sync and Temporal worker only): **${f1(r.idle_bridge_cpu_pct)}%** of a core${r.idle_machine_busy_pct !== null ? `, machine ${f0(r.idle_machine_busy_pct)}% busy` : ''}. "% per call" is (bridge − idle) / calls.

| calls | bridge CPU, % of a core | main thread % | % per call | frames sent (window) | frames back (window) | frames missing (calls' lives) | packets lost | calls dropped | sender gaps | failed starts | send tick late p95 ms | callers % | agents % | Temporal % | machine busy % of ${m.nproc} CPUs | loss-free |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |
${levelRows}

${r.stop_reason ? `Ramp stopped: ${r.stop_reason}. ` : ''}Highest level reached: ${r.concurrent_calls_reached} concurrent calls. Ending them all (\`webrtc.end\`, 10 at a time, each stopping its container; the callers silent by then) took ${f0(r.end_all_calls_ms)} ms${r.end_failures?.length ? `; ${r.end_failures.length} did not answer within 120 s (first: ${r.end_failures[0]})` : ''}.${perCallCpu.length ? ` Bridge CPU per call at 10+ calls: ${perCallCpu.map((l) => `${l.bridge_cpu_pct_per_call.toFixed(1)}% (${l.calls})`).join(', ')} of a core.` : ''}

![round trip, connect time, bridge CPU by concurrency](${reportName(r)}.svg)
${profileSection(r)}
## Notes

${notes(r, callMedians, directMedians)}
`;
}

function notes(r: VoiceResult, callMedians: number[], directMedians: number[]): string {
  const out: string[] = [];
  const directTypical = directMedians.length
    ? summariseMs(directMedians).p50
    : r.round_trip_ms.direct.p50;
  const slow = callMedians.filter((v) => v - directTypical > r.round_trip_ms.aim_added_p95_ms);
  const fast = callMedians.filter((v) => v - directTypical <= r.round_trip_ms.aim_added_p95_ms);
  if (callMedians.length > 0) {
    out.push(
      `- **The added latency is set per call, not per packet.** Within one call the round trip is steady (see the per-call medians); between calls it differs: ${fast.length} of ${callMedians.length} bridge calls added at most ${r.round_trip_ms.aim_added_p95_ms} ms over the direct path's typical ${directTypical.toFixed(1)} ms${fast.length ? ` (medians ${summariseMs(fast).min.toFixed(1)}–${summariseMs(fast).max.toFixed(1)} ms)` : ''}, ${slow.length} held a constant extra${slow.length ? ` (medians ${summariseMs(slow).min.toFixed(1)}–${summariseMs(slow).max.toFixed(1)} ms)` : ''} for their whole life. That is the shape of the bridge's play-out pacer (\`FramePacer\` in media/agent-link.ts): it anchors its clock on the agent's first frame and holds every frame to that clock, and moves the clock earlier once a whole second of real-time arrivals was held longer than \`resyncAboveMs\` (10 ms). With the threshold at 60 ms (before 2026-11-22), a start-up delay under 60 ms stayed in the call for good: this bench then measured 43.8 ms added at p95 (2 of 10 calls held 30–44 ms throughout); at 10 ms it is gone within the call's first second. ${slow.length ? 'In this run some calls still held a constant extra: look at the pacer first.' : 'In this run no call kept a hold above the aim.'}`,
    );
  }
  out.push(
    `- **Connect time** is almost all \`webrtc.start\` itself (${r.connect_ms.bridge_webrtc_start_answer.p50.toFixed(0)} ms p50 of ${r.connect_ms.bridge.p50.toFixed(0)} ms): the call's workflow starts the agent's hardened container and links its audio socket before answering. ICE + DTLS after the answer take about ${(r.connect_ms.bridge.p50 - r.connect_ms.bridge_webrtc_start_answer.p50).toFixed(0)} ms (p50 difference), like the direct pair's ${r.connect_ms.direct.p50.toFixed(0)} ms, most of which is werift's DTLS handshake in one process for both ends. A call to an already running agent (\`container_name\`) skips the container start; not measured here.`,
  );
  const l1 = r.levels.find((l) => l.calls === 1);
  const hi = r.levels.filter((l) => l.calls >= 10);
  out.push(
    `- **CPU per call**: the bridge decodes the caller's Opus, writes PCM to the agent, reads its PCM back and encodes it (libopus, native when \`@discordjs/opus\` built at install, else WASM), plus SRTP/DTLS in werift, ${mediaWhere(r)}. ${l1 ? `One call costs ${l1.bridge_cpu_pct_per_call.toFixed(1)}% of a core over idle; ` : ''}${hi.map((l) => `at ${l.calls} calls ${l.bridge_cpu_pct_per_call.toFixed(1)}%`).join(', ')} per call. Per-call cost falls with N partly from shared fixed work (timers, the event loop wakes once for many packets) and partly because a saturated machine starves the bridge (see machine busy %): the high-N figures are floors, not steady-state costs. ${hi.length ? `At ${Math.min(...hi.map((l) => l.bridge_cpu_pct_per_call)).toFixed(1)}–${Math.max(...hi.map((l) => l.bridge_cpu_pct_per_call)).toFixed(1)}% of a core per call, ${r.aim_calls} calls would need ${Math.round(r.aim_calls * Math.min(...hi.map((l) => l.bridge_cpu_pct_per_call)))}–${Math.round(r.aim_calls * Math.max(...hi.map((l) => l.bridge_cpu_pct_per_call)))}% of a core (every thread counted: GC, the Temporal workflow thread and its native core included). How much of it is the main thread, and on what, is in the profile section above.` : ''}`,
  );
  out.push(concurrencyNote(r));
  out.push(
    `- Where missing frames went cannot be told from outside: packets lost counts only the bridge → caller leg, and the bridge's own counters (frames dropped for an agent not reading, play-out queue drops) are not exposed over RPC. Missing frames with 0 packets lost were lost before the bridge's encoder (caller → bridge leg, the agent socket, or the agent). The window columns can show more frames back than sent: echoes of frames sent before the window were still queued when it opened (the 1 s quiet before it is not always enough on a starved machine); the lifetime count has no such edge.`,
  );
  out.push(
    `- Round trips are timed in the bench process from the send of a burst's first frame to the decode of the first loud frame back, so both paths include two Opus encodes and decodes and the bench's own event loop; the onset detection is per 20 ms frame, identical for both paths, so it cancels in the difference. Percentiles are nearest-rank over ${r.round_trip_ms.bridge.n} samples per path, so p95 is the second-largest sample: a single slow call moves it.`,
  );
  return out.join('\n');
}

/** Where the bridge ran the calls' media in this run. */
function mediaWhere(r: VoiceResult): string {
  const t = r.settings.media_threads;
  if (t === undefined || t === 0) return 'all on its main thread';
  const n = t === 'default' ? r.machine.nproc : t;
  return `on ${n} media thread${n === 1 ? '' : 's'} (worker threads, \`voice.media_threads\`, 10 calls a thread before the next starts), the main thread only passing PCM between each call's thread and its agent's socket`;
}

/** What bounded the ramp: where the machine's CPU went at the highest level measured. */
function concurrencyNote(r: VoiceResult): string {
  const top = r.levels.at(-1);
  if (!top) return '- No concurrency level was measured.';
  const pct = (v: number | null | undefined) =>
    v === null || v === undefined ? 'n/a' : `${v.toFixed(0)}%`;
  const cores = r.machine.nproc * 100;
  const accounted =
    top.bridge_cpu_pct +
    top.bench_process_cpu_pct +
    (top.agents_cpu_pct ?? 0) +
    (top.temporal_cpu_pct ?? 0);
  const busy = top.machine_busy_pct === null ? null : (top.machine_busy_pct * cores) / 100;
  const saturated = top.machine_busy_pct !== null && top.machine_busy_pct >= 90;
  const bridgeBound = top.bridge_cpu_pct >= 90;
  const bound = bridgeBound
    ? `the bridge process itself: ${top.bridge_cpu_pct.toFixed(0)}% of a core`
    : saturated
      ? `the machine: ${r.machine.nproc} CPUs ${top.machine_busy_pct!.toFixed(0)}% busy, of which the bridge had only ${top.bridge_cpu_pct.toFixed(0)}% of a core`
      : 'neither the bridge nor the machine was saturated';
  return `- **What bounds concurrency here: ${bound}.** At ${top.calls} calls, CPU over the window in % of one core (the machine has ${cores}%): bridge ${pct(top.bridge_cpu_pct)}, callers ${pct(top.bench_process_cpu_pct)} (werift, Opus encode and decode for every caller; ${r.settings.caller_processes ?? 1} process(es)), agent containers ${pct(top.agents_cpu_pct)} (one Node echo agent per call), Temporal dev server ${pct(top.temporal_cpu_pct)}, everything else ${busy === null ? 'n/a' : pct(Math.max(0, busy - accounted))} (Synapse, Docker, the kernel's UDP and Unix sockets). The callers and the agents stand for what the callers' browsers and the agents' own hosts would spend in a deployment; here they share the bridge's ${r.machine.nproc} CPUs${saturated ? ', so the ramp measures this machine rather than the bridge' : ''}. ${top.sender_gaps > 0 ? `The callers' 20 ms schedule slipped (${top.sender_gaps} gaps, tick lateness p95 ${top.driver_late_ms.p95.toFixed(0)} ms): part of any loss at this level is the load generator's. ` : 'The callers kept their 20 ms schedule. '}Per call the bridge needs ${top.bridge_cpu_pct_per_call.toFixed(1)}% of a core here, so ${r.aim_calls} calls would take about ${(top.bridge_cpu_pct_per_call * r.aim_calls).toFixed(0)}% of one; its main thread had ${pct(top.bridge_main_cpu_pct)} of a core (${mediaWhere(r)}).`;
}

/** The bridge's main-thread profile at the highest level, as a results section. */
function profileSection(r: VoiceResult): string {
  const p = r.bridge_profile;
  if (!p) return '';
  const pct = (v: number | null | undefined) =>
    v === null || v === undefined ? 'n/a' : `${v.toFixed(0)}%`;
  const rows = p.groups
    .filter((g) => g.pct_of_busy >= 0.5)
    .map((g) => `| ${g.group} | ${g.pct_of_busy.toFixed(1)} | ${g.pct_of_core.toFixed(1)} |`);
  return `
## Where the bridge's main thread spends its time (${p.calls} calls)

A CPU profile of the bridge's main thread (its event loop; ${mediaWhere(r)}) over a further ${p.window_s} s of tone at ${p.calls} calls (\`bench/lib/profile-probe.js\`, preloaded; \`bench/lib/cpu-profile.ts\` groups each sample by the package or folder of the function on top of the stack). The Temporal workflow thread and the SDK's native threads are not in it. Native frames carry the nearest symbol V8 found, which can be wrong: time under a Temporal core symbol is native time on the main thread it could not place (libuv, the profiler itself). Node does not tell the profiler when its event loop waits, so time in libuv's poll (\`native: run\`, mostly) counts as busy here: the main thread's CPU from /proc in the table above (${pct(r.levels.find((l) => l.calls === p.calls)?.bridge_main_cpu_pct)} of a core at ${p.calls} calls) is the real figure, and the shares below are of the sampled time.

| what ran | % of the sampled time | % of the window |
| --- | ---: | ---: |
${rows.join('\n')}
`;
}
