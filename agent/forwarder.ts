/**
 * The loopback forwarder of proxy mode: a TCP server on 127.0.0.1:PROXY_LOOPBACK_PORT that
 * pipes each connection, byte for byte, to the bridge's provider proxy socket. The secrets
 * file's `base_url` names it, for SDKs (OpenClaw's among them) that speak HTTP only over TCP;
 * the agent's own model calls (agent/llm.ts) use the socket directly. It reaches nothing but
 * the proxy: the container has no other network, and the proxy decides what passes.
 */
import net from 'node:net';
import { PROXY_LOOPBACK_PORT } from '../formats/secrets-file';
import { errorCode, log } from './log';

/** A listening forwarder. */
export interface LoopbackForwarder {
  /** The TCP port it listens on (useful when started on port 0). */
  readonly port: number;
  /** Stops listening and drops the connections in flight. */
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1:`port` and forwards each connection to `socketPath`; rejects when the
 * port cannot be bound.
 */
export async function startForwarder(
  socketPath: string,
  port = PROXY_LOOPBACK_PORT,
): Promise<LoopbackForwarder> {
  const open = new Set<net.Socket>();
  // Said once per kind of failure, not once per connection: an SDK that retries would flood.
  let lastFailure = '';
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.createConnection({ path: socketPath, allowHalfOpen: true });
    for (const s of [client, upstream]) {
      open.add(s);
      s.once('close', () => open.delete(s));
    }
    // Half-open both ways, so an end on one side ends only that direction on the other.
    client.pipe(upstream);
    upstream.pipe(client);
    upstream.once('connect', () => (lastFailure = ''));
    upstream.on('error', (err) => {
      const code = errorCode(err);
      if (code !== lastFailure) log(`forwarder: provider proxy unavailable (${code})`);
      lastFailure = code;
    });
    client.on('error', () => {
      // 'close' follows and is what matters.
    });
    // A side that is gone for good (closed both ways, or failed) takes the other with it.
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log(`forwarder: ${errorCode(err)}`));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      }),
  };
}
