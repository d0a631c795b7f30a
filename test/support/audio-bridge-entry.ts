/**
 * The real bridge (worker/main.ts `start`, configured from the environment like `npm start`)
 * plus a test-only door to its agents' audio channels, for test/integration/agent-audio.test.ts.
 * Run as a child process: jest cannot load the bridge in-process (matrix-js-sdk is ESM only).
 *
 * The door is a Unix socket at ARMORCLAW_TEST_AUDIO_SOCKET. A client sends one line
 *   {"container": "<name>", "session_id": "<id>", "timeout_ms": 5000}
 * and gets back `OK\n` followed by the agent's audio stream, byte for byte both ways (the
 * bridge's `ContainerSocketHub.attachAudio`), or `ERR <code>\n` and the end. Closing the client
 * connection is `detachAudio`.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { loadConfig } from '../../config/load';
import type { ContainerSocketHub } from '../../rpc/container-socket';
import { start } from '../../worker/main';

function serveDoor(hub: ContainerSocketHub): net.Server {
  return net.createServer((conn) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(0x0a);
      if (nl < 0) return;
      conn.off('data', onData);
      conn.pause();
      const rest = head.subarray(nl + 1);
      const req = JSON.parse(head.subarray(0, nl).toString()) as {
        container: string;
        session_id: string;
        timeout_ms?: number;
      };
      const attached = hub.attachAudio(req.container, req.session_id, {
        timeoutMs: req.timeout_ms,
      });
      attached.then(
        (audio: Duplex) => {
          conn.write('OK\n');
          if (rest.length > 0) audio.write(rest);
          conn.pipe(audio);
          audio.pipe(conn);
          conn.resume();
          const detach = () => hub.detachAudio(req.container, req.session_id);
          conn.once('close', detach);
          conn.on('error', () => undefined);
          audio.once('close', () => conn.end());
        },
        (err: { code?: string }) => conn.end(`ERR ${err.code ?? 'error'}\n`),
      );
    };
    conn.on('data', onData);
  });
}

async function main(): Promise<void> {
  const doorPath = process.env.ARMORCLAW_TEST_AUDIO_SOCKET;
  if (!doorPath) throw new Error('ARMORCLAW_TEST_AUDIO_SOCKET is not set');
  const bridge = await start(loadConfig());
  const door = serveDoor(bridge.containerSockets);
  await new Promise<void>((resolve) => door.listen(doorPath, resolve));
  const shutdown = () => {
    door.close();
    void bridge.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((err: Error) => {
  process.stderr.write(`audio bridge failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
