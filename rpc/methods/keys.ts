import { z } from 'zod';
import { ErrorCode, RpcError, internalError, invalidParams } from '../errors';
import { parseParams } from '../params';
import type { RpcDispatcher } from '../dispatcher';
import { KeystoreError, type Keystore } from '../../services/keystore';

const storeKeyParams = z.strictObject({
  id: z.string(),
  provider: z.string(),
  token: z.string(),
  display_name: z.string().optional(),
  expires_at: z.number().int().optional(),
  tags: z.array(z.string()).optional(),
});
const getKeyParams = z.strictObject({ id: z.string() });
const listKeysParams = z.strictObject({ provider: z.string().optional() });

/** The keystore methods of the API spec: store_key, get_key, list_keys. */
export function registerKeyMethods(dispatcher: RpcDispatcher, keystore: Keystore): void {
  dispatcher.addMethod('store_key', (params) => {
    const p = parseParams(storeKeyParams, params);
    return mapKeystoreErrors(() => keystore.store(p), 'Storage or encryption failed');
  });
  dispatcher.addMethod('get_key', (params) => {
    const { id } = parseParams(getKeyParams, params);
    return mapKeystoreErrors(() => keystore.get(id), 'Decryption failed');
  });
  dispatcher.addMethod('list_keys', (params) => {
    const { provider } = parseParams(listKeysParams, params);
    return mapKeystoreErrors(() => keystore.list(provider), 'Keystore unavailable');
  });
}

function mapKeystoreErrors<T>(fn: () => T, failure: string): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof KeystoreError)) throw err;
    switch (err.code) {
      case 'invalid':
      case 'exists':
        throw invalidParams(`Invalid params: ${err.message}`);
      case 'not_found':
        throw new RpcError(ErrorCode.KeyNotFound, err.message);
      case 'expired':
        throw internalError(err.message);
      default:
        // tampered / wrong master key: the details are for the operator's log, not the client.
        throw internalError(failure);
    }
  }
}
