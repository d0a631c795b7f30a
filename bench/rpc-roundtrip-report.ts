/**
 * Turns the rpc-roundtrip runs into docs/benchmarks/rpc-roundtrip.{json,md,svg}: the socket
 * against a bare echo server, and the HTTP gateway against the socket. Each aim is judged from
 * the numbers, met or not.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MachineInfo } from './lib/machine';
import type { LoadResult } from './lib/protocol';
import { REFERENCE_COLOR, barChartPanel, escapeXml, legend } from './lib/svg';

/** `echo`: bare JSON-RPC on a Unix socket; `echo-http`: Node's bare HTTP server on loopback. */
export type Target = 'echo' | 'bridge' | 'echo-http' | 'gateway';

export interface RoundtripRun extends LoadResult {
  target: Target;
  method: string;
  connections: number;
}

export interface RoundtripData {
  suite: 'rpc-roundtrip';
  machine: MachineInfo;
  settings: { warmupSeconds: number; measureSeconds: number; connectionCounts: number[] };
  bridgeHealthAtStart: unknown;
  runs: RoundtripRun[];
}

/** Above this much CPU used by processes outside the bench (% of one core), a row is flagged. */
const NOISY_OTHER_CPU_PERCENT = 15;

export const AIMS = {
  /** A bridge method's p50 at most this many times the echo server's, at the same concurrency. */
  maxP50RatioToEcho: 2,
  requestsPerSecond: 20_000,
  /** The gateway's p50 at most this many times the socket's, same method and concurrency. */
  maxGatewayP50RatioToSocket: 2,
  gatewayRequestsPerSecond: 10_000,
} as const;

/** One bridge row set against the echo row with the same number of connections. */
export interface Comparison {
  method: string;
  connections: number;
  /** Null when either side completed no request in its window. */
  p50Ratio: number | null;
  requestsPerSecondRatio: number;
  p50AimMet: boolean;
  requestsPerSecondAimMet: boolean;
}

export function compare(runs: RoundtripRun[]): Comparison[] {
  return runs
    .filter((r) => r.target === 'bridge')
    .flatMap((r) => {
      const echo = runs.find((e) => e.target === 'echo' && e.connections === r.connections);
      if (!echo) return [];
      const p50Ratio = r.latencyMs && echo.latencyMs ? r.latencyMs.p50 / echo.latencyMs.p50 : null;
      return [
        {
          method: r.method,
          connections: r.connections,
          p50Ratio,
          requestsPerSecondRatio: r.requestsPerSecond / echo.requestsPerSecond,
          p50AimMet: p50Ratio !== null && p50Ratio <= AIMS.maxP50RatioToEcho,
          requestsPerSecondAimMet: r.requestsPerSecond >= AIMS.requestsPerSecond,
        },
      ];
    });
}

/** One gateway row against the socket row of the same method and connection count. */
export interface GatewayComparison {
  method: string;
  connections: number;
  socketP50: number | null;
  gatewayP50: number | null;
  p50Ratio: number | null;
  /** The bare HTTP server's p50 and the gateway's over it: what the gateway adds to HTTP. */
  httpEchoP50: number | null;
  p50RatioToHttpEcho: number | null;
  requestsPerSecondRatioToHttpEcho: number | null;
  requestsPerSecond: number;
  p50AimMet: boolean;
  requestsPerSecondAimMet: boolean;
}

export function compareGateway(runs: RoundtripRun[]): GatewayComparison[] {
  return runs
    .filter((r) => r.target === 'gateway')
    .flatMap((r) => {
      const socket = runs.find(
        (b) => b.target === 'bridge' && b.method === r.method && b.connections === r.connections,
      );
      if (!socket) return [];
      const httpEcho = runs.find(
        (e) => e.target === 'echo-http' && e.connections === r.connections,
      );
      const socketP50 = socket.latencyMs?.p50 ?? null;
      const gatewayP50 = r.latencyMs?.p50 ?? null;
      const p50Ratio = socketP50 && gatewayP50 ? gatewayP50 / socketP50 : null;
      const httpEchoP50 = httpEcho?.latencyMs?.p50 ?? null;
      return [
        {
          method: r.method,
          connections: r.connections,
          socketP50,
          gatewayP50,
          p50Ratio,
          httpEchoP50,
          p50RatioToHttpEcho: httpEchoP50 && gatewayP50 ? gatewayP50 / httpEchoP50 : null,
          requestsPerSecondRatioToHttpEcho: httpEcho
            ? r.requestsPerSecond / httpEcho.requestsPerSecond
            : null,
          requestsPerSecond: r.requestsPerSecond,
          p50AimMet: p50Ratio !== null && p50Ratio <= AIMS.maxGatewayP50RatioToSocket,
          requestsPerSecondAimMet: r.requestsPerSecond >= AIMS.gatewayRequestsPerSecond,
        },
      ];
    });
}

