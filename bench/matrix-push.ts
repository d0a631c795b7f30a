/**
 * Suite `matrix-push`: how long an event sent by a person takes to reach a `matrix.subscribe`
 * connection to the bridge (the bridge's push path: its /sync long-poll, trust check, durable
 * queue, notification), against a bare client long-polling `/sync` on the same homeserver,
 * measured in the same run from the same sends. Also `matrix.send` throughput, sequential and
 * concurrent, against the same account PUTting to the room directly.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawnBridge, type BridgeProcess } from '../test/support/bridge-process';
import { call } from '../test/support/socket-clients';
import { startSynapse, type MatrixSession, type SynapseHandle } from '../test/support/synapse';
import { PROJECT_ROOT } from './lib/child';
import { onCleanup } from './lib/cleanup';
import { machineInfo } from './lib/machine';
import type { BenchSettings, Suite } from './lib/suite';
import { summariseMs, type MsSummary } from './lib/stats';
import { barChartPanel, BASELINE_COLOR, BRIDGE_COLOR, latencyChart, legend } from './lib/svg';

const MESSAGES = Number(process.env.BENCH_MATRIX_MESSAGES ?? 100);
const SENDS = 50;
const WARMUP_MESSAGES = 5;
const AIM_P95_MS = 50;
const AIM_RATIO = 1.2;
/** `matrix.send` throughput at least this share of a direct PUT's, sequential and concurrent. */
const AIM_SEND_SHARE = 0.7;
/** Pause after both listeners got a message, so both are back in their long-poll. */
const GAP_MS = 50;
const WAIT_MS = 15_000;

const now = () => process.hrtime.bigint();
const msSince = (t0: bigint, t1 = now()) => Number(t1 - t0) / 1e6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex = (n: number) => randomBytes(n).toString('hex');

async function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

interface RpcMessage {
  id?: number | null;
  method?: string;
  params?: { event?: { content?: { body?: unknown } } };
  result?: { subscription?: string };
  error?: unknown;
}

interface SyncResponse {
  next_batch: string;
  rooms?: {
    join?: Record<string, { timeline?: { events?: Array<{ content?: { body?: unknown } }> } }>;
  };
}

/** Arrival times by message body, with a way to wait for one. */
class Arrivals {
  private readonly at = new Map<string, bigint>();
  private readonly waiters = new Map<string, Array<(t: bigint) => void>>();
  mark(body: string, t: bigint): void {
    if (this.at.has(body)) return;
    this.at.set(body, t);
    for (const w of this.waiters.get(body) ?? []) w(t);
    this.waiters.delete(body);
  }
  wait(body: string): Promise<bigint> {
    const t = this.at.get(body);
    if (t !== undefined) return Promise.resolve(t);
    return new Promise((resolve) => {
      const list = this.waiters.get(body) ?? [];
      list.push(resolve);
      this.waiters.set(body, list);
    });
  }
}

/**
 * One connection to the bridge that subscribes to `matrix.event`; the arrival time of a
 * notification is taken when its bytes arrive, before the line is parsed.
 */
