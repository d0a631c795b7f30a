/**
 * A real coturn (Debian `coturn`) on loopback with REST authentication (`use-auth-secret`), for
 * tests of the TURN credentials the bridge issues. Throws (never skips) when it is missing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './ports';

export interface Coturn {
  /** `turn:127.0.0.1:<port>?transport=udp` */
  url: string;
  proc: ChildProcess;
  log: () => string;
}

/** Starts coturn on loopback with REST auth; resolves once it answers on its port. */
export async function startCoturn(secret: string): Promise<Coturn> {
  const port = await freePort();
  const minPort = 40_000 + Math.floor(Math.random() * 20_000);
  const proc = spawn(
    'turnserver',
    [
      '-n',
      '--listening-ip=127.0.0.1',
      `--listening-port=${port}`,
      '--relay-ip=127.0.0.1',
      `--min-port=${minPort}`,
      `--max-port=${minPort + 50}`,
      '--use-auth-secret',
      `--static-auth-secret=${secret}`,
      '--realm=armorclaw.test',
      '--allow-loopback-peers', // test only: the peers are on 127.0.0.1
      // werift refreshes allocations on a 5/6-lifetime timer it cannot cancel on close: keep
      // the lifetime short so that no timer outlives the test by more than a few seconds.
      '--max-allocate-lifetime=4',
      '--no-cli',
      '--no-tls',
      '--no-dtls',
      '--fingerprint',
      '--log-file=stdout',
      '--simple-log',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  for (let i = 0; i < 50 && !/listener opened on|Total General servers/i.test(log); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: `turn:127.0.0.1:${port}?transport=udp`, proc, log: () => log };
}