/** Writes the three files; returns their paths. */
export function writeRoundtripReport(outDir: string, data: RoundtripData): string[] {
  mkdirSync(outDir, { recursive: true });
  const comparisons = compare(data.runs);
  const gateway = compareGateway(data.runs);
  const files = {
    json: path.join(outDir, 'rpc-roundtrip.json'),
    md: path.join(outDir, 'rpc-roundtrip.md'),
    svg: path.join(outDir, 'rpc-roundtrip.svg'),
  };
  writeFileSync(
    files.json,
    JSON.stringify({ ...data, aims: AIMS, comparisons, gateway }, null, 2) + '\n',
  );
  writeFileSync(files.md, markdown(data, comparisons, gateway));
  writeFileSync(files.svg, svg(data));
  return Object.values(files);
}

const ms = (v: number | undefined) =>
  v === undefined ? '–' : v < 1 ? v.toFixed(3) : v < 100 ? v.toFixed(2) : v.toFixed(0);
const rps = (v: number) => Math.round(v).toLocaleString('en-US');
const ratio = (v: number | null) =>
  v === null ? '–' : `${v < 0.1 ? v.toPrecision(2) : v.toFixed(2)}×`;
const pct = (v: number | null | undefined) =>
  v === null || v === undefined ? '–' : `${Math.round(v)}`;
const label = (r: { target: Target; method: string }) =>
  r.target === 'echo' || r.target === 'echo-http' ? r.target : `${r.target} ${r.method}`;