class Subscriber {
  readonly arrivals = new Arrivals();
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<number, (msg: RpcMessage) => void>();

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      const t = now();
      this.buffer += d;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (line.trim() === '') continue;
        const msg = JSON.parse(line) as RpcMessage;
        if (msg.id != null && this.pending.has(msg.id)) {
          this.pending.get(msg.id)!(msg);
          this.pending.delete(msg.id);
        } else if (msg.method === 'matrix.event') {
          const body = msg.params?.event?.content?.body;
          if (typeof body === 'string') this.arrivals.mark(body, t);
        }
      }
    });
    socket.on('error', () => undefined);
  }

  static connect(socketPath: string): Promise<Subscriber> {
    return new Promise((resolve, reject) => {
      const s = net.connect(socketPath);
      s.once('connect', () => resolve(new Subscriber(s)));
      s.once('error', reject);
    });
  }

  request(method: string, params?: unknown, timeoutMs = 10_000): Promise<RpcMessage> {
    const id = this.nextId++;
    return within(
      method,
      timeoutMs,
      new Promise<RpcMessage>((resolve) => {
        this.pending.set(id, resolve);
        this.socket.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
      }),
    );
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * A bare Matrix client: `/sync?since=…&timeout=30000` in a tight loop, nothing else. The
 * arrival time of an event is taken when the response's body has been read, before parsing.
 */
class BareSyncer {
  readonly arrivals = new Arrivals();
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  error: Error | undefined;
  syncs = 0;

  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    private readonly roomId: string,
  ) {}

  async start(): Promise<void> {
    // Initial sync without waiting: only the position matters.
    let since = (await this.get(undefined, 0)).json.next_batch;
    this.loop = (async () => {
      while (!this.abort.signal.aborted) {
        try {
          const { json, t } = await this.get(since, 30_000);
          this.syncs++;
          since = json.next_batch;
          for (const e of json.rooms?.join?.[this.roomId]?.timeline?.events ?? []) {
            const body = e?.content?.body;
            if (typeof body === 'string') this.arrivals.mark(body, t);
          }
        } catch (err) {
          if (this.abort.signal.aborted) return;
          this.error = err as Error;
          await sleep(200);
        }
      }
    })();
  }

  private async get(
    since: string | undefined,
    timeout: number,
  ): Promise<{ json: SyncResponse; t: bigint }> {
    const q = new URLSearchParams({ timeout: String(timeout) });
    if (since) q.set('since', since);
    const res = await fetch(`${this.baseUrl}/_matrix/client/v3/sync?${q}`, {
      headers: { authorization: `Bearer ${this.token}` },
      signal: this.abort.signal,
    });
    const text = await res.text();
    const t = now();
    if (!res.ok) throw new Error(`/sync → HTTP ${res.status}: ${text.slice(0, 200)}`);
    return { json: JSON.parse(text) as SyncResponse, t };
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop?.catch(() => undefined);
  }
}

