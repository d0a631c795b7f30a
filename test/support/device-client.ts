/**
 * A scripted paired device, as a phone's app would be: it redeems a pairing code over HTTP and
 * talks to the bridge over the device WebSocket (frames: formats/device-frames.ts).
 */
import WebSocket from 'ws';

export interface PairResult {
  status: number;
  headers: Headers;
  body: any;
}

/** `POST /api/bridge/pair/complete` with `pairCode` and a device's metadata. */
export async function completePairing(
  baseUrl: string,
  pairCode: string,
  device: { name: string; os: string; bridgeVersion: string } = {
    name: 'Test Phone',
    os: 'android',
    bridgeVersion: '1.0.0',
  },
): Promise<PairResult> {
  const res = await fetch(`${baseUrl}/api/bridge/pair/complete`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ pairCode, device, pubKey: 'dGVzdC1wdWJsaWMta2V5LTAxMjM0NTY3' }),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

export interface DeviceConnection {
  ws: WebSocket;
  /** The `ready` frame. */
  ready: any;
  /** One invoke; resolves with its result frame, rejects if the socket closes first. */
  invoke(kind: string, body?: unknown): Promise<any>;
  /** Resolves with the close code and reason, and when it came (Date.now()). */
  closed: Promise<{ code: number; reason: string; at: number }>;
  close(): void;
}

/**
 * Opens the device socket: the token in the Authorization header (`via: 'header'`, the default)
 * or in the first message (`via: 'message'`, as a browser does). Rejects when the upgrade is
 * refused (`Error` with `status`) or the socket closes before `ready` (with `code`).
 */
export function connectDevice(
  baseUrl: string,
  token: string,
  via: 'header' | 'message' = 'header',
): Promise<DeviceConnection> {
  const wsUrl = `${baseUrl.replace(/^http/, 'ws')}/api/bridge/ws`;
  const ws = new WebSocket(
    wsUrl,
    via === 'header' ? { headers: { authorization: `Bearer ${token}` } } : {},
  );
  const pending = new Map<string, { done: (frame: any) => void; fail: (err: Error) => void }>();
  let seq = 0;
  const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
    ws.on('close', (code, reason) => {
      // Invokes still waiting get no answer now.
      for (const p of pending.values()) p.fail(new Error(`closed ${code} before the answer`));
      pending.clear();
      resolve({ code, reason: reason.toString(), at: Date.now() });
    }),
  );
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () =>
        reject(
          Object.assign(new Error(`upgrade refused: ${res.statusCode} ${text}`), {
            status: res.statusCode,
            body: text ? JSON.parse(text) : undefined,
          }),
        ),
      );
    });
    ws.on('error', (err) => reject(err));
    ws.on('open', () => {
      if (via === 'message') ws.send(JSON.stringify({ type: 'auth', token }));
    });
    void closed.then(({ code, reason }) =>
      reject(Object.assign(new Error(`closed ${code} ${reason}`), { code })),
    );
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      if (frame.type === 'ready') {
        resolve({
          ws,
          ready: frame,
          closed,
          close: () => ws.close(),
          invoke(kind, body = {}) {
            const id = `d-${++seq}`;
            return new Promise((done, fail) => {
              pending.set(id, { done, fail });
              ws.send(JSON.stringify({ id, type: 'invoke', payload: { kind, body } }));
            });
          },
        });
        return;
      }
      if (frame.type === 'result' && pending.has(frame.id)) {
        pending.get(frame.id)!.done(frame);
        pending.delete(frame.id);
      }
    });
  });
}
