import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Logger } from 'pino';
import { agentTypeRun, type AgentTypeSettings } from '../../config/load';
import { parseDuration } from '../../formats/duration';
import { SECRETS_MODES, type SecretsMode } from '../../formats/secrets-file';
import { toMicroUsd } from '../../services/budget';
import { KeystoreError, type Keystore } from '../../services/keystore';
import { findContainerRun, startRunUntilActive } from '../../sessions/containers';
import { isClosedWorkflowError } from '../../sessions/workflow-errors';
import type { BudgetGate } from './budget';
import {
  budgetExceededSignal,
  containerStatusQuery,
  containerWorkflowId,
  stopUpdate,
  type ContainerRunInput,
  type ContainerRunStatus,
} from '../../workflows/definitions';
import {
  ArmorclawAgentType,
  ArmorclawContainerId,
  ArmorclawHost,
  ArmorclawKeyId,
  ArmorclawState,
  containerRunsQuery,
} from '../../workflows/search-attributes';
import { isRoomId } from '../../services/matrix-trust';
import type { RpcDispatcher } from '../dispatcher';
import { ErrorCode, RpcError, internalError, invalidParams, workflowFailureError } from '../errors';
import { parseParams } from '../params';

export interface ContainerMethodsDeps {
  client: Client;
  keystore: Keystore;
  taskQueue: string;
  hostId: string;
  defaults: {
    image: string;
    agentTypes: Record<string, AgentTypeSettings>;
    ttlMs: number;
    maxTtlMs: number;
    secretsDeadlineMs: number;
    healthCheckIntervalMs: number;
    /** `host_grace`: how long this host may be gone before its runs are lost. */
    hostGraceMs: number;
    network: string;
    secretsMode: SecretsMode;
    /** 0: no per-run limit. */
    runLimitUsd: number;
    /** Whether budget.models prices any model (else metered usage costs nothing). */
    modelsPriced: boolean;
  };
  /** Refuses starts while the budget is exceeded (-32006); absent: no budget enforcement. */
  budget?: BudgetGate;
  /** Called when a run became Active or ended through this API (status caches listen). */
  onRunsChanged?(): void;
  /** Whether the bridge can bind agents to rooms (logged in to Matrix). */
  matrixReady(): boolean;
  log: Logger;
  /** Clock in ms (tests pin it to force name collisions). */
  now?: () => number;
}

export const AGENT_TYPE = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
// Docker image references: registry/name:tag or @digest, no spaces or shell characters.
const IMAGE_REF =
  /^[a-z0-9][a-z0-9._/-]{0,254}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

const startParams = z.strictObject({
  key_id: z.string(),
  agent_type: z.string().optional(),
  image: z.string().optional(),
  ttl: z.string().optional(),
  room_id: z.string().max(255).optional(),
  secrets_mode: z.string().optional(),
  budget_usd: z.number().optional(),
});
/** The largest per-run limit `start` takes (a typo's guard, not a policy). */
const MAX_RUN_BUDGET_USD = 1_000_000;
/**
 * The run's limit in micro-dollars (0: none): `budget_usd`, else the configured default. Only
 * what passes the provider proxy is metered, and only priced models cost anything: a limit a run
 * could never reach is refused rather than accepted and silently useless.
 */
function runLimit(
  budgetUsd: number | undefined,
  mode: SecretsMode,
  defaults: ContainerMethodsDeps['defaults'],
): number {
  if (budgetUsd === undefined) return mode === 'proxy' ? toMicroUsd(defaults.runLimitUsd) : 0;
  const micro = Number.isFinite(budgetUsd) ? toMicroUsd(budgetUsd) : -1;
  if (micro < 0 || budgetUsd > MAX_RUN_BUDGET_USD || (budgetUsd > 0 && micro === 0)) {
    throw invalidParams(
      `Invalid params: budget_usd must be 0 (no limit) or a number of USD from 0.000001 to ${MAX_RUN_BUDGET_USD}`,
    );
  }
  if (micro > 0 && mode !== 'proxy') {
    throw invalidParams(
      'Invalid params: budget_usd needs secrets_mode "proxy" (only what passes the provider proxy is metered)',
    );
  }
  if (micro > 0 && !defaults.modelsPriced) {
    throw invalidParams(
      'Invalid params: budget_usd needs prices: no model is priced in budget.models, so nothing would count against it',
    );
  }
  return micro;
}

/** A container id, id prefix or name as `stop` and `containers.status` take it; else -32602. */
function checkContainerRef(ref: string): void {
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(ref)) {
    throw invalidParams('Invalid params: container_id must be a container id or name');
  }
}

const stopParams = z.strictObject({ container_id: z.string() });
const statusParams = z.strictObject({ container_id: z.string() });
/** How long `containers.status` may take to find a run and query it. */
const STATUS_DEADLINE_MS = 5_000;
const listParams = z.strictObject({
  all: z.boolean().optional(),
  limit: z.number().int().min(1).max(1000).optional(),
});