async function put(baseUrl: string, token: string, roomId: string, body: string): Promise<string> {
  const txn = `b${hex(8)}`;
  const res = await fetch(
    `${baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`,
    {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ msgtype: 'm.text', body }),
    },
  );
  const text = await res.text();
  if (!res.ok) throw new Error(`PUT send → HTTP ${res.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text).event_id;
}

interface Throughput {
  n: number;
  ok: number;
  total_ms: number;
  msgs_per_s: number;
  latency: MsSummary;
}

async function throughput(
  n: number,
  concurrent: boolean,
  one: (i: number) => Promise<boolean>,
): Promise<Throughput> {
  const lat: number[] = [];
  let ok = 0;
  const run = async (i: number) => {
    const t0 = now();
    const good = await one(i);
    lat.push(msSince(t0));
    if (good) ok++;
  };
  const t0 = now();
  if (concurrent) await Promise.all(Array.from({ length: n }, (_, i) => run(i)));
  else for (let i = 0; i < n; i++) await run(i);
  const total = msSince(t0);
  return { n, ok, total_ms: total, msgs_per_s: (ok / total) * 1e3, latency: summariseMs(lat) };
}

async function joined(syn: SynapseHandle, token: string, roomId: string, userId: string) {
  const r = await syn.client.request(
    'GET',
    `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`,
    token,
  );
  return r.joined?.[userId] !== undefined;
}

export const matrixPush: Suite = {
  name: 'matrix-push',
  budgetMs: () => 5 * 60_000 + MESSAGES * 2 * WAIT_MS,
  async run(settings: BenchSettings): Promise<string[]> {
    if (!Number.isInteger(MESSAGES) || MESSAGES < 1)
      throw new Error(`BENCH_MATRIX_MESSAGES must be a positive integer`);
    const machine = machineInfo(PROJECT_ROOT);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-bench-mx-'));
    const secretsDir = mkdtempSync(path.join('/dev/shm', 'armorclaw-bench-mx-'));
    const stops: Array<() => Promise<void>> = [];
    stops.push(
      onCleanup(() => {
        rmSync(dir, { recursive: true, force: true });
        rmSync(secretsDir, { recursive: true, force: true });
      }),
    );
    try {
      console.log('starting Synapse...');
      const syn = await startSynapse();
      stops.push(onCleanup(() => syn.stop()));
      const reg = async (localpart: string) => {
        const password = `pw-${localpart}-${hex(12)}`;
        return { ...(await syn.registerUser(localpart, password)), localpart, password };
      };
      const [bot, alice] = await Promise.all([reg('bot'), reg('alice')]);
      // The baseline client is a second device of the bot: same account, same room membership.
      const bare: MatrixSession = bot;
      const roomId = await syn.client.createRoom(alice.accessToken, {
        invite: [bot.userId],
        name: 'bench',
      });

      console.log('starting the bridge (embedded Temporal, Matrix login)...');
      mkdirSync(path.join(dir, 'bridge'));
      const bridge: BridgeProcess = await spawnBridge({
        dir: path.join(dir, 'bridge'),
        env: {
          ARMORCLAW_MASTER_KEY: hex(32),
          ARMORCLAW_SECRETS_DIR: secretsDir,
          ARMORCLAW_MATRIX_HOMESERVER: syn.baseUrl,
          ARMORCLAW_MATRIX_USERNAME: bot.localpart,
          ARMORCLAW_MATRIX_PASSWORD: bot.password,
          ARMORCLAW_MATRIX_TRUSTED_SENDERS: alice.userId,
          ARMORCLAW_MATRIX_TRUSTED_ROOMS: roomId,
          ARMORCLAW_MATRIX_SYNC_TIMEOUT: '30s',
          ARMORCLAW_LOG_LEVEL: 'warn',
        },
      });
      stops.push(
        onCleanup(async () => {
          const killer = setTimeout(() => bridge.child.kill('SIGKILL'), 20_000);
          await bridge.stop();
          clearTimeout(killer);
        }),
      );

      // Connected, then the trusted invite joined by the bridge itself.
      const t0 = Date.now();
      for (;;) {
        if ((await call(bridge.socketPath, 'matrix.status')).result?.status === 'connected') break;
        if (Date.now() - t0 > 60_000)
          throw new Error(`bridge not connected to Matrix\n${bridge.output().slice(-3000)}`);
        await sleep(100);
      }
      const tj = Date.now();
      while (!(await joined(syn, alice.accessToken, roomId, bot.userId))) {
        if (Date.now() - tj > 30_000)
          throw new Error(`the bridge did not join on the trusted invite within 30 s`);
        await sleep(100);
      }
      const autoJoinMs = Date.now() - tj;
      console.log(`bridge connected; joined the room on the invite in ${autoJoinMs} ms`);

      const sub = await Subscriber.connect(bridge.socketPath);
      stops.push(onCleanup(() => sub.close()));
      const subscribed = await sub.request('matrix.subscribe', { room_ids: [roomId] });
      if (!subscribed.result?.subscription)
        throw new Error(`matrix.subscribe failed: ${JSON.stringify(subscribed.error)}`);
      const syncer = new BareSyncer(syn.baseUrl, bare.accessToken, roomId);
      await syncer.start();
      stops.push(onCleanup(() => syncer.stop()));

      // --- push latency: one send, two listeners -------------------------------------------
      const tag = hex(3);
      const bridgeLat: number[] = [];
      const bareLat: number[] = [];
      const sendLat: number[] = [];
      console.log(`push latency: ${WARMUP_MESSAGES} warmup + ${MESSAGES} messages...`);
      for (let i = -WARMUP_MESSAGES; i < MESSAGES; i++) {
        const body = `push-${tag}-${i}`;
        const viaBridge = sub.arrivals.wait(body);
        const viaBare = syncer.arrivals.wait(body);
        const s0 = now();
        await put(syn.baseUrl, alice.accessToken, roomId, body);
        const sent = msSince(s0);
        const [tb, tc] = await within(
          `message ${i} on both listeners${syncer.error ? ` (bare /sync: ${syncer.error.message})` : ''}`,
          WAIT_MS,
          Promise.all([viaBridge, viaBare]),
        );
        if (i >= 0) {
          bridgeLat.push(msSince(s0, tb));
          bareLat.push(msSince(s0, tc));
          sendLat.push(sent);
        }
        await sleep(GAP_MS);
      }
      await syncer.stop();

      // --- matrix.send vs. direct PUT --------------------------------------------------------
      console.log(`matrix.send: ${SENDS} sequential, ${SENDS} concurrent; direct PUT the same...`);
      const viaRpc = (label: string) => async (i: number) => {
        const r = await call(
          bridge.socketPath,
          'matrix.send',
          { room_id: roomId, message: `${label}-${tag}-${i}` },
          i + 1,
          120_000,
        );
        return typeof r.result?.event_id === 'string';
      };
      const viaPut = (label: string) => async (i: number) => {
        await put(syn.baseUrl, bare.accessToken, roomId, `${label}-${tag}-${i}`);
        return true;
      };
      // One unrecorded call each way first (workflow bundle, connection pool).
      await viaRpc('warm')(0);
      await viaPut('warm')(0);
      const rpcSeq = await throughput(SENDS, false, viaRpc('rpc-seq'));
      const putSeq = await throughput(SENDS, false, viaPut('put-seq'));
      const rpcConc = await throughput(SENDS, true, viaRpc('rpc-conc'));
      const putConc = await throughput(SENDS, true, viaPut('put-conc'));

      const bridgePush = summariseMs(bridgeLat);
      const barePush = summariseMs(bareLat);
      const ratio95 = bridgePush.p95 / barePush.p95;
      const ratio50 = bridgePush.p50 / barePush.p50;
      const aimP95 = bridgePush.p95 < AIM_P95_MS;
      const aimRatio = ratio95 <= AIM_RATIO;
      const seqShare = rpcSeq.msgs_per_s / putSeq.msgs_per_s;
      const concShare = rpcConc.msgs_per_s / putConc.msgs_per_s;
      const result = {
        machine,
        messages: MESSAGES,
        warmup_messages: WARMUP_MESSAGES,
        gap_ms: GAP_MS,
        auto_join_ms: autoJoinMs,
        push: {
          bridge_subscription: bridgePush,
          bare_sync: barePush,
          alice_put: summariseMs(sendLat),
          p95_ratio: ratio95,
          p50_ratio: ratio50,
          aim_p95_ms: AIM_P95_MS,
          aim_ratio: AIM_RATIO,
          aim_p95_met: aimP95,
          aim_ratio_met: aimRatio,
          bare_syncs: syncer.syncs,
        },
        send: {
          aim_share: AIM_SEND_SHARE,
          sequential_share: seqShare,
          concurrent_share: concShare,
          rpc_sequential: rpcSeq,
          put_sequential: putSeq,
          rpc_concurrent: rpcConc,
          put_concurrent: putConc,
        },
        samples: { bridge: bridgeLat, bare: bareLat, put: sendLat },
      };

      mkdirSync(settings.outDir, { recursive: true });
      const jsonPath = path.join(settings.outDir, 'matrix-push.json');
      const mdPath = path.join(settings.outDir, 'matrix-push.md');
      const svgPath = path.join(settings.outDir, 'matrix-push.svg');
      writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');
      const f1 = (v: number) => v.toFixed(1);
      const f0 = (v: number) => v.toFixed(0);
      const row = (what: string, s: MsSummary) =>
        `| ${what} | ${s.n} | ${f1(s.p50)} | ${f1(s.p95)} | ${f1(s.min)} | ${f1(s.max)} | ${f1(s.mean)} |`;
      const trow = (what: string, t: Throughput) =>
        `| ${what} | ${t.ok}/${t.n} | ${f0(t.total_ms)} | ${f1(t.msgs_per_s)} | ${f1(t.latency.p50)} | ${f1(t.latency.p95)} |`;
      writeFileSync(
        mdPath,
        `# Matrix push latency and \`matrix.send\` throughput

Generated by \`npm run bench\` (bench/matrix-push.ts) on ${machine.date}: ${machine.nproc} CPUs, Node ${machine.node}, commit ${machine.gitCommit?.slice(0, 12) ?? 'n/a'}, 1-minute load ${machine.loadAverage[0]?.toFixed(2)} at start. One private Synapse (SQLite, loopback), the bridge logged in as the bot (sync timeout 30 s) with alice trusted. Raw numbers: [matrix-push.json](matrix-push.json).

**Push latency**: alice PUTs ${MESSAGES} messages one at a time (after ${WARMUP_MESSAGES} unrecorded); each is timed from just before the PUT to (a) the arrival of its \`matrix.event\` notification on a \`matrix.subscribe\` connection to the bridge, and (b) the return of the \`/sync?since=…&timeout=30000\` long-poll of a bare client (a second device of the bot, nothing but the loop) that carries it. Both listen at once, so each send gives both numbers. After both have it, ${GAP_MS} ms pass so both are back in their long-poll before the next send. Delivery to an agent container's socket is not measured here (it needs Docker and an agent); it leaves the bridge by the same queue.

${(machine.loadAverage[0] ?? 0) > machine.nproc * 0.5 ? `> **The machine was busy** (1-minute load ${machine.loadAverage[0]?.toFixed(2)} on ${machine.nproc} CPUs at start): absolute latencies are inflated by other work; the bridge/bare ratio is the steadier number. Rerun on an idle machine.\n\n` : ''}## Aims

- p95 under ${AIM_P95_MS} ms: **${aimP95 ? 'met' : 'not met'}** (bridge p95 ${f1(bridgePush.p95)} ms).
- within ${AIM_RATIO}× of the bare client at p95: **${aimRatio ? 'met' : 'not met'}** (${ratio95.toFixed(2)}×; p50 ${ratio50.toFixed(2)}×).
- \`matrix.send\` at least ${AIM_SEND_SHARE}× a direct PUT's throughput: sequential **${seqShare >= AIM_SEND_SHARE ? 'met' : 'not met'}** (${seqShare.toFixed(2)}×), ${SENDS} concurrent **${concShare >= AIM_SEND_SHARE ? 'met' : 'not met'}** (${concShare.toFixed(2)}×).

## Push latency (ms)

| listener | n | p50 | p95 | min | max | mean |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${row('bridge → `matrix.subscribe` notification', bridgePush)}
${row('bare client `/sync` long-poll (baseline)', barePush)}
${row("alice's PUT itself (answer received)", result.push.alice_put)}

## \`matrix.send\` vs. a direct PUT (${SENDS} messages each)

\`matrix.send\` over the bridge socket (a new connection per call, as \`nc\` does; the bridge starts the send's workflow with a start delay and sends the message itself with the workflow id as transaction id, answers with the \`event_id\` and terminates the workflow), against the same account PUTting to the room directly with fetch.

| what | ok | total ms | msgs/s | p50 ms | p95 ms |
| --- | ---: | ---: | ---: | ---: | ---: |
${trow('`matrix.send`, sequential', rpcSeq)}
${trow('direct PUT, sequential (baseline)', putSeq)}
${trow(`\`matrix.send\`, ${SENDS} concurrent`, rpcConc)}
${trow(`direct PUT, ${SENDS} concurrent (baseline)`, putConc)}

