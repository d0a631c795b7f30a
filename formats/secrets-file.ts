/**
 * The secrets file the bridge writes for each run (`/run/secrets/credentials.json` inside the
 * container, 0400 on the bridge's tmpfs, removed once the agent acknowledges it) and the
 * provider endpoint that goes with it. Both sides read this module: the bridge writes the file
 * (activities/secrets.ts) and serves the endpoint (proxy/), the reference agent reads the file
 * and reaches the endpoint (agent/).
 *
 * Two modes (`start`'s `secrets_mode`):
 * - `proxy`: the file holds the provider, a placeholder in place of the key, and where the
 *   bridge's provider proxy is reached. The proxy listens on `provider.sock` in the run's socket
 *   directory (`/run/armorclaw/provider.sock` inside); an agent whose SDK speaks only TCP runs a
 *   loopback forwarder from 127.0.0.1:PROXY_LOOPBACK_PORT to that socket, and `base_url` names
 *   that forwarder. The real key never enters the container.
 * - `file`: the file holds the real key (`token`), for agents that must call their provider
 *   themselves over a network the operator opened.
 */

export const SECRETS_MODES = ['proxy', 'file'] as const;
export type SecretsMode = (typeof SECRETS_MODES)[number];

/** Stands in for the key in `proxy` mode; the proxy drops it and attaches the real one. */
export const PROXY_PLACEHOLDER_TOKEN = 'armorclaw-proxy-placeholder';

/** The proxy's socket, beside the run's bridge socket in its mounted directory. */
export const PROXY_SOCKET_NAME = 'provider.sock';
/** Where the run's socket directory is mounted inside the container. */
export const CONTAINER_SOCKET_DIR = '/run/armorclaw';
/** The loopback port an in-container forwarder listens on for SDKs that speak only TCP. */
export const PROXY_LOOPBACK_PORT = 8089;

/** The secrets file's content. */
export type SecretsFile =
  | {
      mode: 'file';
      key_id: string;
      provider: string;
      /** The real key. */
      token: string;
    }
  | {
      mode: 'proxy';
      key_id: string;
      provider: string;
      /** PROXY_PLACEHOLDER_TOKEN: what an SDK that insists on a key may be given. */
      token: string;
      /** The provider proxy's socket inside the container. */
      proxy_socket: string;
      /** The base URL an SDK is given: the loopback forwarder plus the provider's API prefix. */
      base_url: string;
    };

/** The base URL for an SDK of `provider` in proxy mode (`sdkBasePath`: "/v1" for OpenAI's). */
export const proxyBaseUrl = (sdkBasePath: string): string =>
  `http://127.0.0.1:${PROXY_LOOPBACK_PORT}${sdkBasePath}`;
