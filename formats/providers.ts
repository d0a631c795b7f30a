/**
 * The model providers the bridge knows: a stored key belongs to one of them, and the provider
 * proxy speaks each one's API. Here (import-free) because the keystore, the settings and the
 * proxy all name them.
 */
export const PROVIDERS = ['openai', 'anthropic', 'openrouter', 'google', 'xai'] as const;
export type Provider = (typeof PROVIDERS)[number];

/** Whether `p` names one of PROVIDERS. */
export function isProvider(p: unknown): p is Provider {
  return typeof p === 'string' && (PROVIDERS as readonly string[]).includes(p);
}
