/**
 * A remote client of a test bridge's HTTP gateway: a token made through the socket (as
 * `armorclaw gateway token create` does) and `POST /rpc` calls in the spec's envelope.
 */
import type { BridgeProcess } from './bridge-process';
import { call } from './socket-clients';

export interface GatewayClient {
  url: string;
  token: string;
  /** The whole envelope answered (`ok`, `result` or `error`, `auditId`) and the HTTP status. */
  rpc(method: string, params?: unknown): Promise<{ status: number; body: any }>;
  /** The result of a call that must succeed; throws with the envelope otherwise. */
  result(method: string, params?: unknown): Promise<any>;
}

export async function gatewayClient(bridge: BridgeProcess, name = 'test'): Promise<GatewayClient> {
  const url = await bridge.gatewayUrl();
  const made = await call(bridge.socketPath, 'gateway.token_create', { name });
  if (made.error) throw new Error(`gateway.token_create: ${JSON.stringify(made.error)}`);
  const token = (made.result as { token: string }).token;
  let seq = 0;
  const rpc = async (method: string, params: unknown = {}) => {
    const res = await fetch(`${url}/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ id: `t-${++seq}`, version: '2.0', method, params }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  return {
    url,
    token,
    rpc,
    async result(method, params) {
      const { body } = await rpc(method, params);
      if (body.ok !== true) throw new Error(`${method}: ${JSON.stringify(body)}`);
      return body.result;
    },
  };
}
