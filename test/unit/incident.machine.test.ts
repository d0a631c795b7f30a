/**
 * The incident machine: bundle, bundle again, lift, bundle after a lift (a fresh incident),
 * bounded logs, and a context carried across continue-as-new resuming where it was.
 */
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import {
  incidentMachine,
  MAX_POLICY_LOGS,
  type IncidentContext,
  type IncidentEvent,
} from '../../machines/incident.machine';

type Snapshot = SnapshotFrom<typeof incidentMachine>;
const H1 = 'a'.repeat(64);
const H2 = 'b'.repeat(64);

const boot = (context?: IncidentContext): Snapshot =>
  initialTransition(incidentMachine, { context })[0] as Snapshot;
const feed = (s: Snapshot, ...events: IncidentEvent[]): Snapshot => {
  for (const e of events) [s] = transition(incidentMachine, s, e) as [Snapshot, unknown];
  return s;
};

describe('incident machine', () => {
  it('starts Normal with nothing revoked', () => {
    const s = boot();
    expect(s.value).toBe('Normal');
    expect(s.context).toEqual({ revokedTokenHashes: [], policyLogs: [] });
  });

  it('a bundle contains; a second one adds to the same incident without duplicates', () => {
    const s = feed(
      boot(),
      { type: 'BUNDLE', tokenHashes: [H1], by: 'gateway:token:a', atMs: 1_000 },
      { type: 'BUNDLE', tokenHashes: [H1, H2], by: 'gateway:token:b', atMs: 2_000 },
    );
    expect(s.value).toBe('Contained');
    expect(s.context.revokedTokenHashes).toEqual([H1, H2]);
    expect(s.context.sinceMs).toBe(1_000);
    expect(s.context.bundledBy).toBe('gateway:token:a');
    expect(s.context.policyLogs.map((l) => l.kind)).toEqual(['incident_bundle', 'incident_bundle']);
  });

  it('lift returns to Normal; the next bundle starts a fresh incident', () => {
    let s = feed(
      boot(),
      { type: 'BUNDLE', tokenHashes: [H1], by: 'x', atMs: 1_000 },
      { type: 'LIFT', by: 'gateway:admin', atMs: 5_000 },
    );
    expect(s.value).toBe('Normal');
    expect(s.context).toMatchObject({ liftedAtMs: 5_000, liftedBy: 'gateway:admin' });
    s = feed(s, { type: 'BUNDLE', tokenHashes: [H2], by: 'y', atMs: 9_000 });
    expect(s.value).toBe('Contained');
    expect(s.context.revokedTokenHashes).toEqual([H2]);
    expect(s.context.sinceMs).toBe(9_000);
    expect(s.context.liftedAtMs).toBeUndefined();
    expect(s.context.policyLogs.map((l) => l.kind)).toEqual(['incident_bundle']);
  });

  it('a lift while Normal changes nothing', () => {
    const s = feed(boot(), { type: 'LIFT', by: 'x', atMs: 1 });
    expect(s.value).toBe('Normal');
    expect(s.context.policyLogs).toEqual([]);
  });

  it('keeps the newest policy logs only', () => {
    let s = feed(boot(), { type: 'BUNDLE', tokenHashes: [], by: 'x', atMs: 0 });
    for (let i = 0; i < MAX_POLICY_LOGS + 20; i++) {
      s = feed(s, { type: 'POLICY', entry: { at: 'now', kind: 'k', detail: { i } } });
    }
    expect(s.context.policyLogs).toHaveLength(MAX_POLICY_LOGS);
    expect(s.context.policyLogs.at(-1)?.detail).toEqual({ i: MAX_POLICY_LOGS + 19 });
  });

  it('resumes Contained or Normal from a carried context', () => {
    const contained = feed(boot(), { type: 'BUNDLE', tokenHashes: [H1], by: 'x', atMs: 1 });
    expect(boot(contained.context).value).toBe('Contained');
    const lifted = feed(contained, { type: 'LIFT', by: 'y', atMs: 2 });
    expect(boot(lifted.context).value).toBe('Normal');
  });
});
