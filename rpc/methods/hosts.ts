import type { Client } from '@temporalio/client';
import { z } from 'zod';
import type { AuditLog } from '../../services/audit-log';
import { lastPollMs, listHosts, POLL_SILENCE_MS, reapHost } from '../../sessions/hosts';
import type { RpcDispatcher } from '../dispatcher';
import { invalidParams } from '../errors';
import { noParams, parseParams } from '../params';

export interface HostMethodsDeps {
  client: Client;
  namespace: string;
  /** This bridge's host. */
  hostId: string;
  auditLog: Pick<AuditLog, 'append'>;
  now?: () => number;
}

const reapParams = z.strictObject({
  host_id: z.string().min(1).max(253),
  /** Reap although the host's bridge polled lately (the operator knows it is gone). */
  force: z.boolean().optional(),
});

/**
 * `hosts.list` and `hosts.reap`: the bridge hosts sharing the Temporal namespace, and giving up a
 * host that will not come back (its lost runs stop waiting for it to tear their containers down).
 */
export function registerHostMethods(dispatcher: RpcDispatcher, deps: HostMethodsDeps): void {
  const now = deps.now ?? Date.now;

  dispatcher.addMethod('hosts.list', async (params) => {
    parseParams(noParams, params);
    const hosts = await listHosts(deps.client, deps.namespace, [deps.hostId], now());
    return { hosts, this_host: deps.hostId };
  });

  dispatcher.addMethod('hosts.reap', async (params) => {
    const p = parseParams(reapParams, params);
    if (p.host_id === deps.hostId) {
      throw invalidParams(`Invalid params: ${p.host_id} is this bridge's own host; it is running`);
    }
    const last = await lastPollMs(deps.client, deps.namespace, p.host_id);
    if (!p.force && last !== undefined && now() - last <= POLL_SILENCE_MS) {
      const ago = Math.max(0, Math.round((now() - last) / 1000));
      throw invalidParams(
        `Invalid params: host ${p.host_id} looks alive (its bridge polled ${ago}s ago); stop it, or pass force: true if it is gone`,
      );
    }
    const detail = `host ${p.host_id} reaped by the operator`;
    const told = await reapHost(deps.client, p.host_id, detail);
    deps.auditLog.append({
      event_type: 'host_reaped',
      details: { host_id: p.host_id, forced: p.force === true, runs: told.length },
    });
    return {
      host_id: p.host_id,
      status: 'reaped',
      runs: told.map((id) => id.slice('container-'.length)),
    };
  });
}
