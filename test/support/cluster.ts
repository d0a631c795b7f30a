/**
 * The production-shaped Temporal cluster of `scripts/temporal-cluster.sh` (the Temporal server
 * built from Go modules, on PostgreSQL), private to a test: its own directory and ports. The
 * script's binaries come from `bash scripts/setup.sh --test`.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { PROJECT_ROOT } from './bridge-process';
import { freePort, freePortRange } from './ports';

const run = promisify(execFile);
const SCRIPT = path.join(PROJECT_ROOT, 'scripts', 'temporal-cluster.sh');

export interface Cluster {
  dir: string;
  /** host:port of the frontend, for TEMPORAL_ADDRESS. */
  address: string;
  client: Client;
  /** The server's pid (changes with every start). */
  serverPid(): number;
  /** kill -9 of the Temporal server (PostgreSQL keeps running). */
  killServer(): Promise<void>;
  /** Starts the server again on the same database and ports. */
  restartServer(): Promise<void>;
  stop(): Promise<void>;
}

export async function startCluster(): Promise<Cluster> {
  // The postgres OS user must reach the directory: mkdtemp makes it 0700.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'armorclaw-cluster-'));
  chmodSync(dir, 0o755);
  const args = [
    '--dir',
    dir,
    '--port',
    String(await freePortRange(10)),
    '--pg-port',
    String(await freePort()),
    '--ui-port',
    String(await freePort()),
  ];
  const start = async () => {
    const { stdout } = await run('bash', [SCRIPT, 'start', ...args], {
      timeout: 180_000,
      maxBuffer: 16 * 1024 * 1024,
    }).catch((err: Error & { stderr?: string }) => {
      throw new Error(`temporal-cluster.sh start failed: ${err.message}\n${err.stderr ?? ''}`);
    });
    const found = /^TEMPORAL_ADDRESS=(\S+)$/m.exec(stdout);
    if (!found) throw new Error(`temporal-cluster.sh start printed no address: ${stdout}`);
    return found[1]!;
  };
  const stopAll = () =>
    run('bash', [SCRIPT, 'stop', '--dir', dir], { timeout: 60_000 }).catch(() => undefined);
  let connection: Connection | undefined;
  try {
    const address = await start();
    connection = await Connection.connect({ address });
    const client = new Client({ connection });
    const serverPid = () => Number(readFileSync(path.join(dir, 'temporal-server.pid'), 'utf8'));
    return {
      dir,
      address,
      client,
      serverPid,
      async killServer() {
        const pid = serverPid();
        process.kill(pid, 'SIGKILL');
        for (let i = 0; i < 100; i++) {
          try {
            process.kill(pid, 0);
          } catch {
            return;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error(`the Temporal server (pid ${pid}) survived kill -9`);
      },
      async restartServer() {
        await start();
      },
      async stop() {
        await connection?.close().catch(() => undefined);
        await stopAll();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await connection?.close().catch(() => undefined);
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
