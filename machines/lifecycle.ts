/**
 * The lifecycle every durable session shares (container runs and voice calls):
 * `Pending → Active → Ended | Failed | Expired`. Pure types and helpers; no XState actor, no
 * clock, no I/O, so workflows can import it.
 */

export const LIFECYCLE_STATES = ['Pending', 'Active', 'Ended', 'Failed', 'Expired'] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];

export const TERMINAL_STATES: readonly LifecycleState[] = ['Ended', 'Failed', 'Expired'];

/** Why a session left Active (or never reached it). Stable strings: they go to audit and RPC. */
export type EndReason =
  | 'stop_requested'
  | 'start_failed'
  | 'container_exited'
  | 'oom_killed'
  | 'health_check_failed'
  | 'ttl_expired'
  | 'budget_exceeded'
  /** The run's host was gone longer than its grace (or reaped by the operator). */
  | 'host_lost';

/** A duration as the API spec renders it: "5m23s", "0m45s", "1h2m3s". */
export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  return `${m}m${s}s`;
}
