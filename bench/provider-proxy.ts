/**
 * `provider-proxy`: what the provider proxy adds between an agent and its provider. The same
 * stub provider (test/support/provider-stub.ts) is asked directly over loopback TCP and through
 * the proxy's Unix socket, in one run: small-request latency and time to the first streamed
 * byte (direct and proxied requests alternating, so drift hits both alike), and streams/s at
 * each connection count. Stub, proxy and load generator are three processes: this file, run with
 * `stub` or `proxy <stub URL> <socket>`, is the stub's and the proxy's (`serve` below).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { ProviderProxy } from '../proxy/provider-proxy';
import { ProviderStub, timedRequest, type StubOptions } from '../test/support/provider-stub';
import { exitWithParent, forkHelper, PROJECT_ROOT, stopChild } from './lib/child';
import { onCleanup } from './lib/cleanup';
import { machineInfo } from './lib/machine';
import { summariseMs, type MsSummary } from './lib/stats';
import type { BenchSettings, Suite } from './lib/suite';
import { barChartPanel, BASELINE_COLOR, BRIDGE_COLOR, legend } from './lib/svg';

const AIM_ADDED_P50_MS = 2;
const AIM_ADDED_TTFB_MS = 5;
const AIM_THROUGHPUT_RATIO = 0.8;
/** Rows: latency, first byte, and two throughput pairs (paced, unpaced) per connection count. */
const rowsOf = (s: BenchSettings) => 2 + 4 * s.connectionCounts.length;
/** A provider-like stream: 20 events, 5 ms apart (200 events/s, a fast model). */
const PACED = { chunks: 20, delayMs: 5 };
/** The same stream with no pauses: every byte is CPU for the proxy, the worst case. */
const UNPACED = { chunks: 20, delayMs: 0 };

interface StreamRow {
  connections: number;
  direct: number;
  proxy: number;
}

type Target = { host: string; port: number } | { socketPath: string };
interface Path {
  name: 'direct' | 'proxy';
  target: Target;
  agent: http.Agent;
}

const chatBody = (stream: boolean) => ({
  model: 'gpt-4o-mini',
  stream,
  messages: [{ role: 'user', content: 'hi' }],
});
const auth = { authorization: 'Bearer sk-placeholder' };

