import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { PROJECT_ROOT } from '../services/runtime';

export interface DevServerOptions {
  /** Directory for the SQLite store, the pid file and the server's log. */
  dir: string;
  port: number;
  uiPort: number;
  namespace: string;
  cliPath?: string;
  log: Logger;
}

/** An embedded `temporal server start-dev`, owned by this bridge process. */
export interface DevServer {
  address: string;
  uiUrl: string;
  pid: number;
  stop(): Promise<void>;
}

/** The `temporal` CLI: configured path, else the project's PyPI install, else PATH. */
export function resolveTemporalCli(configured?: string): string {
  if (configured) return configured;
  const local = path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'temporal');
  return existsSync(local) ? local : 'temporal';
}

/**
 * Starts the dev server with its SQLite file in `dir`, so workflows survive a restart of the
 * bridge. A server left behind by a bridge that was killed (-9 gives it no chance to stop its
 * child) is stopped first: it holds the port and the database.
 */
export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const { dir, port, uiPort, log } = opts;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const dbFile = path.join(dir, 'temporal.db');
  const pidFile = path.join(dir, 'dev-server.pid');
  await stopLeftover(pidFile, dbFile, log);

  const cli = resolveTemporalCli(opts.cliPath);
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--ui-port',
    String(uiPort),
    '--db-filename',
    dbFile,
    '--namespace',
    opts.namespace,
    '--log-level',
    'warn',
    // A write-ahead log instead of the rollback journal: one fsync per commit instead of
    // several, with the same durability (synchronous=full: a commit is on disk when it returns).
    // About 30 ms less per container start (bench warm-pool).
    '--sqlite-pragma',
    'journal_mode=wal',
    '--sqlite-pragma',
    'synchronous=full',
  ];
  // setpriv --pdeathsig: the kernel sends the server SIGTERM if the bridge dies, even by -9.
  const [command, commandArgs] = existsSync('/usr/bin/setpriv')
    ? ['/usr/bin/setpriv', ['--pdeathsig', 'TERM', '--', cli, ...args]]
    : [cli, args];
  const logFile = path.join(dir, 'dev-server.log');
  const out = openSync(logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(command, commandArgs, { stdio: ['ignore', out, out], detached: false });
  } finally {
    closeSync(out);
  }
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (err) => {
      log.error({ err, cli }, 'could not run the temporal CLI; run `bash scripts/setup.sh`');
      resolve(-1);
    });
  });
  const address = `127.0.0.1:${port}`;
  const ready = await Promise.race([
    waitForPort('127.0.0.1', port, 60_000).then(() => true),
    exited.then(() => false),
  ]);
  if (!ready) {
    throw new Error(
      `the embedded Temporal dev server (${cli}) exited during start; last log lines:\n${tail(logFile)}`,
    );
  }
  const pid = child.pid!;
  await writeFile(pidFile, `${pid}\n`, { mode: 0o600 });
  log.debug({ pid, address }, 'temporal dev server started');

  return {
    address,
    uiUrl: `http://127.0.0.1:${uiPort}`,
    pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const done = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
        if (!done) {
          child.kill('SIGKILL');
          await exited;
        }
      }
      await rm(pidFile, { force: true });
    },
  };
}

async function stopLeftover(pidFile: string, dbFile: string, log: Logger): Promise<void> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  const pid = Number.parseInt(text, 10);
  if (!Number.isInteger(pid) || pid <= 1) return;
  const cmdline = readCmdline(pid);
  // Only a process that is our dev server on our database: pids get reused.
  if (!cmdline || !cmdline.includes('start-dev') || !cmdline.includes(dbFile)) {
    await rm(pidFile, { force: true });
    return;
  }
  log.warn({ pid }, 'stopping a Temporal dev server left by a previous bridge');
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && readCmdline(pid); i++) await sleep(100);
  if (readCmdline(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 50 && readCmdline(pid); i++) await sleep(100);
  await rm(pidFile, { force: true });
}

function readCmdline(pid: number): string | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // A zombie has exited; it only waits for its parent to reap it.
    if (/\) Z /.test(stat)) return null;
    return raw.replace(/\0/g, ' ');
  } catch {
    return null;
  }
}

async function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (open) return;
    await sleep(100);
  }
  throw new Error(`Temporal did not listen on ${host}:${port} within ${timeoutMs} ms`);
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
