/**
 * Suite `openclaw`: what running OpenClaw (`agent_type: "openclaw"`) costs in time against the
 * reference agent (`agent_type: "echo"`) as the baseline, both through a real bridge (embedded
 * Temporal, real Docker) logged in to a private Synapse, with the provider stub as the model
 * behind the bridge's provider proxy. Per run, for each agent type: `start` → Active (the RPC's
 * answer), `start` → ready (the agent's `ready` notification in the run's status query), and
 * the latency of a first and a second answer in the room (a message from alice to the bot's
 * reply reaching alice's /sync). OpenClaw answers any text message; the reference agent is asked
 * with `!ask <question>`, which it answers through the same proxy and the same stub.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Client } from '@temporalio/client';
import { OPENCLAW_IMAGE, OPENCLAW_MEMORY_BYTES } from '../config/settings';
import { removeDir, type BridgeProcess } from '../test/support/bridge-process';
import { runStatus, temporalClient } from '../test/support/containers';
import { AGENT_IMAGE, docker } from '../test/support/docker';
import {
  bridgeSlot,
  nonce,
  setupMatrixWorld,
  sleep,
  startBridge,
  stopAgents,
  teardownMatrixWorld,
  type BridgeSlot,
  type MatrixWorld,
} from '../test/support/matrix-scenario';
import { ProviderStub, type StubRequest } from '../test/support/provider-stub';
import { call } from '../test/support/socket-clients';
import type { MatrixEvent } from '../test/support/synapse';
import { PROJECT_ROOT } from './lib/child';
import { onCleanup } from './lib/cleanup';
import { machineInfo } from './lib/machine';
import type { BenchSettings, Suite } from './lib/suite';
import { summariseMs, type MsSummary } from './lib/stats';
import { barChartPanel, BASELINE_COLOR, BRIDGE_COLOR, legend, type BarChart } from './lib/svg';

const RUNS = Number(process.env.BENCH_OPENCLAW_RUNS ?? 3);
/** What the stub's model says to anything (streamed in three pieces). */
const ANSWER = 'tok0 tok1 tok2';
const START_TIMEOUT_MS = 120_000;
const READY_TIMEOUT_MS = 180_000;
const ANSWER_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 120_000;
/** How often the run's status query is asked while waiting for `ready`. */
const READY_POLL_MS = 200;
/** Pause between the first answer and the second question (the agent acknowledges, saves). */
const GAP_MS = 1_000;

type Kind = 'openclaw' | 'echo';

interface AgentSetup {
  kind: Kind;
  label: string;
  image: string;
  /** Each agent type has a room of its own, so no reply can be taken for the other's. */
  room: (w: MatrixWorld) => string;
  question: (n: number) => string;
}

const AGENTS: Record<Kind, AgentSetup> = {
  openclaw: {
    kind: 'openclaw',
    label: 'OpenClaw',
    image: OPENCLAW_IMAGE,
    room: (w) => w.rooms.agent,
    question: (n) => `Hello OpenClaw, question ${n}: what is new? ${nonce()}`,
  },
  echo: {
    kind: 'echo',
    label: 'reference agent (echo)',
    image: AGENT_IMAGE,
    room: (w) => w.rooms.other,
    question: (n) => `!ask Hello, question ${n}: what is new? ${nonce()}`,
  },
};

/** One question and its answer, timed. */
interface Turn {
  /** Just before alice's PUT → the bot's reply read from alice's /sync long-poll. */
  ms: number;
  /** Reply's origin_server_ts − question's origin_server_ts (Synapse's clock, ms resolution). */
  server_ms: number;
  /** Just before the PUT → the stub finished its first chat answer: the agent's way in. */
  to_model_ms: number | null;
  /** The stub finished its last chat answer → reply at alice: the way back out. */
  after_model_ms: number | null;
  /** Requests the stub got during the turn, and how many were chat completions. */
  stub_requests: number;
  chat_requests: number;
  /** Bytes of the chat request bodies, summed, and the characters of their system messages. */
  chat_request_bytes: number;
  system_prompt_chars: number;
  tools: number;
}