function message<T>(child: ChildProcess, what: string, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer`)), timeoutMs);
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve(m as T);
    });
    child.once('exit', (code) => reject(new Error(`${what} exited (${code})`)));
  });
}

/** One request; its total time and time to the first body byte, in ms. */
async function once(p: Path, stream: boolean): Promise<{ totalMs: number; firstMs: number }> {
  const started = performance.now();
  const reply = await timedRequest(
    p.target,
    'POST',
    '/v1/chat/completions',
    chatBody(stream),
    auth,
    undefined,
    p.agent,
  );
  if (reply.status !== 200 || reply.broken) throw new Error(`${p.name}: status ${reply.status}`);
  const end = reply.pieces[reply.pieces.length - 1]?.at ?? performance.now();
  return { totalMs: end - started, firstMs: (reply.pieces[0]?.at ?? end) - started };
}

/** Alternates direct and proxied requests for the warmup, then the window; returns both samples. */
async function alternating(
  paths: Path[],
  s: BenchSettings,
  stream: boolean,
  pick: 'totalMs' | 'firstMs',
) {
  const samples = new Map<string, number[]>(paths.map((p) => [p.name, []]));
  for (const [phase, ms] of [
    ['warmup', s.warmupMs],
    ['measure', s.measureMs],
  ] as const) {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      for (const p of paths) {
        const r = await once(p, stream);
        if (phase === 'measure') samples.get(p.name)!.push(r[pick]);
      }
    }
  }
  return Object.fromEntries([...samples].map(([k, v]) => [k, summariseMs(v)])) as Record<
    Path['name'],
    MsSummary
  >;
}

/** Closed loop of `connections` streams on `p`; completed streams per second in the window. */
async function throughput(p: Path, connections: number, s: BenchSettings): Promise<number> {
  const windowStart = performance.now() + s.warmupMs;
  const windowEnd = windowStart + s.measureMs;
  let done = 0;
  const worker = async () => {
    while (performance.now() < windowEnd) {
      await once(p, true);
      const now = performance.now();
      if (now >= windowStart && now < windowEnd) done++;
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  return done / (s.measureMs / 1e3);
}

export const providerProxy: Suite = {
  name: 'provider-proxy',
  budgetMs: (s) => rowsOf(s) * (s.warmupMs + s.measureMs + 15_000) + 60_000,
  async run(settings) {
    const machine = machineInfo(PROJECT_ROOT);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-proxy-'));
    const socketPath = path.join(dir, 'proxy.sock');
    const removeDir = onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const stub = forkHelper('provider-proxy.ts', ['stub']);
    const stopStub = onCleanup(() => stopChild(stub));
    const { url } = await message<{ url: string }>(stub, 'stub');
    const proxy = forkHelper('provider-proxy.ts', ['proxy', url, socketPath]);
    const stopProxy = onCleanup(() => stopChild(proxy));
    await message(proxy, 'proxy');
    const setStub = async (options: object) => {
      stub.send({ options });
      await message(stub, 'stub options');
    };
    const { hostname, port } = new URL(url);
    const agentOf = () => new http.Agent({ keepAlive: true, maxSockets: Infinity });
    const paths: Path[] = [
      { name: 'direct', target: { host: hostname, port: Number(port) }, agent: agentOf() },
      { name: 'proxy', target: { socketPath }, agent: agentOf() },
    ];

    try {
      await setStub({ delayMs: 0, chunks: 20 });
      const small = await alternating(paths, settings, false, 'totalMs');
      // Paced like a provider: the first event comes 2 ms after the request, the rest follow.
      await setStub({ delayMs: 2, chunks: 5 });
      const first = await alternating(paths, settings, true, 'firstMs');
      const streams = async (pacing: typeof PACED, label: string): Promise<StreamRow[]> => {
        await setStub(pacing);
        const rows: StreamRow[] = [];
        for (const c of settings.connectionCounts) {
          const direct = await throughput(paths[0]!, c, settings);
          const proxied = await throughput(paths[1]!, c, settings);
          rows.push({ connections: c, direct, proxy: proxied });
          console.log(
            `  ${label}, ${c} connections: direct ${direct.toFixed(0)}/s, proxy ${proxied.toFixed(0)}/s`,
          );
        }
        return rows;
      };
      const paced = await streams(PACED, 'paced');
      const unpaced = await streams(UNPACED, 'unpaced');
      return writeReport(settings, machine, small, first, paced, unpaced);
    } finally {
      for (const p of paths) p.agent.destroy();
      await stopProxy();
      await stopStub();
      await removeDir();
    }
  },
};

function writeReport(
  settings: BenchSettings,
  machine: ReturnType<typeof machineInfo>,
  small: Record<Path['name'], MsSummary>,
  first: Record<Path['name'], MsSummary>,
  paced: StreamRow[],
  unpaced: StreamRow[],
): string[] {
  const addedP50 = small.proxy.p50 - small.direct.p50;
  const addedP95 = small.proxy.p95 - small.direct.p95;
  const addedFirst = first.proxy.p50 - first.direct.p50;
  const ratio = (r: StreamRow) => r.proxy / r.direct;
  const worstPaced = Math.min(...paced.map(ratio));
  const worstUnpaced = Math.min(...unpaced.map(ratio));
  const verdict = (ok: boolean) => (ok ? 'met' : 'not met');
  const f = (v: number) => v.toFixed(2);
  mkdirSync(settings.outDir, { recursive: true });
  const jsonPath = path.join(settings.outDir, 'provider-proxy.json');
  const mdPath = path.join(settings.outDir, 'provider-proxy.md');
  const svgPath = path.join(settings.outDir, 'provider-proxy.svg');
  const result = {
    machine,
    settings: { ...settings, outDir: undefined },
    small,
    first_byte: first,
    paced,
    unpaced,
  };
  writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');
  const row = (what: string, s: MsSummary) =>
    `| ${what} | ${s.n} | ${f(s.p50)} | ${f(s.p95)} | ${f(s.min)} | ${f(s.max)} |`;
  writeFileSync(
    mdPath,
    `# Provider proxy: through the proxy vs. straight to the provider

Generated by \`npm run bench\` (bench/provider-proxy.ts) on ${machine.date}: ${machine.nproc} CPUs, Node ${machine.node}, commit ${machine.gitCommit?.slice(0, 12) ?? 'n/a'}, 1-minute load ${machine.loadAverage[0]?.toFixed(2)} at start. The provider is the test stub (test/support/provider-stub.ts) on loopback HTTP in its own process; the proxy (proxy/provider-proxy.ts) runs in another, on a Unix socket, as it will for a run; the load generator is a third. ${settings.warmupMs / 1e3} s warmup + ${settings.measureMs / 1e3} s measured per row. Raw numbers: [provider-proxy.json](provider-proxy.json).

## Aims

- At most ${AIM_ADDED_P50_MS} ms added at p50 to a small request: **${verdict(addedP50 <= AIM_ADDED_P50_MS)}** (+${f(addedP50)} ms; p95 +${f(addedP95)} ms).
- At most ${AIM_ADDED_TTFB_MS} ms added to the first streamed byte: **${verdict(addedFirst <= AIM_ADDED_TTFB_MS)}** (+${f(addedFirst)} ms at p50).
- At least ${AIM_THROUGHPUT_RATIO}× direct stream throughput: **${verdict(worstPaced >= AIM_THROUGHPUT_RATIO)} for provider-paced streams** (worst ${f(worstPaced)}×); **${verdict(worstUnpaced >= AIM_THROUGHPUT_RATIO)} for unpaced streams** (worst ${f(worstUnpaced)}×), the worst case below.

## Latency (ms), one request at a time, direct and proxied alternating

| what | n | p50 | p95 | min | max |
| --- | ---: | ---: | ---: | ---: | ---: |
${row('small chat request, direct', small.direct)}
${row('small chat request, through the proxy', small.proxy)}
${row('first streamed byte, direct', first.direct)}
${row('first streamed byte, through the proxy', first.proxy)}

## Streams per second (20-event SSE chat streams, closed loop)

Paced: the stub sends an event every ${PACED.delayMs} ms, as a fast model streams. Unpaced: all
20 events at once.

| connections | paced, direct | paced, proxy | ratio | unpaced, direct | unpaced, proxy | ratio |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${paced
  .map((r, i) => {
    const u = unpaced[i]!;
    return `| ${r.connections} | ${r.direct.toFixed(0)} | ${r.proxy.toFixed(0)} | ${f(ratio(r))} | ${u.direct.toFixed(0)} | ${u.proxy.toFixed(0)} | ${f(ratio(u))} |`;
  })
  .join('\n')}

![latency and throughput](provider-proxy.svg)

Unpaced streams are the proxy's worst case: each one is a second HTTP exchange (agent to
proxy, proxy to provider) and its CPU is all that limits the rate; a profile of the proxy then
shows Node's HTTP machinery (parsing, chunked writes) ahead of the proxy's own code. With
${machine.nproc} CPUs the stub, the proxy and the load generator share cores, so the proxied
rows also pay for a third busy process: the unpaced ratio is a floor. A provider paces its
streams, and then the proxy keeps up.
`,
  );
  const latency = barChartPanel(
    {
      title: 'latency (ms)',
      groupLabel: '',
      groups: ['small p50', 'small p95', 'first byte p50', 'first byte p95'],
      series: [
        {
          name: 'proxy',
          color: BRIDGE_COLOR,
          values: [small.proxy.p50, small.proxy.p95, first.proxy.p50, first.proxy.p95],
        },
        {
          name: 'direct',
          color: BASELINE_COLOR,
          values: [small.direct.p50, small.direct.p95, first.direct.p50, first.direct.p95],
        },
      ],
      format: (v) => v.toFixed(1),
    },
    0,
    20,
    480,
    320,
  );
  const tput = barChartPanel(
    {
      title: 'streams/s',
      groupLabel: 'connections (p: paced, u: unpaced)',
      logAbove: 10,
      groups: [
        ...paced.map((r) => `${r.connections} p`),
        ...unpaced.map((r) => `${r.connections} u`),
      ],
      series: [
        { name: 'proxy', color: BRIDGE_COLOR, values: [...paced, ...unpaced].map((r) => r.proxy) },
        {
          name: 'direct',
          color: BASELINE_COLOR,
          values: [...paced, ...unpaced].map((r) => r.direct),
        },
      ],
      format: (v) => v.toFixed(0),
    },
    480,
    20,
    480,
    320,
  );
  const items = [
    { name: 'through the proxy', color: BRIDGE_COLOR },
    { name: 'direct', color: BASELINE_COLOR },
  ];
  writeFileSync(
    svgPath,
    `<svg xmlns="http://www.w3.org/2000/svg" width="960" height="360" viewBox="0 0 960 360"><rect width="960" height="360" fill="#fff"/>\n${legend(items, 60, 16)}\n${latency}\n${tput}\n</svg>\n`,
  );
  console.log(
    `provider-proxy: +${f(addedP50)} ms p50, +${f(addedFirst)} ms first byte, throughput ${f(worstPaced)}× paced, ${f(worstUnpaced)}× unpaced`,
  );
  return [jsonPath, mdPath, svgPath];
}

