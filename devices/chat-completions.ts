/**
 * The `chatCompletions` kind of the device WebSocket: an OpenAI-style chat request answered by
 * the device's own agent. Each device talks to its own gateway session (`device-<bridgeId>`, on
 * the session's agent container, as agent.run runs it), so one device never sees another's
 * conversation; the turn is durable like any other (workflows/agent-turn.ts) and this call waits
 * for it, as `agent.run` + `agent.wait` would.
 */
import { z } from 'zod';
import type { DeviceRecord } from '../services/device-registry';
import { collectTurn } from '../sessions/turns';
import { answeredTurn, startSessionTurn, type AgentMethodsDeps } from '../gateway/methods/agent';
import { parseGatewayParams } from '../gateway/params';
import { GatewayError } from '../gateway/protocol';

const contentPart = z.object({ type: z.literal('text'), text: z.string() });
const chatBody = z.object({
  model: z.string().max(200).optional(),
  messages: z
    .array(
      z.object({
        role: z.enum(['system', 'user', 'assistant']),
        // A string, or the newer array of text parts.
        content: z.union([z.string(), z.array(contentPart).min(1)]),
      }),
    )
    .min(1),
  stream: z.boolean().optional(),
});

/** The answer, shaped as an OpenAI chat completion (what the device's client library reads). */
export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: [{ index: 0; message: { role: 'assistant'; content: string }; finish_reason: 'stop' }];
}

/** The gateway session a device's conversation runs in (its own agent container). */
export const deviceSessionId = (bridgeId: string): string => `device-${bridgeId}`;

/** Polls of the turn are bounded by this, so a bridge shutting down is not held for minutes. */
const POLL_MS = 30_000;

export async function chatCompletion(
  deps: AgentMethodsDeps,
  device: DeviceRecord,
  body: unknown,
): Promise<ChatCompletion> {
  const p = parseGatewayParams(chatBody, body);
  if (p.stream) {
    throw new GatewayError(
      'BAD_REQUEST',
      'stream: true is not offered over the device socket; the answer comes as one result',
    );
  }
  const messages = p.messages.map((m) => ({
    role: m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((c) => c.text).join(''),
  }));
  const runId = await startSessionTurn(
    deps,
    {
      sessionId: deviceSessionId(device.bridgeId),
      channelId: device.bridgeId,
      channelKind: 'mobile',
    },
    messages,
  );
  // The turn expires by itself at gateway.turn.timeout; a little more covers its cleanup.
  const deadline = Date.now() + deps.config.turns.timeoutMs + 30_000;
  for (;;) {
    const waitMs = Math.max(0, Math.min(POLL_MS, deadline - Date.now()));
    const got = await collectTurn(deps.client, runId, waitMs);
    if (got.status === 'done') {
      const r = answeredTurn(got.result);
      return {
        id: `chatcmpl-${runId}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: r.model ?? p.model ?? deps.config.turns.agentType,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: r.assistantText },
            finish_reason: 'stop',
          },
        ],
      };
    }
    if (got.status === 'gone' || Date.now() >= deadline) {
      throw new GatewayError('RUN_UNAVAILABLE', `the agent did not answer (run ${runId})`);
    }
  }
}
