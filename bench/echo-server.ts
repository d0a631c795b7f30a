/**
 * The baselines: the least a server must do per request. On a Unix socket (argv: its path), a
 * JSON-RPC server: it splits newline-delimited input, JSON.parses each line for its id and
 * JSON.stringifies a fixed small answer. Over HTTP (argv: `http:<port>`), Node's own HTTP server
 * on loopback: it reads each `POST` body, JSON.parses it for its id and answers a fixed small
 * gateway envelope with Content-Length. Nothing is cached or precomputed, so each does the same
 * work per request as any server would before calling a method; neither is slowed down. Runs in
 * its own process and says `ready` over IPC once it listens.
 */
import { unlinkSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { exitWithParent, tell } from './lib/child';

const target = process.argv[2];
if (!target) throw new Error('usage: echo-server.ts <socket path> | http:<port>');

const httpEcho = http.createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (body += chunk));
  req.on('end', () => {
    let id: unknown = null;
    try {
      id = (JSON.parse(body) as { id?: unknown }).id ?? null;
    } catch {
      id = null;
    }
    const text = JSON.stringify({ id, auditId: 'req_echo', ok: true, result: {} });
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  });
});

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

if (target.startsWith('http:')) {
  httpEcho.listen(Number(target.slice('http:'.length)), '127.0.0.1', () => tell({ type: 'ready' }));
} else {
  try {
    unlinkSync(target);
  } catch {
    // none left over
  }
  server.listen(target, () => tell({ type: 'ready' }));
}
exitWithParent();
process.on('SIGTERM', () => process.exit(0));
