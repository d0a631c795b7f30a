/**
 * What the provider proxy knows about each provider: where its API lives, how the real key is
 * attached, which API paths an agent may reach through the proxy, and how the provider shapes
 * an error body (so a refusal from the proxy reads to the agent's SDK like one from the
 * provider itself).
 *
 * The proxy's path space mirrors the provider's: an agent's request for
 * `/v1/chat/completions` goes to `<base URL>/v1/chat/completions`. `sdkBasePath` is what an
 * SDK's base URL needs after the proxy's origin (OpenAI's SDK expects `/v1` in it, Anthropic's
 * and Google's do not).
 */
import { PROVIDERS, type Provider } from '../services/keystore';

export { PROVIDERS, type Provider };

/** Why the proxy answers a request itself instead of forwarding it. */
export type RefusalKind =
  | 'inactive'
  | 'not_found'
  | 'wrong_provider'
  | 'no_credential'
  | 'budget'
  | 'cut'
  | 'too_large'
  | 'upstream_unreachable'
  | 'upstream_timeout';

/** The HTTP status each refusal is answered with. */
export const REFUSAL_STATUS: Readonly<Record<RefusalKind, number>> = {
  inactive: 403,
  not_found: 404,
  wrong_provider: 403,
  no_credential: 403,
  budget: 429,
  cut: 429,
  too_large: 413,
  upstream_unreachable: 502,
  upstream_timeout: 504,
};

/** Which API family a path belongs to: decides request rewriting and usage reading. */
export type Endpoint = 'chat' | 'responses' | 'messages' | 'embeddings' | 'models' | 'generate';

interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  endpoint: Endpoint;
}

/** How one provider is reached and how it speaks errors. */
export interface ProviderSpec {
  name: Provider;
  /** The provider's API origin (https), without a path. */
  defaultBaseUrl: string;
  /** The path an SDK's base URL needs after the proxy's origin. */
  sdkBasePath: string;
  /** The headers that carry the real key upstream. */
  credentialHeaders(token: string): Record<string, string>;
  /** Headers the proxy sets when the agent did not send them. */
  defaultHeaders: Readonly<Record<string, string>>;
  routes: readonly Route[];
  errorStyle: 'openai' | 'anthropic' | 'google';
}

// Model ids appear in paths (`models/gpt-4o`, fine-tunes as `ft:gpt-4o:org::id`); nothing in
// them may be a slash, a dot segment or a percent escape, so a path cannot climb out of the API.
const MODEL = '[A-Za-z0-9][A-Za-z0-9._:-]{0,255}';
const GOOGLE_MODEL = '[A-Za-z0-9][A-Za-z0-9._-]{0,255}';

