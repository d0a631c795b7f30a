/**
 * The provider proxy put together: the proxy itself (proxy/), the meter that knows the runs and
 * records what they spend (sessions/run-meter.ts), the keystore behind both, and the endpoint
 * the Docker activities open and close with each `proxy`-mode run.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { ProviderEndpoints } from '../activities/docker';
import type { BridgeConfig } from '../config/load';
import { PROXY_SOCKET_NAME } from '../formats/secrets-file';
import { ProviderProxy } from '../proxy/provider-proxy';
import type { Keystore } from '../services/keystore';
import { RunMeter, type RunMeterDeps } from '../sessions/run-meter';
import { containerWorkflowId } from '../workflows/definitions';

export interface ProviderAccess {
  /** What the Docker activities open with each `proxy`-mode run and close at its teardown. */
  endpoints: ProviderEndpoints;
  meter: RunMeter;
  proxy: ProviderProxy;
  /** Serves a run again after a restart (its socket directory exists); false: not a proxy run. */
  restore(containerName: string, socketDir: string): Promise<boolean>;
  close(): Promise<void>;
}

export function createProviderAccess(deps: {
  config: BridgeConfig;
  client: Client;
  keystore: Keystore;
  audit: RunMeterDeps['audit'];
  onTokens: RunMeterDeps['onTokens'];
  log: Logger;
}): ProviderAccess {
  const { config, keystore, audit, log } = deps;
  const { budget } = config;
  const meter = new RunMeter({
    client: deps.client,
    prices: budget.models,
    unknownModel: budget.unknownModelCost,
    globalLimited: budget.dailyLimitUsd > 0 || budget.monthlyLimitUsd > 0,
    // Called only once requests flow, after `proxy` below exists.
    cut: (name, reason) => proxy.cut(name, reason),
    onTokens: deps.onTokens,
    audit,
    log: log.child({ component: 'run-meter' }),
  });
  const proxy = new ProviderProxy({
    runs: meter,
    guard: meter,
    credentials: { tokenFor: (keyId) => keystore.get(keyId).token },
    baseUrls: config.proxy.baseUrls,
    extraCa: config.proxy.caFile ? readFileSync(config.proxy.caFile, 'utf8') : undefined,
    connectTimeoutMs: config.proxy.connectTimeoutMs,
    idleTimeoutMs: config.proxy.idleTimeoutMs,
    onUsage: (name, usage) => {
      meter.record(name, usage).catch((err: Error) => {
        log.error({ run: name, err: err.message }, 'metered usage not recorded');
      });
    },
    // Each kind of refusal is audited once per run: an agent probing paths is news once.
    onRefused: (name, refusal) =>
      audit({
        event_type: 'provider_request_refused',
        session_id: name,
        dedupe_key: `${containerWorkflowId(name)}/refused/${refusal.kind}`,
        details: { ...refusal },
      }),
    log,
  });

  const listen = (name: string, socketDir: string) =>
    proxy.listen(name, path.join(socketDir, PROXY_SOCKET_NAME), {
      groupId: config.containers.agentUid,
    });
  const providerOf = (keyId: string) => keystore.list().find((k) => k.id === keyId)?.provider;

  return {
    meter,
    proxy,
    endpoints: {
      async open(name, socketDir, run) {
        // A retried start: the socket is already served.
        if (proxy.runs().includes(name)) return;
        const provider = providerOf(run.keyId);
        if (!provider) throw new Error(`credential ${run.keyId} not found`);
        meter.open(name, {
          provider,
          keyId: run.keyId,
          limitMicroUsd: run.limitMicroUsd,
          spentMicroUsd: 0,
        });
        await listen(name, socketDir);
      },
      async close(name) {
        meter.close(name);
        await proxy.close(name);
      },
    },
    async restore(name, socketDir) {
      if (proxy.runs().includes(name)) return true;
      if (!(await meter.restore(name, providerOf))) return false;
      await listen(name, socketDir);
      return true;
    },
    close: () => proxy.closeAll(),
  };
}