interface RunSample {
  kind: Kind;
  container_name: string;
  start_ms: number;
  /** `ready` notification's bridge timestamp − wall clock just before `start`. */
  ready_ms: number;
  /** When the status poll first saw `ready` (≤ READY_POLL_MS + a query later). */
  ready_seen_ms: number;
  first: Turn;
  second: Turn;
  stop_ms: number;
}

interface SyncedEvent {
  roomId: string;
  event: MatrixEvent;
  /** performance.now() when the /sync response carrying it had been read. */
  at: number;
}

interface SyncResponse {
  next_batch: string;
  rooms?: { join?: Record<string, { timeline?: { events?: MatrixEvent[] } }> };
}

/**
 * Alice's own /sync long-poll loop on the agents' rooms: every timeline event with the time its
 * response arrived, and a way to wait for one.
 */
class RoomWatcher {
  readonly events: SyncedEvent[] = [];
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private waiters: Array<() => void> = [];
  error: Error | undefined;

  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    private readonly roomIds: string[],
  ) {}

  async start(): Promise<void> {
    let since = (await this.get(undefined, 0)).json.next_batch;
    this.loop = (async () => {
      while (!this.abort.signal.aborted) {
        try {
          const { json, at } = await this.get(since, 30_000);
          since = json.next_batch;
          for (const roomId of this.roomIds) {
            for (const event of json.rooms?.join?.[roomId]?.timeline?.events ?? []) {
              this.events.push({ roomId, event, at });
            }
          }
          this.wake();
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
  ): Promise<{ json: SyncResponse; at: number }> {
    const q = new URLSearchParams({
      timeout: String(timeout),
      filter: JSON.stringify({
        room: { rooms: this.roomIds, timeline: { limit: 50 }, state: { lazy_load_members: true } },
        presence: { types: [] },
        account_data: { types: [] },
      }),
    });
    if (since) q.set('since', since);
    const res = await fetch(`${this.baseUrl}/_matrix/client/v3/sync?${q}`, {
      headers: { authorization: `Bearer ${this.token}` },
      signal: this.abort.signal,
    });
    const text = await res.text();
    const at = performance.now();
    if (!res.ok) throw new Error(`/sync → HTTP ${res.status}: ${text.slice(0, 200)}`);
    return { json: JSON.parse(text) as SyncResponse, at };
  }

  /** The first event (in arrival order) that satisfies `pred`. */
  async next(
    what: string,
    pred: (e: SyncedEvent) => boolean,
    timeoutMs: number,
  ): Promise<SyncedEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(pred);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `${what}: not seen within ${timeoutMs} ms${this.error ? ` (last /sync error: ${this.error.message})` : ''}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1_000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop?.catch(() => undefined);
  }
}

/** Characters of a chat message's content, whether a string or a list of parts. */
function contentChars(content: unknown): number {
  if (typeof content === 'string') return content.length;
  if (Array.isArray(content)) {
    return content.reduce<number>(
      (sum, part: { text?: unknown } | null) =>
        sum + (typeof part?.text === 'string' ? part.text.length : 0),
      0,
    );
  }
  return 0;
}

function chatShape(requests: StubRequest[]) {
  const chats = requests.filter((r) => r.url.split('?')[0]!.endsWith('/chat/completions'));
  let systemChars = 0;
  let tools = 0;
  for (const r of chats) {
    try {
      const body = JSON.parse(r.body) as {
        messages?: Array<{ role?: unknown; content?: unknown } | null>;
        tools?: unknown[];
      };
      for (const m of body.messages ?? []) {
        if (m?.role === 'system' || m?.role === 'developer') systemChars += contentChars(m.content);
      }
      tools = Math.max(tools, body.tools?.length ?? 0);
    } catch {
      // not JSON: counted in bytes only
    }
  }
  return {
    chats,
    chat_request_bytes: chats.reduce((s, r) => s + Buffer.byteLength(r.body), 0),
    system_prompt_chars: systemChars,
    tools,
  };
}

export const openclaw: Suite = {
  name: 'openclaw',
  // Synapse + bridge, a warm-up run, then per run an OpenClaw start (tens of seconds) and an echo.
  budgetMs: () => 3 * 60_000 + Math.max(1, RUNS) * 4 * 60_000,
  async run(settings: BenchSettings): Promise<string[]> {
    if (!Number.isInteger(RUNS) || RUNS < 1)
      throw new Error('BENCH_OPENCLAW_RUNS must be a positive integer');
    const machine = machineInfo(PROJECT_ROOT);
    const imageSizes: Record<string, number | null> = {};
    for (const image of [OPENCLAW_IMAGE, AGENT_IMAGE]) {
      const r = await docker(['image', 'inspect', '--format', '{{.Size}}', image]);
      if (r.code !== 0)
        throw new Error(`${image} is missing; build it with bash scripts/docker.sh (${r.stderr})`);
      imageSizes[image] = Number(r.stdout.trim()) || null;
    }

    const stops: Array<() => Promise<void>> = [];
    const names = new Set<string>();
    try {
      const stub = await ProviderStub.start();
      stops.push(onCleanup(() => stub.close()));
      console.log('starting Synapse...');
      const world: MatrixWorld = await setupMatrixWorld();
      stops.push(onCleanup(() => teardownMatrixWorld(world)));
      const slot: BridgeSlot = await bridgeSlot(world, {
        ARMORCLAW_AGENT_TYPES: JSON.stringify({
          openclaw: { image: OPENCLAW_IMAGE, memory_bytes: OPENCLAW_MEMORY_BYTES },
          echo: { image: AGENT_IMAGE },
        }),
        ARMORCLAW_PROXY_BASE_URLS: JSON.stringify({ openai: stub.url }),
        ARMORCLAW_BUDGET_MODELS: JSON.stringify({
          'gpt-4o-mini': { input_per_1k_usd: 0.15, output_per_1k_usd: 0.6 },
        }),
        ARMORCLAW_BUDGET_DAILY_LIMIT_USD: '100',
        ARMORCLAW_LOG_LEVEL: 'warn',
      });
      const bridgeDir = slot.dir;
      stops.push(onCleanup(() => removeDir(bridgeDir)));
      console.log('starting the bridge (embedded Temporal, real Docker, Matrix login)...');
      const bridge: BridgeProcess = await startBridge(slot);
      stops.push(
        onCleanup(async () => {
          const killer = setTimeout(() => bridge.child.kill('SIGKILL'), 20_000);
          await bridge.stop();
          clearTimeout(killer);
        }),
      );
      // Stop every run this suite started before the bridge goes (registered after it: runs first).
      stops.push(
        onCleanup(() => stopAgents(bridge.socketPath, names, [bridgeDir, world.secretsDir])),
      );
      const temporal: { client: Client; close(): Promise<void> } = await temporalClient(
        bridge.temporalPort,
      );
      stops.push(onCleanup(() => temporal.close()));
      const stored = await call(bridge.socketPath, 'store_key', {
        id: 'bench-openclaw',
        provider: 'openai',
        token: `sk-bench-${nonce()}${nonce()}`,
      });
      if (stored.error) throw new Error(`store_key: ${JSON.stringify(stored.error)}`);

      const watcher = new RoomWatcher(world.syn.baseUrl, world.alice.accessToken, [
        AGENTS.openclaw.room(world),
        AGENTS.echo.room(world),
      ]);
      await watcher.start();
      stops.push(onCleanup(() => watcher.stop()));

      const turn = async (agent: AgentSetup, n: number): Promise<Turn> => {
        const room = agent.room(world);
        stub.reset();
        const t0 = performance.now();
        const eventId = await world.syn.client.sendText(
          world.alice.accessToken,
          room,
          agent.question(n),
        );
        const asked = await watcher.next(
          `${agent.label}'s question ${n} in alice's /sync`,
          (e) => e.event.event_id === eventId,
          ANSWER_TIMEOUT_MS,
        );
        const askedIndex = watcher.events.indexOf(asked);
        const reply = await watcher.next(
          `${agent.label}'s answer ${n}`,
          (e) =>
            watcher.events.indexOf(e) > askedIndex &&
            e.roomId === room &&
            e.event.type === 'm.room.message' &&
            e.event.sender === world.bot.userId,
          ANSWER_TIMEOUT_MS,
        );
        const body = String(reply.event.content.body ?? '').trim();
        if (body !== ANSWER) {
          throw new Error(`${agent.label} answered ${JSON.stringify(body)}, not the stub's text`);
        }
        const shape = chatShape(stub.requests);
        const done = shape.chats
          .map((r) => r.finishedAt)
          .filter((t): t is number => t !== undefined);
        return {
          ms: reply.at - t0,
          server_ms: reply.event.origin_server_ts - asked.event.origin_server_ts,
          to_model_ms: done.length > 0 ? Math.min(...done) - t0 : null,
          after_model_ms: done.length > 0 ? reply.at - Math.max(...done) : null,
          stub_requests: stub.requests.length,
          chat_requests: shape.chats.length,
          chat_request_bytes: shape.chat_request_bytes,
          system_prompt_chars: shape.system_prompt_chars,
          tools: shape.tools,
        };
      };

      const oneRun = async (agent: AgentSetup): Promise<RunSample> => {
        const wall0 = Date.now();
        const t0 = performance.now();
        const started = await call(
          bridge.socketPath,
          'start',
          {
            key_id: 'bench-openclaw',
            agent_type: agent.kind,
            room_id: agent.room(world),
            secrets_mode: 'proxy',
            ttl: '30m',
          },
          1,
          START_TIMEOUT_MS,
        );
        const startMs = performance.now() - t0;
        if (!started.result)
          throw new Error(`start ${agent.kind}: ${JSON.stringify(started.error)}`);
        const name = started.result.container_name as string;
        names.add(name);
        let readyAt: string | undefined;
        for (;;) {
          const st = await runStatus(temporal.client, name);
          readyAt = st.notifications.find((n) => n.message === 'ready')?.at;
          if (readyAt) break;
          if (st.state !== 'Active' && st.state !== 'Pending') {
            throw new Error(
              `${agent.label} run ended before ready: ${st.state} ${st.end_reason ?? ''} ${st.end_detail ?? ''}`,
            );
          }
          if (performance.now() - t0 > READY_TIMEOUT_MS)
            throw new Error(`${agent.label} not ready within ${READY_TIMEOUT_MS / 1e3} s`);
          await sleep(READY_POLL_MS);
        }
        const readySeenMs = performance.now() - t0;
        const first = await turn(agent, 1);
        await sleep(GAP_MS);
        const second = await turn(agent, 2);
        const s0 = performance.now();
        const stopped = await call(
          bridge.socketPath,
          'stop',
          { container_id: started.result.container_id },
          1,
          STOP_TIMEOUT_MS,
        );
        if (stopped.error) throw new Error(`stop ${agent.kind}: ${JSON.stringify(stopped.error)}`);
        const stopMs = performance.now() - s0;
        return {
          kind: agent.kind,
          container_name: name,
          start_ms: startMs,
          ready_ms: Date.parse(readyAt) - wall0,
          ready_seen_ms: readySeenMs,
          first,
          second,
          stop_ms: stopMs,
        };
      };

      // One unrecorded run of the reference agent: the workflow bundle's first tasks, the proxy's
      // first connection and the Matrix paths are then warm for whichever type comes first.
      console.log('warm-up: one unrecorded reference-agent run...');
      await oneRun(AGENTS.echo);

      const samples: RunSample[] = [];
      for (let i = 0; i < RUNS; i++) {
        // Alternate which type goes first, so neither always follows the other's stop.
        const order: Kind[] = i % 2 === 0 ? ['openclaw', 'echo'] : ['echo', 'openclaw'];
        for (const kind of order) {
          const s = await oneRun(AGENTS[kind]);
          samples.push(s);
          console.log(
            `  run ${i + 1}/${RUNS} ${kind}: start ${s.start_ms.toFixed(0)} ms, ready ${s.ready_ms.toFixed(0)} ms, first answer ${s.first.ms.toFixed(0)} ms, second ${s.second.ms.toFixed(0)} ms, stop ${s.stop_ms.toFixed(0)} ms`,
          );
        }
      }

      // --- results ---------------------------------------------------------------------------
      const of = (kind: Kind) => samples.filter((s) => s.kind === kind);
      const figures = (kind: Kind) => {
        const s = of(kind);
        return {
          start_active: summariseMs(s.map((r) => r.start_ms)),
          start_ready: summariseMs(s.map((r) => r.ready_ms)),
          active_to_ready: summariseMs(s.map((r) => r.ready_ms - r.start_ms)),
          first_answer: summariseMs(s.map((r) => r.first.ms)),
          second_answer: summariseMs(s.map((r) => r.second.ms)),
          stop: summariseMs(s.map((r) => r.stop_ms)),
          first_to_model: summariseMs(
            s.map((r) => r.first.to_model_ms).filter((v): v is number => v !== null),
          ),
          second_to_model: summariseMs(
            s.map((r) => r.second.to_model_ms).filter((v): v is number => v !== null),
          ),
          second_after_model: summariseMs(
            s.map((r) => r.second.after_model_ms).filter((v): v is number => v !== null),
          ),
          chat_request_bytes_per_turn: summariseMs(
            s.flatMap((r) => [r.first.chat_request_bytes, r.second.chat_request_bytes]),
          ),
          system_prompt_chars_per_turn: summariseMs(
            s.flatMap((r) => [r.first.system_prompt_chars, r.second.system_prompt_chars]),
          ),
          chat_requests_per_turn: summariseMs(
            s.flatMap((r) => [r.first.chat_requests, r.second.chat_requests]),
          ),
        };
      };
      const oc = figures('openclaw');
      const ec = figures('echo');
      const result = {
        machine,
        runs: RUNS,
        images: {
          openclaw: {
            image: OPENCLAW_IMAGE,
            bytes: imageSizes[OPENCLAW_IMAGE],
            memory_bytes: OPENCLAW_MEMORY_BYTES,
          },
          echo: { image: AGENT_IMAGE, bytes: imageSizes[AGENT_IMAGE] },
        },
        ready_poll_ms: READY_POLL_MS,
        gap_ms: GAP_MS,
        openclaw: oc,
        echo: ec,
        samples,
      };

      mkdirSync(settings.outDir, { recursive: true });
      const jsonPath = path.join(settings.outDir, 'openclaw.json');
      const mdPath = path.join(settings.outDir, 'openclaw.md');
      const svgPath = path.join(settings.outDir, 'openclaw.svg');
      writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');

      const f0 = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : 'n/a');
      const row = (what: string, a: MsSummary, b: MsSummary) =>
        `| ${what} | ${f0(a.p50)} | ${f0(a.min)} | ${f0(a.max)} | ${f0(b.p50)} | ${f0(b.min)} | ${f0(b.max)} | ${b.p50 > 0 ? `${(a.p50 / b.p50).toFixed(1)}×` : 'n/a'} |`;
      const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
      const tokens = (chars: number) => `${(chars / 4 / 1000).toFixed(1)}k`;
      const mib = (b: number | null) => (b === null ? 'n/a' : `${(b / 2 ** 20).toFixed(0)} MiB`);
      const busy = (machine.loadAverage[0] ?? 0) > machine.nproc * 0.5;
      const readyShare = oc.start_ready.p50 > 0 ? oc.start_active.p50 / oc.start_ready.p50 : NaN;
      writeFileSync(
        mdPath,
        `# OpenClaw through the bridge, beside the reference agent

Generated by \`npm run bench\` (bench/openclaw.ts) on ${machine.date}: ${machine.nproc} CPUs (${machine.cpuModel}), ${mib(machine.totalMemoryBytes)} RAM, Node ${machine.node}, commit ${machine.gitCommit?.slice(0, 12) ?? 'n/a'}, 1-minute load ${machine.loadAverage[0]?.toFixed(2)} at start. Raw numbers, every run and every turn: [openclaw.json](openclaw.json).

**What ran.** One real bridge (embedded Temporal, real Docker) logged in to a private Synapse as the bot, with alice trusted, and the provider stub (\`test/support/provider-stub.ts\`, OpenAI-compatible, answers \`${ANSWER}\` at once, streamed in three pieces) as the model behind the bridge's provider proxy (\`ARMORCLAW_PROXY_BASE_URLS\`; \`secrets_mode: "proxy"\`, so every model request passes the proxy and is metered). ${RUNS} runs; in each, a fresh \`start\`/\`stop\` of each agent type bound to a room of its own, the order alternating between runs, after one unrecorded reference-agent run that warms the bridge's paths:

- **OpenClaw**: \`agent_type: "openclaw"\`, \`${OPENCLAW_IMAGE}\` (${mib(imageSizes[OPENCLAW_IMAGE] ?? null)}), ${OPENCLAW_MEMORY_BYTES / 2 ** 30} GiB memory limit. It answers any text message in its room.
- **Reference agent (baseline)**: \`agent_type: "echo"\`, \`${AGENT_IMAGE}\` (${mib(imageSizes[AGENT_IMAGE] ?? null)}). It answers only commands, so it is asked with \`!ask <question>\`, which it answers with one streamed chat completion through the same proxy and the same stub: the same model path as OpenClaw's.

**Figures**, each for both types in the same run:

- \`start\` → Active: the \`start\` RPC from request to its answer (the run is Active once its container is started).
- \`start\` → ready: from just before the \`start\` request to the bridge's timestamp of the agent's \`ready\` notification, read from the run's status query (\`containerStatusQuery\` through a Temporal client, polled every ${READY_POLL_MS} ms; the timestamp is the bridge's, so the polling does not add to it). The reference agent is ready once its secrets are acknowledged; OpenClaw's shim only once OpenClaw's gateway answers \`/readyz\`.
- first answer: sent right after \`ready\` was seen; from just before alice's PUT of the message to the bot's reply arriving in alice's own \`/sync\` long-poll.
- second answer (warm): the same, ${GAP_MS / 1e3} s after the first answer arrived.

${busy ? `> **The machine was busy** (1-minute load ${machine.loadAverage[0]?.toFixed(2)} on ${machine.nproc} CPUs at start): absolute times are inflated by other work. Rerun on an idle machine.\n\n` : ''}## Results (ms; p50, min and max over ${RUNS} runs)

| figure | OpenClaw p50 | min | max | reference agent p50 | min | max | OpenClaw / reference (p50) |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${row('`start` → Active', oc.start_active, ec.start_active)}
${row('`start` → ready', oc.start_ready, ec.start_ready)}
${row('first answer', oc.first_answer, ec.first_answer)}
${row('second answer (warm)', oc.second_answer, ec.second_answer)}
${row('`stop` → Ended', oc.stop, ec.stop)}

![start, ready and answer latency, OpenClaw beside the reference agent](openclaw.svg)

Inside an answer (p50, ms): from the question's PUT to the stub's finished model answer, OpenClaw ${f0(oc.first_to_model.p50)} first / ${f0(oc.second_to_model.p50)} second, the reference agent ${f0(ec.first_to_model.p50)} / ${f0(ec.second_to_model.p50)}; from the stub's last answer to the reply at alice, OpenClaw ${f0(oc.second_after_model.p50)}, the reference agent ${f0(ec.second_after_model.p50)} (second turn). Per turn, OpenClaw made ${f0(oc.chat_requests_per_turn.p50)} chat request(s) of ${kb(oc.chat_request_bytes_per_turn.p50)} in all (about ${tokens(oc.chat_request_bytes_per_turn.p50)} tokens at 4 characters a token, an estimate, not a tokenizer's count; its system messages ${oc.system_prompt_chars_per_turn.p50.toLocaleString('en')} characters, about ${tokens(oc.system_prompt_chars_per_turn.p50)} tokens, the rest mostly ${Math.max(...samples.filter((r) => r.kind === 'openclaw').map((r) => r.second.tools))} tool definitions); the reference agent ${f0(ec.chat_requests_per_turn.p50)} of ${kb(ec.chat_request_bytes_per_turn.p50)}.

## What dominates

OpenClaw's own startup. \`start\` → Active (the bridge's work, then creating and starting the container) took ${f0(oc.start_active.p50)} ms for OpenClaw against ${f0(ec.start_active.p50)} ms for the reference agent, ${Number.isFinite(readyShare) ? `${(readyShare * 100).toFixed(0)} %` : 'a part'} of OpenClaw's \`start\` → ready. From Active to ready, ${f0(oc.active_to_ready.p50)} ms at p50 (per run: ready − Active), OpenClaw's gateway (Node) loads and starts inside its container until \`/readyz\` answers; the reference agent takes ${f0(ec.active_to_ready.p50)} ms there. Its first answer adds more start-up: ${f0(oc.first_to_model.p50)} ms of the first answer's ${f0(oc.first_answer.p50)} ms pass before OpenClaw sends its model request, against ${f0(oc.second_to_model.p50)} ms on the second turn, so OpenClaw does first-turn work after it has said ready (inside OpenClaw; the bench sees only its time). In all, a person waits about ${((oc.start_ready.p50 + oc.first_answer.p50) / 1e3).toFixed(0)} s from \`start\` for OpenClaw's first reply, against ${((ec.start_ready.p50 + ec.first_answer.p50) / 1e3).toFixed(1)} s for the reference agent's.

Per turn, OpenClaw sends its whole agent prompt (system prompt, tool definitions, the session so far) with every question: ${kb(oc.chat_request_bytes_per_turn.p50)} a turn here, about ${tokens(oc.chat_request_bytes_per_turn.p50)} tokens, ${oc.system_prompt_chars_per_turn.p50.toLocaleString('en')} characters of it system prompt, against ${kb(ec.chat_request_bytes_per_turn.p50)} for the reference agent's \`!ask\`. The stub answers at once without reading it, so here that size costs only its way through the proxy. The warm answer shows OpenClaw's own work around its model call: ${f0(oc.second_to_model.p50)} ms from the question's PUT to the model's answer against ${f0(ec.second_to_model.p50)} ms for the reference agent (whose figure is the bridge's Matrix delivery into the container and the proxied request), and ${f0(oc.second_after_model.p50)} against ${f0(ec.second_after_model.p50)} ms from there to the reply at alice. With a real model, reading that prompt again on every turn (prefill) adds to each answer's latency and cost, by provider and model; this bench does not measure that.

Notes: ${RUNS} runs give a p50 and a range, not a tail; every sample is in the JSON. The bench process hosts the stub, alice's \`/sync\` loop and the status polling; Synapse, the bridge, Temporal, Docker and the agent share ${machine.nproc} CPUs, so OpenClaw's startup competes with them.
`,
      );

      const fmt = (v: number) =>
        v >= 10_000
          ? `${(v / 1e3).toFixed(0)} s`
          : v >= 1_000
            ? `${Number((v / 1e3).toFixed(1))} s`
            : `${v.toFixed(0)} ms`;
      const panel = (title: string, a: MsSummary, b: MsSummary): BarChart => ({
        title,
        groupLabel: '',
        groups: ['p50', 'min', 'max'],
        series: [
          { name: 'OpenClaw', color: BRIDGE_COLOR, values: [a.p50, a.min, a.max] },
          { name: 'reference agent', color: BASELINE_COLOR, values: [b.p50, b.min, b.max] },
        ],
        format: fmt,
      });
      const panels = [
        panel('start → Active', oc.start_active, ec.start_active),
        panel('start → ready', oc.start_ready, ec.start_ready),
        panel('first answer', oc.first_answer, ec.first_answer),
        panel('second answer (warm)', oc.second_answer, ec.second_answer),
      ];
      const svg = panels
        .map((p, i) => barChartPanel(p, (i % 2) * 320, 24 + Math.floor(i / 2) * 320, 320, 320))
        .join('\n');
      writeFileSync(
        svgPath,
        `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="684" viewBox="0 0 640 684"><rect width="640" height="684" fill="#fff"/>\n${legend(
          [
            { name: 'OpenClaw', color: BRIDGE_COLOR },
            { name: 'reference agent (echo, baseline)', color: BASELINE_COLOR },
          ],
          60,
          16,
        )}\n${svg}\n</svg>\n`,
      );
      console.log(
        `openclaw: start→ready p50 ${f0(oc.start_ready.p50)} ms (reference ${f0(ec.start_ready.p50)}), first answer ${f0(oc.first_answer.p50)} ms (${f0(ec.first_answer.p50)}), second ${f0(oc.second_answer.p50)} ms (${f0(ec.second_answer.p50)})`,
      );
      return [jsonPath, mdPath, svgPath];
    } finally {
      // Stop everything now, in reverse order, whether the suite finished or failed.
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    }
  },
};