const exact = (method: Route['method'], path: string, endpoint: Endpoint): Route => ({
  method,
  pattern: new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`),
  endpoint,
});

/** chat/completions, responses, embeddings and models under `prefix`, OpenAI's shapes. */
function openAiRoutes(prefix: string): Route[] {
  return [
    exact('POST', `${prefix}/chat/completions`, 'chat'),
    exact('POST', `${prefix}/responses`, 'responses'),
    exact('POST', `${prefix}/embeddings`, 'embeddings'),
    exact('GET', `${prefix}/models`, 'models'),
    { method: 'GET', pattern: new RegExp(`^${prefix}/models/${MODEL}$`), endpoint: 'models' },
  ];
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

export const PROVIDER_SPECS: Readonly<Record<Provider, ProviderSpec>> = {
  openai: {
    name: 'openai',
    defaultBaseUrl: 'https://api.openai.com',
    sdkBasePath: '/v1',
    credentialHeaders: bearer,
    defaultHeaders: {},
    routes: openAiRoutes('/v1'),
    errorStyle: 'openai',
  },
  openrouter: {
    name: 'openrouter',
    defaultBaseUrl: 'https://openrouter.ai',
    sdkBasePath: '/api/v1',
    credentialHeaders: bearer,
    defaultHeaders: {},
    routes: openAiRoutes('/api/v1'),
    errorStyle: 'openai',
  },
  xai: {
    name: 'xai',
    defaultBaseUrl: 'https://api.x.ai',
    sdkBasePath: '/v1',
    credentialHeaders: bearer,
    defaultHeaders: {},
    routes: openAiRoutes('/v1'),
    errorStyle: 'openai',
  },
  anthropic: {
    name: 'anthropic',
    defaultBaseUrl: 'https://api.anthropic.com',
    sdkBasePath: '',
    credentialHeaders: (token) => ({ 'x-api-key': token }),
    // The API refuses a request without a version; the agent's own choice passes through.
    defaultHeaders: { 'anthropic-version': '2023-06-01' },
    routes: [
      exact('POST', '/v1/messages', 'messages'),
      exact('GET', '/v1/models', 'models'),
      { method: 'GET', pattern: new RegExp(`^/v1/models/${MODEL}$`), endpoint: 'models' },
    ],
    errorStyle: 'anthropic',
  },
  google: {
    name: 'google',
    defaultBaseUrl: 'https://generativelanguage.googleapis.com',
    sdkBasePath: '',
    credentialHeaders: (token) => ({ 'x-goog-api-key': token }),
    defaultHeaders: {},
    routes: [
      {
        method: 'POST',
        pattern: new RegExp(
          `^/v1beta/models/${GOOGLE_MODEL}:(generateContent|streamGenerateContent)$`,
        ),
        endpoint: 'generate',
      },
      {
        method: 'POST',
        pattern: new RegExp(`^/v1beta/models/${GOOGLE_MODEL}:(embedContent|batchEmbedContents)$`),
        endpoint: 'embeddings',
      },
      exact('GET', '/v1beta/models', 'models'),
      {
        method: 'GET',
        pattern: new RegExp(`^/v1beta/models/${GOOGLE_MODEL}$`),
        endpoint: 'models',
      },
    ],
    errorStyle: 'google',
  },
};

/**
 * Request headers that carry a credential or a session, in any provider's dialect: none of the
 * agent's may reach upstream (the agent holds a placeholder at best).
 */
export const CREDENTIAL_HEADERS: readonly string[] = [
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'x-goog-api-key',
  'api-key',
  'cookie',
];

/** Query parameters that carry a credential (Google accepts `?key=`). */
export const CREDENTIAL_QUERY_PARAMS: readonly string[] = ['key', 'api_key'];

/** How `provider` may be asked `method path`: the endpoint, or why not. */
export function matchRoute(
  provider: Provider,
  method: string,
  pathname: string,
): { ok: true; endpoint: Endpoint } | { ok: false; kind: 'not_found' | 'wrong_provider' } {
  const hit = PROVIDER_SPECS[provider].routes.find(
    (r) => r.method === method && r.pattern.test(pathname),
  );
  if (hit) return { ok: true, endpoint: hit.endpoint };
  // Another provider's path is a misconfigured agent more often than an attack: say which.
  const elsewhere = PROVIDERS.some(
    (p) =>
      p !== provider &&
      PROVIDER_SPECS[p].routes.some((r) => r.method === method && r.pattern.test(pathname)),
  );
  return { ok: false, kind: elsewhere ? 'wrong_provider' : 'not_found' };
}

const OPENAI_TYPES: Record<RefusalKind, string> = {
  inactive: 'permission_error',
  not_found: 'invalid_request_error',
  wrong_provider: 'invalid_request_error',
  no_credential: 'permission_error',
  budget: 'insufficient_quota',
  cut: 'insufficient_quota',
  too_large: 'invalid_request_error',
  upstream_unreachable: 'server_error',
  upstream_timeout: 'server_error',
};

const ANTHROPIC_TYPES: Record<RefusalKind, string> = {
  inactive: 'permission_error',
  not_found: 'not_found_error',
  wrong_provider: 'not_found_error',
  no_credential: 'permission_error',
  budget: 'rate_limit_error',
  cut: 'rate_limit_error',
  too_large: 'request_too_large',
  upstream_unreachable: 'api_error',
  upstream_timeout: 'api_error',
};

const GOOGLE_STATUS: Record<RefusalKind, string> = {
  inactive: 'PERMISSION_DENIED',
  not_found: 'NOT_FOUND',
  wrong_provider: 'NOT_FOUND',
  no_credential: 'PERMISSION_DENIED',
  budget: 'RESOURCE_EXHAUSTED',
  cut: 'RESOURCE_EXHAUSTED',
  too_large: 'INVALID_ARGUMENT',
  upstream_unreachable: 'UNAVAILABLE',
  upstream_timeout: 'DEADLINE_EXCEEDED',
};

/** The error object `provider` would send for a refusal of `kind`. */
export function errorBody(provider: Provider, kind: RefusalKind, message: string): object {
  switch (PROVIDER_SPECS[provider].errorStyle) {
    case 'anthropic':
      return { type: 'error', error: { type: ANTHROPIC_TYPES[kind], message } };
    case 'google':
      return { error: { code: REFUSAL_STATUS[kind], message, status: GOOGLE_STATUS[kind] } };
    case 'openai':
      return { error: { message, type: OPENAI_TYPES[kind], code: kind } };
  }
}

/**
 * The same error as one server-sent event, for a stream already under way: each SDK raises an
 * error event it reads mid-stream, where a bare close would look like a network fault.
 */
export function errorEvent(provider: Provider, kind: RefusalKind, message: string): string {
  const data = JSON.stringify(errorBody(provider, kind, message));
  return PROVIDER_SPECS[provider].errorStyle === 'anthropic'
    ? `event: error\ndata: ${data}\n\n`
    : `data: ${data}\n\n`;
}
