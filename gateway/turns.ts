/**
 * What `agent.run` and `cron.add` share: the agent a gateway turn runs on (the settings'
 * `gateway.agent.*`, checked against the keystore when a turn is asked for), and the limits on a
 * turn's messages (`gateway.session.*`), refused with BAD_REQUEST naming the limit.
 */
import { agentTypeRun, type BridgeConfig } from '../config/load';
import { toMicroUsd } from '../services/budget';
import { KeystoreError, type Keystore } from '../services/keystore';
import type { AgentTurnInput, TurnMessage } from '../workflows/definitions';
import { GatewayError, badRequest } from './protocol';

export interface TurnDeps {
  config: Pick<
    BridgeConfig,
    'turns' | 'containers' | 'budget' | 'hostId' | 'hostGraceMs' | 'temporal'
  >;
  keystore: Pick<Keystore, 'get'>;
}

const AGENT_TYPE = /^[a-z0-9][a-z0-9_.-]{0,31}$/;

/**
 * The container run a turn's agent starts with, or RUN_UNAVAILABLE when the bridge has no usable
 * credential for gateway turns (unset, unknown or expired `gateway.agent.key_id`): a setting of
 * the bridge, not a fault of the request.
 */
export function turnRunTemplate(deps: TurnDeps): AgentTurnInput['run'] {
  const { turns, containers } = deps.config;
  const keyId = turns.keyId;
  if (!keyId) {
    throw new GatewayError(
      'RUN_UNAVAILABLE',
      'no agent credential is configured for gateway turns: set gateway.agent.key_id to a stored key',
    );
  }
  try {
    deps.keystore.get(keyId);
  } catch (err) {
    if (err instanceof KeystoreError && ['not_found', 'invalid', 'expired'].includes(err.code)) {
      throw new GatewayError(
        'RUN_UNAVAILABLE',
        `the credential of gateway turns (gateway.agent.key_id ${keyId}) is ${err.code === 'expired' ? 'expired' : 'not stored'}`,
      );
    }
    throw err;
  }
  const agentType = turns.agentType;
  if (!AGENT_TYPE.test(agentType)) {
    throw new GatewayError(
      'RUN_UNAVAILABLE',
      'gateway.agent.agent_type is not a valid agent type name',
    );
  }
  const { image, memoryBytes } = agentTypeRun(containers, agentType);
  return {
    keyId,
    agentType,
    image,
    ...(memoryBytes !== undefined ? { memoryBytes } : {}),
    hostId: deps.config.hostId,
    hostGraceMs: deps.config.hostGraceMs,
    ttlMs: turns.agentTtlMs,
    secretsDeadlineMs: containers.secretsDeadlineMs,
    healthCheckIntervalMs: containers.healthCheckIntervalMs,
    network: containers.network,
    secretsMode: containers.secretsMode,
    limitMicroUsd:
      containers.secretsMode === 'proxy' ? toMicroUsd(deps.config.budget.runLimitUsd) : 0,
  };
}

/** Refuses messages past `gateway.session.*`, naming the limit and the message. */
export function checkTurnMessages(
  messages: readonly TurnMessage[],
  limits: { maxMessagesPerTurn: number; maxMessageChars: number },
): void {
  if (messages.length > limits.maxMessagesPerTurn) {
    throw badRequest(
      `messages: at most ${limits.maxMessagesPerTurn} messages per turn (gateway.session.max_messages_per_turn), got ${messages.length}`,
    );
  }
  messages.forEach((m, i) => {
    if (m.content.length > limits.maxMessageChars) {
      throw badRequest(
        `messages[${i}].content: at most ${limits.maxMessageChars} characters (gateway.session.max_message_chars), got ${m.content.length}`,
      );
    }
  });
}
