/**
 * `npm run bench`: runs every suite in turn and writes results under docs/benchmarks/.
 *
 * Environment:
 *   BENCH_SECONDS          measured seconds per row (default 3)
 *   BENCH_WARMUP_SECONDS   warmup seconds per row, not recorded (default 1)
 *   BENCH_CONNECTIONS      comma-separated connection counts (default 1,10,50)
 *   BENCH_SUITES           comma-separated suite names to run (default: all)
 *   BENCH_OPENCLAW_RUNS    start/stop runs of each agent type in the `openclaw` suite (default 3)
 *   BENCH_CLUSTER_RUNS     idle runs the `cluster` suite holds open on each Temporal backend (default 200)
 *
 * Bounded: each step has its own timeout, and a watchdog stops everything the bench started
 * if the whole run overstays its budget.
 */
import path from 'node:path';
import { PROJECT_ROOT } from './lib/child';
import { runCleanups } from './lib/cleanup';
import { DEFAULT_SUITE_BUDGET_MS, type BenchSettings, type Suite } from './lib/suite';
import { burst } from './burst';
import { cluster } from './cluster';
import { lean } from './lean';
import { containerStart } from './container-start';
import { matrixPush } from './matrix-push';
import { openclaw } from './openclaw';
import { pairing } from './pairing';
import { providerProxy } from './provider-proxy';
import { rpcRoundtrip } from './rpc-roundtrip';
import { voice } from './voice';
import { warmPool } from './warm-pool';

const suites: Suite[] = [
  rpcRoundtrip,
  containerStart,
  burst,
  warmPool,
  matrixPush,
  voice,
  providerProxy,
  openclaw,
  pairing,
  cluster,
  lean,
];

class SettingError extends Error {}

function positiveNumber(env: string, fallback: number): number {
  const raw = process.env[env];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new SettingError(`${env} must be a positive number, got "${raw}"`);
  return value;
}

function connectionCounts(): number[] {
  const raw = process.env.BENCH_CONNECTIONS;
  if (raw === undefined || raw.trim() === '') return [1, 10, 50];
  const counts = raw.split(',').map((s) => Number(s.trim()));
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 1000)) {
    throw new SettingError(
      `BENCH_CONNECTIONS must be integers from 1 to 1000 separated by commas, got "${raw}"`,
    );
  }
  return counts;
}

function selectedSuites(): Suite[] {
  const raw = process.env.BENCH_SUITES;
  if (raw === undefined || raw.trim() === '') return suites;
  const names = raw.split(',').map((s) => s.trim());
  const unknown = names.filter((n) => !suites.some((s) => s.name === n));
  if (unknown.length > 0) {
    throw new SettingError(
      `BENCH_SUITES names unknown suites: ${unknown.join(', ')} (known: ${suites.map((s) => s.name).join(', ')})`,
    );
  }
  return suites.filter((s) => names.includes(s.name));
}

async function main(): Promise<void> {
  let settings: BenchSettings;
  let chosen: Suite[];
  try {
    settings = {
      warmupMs: positiveNumber('BENCH_WARMUP_SECONDS', 1) * 1e3,
      measureMs: positiveNumber('BENCH_SECONDS', 3) * 1e3,
      connectionCounts: connectionCounts(),
      outDir: path.join(PROJECT_ROOT, 'docs', 'benchmarks'),
    };
    chosen = selectedSuites();
  } catch (err) {
    if (err instanceof SettingError) {
      console.error(`bench: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }

  // Each suite states its own bound; a minute of slack covers writing files and stopping.
  const budgetMs =
    chosen.reduce(
      (sum, suite) => sum + (suite.budgetMs?.(settings) ?? DEFAULT_SUITE_BUDGET_MS),
      0,
    ) + 60_000;
  const watchdog = setTimeout(
    () => void abort(`the bench overran its ${Math.round(budgetMs / 1e3)} s budget`, 3),
    budgetMs,
  );
  watchdog.unref();
  process.once('SIGINT', () => void abort('interrupted', 130));
  process.once('SIGTERM', () => void abort('terminated', 143));

  const startedAt = Date.now();
  for (const suite of chosen) {
    console.log(
      `suite ${suite.name}: ${settings.connectionCounts.join('/')} connections, ${settings.warmupMs / 1e3} s warmup + ${settings.measureMs / 1e3} s per row`,
    );
    const written = await suite.run(settings);
    for (const file of written) console.log(`  wrote ${path.relative(PROJECT_ROOT, file)}`);
  }
  clearTimeout(watchdog);
  console.log(`done in ${((Date.now() - startedAt) / 1e3).toFixed(1)} s`);
}

let aborting = false;
async function abort(reason: string, code: number): Promise<void> {
  if (aborting) return;
  aborting = true;
  console.error(`bench: ${reason}; stopping what it started`);
  await runCleanups();
  process.exit(code);
}

main().then(
  // What the suites started (bridges, relays, stubs) is stopped on success too: a child left
  // running would keep the bench from exiting.
  () => runCleanups(),
  async (err: Error) => {
    console.error(`bench failed: ${err.stack ?? err.message}`);
    await runCleanups();
    process.exit(1);
  },
);