/**
 * The stub (`stub`) or the proxy (`proxy <stub URL> <socket>`), in this child process: the
 * proxy's one run is an OpenAI one forwarding to the stub. Tells the parent `{ ready, url? }`;
 * the stub takes `{ options }` and acknowledges each.
 */
async function serve(
  role: string | undefined,
  stubUrl?: string,
  socketPath?: string,
): Promise<void> {
  exitWithParent();
  if (role === 'stub') {
    const stub = await ProviderStub.start();
    // The stub records every request for tests; a bench makes too many to keep.
    setInterval(() => (stub.requests.length = 0), 500).unref();
    process.on('message', (m: { options?: Partial<StubOptions> }) => {
      if (m.options) stub.options = { ...stub.options, ...m.options };
      process.send!({ ack: true });
    });
    process.send!({ ready: true, url: stub.url });
    return;
  }
  if (role === 'proxy' && stubUrl && socketPath) {
    const proxy = new ProviderProxy({
      runs: { lookup: () => ({ active: true, provider: 'openai', keyId: 'bench' }) },
      credentials: { tokenFor: () => 'sk-bench-token' },
      baseUrls: { openai: stubUrl },
      onUsage: () => undefined,
      guard: { allow: () => true },
      log: pino({ level: 'warn' }),
    });
    await proxy.listen('bench', socketPath);
    process.send!({ ready: true });
    return;
  }
  throw new Error('usage: provider-proxy.ts stub | proxy <stub URL> <socket path>');
}

if (require.main === module) {
  const [role, stubUrl, socketPath] = process.argv.slice(2);
  serve(role, stubUrl, socketPath).catch((err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(1);
  });
}
