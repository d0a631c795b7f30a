/**
 * Suite `lean`: the bridge process at rest. Start-up time (spawn → the socket answers) and RSS
 * once idle, with Matrix logged in (E2EE on) and voice on, three ways in one run, alternating:
 *
 * - `npm run dev`: from source through tsx, bundling the workflow code at start (what
 *   `npm start` ran before the build step);
 * - compiled (dist/), without the memory settings;
 * - `npm start`: compiled, with MALLOC_ARENA_MAX=2 and --max-semi-space-size=4.
 *
 * Then two `npm start` bridges, with and without Matrix, watched at rest for minutes
 * (BENCH_LEAN_OBSERVE_S, 0 skips it): memory settles over minutes, not seconds. And where the
 * compiled bridge's memory goes: its mappings (smaps), the main thread's heap by kind (a heap
 * snapshot), and what each heavy package costs to load on its own.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildDist, NPM_START, spawnBridge } from '../test/support/bridge-process';
import { call } from '../test/support/socket-clients';
import { startSynapse } from '../test/support/synapse';
import { PROJECT_ROOT } from './lib/child';
import { onCleanup } from './lib/cleanup';
import { machineInfo } from './lib/machine';
import type { BenchSettings, Suite } from './lib/suite';
import { summariseMs, type MsSummary } from './lib/stats';
import { barChartPanel, BASELINE_COLOR, BRIDGE_COLOR, legend } from './lib/svg';

const RUNS = Number(process.env.BENCH_LEAN_RUNS ?? 3);
/** How long a started bridge sits idle before its memory is read. */
const SETTLE_MS = 20_000;
/** How long two `npm start` bridges, with and without Matrix, are then watched at rest. */
const OBSERVE_S = Number(process.env.BENCH_LEAN_OBSERVE_S ?? 420);
const OBSERVE_EVERY_S = 30;
const AIM_RSS_MB = 150;
const PROBE = path.join(PROJECT_ROOT, 'test', 'support', 'module-probe.js');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex = (n: number) => randomBytes(n).toString('hex');
const mb = (bytes: number) => bytes / 1024 / 1024;

interface Variant {
  key: string;
  label: string;
  command?: string[];
}

const VARIANTS: Variant[] = [
  {
    key: 'source',
    label: '`npm run dev` (from source through tsx, bundling at start): before',
    command: ['npm', 'run', 'dev', '--silent', '--prefix', PROJECT_ROOT],
  },
  {
    key: 'compiled',
    label: '`node dist/worker/main.js` (compiled, no memory settings, no npm)',
    command: [process.execPath, path.join(PROJECT_ROOT, 'dist', 'worker', 'main.js')],
  },
  {
    key: 'npm_start',
    label: '`npm start` (compiled + memory settings): after',
    command: NPM_START,
  },
];

interface Sample {
  ready_ms: number;
  rss_mb: number;
  anon_mb: number;
  file_mb: number;
  /** RSS right after glibc's malloc_trim(0) ran in the process (npm start runs, with gdb). */
  trimmed_rss_mb?: number;
}

interface ProbeReport {
  memory: NodeJS.MemoryUsage;
  heapSnapshot?: string;
}

/** Rss of each mapping of `pid`, summed by what is mapped (anonymous memory as `[anon]`). */
function mappings(pid: number): Map<string, number> {
  const by = new Map<string, number>();
  let current = '[anon]';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) current = head[1] || '[anon]';
    else if (line.startsWith('Rss:')) {
      by.set(current, (by.get(current) ?? 0) + Number(line.split(/\s+/)[1]) * 1024);
    }
  }
  return by;
}

