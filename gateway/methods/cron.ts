/**
 * `cron.add`, `cron.list`, `cron.remove`: jobs as Temporal Schedules (sessions/schedules.ts),
 * each firing an agent turn (`agentTurnWorkflow`). They outlive bridge restarts (Temporal keeps
 * and fires them) and show in the Temporal Web UI, as do the turns they start.
 *
 * Job types: `every` an interval ("2s", "30m", "1h30m"), `cron` a 5-field cron expression (UTC),
 * `at` one firing at an ISO 8601 time or after a delay ("10m"). `isolated` (default true) runs
 * each firing on a fresh agent container stopped when the turn ends; false runs them on one
 * session's agent (`sessionId`, default `cron-<job id>`). The bridge's extensions: `message`
 * (what the agent is asked; default DEFAULT_CRON_MESSAGE), `channelId` (a trusted Matrix room
 * each answer is posted to), `maxRetries` / `backoffMs` (the turn's delivery retries).
 */
import { randomUUID } from 'node:crypto';
import { ServiceError, type Client } from '@temporalio/client';
import { z } from 'zod';
import { parseDuration } from '../../formats/duration';
import { isRoomId } from '../../services/matrix-trust';
import {
  createCronSchedule,
  deleteCronSchedule,
  listCronJobs,
  type CronTiming,
} from '../../sessions/schedules';
import { parseGatewayParams } from '../params';
import { badRequest, notFound, type GatewayMethods } from '../protocol';
import { checkTurnMessages, turnRunTemplate, type TurnDeps } from '../turns';

export interface CronMethodsDeps extends TurnDeps {
  client: Client;
  /** Whether a room may be posted to (the bridge's Matrix trust, as chat.send applies it). */
  roomTrusted(roomId: string): boolean;
  matrixReady(): boolean;
  now?: () => number;
}

/** What a job asks its agent when the caller gives no `message`. */
export const DEFAULT_CRON_MESSAGE =
  'Scheduled check-in: report anything that needs attention, or say that all is well.';

/** The shortest `every` interval: a turn per second is already a lot of agent work. */
const MIN_EVERY_MS = 1_000;
const CRON_FIELD = /^[A-Za-z0-9*/,-]+$/;

const addParams = z.strictObject({
  type: z.enum(['at', 'every', 'cron']).default('every'),
  expression: z.string().min(1).max(100).default('30m'),
  isolated: z.boolean().default(true),
  message: z.string().min(1).optional(),
  sessionId: z.string().min(1).max(256).optional(),
  channelId: z.string().min(1).max(255).optional(),
  maxRetries: z.number().int().min(0).max(100).default(3),
  backoffMs: z.number().int().min(0).max(3_600_000).default(1_000),
});
const JOB_ID = /^[0-9a-f-]{36}$/;
const removeParams = z.strictObject({ id: z.string().min(1).max(64) });

/** The job's timing from its type and expression; BAD_REQUEST saying what was expected. */
export function cronTiming(
  type: 'at' | 'every' | 'cron',
  expression: string,
  nowMs: number,
): CronTiming {
  if (type === 'every') {
    const everyMs = parseDuration(expression);
    if (everyMs === null || everyMs < MIN_EVERY_MS) {
      throw badRequest(
        `expression: an "every" job takes a duration of at least 1s such as "2s", "30m" or "1h30m", got ${JSON.stringify(expression)}`,
      );
    }
    return { kind: 'every', everyMs };
  }
  if (type === 'cron') {
    const fields = expression.trim().split(/\s+/);
    if (fields.length !== 5 || !fields.every((f) => CRON_FIELD.test(f))) {
      throw badRequest(
        `expression: a "cron" job takes 5 fields (minute hour day-of-month month day-of-week, UTC) such as "*/5 * * * *", got ${JSON.stringify(expression)}`,
      );
    }
    return { kind: 'cron', expression: fields.join(' ') };
  }
  const delay = parseDuration(expression);
  const atMs = delay !== null ? nowMs + delay : isoTime(expression);
  if (atMs === undefined || atMs <= nowMs) {
    throw badRequest(
      `expression: an "at" job takes a future ISO 8601 time ("2030-01-01T09:00:00Z") or a delay ("10m"), got ${JSON.stringify(expression)}`,
    );
  }
  // Schedules fire on whole seconds.
  return { kind: 'at', atMs: Math.ceil(atMs / 1000) * 1000 };
}

function isoTime(text: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) {
    return undefined;
  }
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

export function registerCronMethods(methods: GatewayMethods, deps: CronMethodsDeps): void {
  const { turns, temporal } = deps.config;
  const now = deps.now ?? Date.now;

  methods.add('cron.add', async (params) => {
    const p = parseGatewayParams(addParams, params);
    const timing = cronTiming(p.type, p.expression, now());
    const message = p.message ?? DEFAULT_CRON_MESSAGE;
    checkTurnMessages([{ role: 'user', content: message }], turns);
    if (p.channelId !== undefined) {
      if (!isRoomId(p.channelId)) {
        throw badRequest('channelId: must be a Matrix room id (!opaque:server) to post answers to');
      }
      if (!deps.matrixReady()) {
        throw badRequest('channelId: the bridge is not logged in to Matrix (matrix.login)');
      }
      if (!deps.roomTrusted(p.channelId)) {
        throw badRequest(`channelId: ${p.channelId} is not a trusted room (matrix.trusted_rooms)`);
      }
    }
    if (p.isolated && p.sessionId !== undefined) {
      throw badRequest('sessionId: only for isolated: false (an isolated job has no session)');
    }
    const run = turnRunTemplate(deps);
    const jobId = randomUUID();
    const sessionId = p.sessionId ?? `cron-${jobId}`;
    try {
      const job = await createCronSchedule(deps.client, {
        taskQueue: temporal.taskQueue,
        jobId,
        timing,
        job: {
          type: p.type,
          expression: p.expression,
          isolated: p.isolated,
          maxRetries: p.maxRetries,
          backoffMs: p.backoffMs,
          message,
          ...(p.sessionId !== undefined ? { sessionId: p.sessionId } : {}),
          ...(p.channelId !== undefined ? { channelId: p.channelId } : {}),
        },
        turn: {
          session: {
            sessionId,
            channelId: p.channelId ?? `cron-${jobId}`,
            channelKind: p.channelId !== undefined ? 'group' : 'web',
          },
          messages: [{ role: 'user', content: message }],
          binding: p.isolated ? 'isolated' : 'session',
          run,
          timeoutMs: turns.timeoutMs,
          retentionMs: turns.retentionMs,
          maxRetries: p.maxRetries,
          backoffMs: p.backoffMs,
          jobId,
          ...(p.channelId !== undefined ? { postToRoomId: p.channelId } : {}),
        },
      });
      return { job };
    } catch (err) {
      // Temporal's own check of a cron expression our pattern let through.
      if (err instanceof ServiceError && /invalid|cron/i.test(err.message)) {
        throw badRequest(`expression: Temporal refused it (${err.message.slice(0, 200)})`);
      }
      throw err;
    }
  });

  methods.add('cron.list', async () => ({ jobs: await listCronJobs(deps.client) }));

  methods.add('cron.remove', async (params) => {
    const { id } = parseGatewayParams(removeParams, params);
    if (!JOB_ID.test(id) || !(await deleteCronSchedule(deps.client, id))) {
      throw notFound(`no cron job ${id}`);
    }
    return { removed: true };
  });
}
