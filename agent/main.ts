/**
 * The ArmorClaw reference agent: the program in the default image `armorclaw/agent:v1`.
 *
 * 1. Reads its credential from the secrets file (`/run/secrets/credentials.json`, a 0400 file on
 *    the bridge's tmpfs, bind-mounted read-only; shape in formats/secrets-file.ts) and keeps the
 *    token in memory only. In `proxy` mode the token is a placeholder and the file names the
 *    bridge's provider proxy socket (`/run/armorclaw/provider.sock`); in `file` mode (or with no
 *    `mode`) the token is the real key.
 * 2. Connects to its bridge socket (`/run/armorclaw/bridge.sock`; the bridge mounts the socket's
 *    DIRECTORY, so a restarted bridge's new socket appears at the same path) and speaks JSON-RPC
 *    2.0 over it, one JSON object per line each way, in both directions:
 *      agent → bridge: `secrets.ack` {key_id} (so the bridge can delete the file at once),
 *                      `notify` {kind, message}, `heartbeat` {seq, uptime_ms};
 *      bridge → agent: `ping`, `agent.echo` {text}, `agent.ask` {question} → {answer, model},
 *                      `agent.turn` {turn_id, session_id, messages: [{role, content}]} →
 *                      {text, model?} (a gateway turn: one chat completion over the messages
 *                      in proxy mode, `echo: <last user message>` in file mode; answered once
 *                      per turn_id while this process lives, so a redelivery after a bridge
 *                      restart gets the first answer; a restarted agent asks its model again),
 *                      `matrix.event` {seq, event} (answered by `matrix.ack`/`matrix.send`:
 *                      `!echo <text>` and `!ask <question>` get a reply in the room), and the
 *                      notifications `audio.start` {session_id, format} / `audio.end`
 *                      {session_id} of a voice call.
 *    Agent → bridge messages are requests (with an id) so a silent bridge is noticed.
 * 3. Asks its model (agent/llm.ts) for `agent.ask` and `!ask`: one streamed chat completion. In
 *    proxy mode over the proxy socket, the real key staying with the bridge; in file mode at the
 *    provider's public origin, which a network-none container cannot reach (the answer says so).
 *    In proxy mode it also runs the loopback forwarder (agent/forwarder.ts) on
 *    127.0.0.1:8089 → the proxy socket, for SDKs that speak only TCP (`base_url` names it); a
 *    port it cannot bind is logged and the agent runs on.
 * 4. Voice (agent/audio.ts): on `audio.start` it connects to its audio socket
 *    (`/run/armorclaw/audio.sock`, PCM frames as in media/README.md) and echoes the caller or
 *    plays a tone; once a second it notifies `audio_in frequency_hz=<f> rms=<r> frames=<n>` about
 *    what it heard; `audio.end` or an END frame closes the audio socket.
 * 5. Reconnects with backoff (100 ms doubling to 2 s) when the connection goes away.
 * 6. On SIGTERM/SIGINT: notifies `stopping`, closes, exits 0 within a second.
 * 7. With ARMORCLAW_AGENT_BACKEND=openclaw (the image armorclaw/openclaw:<version>, see
 *    agent/openclaw.ts and docs/openclaw.md): proxy mode only (file mode: error notify, exit 3);
 *    writes OpenClaw's config for the run into its tmpfs, starts the forwarder and OpenClaw's
 *    gateway as a child process, says `ready` only once the gateway answers /readyz (it acks
 *    and heartbeats meanwhile), sends every room text message (one OpenClaw session per room),
 *    `agent.ask` and `agent.turn` (one OpenClaw session per gateway session, `user:
 *    session:<session_id>`) to OpenClaw, and exits 1 with an error notify if the gateway dies or is
 *    not ready within ARMORCLAW_OPENCLAW_READY_MS. SIGTERM stops the gateway first.
 *
 * Whatever a container prints lands in the host's Docker log: this program prints one-line
 * status messages and never the token or anything derived from it, nor a question or an answer
 * (their lengths only). Node built-ins only (plus formats/secrets-file.ts, the bridge's own
 * media/ framing and analysis files and rpc/framer.ts); bundled into one file by
 * scripts/build-agent-image.sh.
 *
 * The pieces: config.ts (environment), credentials.ts (the secrets file), rpc-peer.ts (JSON-RPC
 * on the bridge socket), methods.ts (what the bridge may call), agent.ts (connection life),
 * llm.ts and sse.ts (the model), forwarder.ts (loopback to the proxy), audio.ts (voice), log.ts
 * (output).
 *
 * Environment:
 *   ARMORCLAW_SECRETS_FILE  default /run/secrets/credentials.json
 *   ARMORCLAW_BRIDGE_SOCKET default /run/armorclaw/bridge.sock
 *   ARMORCLAW_HEARTBEAT_MS  default 5000
 *   ARMORCLAW_POOLED        1: started ahead by the bridge's warm pool; waits for the secrets
 *                           file (a run taking the container writes it) before anything else
 *   ARMORCLAW_AGENT_MODE    default | crash-after-ms:<n> (exit 1 after n ms) | no-ack (never acks)
 *   ARMORCLAW_AUDIO_SOCKET  default /run/armorclaw/audio.sock
 *   ARMORCLAW_AGENT_AUDIO   echo (default: caller frames straight back) | tone:<hz> (steady tone)
 *   ARMORCLAW_AGENT_MODEL   the model to ask; default per provider: gpt-4o-mini (openai),
 *                           claude-3-5-haiku-latest (anthropic), gemini-1.5-flash (google),
 *                           grok-2-latest (xai), openai/gpt-4o-mini (openrouter)
 *   ARMORCLAW_AGENT_BACKEND reference (default: the agent's own model calls) | openclaw
 *   ARMORCLAW_OPENCLAW_ENTRY    default /opt/openclaw/node_modules/openclaw/openclaw.mjs
 *   ARMORCLAW_OPENCLAW_TEMPLATE default /opt/armorclaw/openclaw.json
 *   ARMORCLAW_OPENCLAW_DIR      default /tmp/armorclaw-openclaw (the run's config, 0600)
 *   ARMORCLAW_OPENCLAW_READY_MS default 90000
 *
 * Exit codes: 0 stopped by signal, 1 crash (or crash-after-ms; with OpenClaw: its gateway died
 * or was not ready in time), 2 bad configuration, 3 secrets file missing or invalid (with
 * OpenClaw also: file mode, or a provider OpenClaw is not set up for).
 */
