import type { z } from 'zod';
import { RpcError } from '../rpc/errors';
import { parseParams } from '../rpc/params';
import { badRequest } from './protocol';

/**
 * Validates a gateway method's params with the socket API's parser (same messages naming each
 * field); a problem is BAD_REQUEST.
 */
export function parseGatewayParams<T extends z.ZodType>(schema: T, params: unknown): z.infer<T> {
  try {
    return parseParams(schema, params);
  } catch (err) {
    if (err instanceof RpcError) throw badRequest(err.message.replace(/^Invalid params: /, ''));
    throw err;
  }
}
