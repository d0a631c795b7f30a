/**
 * Which host runs an account's Matrix sync next: the decision `matrixSyncWorkflow` takes after
 * a sync call failed. Pure, so the workflow only carries it out.
 */

/** Why one sync call on the owner's host failed. */
export type SyncFailure =
  /** No worker took it within the grace, or its heartbeats stopped: the host is gone. */
  | 'host_silent'
  /** The host is no longer logged in as the account. */
  | 'logged_out'
  /** The bridge stopped or restarted while the call ran. */
  | 'interrupted'
  /** The homeserver failed or refused; the host itself answered. */
  | 'failed';

export interface SyncOwnership {
  /** Hosts logged in as the account, in the order they joined. */
  hosts: readonly string[];
  owner?: string;
}

export interface OwnerDecision extends SyncOwnership {
  /** The sync changed hosts. */
  moved: boolean;
  /** How long to wait before the next call. */
  retryInMs: number;
}

const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

/**
 * After a failure: a silent host hands the sync to the next host in join order (it stays a
 * candidate, and gets it back in turn); a host logged out of the account leaves the list; an
 * interrupted call runs again at once where it was; a homeserver failure is retried on the same
 * host after a backoff that doubles with each failure in a row (`failuresInRow`, from 1).
 */
export function afterSyncFailure(
  s: SyncOwnership,
  failure: SyncFailure,
  failuresInRow: number,
): OwnerDecision {
  const hosts = [...s.hosts];
  const at = s.owner === undefined ? -1 : hosts.indexOf(s.owner);
  switch (failure) {
    case 'host_silent': {
      if (hosts.length === 0) return { hosts, owner: undefined, moved: false, retryInMs: 0 };
      const owner = hosts[(at + 1) % hosts.length]!;
      return { hosts, owner, moved: owner !== s.owner, retryInMs: 0 };
    }
    case 'logged_out': {
      if (at >= 0) hosts.splice(at, 1);
      const owner = hosts.length > 0 ? hosts[Math.max(0, at) % hosts.length] : undefined;
      return { hosts, owner, moved: owner !== undefined, retryInMs: 0 };
    }
    case 'interrupted':
      return { hosts, owner: s.owner, moved: false, retryInMs: 0 };
    case 'failed':
      return {
        hosts,
        owner: s.owner,
        moved: false,
        retryInMs: Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, failuresInRow - 1)),
      };
  }
}

/** A host joining: added once; it owns the sync when nobody does. */
export function afterJoin(s: SyncOwnership, hostId: string): SyncOwnership {
  const hosts = s.hosts.includes(hostId) ? [...s.hosts] : [...s.hosts, hostId];
  return { hosts, owner: s.owner ?? hostId };
}
