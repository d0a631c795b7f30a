import { z } from 'zod';
import { internalError, invalidParams } from '../errors';
import { noParams, parseParams } from '../params';
import type { RpcDispatcher } from '../dispatcher';
import { ConfigStoreError, type ConfigStore } from '../../services/config-store';

// Field rules (names, encodings, sizes) live in the store; here only the shape is checked.
const attachConfigParams = z.strictObject({
  name: z.string(),
  content: z.string(),
  encoding: z.string().optional(),
  type: z.string().optional(),
  metadata: z.unknown().optional(), // z.record would drop a "__proto__" key; the store checks it
});

/** The config attachment methods of the API spec: attach_config, list_configs. */
export function registerConfigMethods(dispatcher: RpcDispatcher, store: ConfigStore): void {
  dispatcher.addMethod('attach_config', async (params) => {
    const p = parseParams(attachConfigParams, params);
    try {
      return await store.attach(p);
    } catch (err) {
      if (err instanceof ConfigStoreError && err.code === 'invalid') {
        throw invalidParams(`Invalid params: ${err.message}`);
      }
      if (err instanceof ConfigStoreError) throw internalError('Failed to write config file');
      throw err;
    }
  });
  dispatcher.addMethod('list_configs', async (params) => {
    parseParams(noParams, params);
    return store.list();
  });
}