function rssOf(pid: number): { rss: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

const HAS_GDB = (() => {
  try {
    execFileSync('gdb', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/**
 * RSS once glibc's malloc_trim(0) has run inside the process (through gdb, which pauses it for
 * a moment): what malloc had freed but kept, returned to the kernel. The bridge itself cannot
 * call it (no native binding); this measures how much of its RSS is such memory.
 */
function rssAfterMallocTrim(pid: number): number {
  execFileSync('gdb', ['-p', String(pid), '-batch', '-ex', 'call (int)malloc_trim(0)'], {
    stdio: 'ignore',
    timeout: 60_000,
  });
  return rssOf(pid).rss;
}

/** Self size of the main thread's heap by kind of node, from a heap snapshot. */
function heapByKind(file: string): Record<string, number> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const kinds: Record<string, number> = {};
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + typeAt!]!]!;
    const name = snap.strings[snap.nodes[i + nameAt!]!]!;
    let kind: string;
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string')
      kind = 'strings (most of it module source text)';
    else if (type === 'code') kind = 'compiled code and bytecode';
    else if (type === 'native' && name.includes('ArrayBufferData'))
      kind = 'ArrayBuffer and WebAssembly memory';
    else if (type === 'object shape' || type === 'hidden') kind = 'V8 internals (shapes, hidden)';
    else kind = 'objects, arrays and closures';
    kinds[kind] = (kinds[kind] ?? 0) + snap.nodes[i + sizeAt!]!;
  }
  return kinds;
}

/** RSS a package adds when it alone is loaded into a fresh node (after a GC). */
function moduleCost(pkg: string): number {
  const script = `global.gc(); const a = process.memoryUsage().rss; require(${JSON.stringify(pkg)}); global.gc(); setTimeout(() => { global.gc(); console.log(process.memoryUsage().rss - a); }, 500);`;
  const out = execFileSync(process.execPath, ['--expose-gc', '-e', script], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return Number(out.trim());
}

const HEAVY_PACKAGES = [
  '@temporalio/worker',
  '@temporalio/client',
  'dockerode',
  'matrix-js-sdk',
  'werift',
  'pino',
  'zod',
  'xstate',
  'better-sqlite3',
];

interface AtRest {
  every_s: number;
  /** Seconds since Matrix connected (the bridge without Matrix: since the same moment). */
  series: Array<{ t_s: number; matrix_mb: number; no_matrix_mb: number }>;
  /** Median of the readings in the last third of the watch. */
  settled_matrix_mb: number;
  settled_no_matrix_mb: number;
}

/**
 * Two `npm start` bridges at once, both with voice on, one logged in to Matrix (E2EE on) and one
 * without Matrix, watched at rest for OBSERVE_S: what a reading taken soon after start does not
 * show (a bridge's memory settles over minutes).
 */
async function watchAtRest(opts: {
  dir: string;
  env: (deviceId: string) => NodeJS.ProcessEnv;
}): Promise<AtRest> {
  const start = async (key: string, matrix: boolean) => {
    const vdir = path.join(opts.dir, key);
    mkdirSync(vdir, { recursive: true });
    const probeFile = path.join(vdir, 'probe.json');
    const env = opts.env(`LEAN${key.toUpperCase().replace(/[^A-Z]/g, '')}`);
    if (!matrix) {
      for (const k of Object.keys(env)) if (k.startsWith('ARMORCLAW_MATRIX_')) delete env[k];
    }
    const bridge = await spawnBridge({
      dir: vdir,
      command: NPM_START,
      env: { ...env, NODE_OPTIONS: `--require ${PROBE}`, ARMORCLAW_MODULE_PROBE_FILE: probeFile },
    });
    const stop = onCleanup(async () => {
      const killer = setTimeout(() => bridge.child.kill('SIGKILL'), 20_000);
      await bridge.stop();
      clearTimeout(killer);
    });
    return { bridge, stop, pid: Number(readFileSync(`${probeFile}.pid`, 'utf8')) };
  };
  const withMatrix = await start('rest-matrix', true);
  const without = await start('rest-no-matrix', false);
  try {
    const tc = Date.now();
    while (
      (await call(withMatrix.bridge.socketPath, 'matrix.status')).result?.status !== 'connected'
    ) {
      if (Date.now() - tc > 60_000)
        throw new Error(`at rest: not connected to Matrix\n${withMatrix.bridge.output()}`);
      await sleep(200);
    }
    const t0 = Date.now();
    const series: AtRest['series'] = [];
    for (let t = OBSERVE_EVERY_S; t <= OBSERVE_S; t += OBSERVE_EVERY_S) {
      await sleep(t0 + t * 1000 - Date.now());
      series.push({
        t_s: t,
        matrix_mb: mb(rssOf(withMatrix.pid).rss),
        no_matrix_mb: mb(rssOf(without.pid).rss),
      });
      const last = series.at(-1)!;
      console.log(
        `at rest ${t} s: RSS ${last.matrix_mb.toFixed(0)} MB with Matrix, ${last.no_matrix_mb.toFixed(0)} MB without`,
      );
    }
    const settled = series.slice(-Math.max(1, Math.floor(series.length / 3)));
    const median = (xs: number[]) => summariseMs(xs).p50;
    return {
      every_s: OBSERVE_EVERY_S,
      series,
      settled_matrix_mb: median(settled.map((r) => r.matrix_mb)),
      settled_no_matrix_mb: median(settled.map((r) => r.no_matrix_mb)),
    };
  } finally {
    await withMatrix.stop();
    await without.stop();
  }
}

export const lean: Suite = {
  name: 'lean',
  budgetMs: () =>
    5 * 60_000 + RUNS * VARIANTS.length * (SETTLE_MS + 90_000) + OBSERVE_S * 1000 + 120_000,
  async run(settings: BenchSettings): Promise<string[]> {
    if (!Number.isInteger(RUNS) || RUNS < 1)
      throw new Error('BENCH_LEAN_RUNS must be a positive integer');
    if (!Number.isInteger(OBSERVE_S) || OBSERVE_S < 0)
      throw new Error('BENCH_LEAN_OBSERVE_S must be a whole number of seconds');
    const machine = machineInfo(PROJECT_ROOT);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-bench-lean-'));
    const stops: Array<() => Promise<void>> = [];
    stops.push(onCleanup(() => rmSync(dir, { recursive: true, force: true })));
    try {
      console.log('building dist/ (quick when current)...');
      buildDist();

      console.log('starting Synapse...');
      const syn = await startSynapse();
      stops.push(onCleanup(() => syn.stop()));
      const password = `pw-${hex(12)}`;
      await syn.registerUser('bot', password);
      const masterKey = hex(32);
      const bridgeEnv = (deviceId: string): NodeJS.ProcessEnv => ({
        ARMORCLAW_MASTER_KEY: masterKey,
        ARMORCLAW_MATRIX_HOMESERVER: syn.baseUrl,
        ARMORCLAW_MATRIX_USERNAME: 'bot',
        ARMORCLAW_MATRIX_PASSWORD: password,
        ARMORCLAW_MATRIX_DEVICE_ID: deviceId,
        ARMORCLAW_LOG_LEVEL: 'warn',
      });

      const samples = new Map<string, Sample[]>(VARIANTS.map((v) => [v.key, []]));
      let breakdown:
        | {
            mappings: Array<[string, number]>;
            memory: NodeJS.MemoryUsage;
            heap: Record<string, number>;
          }
        | undefined;
      for (let run = 0; run < RUNS; run++) {
        for (const variant of VARIANTS) {
          const vdir = path.join(dir, variant.key);
          mkdirSync(vdir, { recursive: true });
          const probeFile = path.join(vdir, `probe-${run}.json`);
          const last = run === RUNS - 1 && variant.key === 'npm_start';
          const t0 = performance.now();
          const bridge = await spawnBridge({
            dir: vdir,
            command: variant.command,
            env: {
              ...bridgeEnv(`LEAN${variant.key.toUpperCase()}`),
              NODE_OPTIONS: `--require ${PROBE}`,
              ARMORCLAW_MODULE_PROBE_FILE: probeFile,
              ...(last ? { ARMORCLAW_MODULE_PROBE_HEAP: '1' } : {}),
            },
          });
          const readyMs = performance.now() - t0;
          const stop = onCleanup(async () => {
            const killer = setTimeout(() => bridge.child.kill('SIGKILL'), 20_000);
            await bridge.stop();
            clearTimeout(killer);
          });
          try {
            const tc = Date.now();
            while (
              (await call(bridge.socketPath, 'matrix.status')).result?.status !== 'connected'
            ) {
              if (Date.now() - tc > 60_000)
                throw new Error(`${variant.key}: not connected to Matrix\n${bridge.output()}`);
              await sleep(200);
            }
            await sleep(SETTLE_MS);
            const pid = Number(readFileSync(`${probeFile}.pid`, 'utf8'));
            const m = rssOf(pid);
            samples.get(variant.key)!.push({
              ready_ms: readyMs,
              rss_mb: mb(m.rss),
              anon_mb: mb(m.anon),
              file_mb: mb(m.file),
            });
            console.log(
              `${variant.key} run ${run + 1}: ready ${readyMs.toFixed(0)} ms, RSS ${mb(m.rss).toFixed(0)} MB`,
            );
            if (variant.key === 'npm_start' && HAS_GDB) {
              const trimmed = rssAfterMallocTrim(pid);
              samples.get(variant.key)!.at(-1)!.trimmed_rss_mb = mb(trimmed);
              console.log(`  after malloc_trim: RSS ${mb(trimmed).toFixed(0)} MB`);
            }
            if (last) {
              const maps = [...mappings(pid)].sort((a, b) => b[1] - a[1]).slice(0, 6);
              process.kill(pid, 'SIGUSR2');
              const t = Date.now();
              while (!existsSync(probeFile) && Date.now() - t < 60_000) await sleep(200);
              const report = JSON.parse(readFileSync(probeFile, 'utf8')) as ProbeReport;
              breakdown = {
                mappings: maps,
                memory: report.memory,
                heap: heapByKind(report.heapSnapshot!),
              };
              rmSync(report.heapSnapshot!, { force: true });
            }
          } finally {
            await stop();
          }
        }
      }
      let atRest: AtRest | undefined;
      if (OBSERVE_S > 0) {
        console.log(`at rest for ${OBSERVE_S} s, with and without Matrix...`);
        atRest = await watchAtRest({ dir, env: bridgeEnv });
      }
      console.log('module costs...');
      const modules = HEAVY_PACKAGES.map((pkg) => ({ pkg, mb: mb(moduleCost(pkg)) }));

      const summary = (key: string, field: Exclude<keyof Sample, 'trimmed_rss_mb'>): MsSummary =>
        summariseMs(samples.get(key)!.map((s) => s[field]));
      const trimmed = (key: string): MsSummary | null => {
        const values = samples.get(key)!.flatMap((s) => s.trimmed_rss_mb ?? []);
        return values.length ? summariseMs(values) : null;
      };
      const result = {
        machine,
        runs: RUNS,
        settle_ms: SETTLE_MS,
        aim_rss_mb: AIM_RSS_MB,
        variants: VARIANTS.map((v) => ({
          key: v.key,
          label: v.label,
          ready_ms: summary(v.key, 'ready_ms'),
          rss_mb: summary(v.key, 'rss_mb'),
          anon_mb: summary(v.key, 'anon_mb'),
          file_mb: summary(v.key, 'file_mb'),
          trimmed_rss_mb: trimmed(v.key),
          samples: samples.get(v.key),
        })),
        breakdown,
        at_rest: atRest ?? null,
        modules,
      };
      const after = result.variants.find((v) => v.key === 'npm_start')!;
      const before = result.variants.find((v) => v.key === 'source')!;
      const settled = atRest?.settled_matrix_mb;
      const met = after.rss_mb.p50 < AIM_RSS_MB && (settled === undefined || settled < AIM_RSS_MB);

      mkdirSync(settings.outDir, { recursive: true });
      const jsonPath = path.join(settings.outDir, 'lean.json');
      const mdPath = path.join(settings.outDir, 'lean.md');
      const svgPath = path.join(settings.outDir, 'lean.svg');
      writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');
      const f0 = (v: number) => v.toFixed(0);
      const f1 = (v: number) => v.toFixed(1);
      const vrow = (v: (typeof result.variants)[number]) =>
        `| ${v.label} | ${v.rss_mb.n} | ${f0(v.ready_ms.p50)} | ${f0(v.ready_ms.max)} | ${f0(v.rss_mb.p50)} | ${f0(v.rss_mb.max)} | ${f0(v.anon_mb.p50)} | ${f0(v.file_mb.p50)} |`;
      const b = breakdown!;
      const heapTotal = Object.values(b.heap).reduce((a, x) => a + x, 0);
      writeFileSync(
        mdPath,
        `# The bridge process at rest: start-up time and idle memory

Generated by \`npm run bench\` (bench/lean.ts) on ${machine.date}: ${machine.nproc} CPUs, Node ${machine.node}, commit ${machine.gitCommit?.slice(0, 12) ?? 'n/a'}, 1-minute load ${machine.loadAverage[0]?.toFixed(2)} at start. Raw numbers: [lean.json](lean.json).

Each way of running the bridge was started ${RUNS} times, alternating, each with its embedded Temporal dev server, logged in to a private Synapse as the bot (end-to-end encryption on) and with voice on (signaling server listening). **Ready** is from spawning the command to the socket answering; **RSS** is the bridge's own process (not the dev server, not npm), read ${SETTLE_MS / 1000} s after Matrix reported \`connected\`.

## Aim

Idle RSS under ${AIM_RSS_MB} MB with Matrix and voice configured: **${met ? 'met' : 'not met'}** (${f0(after.rss_mb.p50)} MB at p50 ${SETTLE_MS / 1000} s after Matrix connected${settled === undefined ? '' : `, ${f0(settled)} MB once settled over ${OBSERVE_S / 60} minutes at rest (below)`}; was ${f0(before.rss_mb.p50)} MB; ready in ${f0(after.ready_ms.p50)} ms, was ${f0(before.ready_ms.p50)} ms).

## Results

| how it runs | n | ready p50 ms | ready max ms | RSS p50 MB | RSS max MB | anonymous MB | file-backed MB |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${result.variants.map(vrow).join('\n')}

![start-up and memory](lean.svg)
${
  atRest
    ? `
## Over minutes at rest

Two \`npm start\` bridges at once, both with voice on, one logged in to Matrix (end-to-end encryption on) and one without Matrix, read every ${atRest.every_s} s for ${OBSERVE_S / 60} minutes after Matrix connected (the right-hand panel of the figure). Settled (the median of the last third of the readings): **${f0(atRest.settled_matrix_mb)} MB with Matrix**, ${f0(atRest.settled_no_matrix_mb)} MB without. The reading ${SETTLE_MS / 1000} s after Matrix connected (the table above, ${f0(after.rss_mb.p50)} MB) is ${after.rss_mb.p50 < atRest.settled_matrix_mb ? 'lower than' : 'no lower than'} where the bridge with Matrix settles. The difference between the two bridges is Matrix at rest, most of it the end-to-end encryption's WebAssembly module (matrix-sdk-crypto-wasm). Measured while tuning this (the mappings of two such bridges side by side, 150 s at rest), of about 20 MB: the module's 5.4 MB of bytes, which V8 keeps to compile functions on first call (in malloc's heap, +5 MB; 4.2 MB since the bridge loads the module without its 1.2 MB of function names, matrix/crypto-wasm.ts); its compiled code (+3 MB of executable mappings); its linear memory (about 4 MB, never shrinks) and the main thread's V8 heap (+4.5 MB: the bindings' JavaScript, the in-memory IndexedDB of the crypto store, the Matrix code). Neither bridge kept growing in a 25-minute watch.

| s at rest | with Matrix MB | without Matrix MB |
| ---: | ---: | ---: |
${atRest.series.map((r) => `| ${r.t_s} | ${f0(r.matrix_mb)} | ${f0(r.no_matrix_mb)} |`).join('\n')}
`
    : ''
}
## Where the memory goes (\`npm start\`, last run)

The largest mappings of the process (resident MB):

| mapping | MB |
| --- | ---: |
${b.mappings.map(([m, bytes]) => `| \`${m}\` | ${f1(mb(bytes))} |`).join('\n')}

File-backed pages (the node binary, the Temporal core's native library) are shared with every other process that maps them and are dropped first under memory pressure. The anonymous part is the heaps: the main thread's V8 heap, the workflow thread's (the Temporal worker runs workflow code in a worker thread with its own isolate and the workflow bundle loaded), the C allocator's (the Rust core, V8's compiler, SQLite, Node itself), and WebAssembly (the end-to-end encryption's crypto module: its 4.2 MB of code, without the names, is kept and compiled). No other JavaScript thread runs at rest: media threads start with calls and end with them; the gateway's audit writer thread starts with its first request and ends a minute after its last (it ran from start-up before; its heap alone held 3.8 MB: services/audit-log-thread.ts).
${
  after.trimmed_rss_mb
    ? `
**Memory malloc holds free**: after each \`npm start\` reading, glibc's \`malloc_trim(0)\` was called once more inside the process (through gdb): RSS went to ${f0(after.trimmed_rss_mb.p50)} MB at p50 (max ${f0(after.trimmed_rss_mb.max)}), so about ${f0(after.rss_mb.p50 - after.trimmed_rss_mb.p50)} MB of the reading was memory malloc had freed and kept since the bridge's own last trim (below).
`
    : ''
}

The main thread's V8 heap: ${f1(mb(b.memory.heapUsed))} MB used of ${f1(mb(b.memory.heapTotal))} MB; ${f1(mb(b.memory.external))} MB external. From a heap snapshot, by kind (self sizes, ${f1(mb(heapTotal))} MB in all):

| kind | MB |
| --- | ---: |
${Object.entries(b.heap)
  .sort((x, y) => y[1] - x[1])
  .map(([k, v]) => `| ${k} | ${f1(mb(v))} |`)
  .join('\n')}

What each heavy package adds when loaded alone into a fresh node (MB, after a GC):

| package | MB |
| --- | ---: |
${modules.map((m) => `| \`${m.pkg}\` | ${f1(m.mb)} |`).join('\n')}

## What was done, and what each part saved

- **Compiled JavaScript** (\`scripts/build.ts\`, run by setup): no tsx/esbuild loader, and the workflow code is bundled once at build time instead of by webpack and SWC at every start, which also left their garbage behind.
- **The workflow bundle minified, its source map by line** (scripts/build.ts, scripts/lib/source-map.ts): the Temporal worker's workflow thread keeps the bundle and its whole source map parsed (in the \`source-map\` package's WebAssembly heap, which never shrinks) for as long as the bridge runs: it maps a stack trace for every promise a workflow makes, for Temporal's stack-trace query. Webpack's bundle is minified with esbuild (which composes its map with webpack's), the map keeps one position per source line (13 000 of 51 000: frames still show the TypeScript file and line) and no copies of the sources. Leaving out the copies saved about 12 MB; minifying and the map by line about 8 MB more (idle RSS 40 s after Matrix connected: 163–164 → 153–157 MB, three readings each, alternating, same day).
- **No SSH transport for Docker**: dockerode's modem loads ssh2 for \`ssh://\` hosts, and ssh2 instantiates a WebAssembly module with a 16 MB heap as it loads. The bridge only talks to a Unix socket (worker/docker-engine.ts).
- **No Matrix client SDK, no fetch**: the bridge's requests to a homeserver (login, /sync, send, join, room state, the E2EE key requests) go through its own small HTTP client (matrix/http.ts) instead of matrix-js-sdk, which cost about 30 MB loaded (the table above), and over Node's http/https rather than \`fetch\`, whose own HTTP stack (undici, web streams) is loaded on first use and held after: about 2 MB of the main heap in a fresh node, the only caller of fetch in the bridge.
- **Loaded only when asked for**: pino-pretty, when logs are to be readable rather than JSON.
- **Loaded on first use**: werift and the Opus codec with the first call, on media threads that stop when their calls end.
- **Threads only while needed**: the gateway's audit writer thread (services/audit-log-thread.ts) starts with the gateway's first request and ends a minute after its last, instead of running from start-up (its heap alone held 3.8 MB at rest).
- **No polling at rest**: each bridge copies its Matrix account's shared queue from the sync workflow by querying it, twice a second. The bridge that runs the sync pushes its events as they arrive, so it now queries every 5 s while no event comes (worker/matrix-replica.ts). The two queries a second went through the Temporal client, the server and the workflow thread: with them removed, and the trim mark below, an idle bridge with Matrix sat at 144–146 MB against 152–155 MB before this session's changes (two bridges side by side, each with its own account, over 3.5 minutes, twice with the order swapped).
- **The crypto module without its names**: matrix/crypto-wasm.ts loads matrix-sdk-crypto-wasm's WebAssembly itself, without the custom \`name\` section (1.2 MB of 5.4 that V8 would keep for the module's life: the names only label the Rust code's stack frames).
- **Free memory handed back** (worker/malloc-trim.ts): what start-up, the Temporal core, V8's compiler, SQLite and Matrix's first syncs allocate and free stays in glibc's arenas in pieces too fragmented for free() to return, 20–40 MB of an idle bridge (measured with gdb calling \`malloc_trim(0)\` in the process before the bridge did it itself: 195–201 MB → 156–159 MB over three readings). \`MALLOC_TRIM_THRESHOLD_\`/\`MALLOC_MMAP_THRESHOLD_\` and jemalloc (\`LD_PRELOAD\`) did not return it in trials; the trim does, and Node cannot call it, so setup builds a one-function native module (native/malloc-trim.c → .tools/malloc-trim.node) that the bridge calls 15 s after it is ready, then whenever its RSS has grown by a megabyte since the last trim and the process is at rest (checked every 10 s, skipped while it uses a tenth of a core or more). A trim every minute left the bursts of 10–16 MB that come minutes after start resident for up to a minute (see "Over minutes at rest"); a 4-MB mark left an idle bridge with Matrix up to 4 MB above its trimmed size between trims, as its work at rest allocates and frees a few MB every few seconds (with a 1-MB mark, the trims of an idle bridge with Matrix returned 2–6 MB every 10 s, taking 27–49 ms each). Each trim follows a full garbage collection of the main thread's heap (a \`gc\` function taken from a context made while V8's expose-gc flag was briefly set, so no other code sees one): at rest V8 collects rarely and keeps the pages its last allocations grew into. With the two changes above, the main heap of an idle bridge with Matrix went from 44.9 to 37.4 MB (six minutes at rest, four bridges side by side, same day) and its RSS down by 3–8 MB.
- **Memory settings** (in \`npm start\` and the image): \`MALLOC_ARENA_MAX=2\` (the Rust core and Node's threads otherwise each get a malloc arena) and \`--max-semi-space-size=4\` (each isolate's young generation may otherwise grow to 16 MB per semi-space; at rest there are two isolates, the main thread's and the workflow thread's). \`--optimize-for-size\`, a smaller semi-space (1 MB), one malloc arena and a one-thread V8 platform were tried and changed the idle RSS by less than the run-to-run spread (±10 MB).
`,
      );
      const panel = (title: string, field: 'ready_ms' | 'rss_mb', fmt: (v: number) => string) =>
        barChartPanel(
          {
            title,
            groupLabel: '',
            groups: ['source (before)', 'compiled', 'npm start (after)'],
            series: [
              {
                name: 'p50',
                color: BRIDGE_COLOR,
                values: result.variants.map((v) => v[field].p50),
              },
              {
                name: 'max',
                color: BASELINE_COLOR,
                values: result.variants.map((v) => v[field].max),
              },
            ],
            references:
              field === 'rss_mb' ? [{ value: AIM_RSS_MB, label: `aim ${AIM_RSS_MB} MB` }] : [],
            format: fmt,
          },
          field === 'ready_ms' ? 0 : 360,
          20,
          360,
          320,
        );
      // At rest: with Matrix (blue) beside the same bridge without it (grey), minute by minute.
      const width = atRest ? 1200 : 720;
      const restPanel = atRest
        ? `${legend(
            [
              { name: 'with Matrix', color: BRIDGE_COLOR },
              { name: 'without Matrix', color: BASELINE_COLOR },
            ],
            780,
            16,
          )}\n${barChartPanel(
            {
              title: 'RSS at rest (MB), by seconds since Matrix connected',
              groupLabel: '',
              groups: atRest.series.map((r) => String(r.t_s)),
              series: [
                {
                  name: 'with Matrix',
                  color: BRIDGE_COLOR,
                  values: atRest.series.map((r) => r.matrix_mb),
                },
                {
                  name: 'without Matrix',
                  color: BASELINE_COLOR,
                  values: atRest.series.map((r) => r.no_matrix_mb),
                },
              ],
              references: [{ value: AIM_RSS_MB, label: `aim ${AIM_RSS_MB} MB` }],
              format: f0,
            },
            720,
            20,
            480,
            320,
          )}\n`
        : '';
      writeFileSync(
        svgPath,
        `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="360" viewBox="0 0 ${width} 360"><rect width="${width}" height="360" fill="#fff"/>\n${legend(
          [
            { name: 'p50', color: BRIDGE_COLOR },
            { name: 'max', color: BASELINE_COLOR },
          ],
          60,
          16,
        )}\n${panel('start → ready (ms)', 'ready_ms', f0)}\n${panel('idle RSS (MB)', 'rss_mb', f0)}\n${restPanel}</svg>\n`,
      );
      console.log(
        `lean: npm start ready ${f0(after.ready_ms.p50)} ms, RSS ${f0(after.rss_mb.p50)} MB; from source ${f0(before.ready_ms.p50)} ms, ${f0(before.rss_mb.p50)} MB`,
      );
      return [jsonPath, mdPath, svgPath];
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    }
  },
};
