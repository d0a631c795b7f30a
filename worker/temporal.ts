import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/load';
import { allSearchAttributes } from '../workflows/search-attributes';
import { startDevServer, type DevServer } from './temporal-dev-server';

export interface TemporalHandle {
  address: string;
  namespace: string;
  /** Where operators inspect sessions; undefined when not known (external cluster, no URL set). */
  uiUrl?: string;
  connection: Connection;
  client: Client;
  close(): Promise<void>;
}

/**
 * Connects to Temporal: the cluster at TEMPORAL_ADDRESS, or an embedded dev server started
 * here. Either way the bridge's search attributes are registered before anything runs.
 */
export async function connectTemporal(config: BridgeConfig, log: Logger): Promise<TemporalHandle> {
  const { namespace } = config.temporal;
  let devServer: DevServer | undefined;
  let address = config.temporal.address;
  let uiUrl = config.temporal.uiUrl;
  if (!address) {
    devServer = await startDevServer({
      dir: path.join(config.stateDir, 'temporal'),
      port: config.temporal.devServer.port,
      uiPort: config.temporal.devServer.uiPort,
      namespace,
      cliPath: config.temporal.devServer.cliPath,
      log,
    });
    address = devServer.address;
    uiUrl = devServer.uiUrl;
  }
  try {
    const connection = await connectWithRetry(address, 30_000);
    await ensureSearchAttributes(connection, namespace, log);
    const client = new Client({ connection, namespace });
    return {
      address,
      namespace,
      uiUrl,
      connection,
      client,
      async close() {
        await connection.close().catch(() => undefined);
        await devServer?.stop();
      },
    };
  } catch (err) {
    await devServer?.stop();
    throw err;
  }
}

async function connectWithRetry(address: string, timeoutMs: number): Promise<Connection> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2_000 });
      await connection.withDeadline(Date.now() + 2_000, () =>
        connection.workflowService.getSystemInfo({}),
      );
      return connection;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`cannot reach Temporal at ${address}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Adds whichever of the bridge's search attributes the namespace lacks. */
export async function ensureSearchAttributes(
  connection: Connection,
  namespace: string,
  log: Logger,
): Promise<void> {
  const listed = await connection.operatorService.listSearchAttributes({ namespace });
  const existing = new Set(Object.keys(listed.customAttributes ?? {}));
  const missing = allSearchAttributes.filter((k) => !existing.has(k.name));
  if (missing.length === 0) return;
  const searchAttributes: Record<string, temporal.api.enums.v1.IndexedValueType> = {};
  for (const key of missing) {
    searchAttributes[key.name] = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  }
  try {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
  } catch (err) {
    // Two bridges starting together both see them missing; the second add is refused.
    if (!/already exists/i.test((err as Error).message)) throw err;
  }
  await untilQueryable(
    connection,
    namespace,
    missing.map((k) => k.name),
  );
  log.info({ added: missing.map((k) => k.name) }, 'registered search attributes');
}

/**
 * A cluster's frontends learn new search attributes when their namespace cache refreshes (every
 * few seconds); until then a query naming them is refused as invalid. Waits for that, so the
 * bridge's first visibility lists do not fail.
 */
async function untilQueryable(
  connection: Connection,
  namespace: string,
  names: string[],
  timeoutMs = 60_000,
): Promise<void> {
  const query = names.map((n) => `${n} = ''`).join(' OR ');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await connection.workflowService.countWorkflowExecutions({ namespace, query });
      return;
    } catch (err) {
      if (!/invalid search attribute|not defined/i.test((err as Error).message)) throw err;
      if (Date.now() > deadline) {
        throw new Error(
          `search attributes ${names.join(', ')} not queryable after ${timeoutMs} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** A cheap liveness probe of the Temporal frontend, bounded by `timeoutMs`. */
export async function probeTemporal(connection: Connection, timeoutMs = 2_000): Promise<void> {
  await connection.withDeadline(Date.now() + timeoutMs, () =>
    connection.workflowService.getSystemInfo({}),
  );
}
