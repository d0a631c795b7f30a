import { assign, setup } from 'xstate';

/**
 * Incident containment, one per namespace (`incidentWorkflow`, id `incident`):
 *
 *   Normal ──BUNDLE──▶ Contained ──LIFT──▶ Normal
 *
 * Contained means: proactive sends are refused, no new capability grants are given and agents'
 * high-risk capabilities are refused (tool isolation), and the gateway tokens named by the
 * bundle were revoked. A second BUNDLE while Contained adds its revoked tokens to the same
 * incident. Policy events (a refused proactive send, a refused grant…) are kept, newest last and
 * bounded, as the forensic record the bundle returns. Times come in on the events.
 */

export const MAX_POLICY_LOGS = 200;
export const MAX_REVOKED_HASHES = 1_000;

/** One policy decision kept for the forensic bundle; ids and reasons only, never a secret. */
export interface PolicyLogEntry {
  /** ISO 8601, workflow time when it was recorded. */
  at: string;
  kind: string;
  detail?: Record<string, string | number | boolean>;
}

export interface IncidentContext {
  sinceMs?: number;
  bundledBy?: string;
  liftedAtMs?: number;
  liftedBy?: string;
  revokedTokenHashes: string[];
  policyLogs: PolicyLogEntry[];
}

export type IncidentEvent =
  | { type: 'BUNDLE'; tokenHashes: string[]; by: string; atMs: number }
  | { type: 'LIFT'; by: string; atMs: number }
  | { type: 'POLICY'; entry: PolicyLogEntry };

export type IncidentState = 'Normal' | 'Contained';

const appendLogs = (logs: PolicyLogEntry[], more: PolicyLogEntry[]) =>
  [...logs, ...more].slice(-MAX_POLICY_LOGS);

const iso = (ms: number) => new Date(ms).toISOString();

export const incidentMachine = setup({
  types: {
    input: {} as { context?: IncidentContext },
    context: {} as IncidentContext,
    events: {} as IncidentEvent,
  },
  actions: {
    log: assign({
      policyLogs: ({ context, event }) =>
        event.type === 'POLICY'
          ? appendLogs(context.policyLogs, [event.entry])
          : context.policyLogs,
    }),
    contain: assign(({ context, event }) => {
      if (event.type !== 'BUNDLE') return {};
      const fresh = context.sinceMs === undefined || context.liftedAtMs !== undefined;
      const before = fresh ? [] : context.revokedTokenHashes;
      const added = event.tokenHashes.filter((h) => !before.includes(h));
      return {
        sinceMs: fresh ? event.atMs : context.sinceMs,
        bundledBy: fresh ? event.by : context.bundledBy,
        liftedAtMs: undefined,
        liftedBy: undefined,
        revokedTokenHashes: [...before, ...added].slice(-MAX_REVOKED_HASHES),
        policyLogs: appendLogs(fresh ? [] : context.policyLogs, [
          {
            at: iso(event.atMs),
            kind: 'incident_bundle',
            detail: { by: event.by, tokens_revoked: added.length },
          },
        ]),
      };
    }),
    lift: assign(({ context, event }) =>
      event.type === 'LIFT'
        ? {
            liftedAtMs: event.atMs,
            liftedBy: event.by,
            policyLogs: appendLogs(context.policyLogs, [
              { at: iso(event.atMs), kind: 'incident_lifted', detail: { by: event.by } },
            ]),
          }
        : {},
    ),
  },
  guards: {
    resumeContained: ({ context }) =>
      context.sinceMs !== undefined && context.liftedAtMs === undefined,
  },
}).createMachine({
  id: 'incident',
  context: ({ input }) => input.context ?? { revokedTokenHashes: [], policyLogs: [] },
  initial: 'Boot',
  states: {
    // Carried across continue-as-new: resumes where the last run left off.
    Boot: { always: [{ guard: 'resumeContained', target: 'Contained' }, { target: 'Normal' }] },
    Normal: {
      on: {
        BUNDLE: { target: 'Contained', actions: 'contain' },
        POLICY: { actions: 'log' },
      },
    },
    Contained: {
      on: {
        BUNDLE: { actions: 'contain' },
        LIFT: { target: 'Normal', actions: 'lift' },
        POLICY: { actions: 'log' },
      },
    },
  },
});