import { readFileSync } from 'node:fs';
import { Agent, failBeforeRun, failOnSecrets } from './agent';
import { AgentAudio } from './audio';
import { ConfigError, loadConfig, type AgentConfig } from './config';
import { readCredentials, SecretsError, waitForFile, type Credentials } from './credentials';
import { startForwarder, type LoopbackForwarder } from './forwarder';
import { Llm } from './llm';
import { errorCode, log } from './log';
import { agentMethods } from './methods';
import {
  gatewayPort,
  OpenClawChat,
  OpenClawGateway,
  OpenClawUnsupported,
  writeOpenClawConfig,
} from './openclaw';

/**
 * The OpenClaw backend (ARMORCLAW_AGENT_BACKEND=openclaw): proxy mode only; writes the run's
 * OpenClaw config, starts the forwarder and the gateway, says `ready` once the gateway is, and
 * ends the agent (exit 1) if the gateway dies.
 */
async function runOpenClaw(
  config: AgentConfig,
  credentials: Credentials,
  audio: AgentAudio,
  onStop: (stop: (signal: string) => Promise<void>) => void,
): Promise<void> {
  const fallback = agentMethods(audio);
  if (credentials.mode !== 'proxy') {
    return failOnSecrets(
      config,
      fallback,
      'OpenClaw runs in proxy mode only (start with secrets_mode "proxy"); this run is in file mode',
    );
  }
  let written: ReturnType<typeof writeOpenClawConfig>;
  try {
    const template: unknown = JSON.parse(readFileSync(config.openclaw.template, 'utf8'));
    written = writeOpenClawConfig(config.openclaw.dir, template, credentials, config.model);
  } catch (err) {
    if (err instanceof OpenClawUnsupported) return failOnSecrets(config, fallback, err.message);
    return failBeforeRun(
      config,
      fallback,
      `openclaw: cannot write its config (${errorCode(err)})`,
      1,
    );
  }
  log(`openclaw: config for ${credentials.provider} ${written.model} written`);

  let forwarder: LoopbackForwarder;
  try {
    forwarder = await startForwarder(credentials.proxySocket);
    log(`forwarder: 127.0.0.1:${forwarder.port} → provider proxy`);
  } catch (err) {
    // OpenClaw reaches its model only through it.
    return failBeforeRun(config, fallback, `forwarder: not started (${errorCode(err)})`, 1);
  }

  const port = gatewayPort(written.config);
  const gateway = new OpenClawGateway({
    node: process.execPath,
    entry: config.openclaw.entry,
    configPath: written.file,
    port,
    readyTimeoutMs: config.openclaw.readyTimeoutMs,
    env: process.env,
    // Called on the gateway's output only, once `chat` exists.
    recent: (): Iterable<string> => chat.recent(),
  });
  const chat = new OpenClawChat({
    target: { host: '127.0.0.1', port },
    model: written.model,
    ready: gateway.ready,
  });
  const agent = new Agent(config, credentials, agentMethods(audio, undefined, chat), {
    readyGate: true,
  });
  onStop(async (signal) => {
    await gateway.stop();
    await forwarder.close();
    await agent.stop(signal);
  });
  gateway.onExit((exit) => {
    if (gateway.isStopping) return;
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code ?? '?'}`;
    void agent.fail(`openclaw: the gateway exited (${how})`, 1);
  });
  gateway.start();
  gateway.ready.then(
    () => agent.markReady(),
    (err: unknown) => {
      if (gateway.isStopping) return;
      void gateway
        .stop(500)
        .finally(() =>
          agent.fail(`openclaw: ${err instanceof Error ? err.message : errorCode(err)}`, 1),
        );
    },
  );
  await agent.run();
}

async function main(): Promise<void> {
  let config: AgentConfig;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    log(`configuration: ${err instanceof ConfigError ? err.message : errorCode(err)}`);
    process.exit(2);
  }
  const audio = new AgentAudio({
    socketPath: config.audioSocketPath,
    mode: config.audioMode,
    log,
  });
  // Until the agent runs there is nothing to say goodbye to.
  let agent: Agent | null = null;
  let forwarder: LoopbackForwarder | null = null;
  // The OpenClaw backend stops its gateway first.
  let backendStop: ((signal: string) => Promise<void>) | null = null;
  const onSignal = (signal: string) => {
    audio.endAll();
    if (backendStop) return void backendStop(signal);
    void forwarder?.close();
    return agent ? void agent.stop(signal) : process.exit(0);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  const mode = config.mode;
  if (mode.kind === 'crash-after-ms') {
    setTimeout(() => {
      log(`crash-after-ms: exiting 1 after ${mode.ms} ms`);
      process.exit(1);
    }, mode.ms);
  }

  if (config.pooled) {
    log('pooled: waiting for a run');
    await waitForFile(config.secretsFile);
  }
  let credentials: Credentials;
  try {
    credentials = readCredentials(config.secretsFile);
  } catch (err) {
    return failOnSecrets(
      config,
      agentMethods(audio),
      err instanceof SecretsError ? err.message : errorCode(err),
    );
  }
  log(
    `credential loaded (key_id ${credentials.keyId}${credentials.provider ? `, provider ${credentials.provider}` : ''}, ${credentials.mode} mode)`,
  );

  if (config.backend === 'openclaw') {
    return runOpenClaw(config, credentials, audio, (stop) => (backendStop = stop));
  }

  if (credentials.mode === 'proxy') {
    try {
      forwarder = await startForwarder(credentials.proxySocket);
      log(`forwarder: 127.0.0.1:${forwarder.port} → provider proxy`);
    } catch (err) {
      // Only TCP-bound SDKs need it; the agent's own model calls use the socket directly.
      log(`forwarder: not started (${errorCode(err)}); running without it`);
    }
  }

  const llm = new Llm(credentials, { model: config.model });
  agent = new Agent(config, credentials, agentMethods(audio, llm));
  await agent.run();
}

// An unexpected error must not print the token: report its kind only.
process.on('uncaughtException', (err) => {
  log(`fatal: ${errorCode(err)}`);
  process.exit(1);
});
process.on('unhandledRejection', (err) => {
  log(`fatal: ${errorCode(err)}`);
  process.exit(1);
});

// Failures inside main end the process through the handlers above.
void main();
