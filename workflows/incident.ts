import {
  allHandlersFinished,
  condition,
  continueAsNew,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import { incidentMachine, type IncidentEvent } from '../machines/incident.machine';
import {
  INCIDENT_MEMO_KEY,
  incidentBundleUpdate,
  incidentLiftUpdate,
  incidentPolicyLogSignal,
  incidentStatusQuery,
  type IncidentFlags,
  type IncidentStatus,
  type IncidentWorkflowInput,
} from './definitions';
import { ArmorclawKind, ArmorclawState } from './search-attributes';

const DEFAULT_MAX_HISTORY_EVENTS = 2_000;
const HASH = /^[0-9a-f]{64}$/;
const MAX_HASHES_PER_BUNDLE = 100;

type Snapshot = SnapshotFrom<typeof incidentMachine>;

/**
 * Incident containment (workflow id `incident`, one per namespace): whether the bridge is in
 * incident mode, since when and by whom, the gateway tokens it revoked (as hashes) and the policy
 * events since, durably: a bridge that restarts mid-incident reads it back from here. The machine
 * decides (machines/incident.machine.ts), synchronously inside each handler, so a lift and a
 * bundle never interleave; the workflow never ends, and continues as new with its context when
 * its history grows.
 *
 * The gateway revokes the tokens in its own store before it sends `incident-bundle`: this
 * workflow keeps the forensic record (hashes only, never a token).
 */
export async function incidentWorkflow(input: IncidentWorkflowInput): Promise<never> {
  const [first] = initialTransition(incidentMachine, { context: input.context });
  let snapshot: Snapshot = first;
  let published: string | undefined;

  const status = (): IncidentStatus => {
    const c = snapshot.context;
    const active = snapshot.value === 'Contained';
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    return {
      active,
      since: iso(c.sinceMs),
      bundledBy: c.bundledBy ?? null,
      liftedAt: iso(c.liftedAtMs),
      liftedBy: c.liftedBy ?? null,
      proactiveDisabled: active,
      toolIsolation: active,
      revokedTokenHashes: [...c.revokedTokenHashes],
      policyLogs: [...c.policyLogs],
    };
  };

  /**
   * The state in the search attributes, and the flags in the memo: a bridge that just restarted
   * reads them with `describe` while no worker can answer a query yet.
   */
  const publish = () => {
    const s = status();
    const flags: IncidentFlags = { active: s.active, since: s.since, liftedAt: s.liftedAt };
    const key = JSON.stringify(flags);
    if (key === published) return;
    published = key;
    upsertSearchAttributes([
      { key: ArmorclawKind, value: 'incident' },
      { key: ArmorclawState, value: String(snapshot.value) },
    ]);
    upsertMemo({ [INCIDENT_MEMO_KEY]: flags });
  };

  const step = (event: IncidentEvent) => {
    [snapshot] = transition(incidentMachine, snapshot, event);
    publish();
  };

  setHandler(incidentStatusQuery, status);
  setHandler(
    incidentBundleUpdate,
    ({ tokenHashes, by }) => {
      step({ type: 'BUNDLE', tokenHashes, by, atMs: Date.now() });
      return status();
    },
    {
      validator: ({ tokenHashes, by }) => {
        if (!Array.isArray(tokenHashes) || tokenHashes.length > MAX_HASHES_PER_BUNDLE) {
          throw new Error(`tokenHashes: at most ${MAX_HASHES_PER_BUNDLE} hashes`);
        }
        // Hashes only: a raw token must never reach history.
        if (!tokenHashes.every((h) => typeof h === 'string' && HASH.test(h))) {
          throw new Error('tokenHashes: SHA-256 hex digests only');
        }
        if (typeof by !== 'string' || by === '') throw new Error('by is required');
      },
    },
  );
  setHandler(incidentLiftUpdate, ({ by }) => {
    step({ type: 'LIFT', by, atMs: Date.now() });
    return status();
  });
  setHandler(incidentPolicyLogSignal, (entry) => {
    if (typeof entry?.kind !== 'string' || entry.kind === '') return;
    step({ type: 'POLICY', entry: { ...entry, at: new Date(Date.now()).toISOString() } });
  });

  publish();
  const maxHistoryEvents = input.maxHistoryEvents ?? DEFAULT_MAX_HISTORY_EVENTS;
  for (;;) {
    await condition(() => {
      const info = workflowInfo();
      return info.continueAsNewSuggested || info.historyLength > maxHistoryEvents;
    });
    await condition(allHandlersFinished);
    await continueAsNew<typeof incidentWorkflow>({
      context: snapshot.context,
      maxHistoryEvents: input.maxHistoryEvents,
    });
  }
}