![latency](matrix-push.svg)

Notes: the load generator, the subscriber and the bare client share one Node process (the bench's), so an event-loop delay there hits both listeners alike. Latency floors are set by Synapse's own fan-out to waiting /sync requests; Synapse, the bridge, Temporal and the bench share ${machine.nproc} CPUs.
`,
      );
      const blue = BRIDGE_COLOR;
      const grey = BASELINE_COLOR;
      const push = barChartPanel(
        latencyChart('push latency (ms)', bridgePush, { name: 'bare /sync', bars: barePush }, [
          { value: AIM_P95_MS, label: `aim ${AIM_P95_MS} ms`, group: 1 },
        ]),
        0,
        20,
        320,
        320,
      );
      const send = barChartPanel(
        {
          title: 'send throughput (msgs/s)',
          groupLabel: '',
          groups: ['sequential', `${SENDS} concurrent`],
          series: [
            {
              name: 'bridge',
              color: blue,
              values: [rpcSeq.msgs_per_s, rpcConc.msgs_per_s],
            },
            {
              name: 'bare PUT',
              color: grey,
              values: [putSeq.msgs_per_s, putConc.msgs_per_s],
            },
          ],
          format: (v) => v.toFixed(0),
        },
        320,
        20,
        320,
        320,
      );
      writeFileSync(
        svgPath,
        `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360" viewBox="0 0 640 360"><rect width="640" height="360" fill="#fff"/>\n${legend(
          [
            { name: 'bridge', color: blue },
            { name: 'bare client', color: grey },
          ],
          60,
          16,
        )}\n${push}\n${send}\n</svg>\n`,
      );
      console.log(
        `matrix-push: bridge p50 ${f1(bridgePush.p50)} / p95 ${f1(bridgePush.p95)} ms, bare /sync p50 ${f1(barePush.p50)} / p95 ${f1(barePush.p95)} ms (p95 ${ratio95.toFixed(2)}×); matrix.send ${f1(rpcSeq.msgs_per_s)} msgs/s sequential, ${f1(rpcConc.msgs_per_s)} concurrent`,
      );
      return [jsonPath, mdPath, svgPath];
    } finally {
      // Stop everything now, in reverse order, whether the suite finished or failed.
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    }
  },
};
