/**
 * The bridge hosts that share a Temporal namespace, as Temporal sees them: each host's bridge
 * polls its own task queue (`armorclaw-host-<id>`), and its sessions carry `ArmorclawHost`. Used
 * by `hosts.list` and `hosts.reap`.
 */
import type { Client } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { hostReapedSignal, hostTaskQueue } from '../workflows/definitions';
import { ArmorclawHost, ArmorclawKind, ArmorclawState } from '../workflows/search-attributes';

/**
 * A worker renews its poll at least this often while it runs (Temporal's long polls last about a
 * minute), so a host whose queue saw no poll for longer has no bridge running.
 */
export const POLL_SILENCE_MS = 75_000;

export interface HostSummary {
  host_id: string;
  /** A bridge of this host polled its task queue within the last POLL_SILENCE_MS. */
  alive: boolean;
  /** When its bridge last polled, as Temporal remembers (it forgets after a few minutes). */
  last_seen: string | null;
  /** Open container runs (Pending or Active). */
  runs: number;
  /** Runs that have ended and wait for this host to tear their container down. */
  awaiting_cleanup: number;
  /** Open calls. */
  calls: number;
}

/** When a bridge of `hostId` last polled its queue (undefined: Temporal saw none lately). */
export async function lastPollMs(
  client: Client,
  namespace: string,
  hostId: string,
): Promise<number | undefined> {
  const answer = await client.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: hostTaskQueue(hostId) },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  let last: number | undefined;
  for (const p of answer.pollers ?? []) {
    const at = optionalTsToMs(p.lastAccessTime);
    if (at !== undefined && (last === undefined || at > last)) last = at;
  }
  return last;
}

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** The open sessions (runs and calls) of one host, or of every host. */
function openSessionsQuery(hostId?: string): string {
  return (
    `${ArmorclawKind.name} IN ('container', 'call') AND ExecutionStatus = 'Running'` +
    (hostId === undefined ? '' : ` AND ${ArmorclawHost.name} = ${quote(hostId)}`)
  );
}

/** Every host with an open session, and `also` (this bridge's own), with what Temporal knows. */
export async function listHosts(
  client: Client,
  namespace: string,
  also: string[],
  now = Date.now(),
): Promise<HostSummary[]> {
  const hosts = new Map<string, HostSummary>();
  const entry = (hostId: string) => {
    let h = hosts.get(hostId);
    if (!h) {
      h = {
        host_id: hostId,
        alive: false,
        last_seen: null,
        runs: 0,
        awaiting_cleanup: 0,
        calls: 0,
      };
      hosts.set(hostId, h);
    }
    return h;
  };
  for (const id of also) entry(id);
  for await (const wf of client.workflow.list({ query: openSessionsQuery() })) {
    const attrs = wf.typedSearchAttributes;
    const hostId = attrs.get(ArmorclawHost);
    if (!hostId) continue;
    const h = entry(hostId);
    if (attrs.get(ArmorclawKind) === 'call') h.calls++;
    else if (['Pending', 'Active'].includes(attrs.get(ArmorclawState) ?? 'Pending')) h.runs++;
    else h.awaiting_cleanup++;
  }
  await Promise.all(
    [...hosts.values()].map(async (h) => {
      const last = await lastPollMs(client, namespace, h.host_id);
      h.last_seen = last === undefined ? null : new Date(last).toISOString();
      h.alive = last !== undefined && now - last <= POLL_SILENCE_MS;
    }),
  );
  return [...hosts.values()].sort((a, b) => a.host_id.localeCompare(b.host_id));
}

/**
 * Gives a host up: each of its open container runs ends as lost (if it has not) and stops
 * waiting for the host to tear its container down. Returns the runs told. The host's bridge, if
 * it ever starts again, removes those containers itself (`reapOrphans`).
 */
export async function reapHost(client: Client, hostId: string, detail: string): Promise<string[]> {
  const told: string[] = [];
  const query = `${ArmorclawKind.name} = 'container' AND ExecutionStatus = 'Running' AND ${ArmorclawHost.name} = ${quote(hostId)}`;
  for await (const wf of client.workflow.list({ query })) {
    await client.workflow.getHandle(wf.workflowId).signal(hostReapedSignal, { detail });
    told.push(wf.workflowId);
  }
  return told;
}
