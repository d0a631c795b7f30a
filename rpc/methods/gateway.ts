/**
 * The gateway's tokens, managed over the socket (`armorclaw gateway token …`): only a local user
 * who can reach the socket creates or revokes them. The token text leaves the bridge once, in
 * `gateway.token_create`'s answer; lists carry ids, names, dates and hashes.
 */
import { z } from 'zod';
import { ErrorCode, RpcError, invalidParams } from '../errors';
import { noParams, parseParams } from '../params';
import type { RpcDispatcher } from '../dispatcher';
import { GatewayTokenError, type GatewayTokenStore } from '../../services/gateway-tokens';

const createParams = z.strictObject({ name: z.string() });
const revokeParams = z.strictObject({ id: z.string() });

export function registerGatewayTokenMethods(
  dispatcher: RpcDispatcher,
  tokens: GatewayTokenStore,
): void {
  dispatcher.addMethod('gateway.token_create', (params) => {
    const { name } = parseParams(createParams, params);
    const created = mapErrors(() => tokens.create(name));
    return {
      id: created.id,
      name: created.record.name,
      created_at: created.record.created_at,
      token: created.token,
    };
  });
  dispatcher.addMethod('gateway.token_list', (params) => {
    parseParams(noParams, params);
    return { tokens: tokens.list() };
  });
  dispatcher.addMethod('gateway.token_revoke', (params) => {
    const { id } = parseParams(revokeParams, params);
    return { token: mapErrors(() => tokens.revokeById(id)) };
  });
}

function mapErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof GatewayTokenError)) throw err;
    if (err.code === 'not_found') throw new RpcError(ErrorCode.KeyNotFound, err.message);
    throw invalidParams(`Invalid params: ${err.message}`);
  }
}
