/**
 * Incident containment as the rest of the bridge reads and drives it: the `incident` workflow
 * started once per namespace, bundle and lift through its updates, policy events as signals, and
 * a briefly cached read for hot paths (the gateway's `chat.send`, `/status`, agents' grants).
 */
import type { Client } from '@temporalio/client';
import { WorkflowIdConflictPolicy } from '@temporalio/common';
import { SingleFlightCache } from '../services/single-flight-cache';
import type { incidentWorkflow } from '../workflows/incident';
import {
  INCIDENT_MEMO_KEY,
  INCIDENT_WORKFLOW_ID,
  incidentBundleUpdate,
  incidentLiftUpdate,
  incidentPolicyLogSignal,
  incidentStatusQuery,
  type IncidentFlags,
  type IncidentPolicyLog,
  type IncidentStatus,
} from '../workflows/definitions';
import { ArmorclawKind, ArmorclawState } from '../workflows/search-attributes';

/** How long a read of the incident state is reused (a bundle or lift here forgets it at once). */
const CACHE_MS = 1_000;
const READ_DEADLINE_MS = 5_000;
/** A query may wait for a worker (after a crash, until the dead one's sticky queue times out). */
const QUERY_DEADLINE_MS = 20_000;

/** Starts the incident workflow unless it runs; its state outlives every bridge. */
export async function ensureIncidentWorkflow(client: Client, taskQueue: string): Promise<void> {
  await client.workflow.start<typeof incidentWorkflow>('incidentWorkflow', {
    taskQueue,
    workflowId: INCIDENT_WORKFLOW_ID,
    args: [{}],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    typedSearchAttributes: [
      { key: ArmorclawKind, value: 'incident' },
      { key: ArmorclawState, value: 'Normal' },
    ],
  });
}

/**
 * The incident state for this process: reads cached for a second (so a burst of requests asks
 * Temporal once), never cached across a restart, forgotten on this process's own bundle or lift.
 * A read that fails throws: callers refuse rather than act on a state they cannot see.
 */
export class IncidentControl {
  private readonly cache: SingleFlightCache<IncidentStatus>;
  private readonly flagsCache: SingleFlightCache<IncidentFlags>;

  constructor(
    private readonly client: Client,
    maxAgeMs = CACHE_MS,
  ) {
    const handle = () => client.workflow.getHandle(INCIDENT_WORKFLOW_ID);
    const query = () =>
      client.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, () =>
        handle().query(incidentStatusQuery),
      );
    this.cache = new SingleFlightCache(query, maxAgeMs);
    // The hot path's flags come from the memo: no worker needed, so they are right at once
    // after a restart; a run that has not published them yet is asked.
    this.flagsCache = new SingleFlightCache(async () => {
      const desc = await client.connection.withDeadline(Date.now() + READ_DEADLINE_MS, () =>
        handle().describe(),
      );
      const flags = desc.memo?.[INCIDENT_MEMO_KEY] as IncidentFlags | undefined;
      if (flags && typeof flags.active === 'boolean') return flags;
      const s = await query();
      return { active: s.active, since: s.since, liftedAt: s.liftedAt };
    }, maxAgeMs);
  }

  /** The whole state (policy log and revoked hashes included): the workflow's query. */
  status(): Promise<IncidentStatus> {
    return this.cache.get();
  }

  /** Whether containment is in force, since when; from the memo (see the constructor). */
  flags(): Promise<IncidentFlags> {
    return this.flagsCache.get();
  }

  /** Whether proactive sends (`chat.send` with `proactive`) are refused now. */
  async proactiveSendsDisabled(): Promise<boolean> {
    return (await this.flags()).active;
  }

  /** Whether tool isolation holds: no new grants, high-risk capabilities refused. */
  async toolIsolationEnabled(): Promise<boolean> {
    return (await this.flags()).active;
  }

  /** Enters (or extends) incident mode with these revoked token hashes. */
  async bundle(tokenHashes: string[], by: string): Promise<IncidentStatus> {
    try {
      return await this.client.workflow
        .getHandle(INCIDENT_WORKFLOW_ID)
        .executeUpdate(incidentBundleUpdate, { args: [{ tokenHashes, by }] });
    } finally {
      this.invalidate();
    }
  }

  async lift(by: string): Promise<IncidentStatus> {
    try {
      return await this.client.workflow
        .getHandle(INCIDENT_WORKFLOW_ID)
        .executeUpdate(incidentLiftUpdate, { args: [{ by }] });
    } finally {
      this.invalidate();
    }
  }

  private invalidate(): void {
    this.cache.invalidate();
    this.flagsCache.invalidate();
  }

  /**
   * Records a policy event in the forensic log before the refusal is answered (so an answered
   * refusal is on record); never rejects: an entry that cannot be written must not turn a refusal
   * into an error.
   */
  async log(entry: Omit<IncidentPolicyLog, 'at'>): Promise<void> {
    await this.client.workflow
      .getHandle(INCIDENT_WORKFLOW_ID)
      .signal(incidentPolicyLogSignal, entry)
      .catch(() => undefined);
  }
}