function markdown(
  data: RoundtripData,
  comparisons: Comparison[],
  gateway: GatewayComparison[],
): string {
  const { machine: m, settings: s } = data;
  const methods = [...new Set(comparisons.map((c) => c.method))];
  const lines: string[] = [];
  lines.push(
    '# RPC round trip: the socket vs. a bare echo server, the HTTP gateway vs. the socket',
    '',
  );
  lines.push(
    `Generated by \`npm run bench\` (bench/rpc-roundtrip.ts) on ${m.date}: ${m.nproc} CPUs (${m.cpuModel}), ` +
      `${(m.totalMemoryBytes / 2 ** 30).toFixed(0)} GiB, ${m.platform} ${m.kernel}, Node ${m.node}` +
      (m.gitCommit ? `, commit ${m.gitCommit.slice(0, 12)}` : ', no commit yet') +
      `. Closed loop per connection (JSON-RPC lines over the Unix socket; gateway rows: \`POST /rpc\` with a ` +
      `bearer token over HTTP/1.1 keep-alive on loopback), ${s.warmupSeconds} s warmup then ${s.measureSeconds} s ` +
      'measured per row. Raw numbers: [rpc-roundtrip.json](rpc-roundtrip.json). How to read this: ' +
      '[bench/README.md](../../bench/README.md).',
    '',
  );

  const noisy = data.runs.filter((r) => (r.cpuPercent.other ?? 0) > NOISY_OTHER_CPU_PERCENT);
  if (noisy.length > 0) {
    const worst = Math.max(...noisy.map((r) => r.cpuPercent.other ?? 0));
    lines.push(
      `> **The machine was not quiet.** Processes outside the bench used more than ${NOISY_OTHER_CPU_PERCENT} % ` +
        `of a core during ${noisy.length} of ${data.runs.length} rows (up to ${Math.round(worst)} %; ` +
        `1-minute load average ${m.loadAverage[0]!.toFixed(2)} at start). Those rows understate what this machine can do; ` +
        'rerun on an idle machine before drawing conclusions.',
      '',
    );
  }

  lines.push('## Aims', '');
  lines.push('| aim | method | met? | detail |', '| --- | --- | --- | --- |');
  for (const method of methods) {
    const rows = comparisons.filter((c) => c.method === method);
    const p50Met = rows.filter((c) => c.p50AimMet);
    lines.push(
      `| p50 within ${AIMS.maxP50RatioToEcho}× of the echo server | ${method} | ${verdict(p50Met.length, rows.length)} | ` +
        rows.map((c) => `${c.connections} conn: ${ratio(c.p50Ratio)}`).join(', ') +
        ' |',
    );
  }
  for (const method of methods) {
    const rows = data.runs.filter((r) => r.target === 'bridge' && r.method === method);
    const best = rows.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a));
    const met = rows.filter((r) => r.requestsPerSecond >= AIMS.requestsPerSecond);
    lines.push(
      `| at least ${rps(AIMS.requestsPerSecond)} requests/s | ${method} | ${verdict(met.length, rows.length)} | ` +
        `best ${rps(best.requestsPerSecond)} req/s at ${best.connections} conn |`,
    );
  }
  for (const method of [...new Set(gateway.map((g) => g.method))]) {
    const rows = gateway.filter((g) => g.method === method);
    const best = rows.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a));
    lines.push(
      `| gateway p50 within ${AIMS.maxGatewayP50RatioToSocket}× of the socket | ${method} | ` +
        `${verdict(rows.filter((g) => g.p50AimMet).length, rows.length)} | ` +
        rows.map((g) => `${g.connections} conn: ${ratio(g.p50Ratio)}`).join(', ') +
        ' |',
      `| gateway at least ${rps(AIMS.gatewayRequestsPerSecond)} requests/s | ${method} | ` +
        `${verdict(rows.filter((g) => g.requestsPerSecondAimMet).length, rows.length)} | ` +
        `best ${rps(best.requestsPerSecond)} req/s at ${best.connections} conn |`,
    );
  }
  lines.push('');

  lines.push('## Results', '');
  lines.push(
    '| target | method | connections | p50 ms | p99 ms | req/s | p50 ratio bridge/echo | req/s ratio bridge/echo | errors | server CPU µs/req | CPU % server | CPU % temporal | CPU % client | CPU % other |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const r of data.runs) {
    const c = comparisons.find(
      (x) => x.method === r.method && x.connections === r.connections && r.target === 'bridge',
    );
    const g = gateway.find(
      (x) => x.method === r.method && x.connections === r.connections && r.target === 'gateway',
    );
    lines.push(
      `| ${r.target} | ${r.target.startsWith('echo') ? '(any)' : r.method} | ${r.connections} | ${ms(r.latencyMs?.p50)} | ${ms(r.latencyMs?.p99)} | ` +
        `${rps(r.requestsPerSecond)} | ${c ? ratio(c.p50Ratio) : g ? `${ratio(g.p50Ratio)} of socket` : '–'} | ${c ? ratio(c.requestsPerSecondRatio) : '–'} | ${r.errors}${r.unexpectedStatus > 0 ? ` (+${r.unexpectedStatus} unhealthy)` : ''} | ` +
        `${cpuPerRequest(r)} | ` +
        `${pct(r.cpuPercent.server)} | ${pct(r.cpuPercent.temporal)} | ${pct(r.cpuPercent.client)} | ${pct(r.cpuPercent.other)} |`,
    );
  }
  lines.push('');
  if (gateway.length > 0) {
    lines.push(
      '### The HTTP gateway against the socket and against bare HTTP',
      '',
      'The gateway answers over TCP, which costs more on a machine than a Unix socket before any ' +
        "gateway work is done: the `echo-http` rows are Node's bare HTTP server on loopback, " +
        'measured in the same run. The gateway adds to it the envelope, the token check, role ' +
        'scope, rate limit, risk score, the socket method itself and an audit entry per request ' +
        '(written by a worker thread).',
      '',
      '| method | connections | socket p50 ms | bare HTTP p50 ms | gateway p50 ms | gateway/socket p50 | gateway/bare HTTP p50 | gateway req/s | gateway/bare HTTP req/s |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const g of gateway) {
      lines.push(
        `| ${g.method} | ${g.connections} | ${ms(g.socketP50 ?? undefined)} | ${ms(g.httpEchoP50 ?? undefined)} | ` +
          `${ms(g.gatewayP50 ?? undefined)} | ${ratio(g.p50Ratio)} | ${ratio(g.p50RatioToHttpEcho)} | ` +
          `${rps(g.requestsPerSecond)} | ${ratio(g.requestsPerSecondRatioToHttpEcho)} |`,
      );
    }
    lines.push('');
  }
  const unhealthy = data.runs.filter((r) => r.unexpectedStatus > 0);
  if (unhealthy.length > 0) {
    lines.push(
      `"unhealthy": \`health\` answered with status other than "healthy" (a check failed or timed out) in ` +
        unhealthy
          .map((r) => `${r.connections}-connection row (${r.unexpectedStatus}×)`)
          .join(', ') +
        '; such answers count as requests but say the bridge was degraded. First one seen: `' +
        JSON.stringify(unhealthy[0]!.unexpectedSample) +
        '`.',
      '',
    );
  }
  lines.push('![req/s and p50 latency per connection count](rpc-roundtrip.svg)', '');
  lines.push(
    'CPU % is the share of one core each process used during the measured window (100 = one core busy); ' +
      `this machine has ${m.nproc}. The server, the Temporal dev server (bridge rows only) and the load ` +
      'generator all share them, so a process near 100 % is what limits that row. "other" is every ' +
      'process outside the bench: noise. "server CPU µs/req" is the server\'s CPU time over the requests ' +
      'it answered (for the bridge: its Node process, not Temporal).',
    '',
  );
  return lines.join('\n');
}