/** A run as `containers.list` shows it: what the visibility store knows, nothing queried. */
export interface ContainerRunSummary {
  container_name: string;
  container_id: string | null;
  state: string;
  agent_type: string | null;
  key_id: string | null;
  host_id: string | null;
  started_at: string;
  closed_at: string | null;
  /** Temporal's status of the run's workflow: a terminated run keeps its last state above. */
  workflow_status: string;
}

/** What `containers.status` answers: the run's workflow `status` query, fields as they are. */
export type ContainerStatusResult = ContainerRunStatus;

/**
 * Container names as the spec shows them, `armorclaw-<agent type>-<unix seconds>`, then `-2`,
 * `-3`… for more starts in the same second. Counted here, so a burst of starts in one second
 * takes one name each instead of every start trying every name before it in Temporal (which
 * made a burst of 50 cost over a thousand workflow starts). A name taken anyway (by another
 * bridge, or after a restart within the second) is refused by Temporal, and `start` takes the
 * next.
 */
export class RunNames {
  private second = -1;
  private readonly taken = new Map<string, number>();

  next(agentType: string, nowMs: number): string {
    const second = Math.floor(nowMs / 1000);
    if (second !== this.second) {
      this.second = second;
      this.taken.clear();
    }
    const n = (this.taken.get(agentType) ?? 0) + 1;
    this.taken.set(agentType, n);
    const base = `armorclaw-${agentType}-${second}`;
    return n === 1 ? base : `${base}-${n}`;
  }
}

