/**
 * What `GET /status` shows of approvals and incident containment (`approvals.pending`,
 * `approvals.activeCapabilities`, `incident.proactiveSendsDisabled`,
 * `incident.toolIsolationEnabled`): read from Temporal (visibility and the incident workflow), a
 * second old at most, so a restarted bridge answers from the durable state at once.
 */
import type { Client } from '@temporalio/client';
import { SingleFlightCache } from '../services/single-flight-cache';
import { listActiveGrants, listApprovals } from '../sessions/approvals';
import type { IncidentControl } from '../sessions/incident';
import { grantView } from './methods/approval';

const CACHE_MS = 1_000;

export interface ApprovalsSnapshot {
  pending: number;
  /** Capabilities with at least one usable grant, sorted. */
  activeCapabilities: string[];
  activeGrants: ReturnType<typeof grantView>[];
}

export class ContainmentStatus {
  private readonly approvalsCache: SingleFlightCache<ApprovalsSnapshot>;

  constructor(
    client: Client,
    private readonly incident: Pick<IncidentControl, 'flags'>,
  ) {
    this.approvalsCache = new SingleFlightCache(async () => {
      const [pending, grants] = await Promise.all([
        listApprovals(client, { status: 'pending' }),
        listActiveGrants(client),
      ]);
      return {
        pending: pending.length,
        activeCapabilities: [...new Set(grants.map((g) => g.capability))].sort(),
        activeGrants: grants.map(grantView),
      };
    }, CACHE_MS);
  }

  approvals(): Promise<ApprovalsSnapshot> {
    return this.approvalsCache.get();
  }

  async incidentFlags() {
    // The flags, not the whole state: readable at once after a restart (no worker needed).
    const f = await this.incident.flags();
    return {
      proactiveSendsDisabled: f.active,
      toolIsolationEnabled: f.active,
      active: f.active,
      since: f.since,
    };
  }
}