/**
 * Server CPU time per answered request: less sensitive than req/s to a busy machine, since a
 * server starved of CPU answers fewer requests but spends about the same on each.
 */
function cpuPerRequest(r: RoundtripRun): string {
  const cpu = r.cpuPercent.server;
  if (cpu === null || cpu === undefined || r.requests === 0) return '–';
  return Math.round(((cpu / 100) * (r.windowMs / 1e3) * 1e6) / r.requests).toString();
}

function verdict(met: number, of: number): string {
  if (met === of) return `**yes** (all ${of} connection counts)`;
  if (met === 0) return `**no** (none of ${of} connection counts)`;
  return `**partly** (${met} of ${of} connection counts)`;
}

const COLORS: Record<string, string> = {
  echo: '#8c8c8c',
  'bridge health': '#1f77b4',
  'bridge status': '#ff7f0e',
  'echo-http': '#c7c7c7',
  'gateway health': '#2ca02c',
};

function svg(data: RoundtripData): string {
  const width = 1000;
  const height = 470;
  const keys = [...new Set(data.runs.map(label))];
  const groups = data.settings.connectionCounts;
  const valuesOf = (pick: (r: RoundtripRun) => number | null) =>
    keys.map((key) => ({
      name: key,
      color: COLORS[key] ?? '#2ca02c',
      values: groups.map((n) => {
        const run = data.runs.find((r) => label(r) === key && r.connections === n);
        return run ? pick(run) : null;
      }),
    }));
  const echoP50 = groups.map(
    (n) => data.runs.find((r) => r.target === 'echo' && r.connections === n)?.latencyMs?.p50,
  );

  const throughput = barChartPanel(
    {
      title: 'Throughput, req/s (higher is better)',
      groupLabel: 'connections',
      groups: groups.map(String),
      series: valuesOf((r) => r.requestsPerSecond),
      references: [
        { value: AIMS.requestsPerSecond, label: `aim ${AIMS.requestsPerSecond / 1000}k req/s` },
      ],
      format: (v) => (v >= 1000 ? `${+(v / 1000).toPrecision(3)}k` : `${+v.toPrecision(3)}`),
    },
    0,
    56,
    width / 2,
    height - 86,
  );
  const latency = barChartPanel(
    {
      title: 'p50 latency, ms (lower is better)',
      groupLabel: 'connections',
      groups: groups.map(String),
      series: valuesOf((r) => r.latencyMs?.p50 ?? null),
      references: echoP50.flatMap((v, g) =>
        v === undefined
          ? []
          : [
              {
                value: v * AIMS.maxP50RatioToEcho,
                label: `${AIMS.maxP50RatioToEcho}× echo`,
                group: g,
              },
            ],
      ),
      format: (v) => `${+v.toPrecision(2)}`,
    },
    width / 2,
    56,
    width / 2,
    height - 86,
  );
  const m = data.machine;
  const caption =
    `${m.date.slice(0, 10)}, ${m.nproc} CPUs, Node ${m.node}; closed loop over a Unix socket (gateway, echo-http: HTTP on loopback), ` +
    `${data.settings.measureSeconds} s per bar`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="22" font-family="Helvetica, Arial, sans-serif" font-size="16" font-weight="bold" text-anchor="middle">ArmorClaw bridge round trip: socket and HTTP gateway vs. bare echo servers</text>`,
    legend(
      [
        ...valuesOf(() => 0),
        {
          name: `aims: ${AIMS.requestsPerSecond / 1000}k req/s; p50 at most ${AIMS.maxP50RatioToEcho}× echo's`,
          color: REFERENCE_COLOR,
          dashed: true,
        },
      ],
      70,
      46,
    ),
    throughput,
    latency,
    `<text x="${width / 2}" y="${height - 10}" font-family="Helvetica, Arial, sans-serif" font-size="11" fill="#555" text-anchor="middle">${escapeXml(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
