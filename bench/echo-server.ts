/**
 * The baseline: the least a JSON-RPC server on a Unix socket must do per request. It splits
 * newline-delimited input, JSON.parses each line for its id and JSON.stringifies a fixed small
 * answer. Nothing is cached or precomputed, so it does the same work per request as any
 * server would before calling a method; it is not slowed down either. Runs in its own process
 * (argv: socket path) and says `ready` over IPC once it listens.
 */
import { unlinkSync } from 'node:fs';
import net from 'node:net';
import { exitWithParent, tell } from './lib/child';

const socketPath = process.argv[2];
if (!socketPath) throw new Error('usage: echo-server.ts <socket path>');

const server = net.createServer((socket) => {
  socket.setEncoding('utf8');
  let pending = '';
  socket.on('data', (chunk: string) => {
    pending += chunk;
    let out = '';
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim() === '') continue;
      let id: unknown = null;
      try {
        id = (JSON.parse(line) as { id?: unknown }).id ?? null;
      } catch {
        id = null;
      }
      out += JSON.stringify({ jsonrpc: '2.0', id, result: {} }) + '\n';
    }
    if (out !== '') socket.write(out);
  });
  socket.on('error', () => undefined);
});

try {
  unlinkSync(socketPath);
} catch {
  // none left over
}
server.listen(socketPath, () => tell({ type: 'ready' }));
exitWithParent();
process.on('SIGTERM', () => server.close(() => process.exit(0)));
