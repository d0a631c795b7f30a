/**
 * Helpers for container-run integration tests: long-running RPC calls, the run's workflow
 * status query, Temporal history as text (payloads decoded), the audit log, leak scans and
 * cleanup of the containers a test created.
 */
import { execFile } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import {
  AuditLog,
  auditLogPath,
  type AuditEntry,
  type ListAuditOptions,
} from '../../services/audit-log';
import {
  containerStatusQuery,
  containerWorkflowId,
  type ContainerRunStatus,
} from '../../workflows/definitions';
import { PROJECT_ROOT } from './bridge-process';
import { docker } from './docker';
import { ncRequest, parseLines } from './socket-clients';

export const TEMPORAL_CLI = path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'temporal');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One JSON-RPC call with a caller-chosen timeout (`call()` gives up after 10 s). */
export async function rpc(
  socketPath: string,
  method: string,
  params?: unknown,
  timeoutMs = 60_000,
): Promise<any> {
  const req: Record<string, unknown> = { jsonrpc: '2.0', id: 1, method };
  if (params !== undefined) req.params = params;
  const lines = parseLines(await ncRequest(socketPath, JSON.stringify(req), timeoutMs));
  if (lines.length !== 1) throw new Error(`expected one response, got ${lines.length}`);
  return lines[0];
}

/** Polls `fn` until it returns something other than undefined/false, or throws on timeout. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 10_000, intervalMs = 50 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}` +
          (lastError ? ` (last error: ${(lastError as Error).message})` : ''),
      );
    }
    await sleep(intervalMs);
  }
}

/** A Temporal client on the bridge's embedded dev server (its port), or on a cluster (host:port). */
export async function temporalClient(
  portOrAddress: number | string,
): Promise<{ client: Client; close(): Promise<void> }> {
  const address = typeof portOrAddress === 'number' ? `127.0.0.1:${portOrAddress}` : portOrAddress;
  const connection = await Connection.connect({ address });
  return { client: new Client({ connection }), close: () => connection.close() };
}

/** The run's `status` query (works on open and closed runs). */
export function runStatus(client: Client, containerName: string): Promise<ContainerRunStatus> {
  return client.workflow.getHandle(containerWorkflowId(containerName)).query(containerStatusQuery);
}

function run(
  cmd: string,
  args: string[],
  timeoutMs = 30_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (((err as { code?: unknown }).code as number) ?? 1) : 0;
        resolve({
          code: typeof code === 'number' ? code : 1,
          stdout: String(stdout),
          stderr: String(stderr),
        });
      },
    );
  });
}

/**
 * The run's whole history as `temporal workflow show --output json` prints it, plus every
 * base64 string in it decoded (the CLI prints payload bytes and metadata as base64), so a
 * search finds a value whichever way it was encoded.
 */
export async function temporalHistoryText(port: number, workflowId: string): Promise<string> {
  const r = await run(TEMPORAL_CLI, [
    'workflow',
    'show',
    '--output',
    'json',
    '-w',
    workflowId,
    '--address',
    `127.0.0.1:${port}`,
  ]);
  if (r.code !== 0) throw new Error(`temporal workflow show failed: ${r.stderr}`);
  const decoded: string[] = [];
  const visit = (v: unknown): void => {
    if (typeof v === 'string') {
      if (v.length >= 4 && /^[A-Za-z0-9+/]+={0,2}$/.test(v) && v.length % 4 === 0) {
        decoded.push(Buffer.from(v, 'base64').toString('utf8'));
      }
    } else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') Object.values(v).forEach(visit);
  };
  visit(JSON.parse(r.stdout));
  return `${r.stdout}\n${decoded.join('\n')}`;
}

/** Audit entries (newest first) from the bridge's audit database. */
export function auditEntries(stateDir: string, opts: ListAuditOptions = {}): AuditEntry[] {
  const log = AuditLog.open({ path: auditLogPath(stateDir) });
  try {
    return log.list({ limit: 1000, ...opts });
  } finally {
    log.close();
  }
}

/** `docker inspect` of one container, or undefined when it does not exist. */
export async function inspectContainer(idOrName: string): Promise<any | undefined> {
  const r = await docker(['inspect', '--type', 'container', idOrName]);
  if (r.code !== 0) {
    if (/no such (object|container)/i.test(r.stderr)) return undefined;
    throw new Error(`docker inspect ${idOrName} failed: ${r.stderr}`);
  }
  return JSON.parse(r.stdout)[0];
}

/** Files (not sockets) under `dir` whose bytes contain `needle`, as paths. */
export function filesContaining(dir: string, needle: string): string[] {
  const found: string[] = [];
  const bytes = Buffer.from(needle);
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const name of entries) {
      const p = path.join(d, name);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        try {
          if (readFileSync(p).includes(bytes)) found.push(p);
        } catch {
          // vanished or unreadable
        }
      }
    }
  };
  walk(dir);
  return found;
}

/**
 * Force-removes the managed containers (label armorclaw.managed=true) that a test created:
 * those named in `names`, and those whose mounts come from one of `hostDirs` (the test's own
 * bridge and secrets directories, for starts whose answer never arrived). Returns what it removed.
 */
export async function removeTestContainers(
  names: Iterable<string>,
  hostDirs: string[],
): Promise<string[]> {
  const wanted = new Set(names);
  const ls = await docker([
    'ps',
    '-a',
    '--filter',
    'label=armorclaw.managed=true',
    '--format',
    '{{.ID}}',
  ]);
  const ids = ls.stdout.split('\n').filter(Boolean);
  const remove: string[] = [];
  if (ids.length > 0) {
    const r = await docker(['inspect', '--type', 'container', ...ids]);
    const infos: any[] = r.stdout.trim() ? JSON.parse(r.stdout) : [];
    for (const info of infos) {
      const name = String(info.Name ?? '').replace(/^\//, '');
      const ours =
        wanted.has(name) ||
        (info.Mounts ?? []).some((m: any) =>
          hostDirs.some((d) => typeof m.Source === 'string' && m.Source.startsWith(d + path.sep)),
        );
      if (ours && info.Config?.Labels?.['armorclaw.managed'] === 'true') remove.push(info.Id);
    }
  }
  if (remove.length > 0) await docker(['rm', '-f', '-v', ...remove], { timeoutMs: 120_000 });
  return remove;
}