/** The spec's container methods: `start` returns when the run is Active, `stop` when it has Ended. */
export function registerContainerMethods(
  dispatcher: RpcDispatcher,
  deps: ContainerMethodsDeps,
): void {
  const now = deps.now ?? Date.now;
  const names = new RunNames();

  dispatcher.addMethod('start', async (params) => {
    const p = parseParams(startParams, params);
    const agentType = p.agent_type ?? 'openclaw';
    if (!AGENT_TYPE.test(agentType)) {
      throw invalidParams('Invalid params: agent_type must match [a-z0-9][a-z0-9_.-]{0,31}');
    }
    const { image, memoryBytes } = agentTypeRun(
      { defaultImage: deps.defaults.image, agentTypes: deps.defaults.agentTypes },
      agentType,
      p.image,
    );
    if (!IMAGE_REF.test(image))
      throw invalidParams('Invalid params: image is not a valid image reference');
    let ttlMs = deps.defaults.ttlMs;
    if (p.ttl !== undefined) {
      const parsed = parseDuration(p.ttl);
      if (parsed === null)
        throw invalidParams('Invalid params: ttl must be a duration such as "20s", "30m" or "1h"');
      if (parsed > deps.defaults.maxTtlMs) {
        throw invalidParams(
          `Invalid params: ttl exceeds the maximum of ${deps.defaults.maxTtlMs / 1000} s`,
        );
      }
      ttlMs = parsed;
    }
    if (p.room_id !== undefined) {
      if (!isRoomId(p.room_id)) {
        throw invalidParams('Invalid params: room_id must be a room id (!opaque)');
      }
      if (!deps.matrixReady()) {
        throw invalidParams('Invalid params: room_id needs Matrix; log in first (matrix.login)');
      }
    }
    const secretsMode = p.secrets_mode ?? deps.defaults.secretsMode;
    if (!(SECRETS_MODES as readonly string[]).includes(secretsMode)) {
      throw invalidParams(
        `Invalid params: secrets_mode must be one of ${SECRETS_MODES.join(', ')}`,
      );
    }
    const limitMicroUsd = runLimit(p.budget_usd, secretsMode as SecretsMode, deps.defaults);
    checkCredential(deps.keystore, p.key_id);
    await deps.budget?.check();

    for (let attempt = 1; attempt <= 100; attempt++) {
      const containerName = names.next(agentType, now());
      const input: ContainerRunInput = {
        containerName,
        keyId: p.key_id,
        agentType,
        image,
        memoryBytes,
        hostId: deps.hostId,
        ttlMs,
        secretsDeadlineMs: deps.defaults.secretsDeadlineMs,
        healthCheckIntervalMs: deps.defaults.healthCheckIntervalMs,
        hostGraceMs: deps.defaults.hostGraceMs,
        network: deps.defaults.network,
        roomId: p.room_id,
        secretsMode: secretsMode as SecretsMode,
        limitMicroUsd,
      };
      let started;
      try {
        started = await startRunUntilActive(deps.client, deps.taskQueue, input);
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) continue;
        throw startFailure(err);
      }
      const handle = deps.client.workflow.getHandle(containerWorkflowId(containerName));
      // The budget may have run out while this run was Pending, when the stop sweep could not
      // end it yet: look again, and end the run rather than answer with an agent over budget.
      // (An unreadable budget now is not a reason to end a run the first check let through.)
      try {
        await deps.budget?.check();
      } catch (err) {
        if (!(err instanceof RpcError && err.code === ErrorCode.BudgetExceeded)) return started;
        await handle.signal(budgetExceededSignal).catch(() => undefined);
        throw err;
      }
      return started;
    }
    throw internalError('Container creation failed: no free container name');
  });

  dispatcher.addMethod('stop', async (params) => {
    const { container_id } = parseParams(stopParams, params);
    checkContainerRef(container_id);
    const workflowId = await findContainerRun(deps.client, container_id, { open: true });
    if (!workflowId)
      throw new RpcError(ErrorCode.ContainerStopped, `Container not found: ${container_id}`);
    try {
      const handle = deps.client.workflow.getHandle(workflowId);
      const cleanedUp = handle.executeUpdate(stopUpdate, { args: [{ reason: 'rpc_stop' }] });
      cleanedUp.catch(() => undefined);
      const answer = await Promise.race([cleanedUp, sleep(deps.defaults.hostGraceMs)]);
      if (answer) return answer;
      // Ended, but its host is away and has not torn it down: say so rather than wait for it.
      const ended = await handle.executeUpdate(stopUpdate, {
        args: [{ reason: 'rpc_stop', until: 'ended' }],
      });
      return { ...ended, cleanup: 'pending' as const };
    } catch (err) {
      if (isClosedWorkflowError(err)) {
        throw new RpcError(ErrorCode.ContainerStopped, `Container not found: ${container_id}`);
      }
      throw err;
    } finally {
      deps.onRunsChanged?.();
    }
  });

  // A bridge extension: `status` names only Active containers; operators also need the runs
  // that are starting, cleaning up or over. Read from Temporal's visibility store (every
  // bridge's runs), never from process memory, and without querying each workflow, so a long
  // history costs one paged list call.
  dispatcher.addMethod('containers.list', async (params) => {
    const p = parseParams(listParams, params);
    const limit = p.limit ?? 100;
    const query = containerRunsQuery({ open: !p.all });
    const runs: ContainerRunSummary[] = [];
    let truncated = false;
    try {
      for await (const wf of deps.client.workflow.list({ query, pageSize: Math.min(limit, 100) })) {
        if (runs.length === limit) {
          truncated = true;
          break;
        }
        if (!wf.workflowId.startsWith('container-')) continue;
        const attr = wf.typedSearchAttributes;
        runs.push({
          container_name: wf.workflowId.slice('container-'.length),
          container_id: attr.get(ArmorclawContainerId) ?? null,
          state: attr.get(ArmorclawState) ?? 'Pending',
          agent_type: attr.get(ArmorclawAgentType) ?? null,
          key_id: attr.get(ArmorclawKeyId) ?? null,
          host_id: attr.get(ArmorclawHost) ?? null,
          started_at: wf.startTime.toISOString(),
          closed_at: wf.closeTime?.toISOString() ?? null,
          workflow_status: wf.status.name,
        });
      }
    } catch (err) {
      deps.log.warn({ err }, 'containers.list: visibility list failed');
      throw internalError('Internal error: container list unavailable (Temporal did not answer)');
    }
    runs.sort((a, b) => b.started_at.localeCompare(a.started_at));
    return { count: runs.length, truncated, runs };
  });

  // A bridge extension: what one run spent and how it ended. The run's workflow answers its
  // `status` query while open and after it closed (replayed from history by a worker), so a run
  // that is over is found too: by name through its workflow id, by id through visibility.
  dispatcher.addMethod('containers.status', async (params): Promise<ContainerStatusResult> => {
    const { container_id } = parseParams(statusParams, params);
    checkContainerRef(container_id);
    try {
      return await deps.client.connection.withDeadline(
        Date.now() + STATUS_DEADLINE_MS,
        async () => {
          const workflowId = await findContainerRun(deps.client, container_id);
          if (!workflowId)
            throw new RpcError(ErrorCode.ContainerStopped, `Container not found: ${container_id}`);
          return deps.client.workflow.getHandle(workflowId).query(containerStatusQuery);
        },
      );
    } catch (err) {
      if (err instanceof RpcError) throw err;
      deps.log.warn({ err: (err as Error).message, container_id }, 'container status unavailable');
      throw internalError('Internal error: container status unavailable (Temporal did not answer)');
    }
  });
}

export function checkCredential(keystore: Keystore, keyId: string): void {
  try {
    keystore.get(keyId);
  } catch (err) {
    if (err instanceof KeystoreError && (err.code === 'not_found' || err.code === 'invalid')) {
      throw invalidParams(`Invalid params: credential ${keyId} not found`);
    }
    if (err instanceof KeystoreError && err.code === 'expired') {
      throw invalidParams(`Invalid params: credential ${keyId} has expired`);
    }
    throw err;
  }
}

function startFailure(err: unknown): RpcError {
  const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
  const fallback = internalError('Container creation failed');
  if (!(cause instanceof ApplicationFailure)) return fallback;
  return workflowFailureError(cause.type, cause.message, fallback);
}
