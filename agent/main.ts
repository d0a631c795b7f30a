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
 *   ARMORCLAW_AGENT_MODE    default | crash-after-ms:<n> (exit 1 after n ms) | no-ack (never acks)
 *   ARMORCLAW_AUDIO_SOCKET  default /run/armorclaw/audio.sock
 *   ARMORCLAW_AGENT_AUDIO   echo (default: caller frames straight back) | tone:<hz> (steady tone)
 *   ARMORCLAW_AGENT_MODEL   the model to ask; default per provider: gpt-4o-mini (openai),
 *                           claude-3-5-haiku-latest (anthropic), gemini-1.5-flash (google),
 *                           grok-2-latest (xai), openai/gpt-4o-mini (openrouter)
 *
 * Exit codes: 0 stopped by signal, 1 crash (or crash-after-ms), 2 bad configuration,
 * 3 secrets file missing or invalid.
 */
import { Agent, failOnSecrets } from './agent';
import { AgentAudio } from './audio';
import { ConfigError, loadConfig, type AgentConfig } from './config';
import { readCredentials, SecretsError, type Credentials } from './credentials';
import { startForwarder, type LoopbackForwarder } from './forwarder';
import { Llm } from './llm';
import { errorCode, log } from './log';
import { agentMethods } from './methods';

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
  const onSignal = (signal: string) => {
    audio.endAll();
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
