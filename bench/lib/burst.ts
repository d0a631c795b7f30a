/**
 * Bursts of container starts for the suites that compare the bridge with raw Docker: every
 * `start` at once over the bridge's socket, or the same container `docker run -d` that many
 * times at once, then everything stopped at once. Shared by `burst` and `cluster`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { containerSpec } from '../../activities/docker';
import { secretsDirFor } from '../../activities/secrets';
import { loadConfig } from '../../config/load';
import { AGENT_IMAGE, docker } from '../../test/support/docker';
import { call } from '../../test/support/socket-clients';
import { dockerRunArgsFromSpec } from './hardened-run';
import { summariseMs, type MsSummary } from './stats';

export const since = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
export const range = (n: number) => Array.from({ length: n }, (_, i) => i);

let nextId = 1;

export interface Outcome {
  ok: boolean;
  ms: number;
  /** Wall-clock time (epoch ms) the request was sent. */
  sentAt: number;
  result?: Record<string, unknown>;
  error?: string;
}

/** One JSON-RPC call over the bridge's socket (a connection of its own), timed. */
export async function rpc(
  socketPath: string,
  method: string,
  params: unknown,
  timeoutMs: number,
): Promise<Outcome> {
  const sentAt = Date.now();
  const t0 = process.hrtime.bigint();
  try {
    const res = await call(socketPath, method, params, nextId++, timeoutMs);
    const ms = since(t0);
    if (res.error)
      return { ok: false, ms, sentAt, error: `${method}: ${JSON.stringify(res.error)}` };
    return { ok: true, ms, sentAt, result: res.result as Record<string, unknown> };
  } catch (err) {
    return { ok: false, ms: since(t0), sentAt, error: `${method}: ${(err as Error).message}` };
  }
}

export const firstErrors = (outcomes: Outcome[]) =>
  [...new Set(outcomes.filter((o) => !o.ok).map((o) => o.error ?? 'unknown'))].slice(0, 5);

export interface Burst {
  n: number;
  ok: number;
  /** Wall time from the first request to the last answer (all Active, or the last failure). */
  all_active_ms: number;
  per_start: MsSummary;
  stop_all_ms: number;
  stopped: number;
  per_stop: MsSummary;
  errors: string[];
  samples: { start: number[]; stop: number[] };
}

/** A burst's numbers from its calls: `n` starts, all answered after `allActive` ms, then stops. */
function burstOf(
  n: number,
  starts: Outcome[],
  allActive: number,
  stops: Outcome[],
  stopAll: number,
): Burst {
  const ok = (xs: Outcome[]) => xs.filter((x) => x.ok);
  return {
    n,
    ok: ok(starts).length,
    all_active_ms: allActive,
    per_start: summariseMs(ok(starts).map((s) => s.ms)),
    stop_all_ms: stopAll,
    stopped: ok(stops).length,
    per_stop: summariseMs(ok(stops).map((s) => s.ms)),
    errors: firstErrors([...starts, ...stops]),
    samples: { start: starts.map((s) => s.ms), stop: stops.map((s) => s.ms) },
  };
}

/** The burst's numbers, and its starts' outcomes (the bridge's name each run). */
export interface BridgeBurst extends Burst {
  starts: Outcome[];
}

/** `n` starts at once; then a stop of every run that started, at once. */
export async function bridgeBurst(
  socketPath: string,
  n: number,
  startParams: Record<string, unknown>,
): Promise<BridgeBurst> {
  let t0 = process.hrtime.bigint();
  const starts = await Promise.all(
    range(n).map(() => rpc(socketPath, 'start', startParams, 300_000)),
  );
  const allActive = since(t0);
  const ids = starts.filter((s) => s.ok).map((s) => String(s.result!.container_id));
  t0 = process.hrtime.bigint();
  const stops = await Promise.all(
    ids.map((id) => rpc(socketPath, 'stop', { container_id: id }, 300_000)),
  );
  return { ...burstOf(n, starts, allActive, stops, since(t0)), starts };
}

/**
 * `docker run -d` arguments of the bridge's own container for `name` (its `containerSpec` with
 * the default policy), with a secrets file and a socket directory as the bridge makes them
 * under `secretsRoot` and `dir`; labelled `armorclaw.bench=<label>`.
 */
export function rawRunArgs(
  name: string,
  dir: string,
  secretsRoot: string,
  label: string,
): string[] {
  const policy = loadConfig({
    env: { ...process.env, ARMORCLAW_CONFIG: '', ARMORCLAW_SECRETS_DIR: secretsRoot },
  }).containers;
  const sdir = secretsDirFor(policy.secretsDir, name);
  const sockDir = path.join(dir, 'sock', name);
  mkdirSync(sdir, { recursive: true });
  mkdirSync(sockDir, { recursive: true });
  writeFileSync(
    path.join(sdir, 'credentials.json'),
    '{"key_id":"bench","provider":"openai","token":"x"}',
    { mode: 0o444 },
  );
  const spec = containerSpec(
    {
      containerName: name,
      workflowId: `container-${name}`,
      image: AGENT_IMAGE,
      agentType: 'openclaw',
      keyId: 'bench',
      hostId: label,
      network: policy.network,
      secretsMode: 'file',
      limitMicroUsd: 0,
    },
    sockDir,
    policy,
  );
  return dockerRunArgsFromSpec(spec, { 'armorclaw.bench': label });
}

/**
 * The same burst as `docker run -d` of the bridge's container: its spec (`containerSpec`, the
 * bridge's default policy), a secrets file and a socket directory for each, as the bridge makes;
 * then `docker stop -t 5` + `docker rm -f` of each (the bridge's teardown), all at once. The
 * containers carry the label `armorclaw.bench=<label>`.
 */
export async function dockerBurst(
  n: number,
  dir: string,
  secretsRoot: string,
  label: string,
): Promise<Burst> {
  const names = range(n).map((i) => `armorclaw-bench-raw-${process.pid}-${label}-${i}`);
  const argsOf = names.map((name) => rawRunArgs(name, dir, secretsRoot, label));
  const runOne = async (args: string[]): Promise<Outcome> => {
    const sentAt = Date.now();
    const t = process.hrtime.bigint();
    const r = await docker(args, { timeoutMs: 300_000 });
    return { ok: r.code === 0, ms: since(t), sentAt, error: `docker run: ${r.stderr.trim()}` };
  };
  let t0 = process.hrtime.bigint();
  const starts = await Promise.all(argsOf.map(runOne));
  const allActive = since(t0);
  const started = names.filter((_, i) => starts[i]!.ok);
  t0 = process.hrtime.bigint();
  const stops = await Promise.all(
    started.map(async (name): Promise<Outcome> => {
      const sentAt = Date.now();
      const t = process.hrtime.bigint();
      const stop = await docker(['stop', '-t', '5', name], { timeoutMs: 300_000 });
      const rm = await docker(['rm', '-f', name], { timeoutMs: 300_000 });
      const ok = stop.code === 0 && rm.code === 0;
      return {
        ok,
        ms: since(t),
        sentAt,
        error: `docker stop/rm: ${stop.stderr}${rm.stderr}`.trim(),
      };
    }),
  );
  return burstOf(n, starts, allActive, stops, since(t0));
}

/** Removes every container a label names (the runs a bridge left, the baseline's). */
export async function removeContainers(filter: string): Promise<number> {
  const left = await docker(['ps', '-aq', '--filter', filter]);
  const ids = left.stdout.split('\n').filter(Boolean);
  if (ids.length > 0) await docker(['rm', '-f', ...ids], { timeoutMs: 300_000 });
  return ids.length;
}
