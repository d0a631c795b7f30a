/**
 * Inbound risk scoring (docs/gateway.md, "Risk rules"): each rule that matches a request adds
 * its score; a request scoring RISK_BLOCK_THRESHOLD or more is refused with RISK_BLOCKED before
 * its method runs. The rules look at the params' text and shape and at the caller's address;
 * they are cheap (one walk over the params) because they run on every request.
 */

/** The spec's threshold: a score of 90 or more blocks the request. */
export const RISK_BLOCK_THRESHOLD = 90;

export interface RiskRule {
  id: string;
  score: number;
  doc: string;
}

/** Every rule with its score; a rule counts once per request unless its doc says otherwise. */
export const RISK_RULES = {
  prompt_injection: {
    id: 'prompt_injection',
    score: 60,
    doc: 'A known prompt-injection phrase in a text param ("ignore previous instructions", "reveal your system prompt", ...): 60 for the first phrase, +30 for each further distinct one.',
  },
  credential_material: {
    id: 'credential_material',
    score: 50,
    doc: 'Text that looks like a credential (a provider API key, a private key block, a cloud or chat token, a gateway token). Not scored for methods whose params carry a secret by design (store_key, matrix.login).',
  },
  control_characters: {
    id: 'control_characters',
    score: 30,
    doc: 'Control characters other than tab, newline and carriage return (terminal escapes, NUL).',
  },
  bidi_override: {
    id: 'bidi_override',
    score: 40,
    doc: 'Unicode bidirectional overrides or isolates (U+202A-U+202E, U+2066-U+2069), which make text read differently than it runs.',
  },
  deep_params: {
    id: 'deep_params',
    score: 90,
    doc: 'Params nested deeper than 16 levels: no method takes such a shape.',
  },
  many_params: {
    id: 'many_params',
    score: 50,
    doc: 'More than 10,000 values in the params.',
  },
  long_text: {
    id: 'long_text',
    score: 20,
    doc: 'A single text param longer than 100,000 characters.',
  },
  auth_failures: {
    id: 'auth_failures',
    score: 40,
    doc: 'The address has failed authentication 5 times or more in the last 5 minutes.',
  },
} as const satisfies Record<string, RiskRule>;

const INJECTION_PHRASES: readonly RegExp[] = [
  /\bignore (?:all |any )?(?:the )?(?:previous|prior|above|earlier) (?:instructions|prompts?|rules)\b/i,
  /\bdisregard (?:all |any )?(?:the )?(?:previous|prior|above|earlier|system) (?:instructions|prompts?|rules)\b/i,
  /\bforget (?:all |everything )?(?:you were told|your (?:instructions|rules))\b/i,
  /\b(?:reveal|print|show|repeat|leak) (?:me )?(?:your|the) (?:system|hidden|initial) (?:prompt|instructions)\b/i,
  /\byou are now (?:in )?(?:dan|developer mode|jailbroken|unrestricted)\b/i,
  /\b(?:override|bypass|disable) (?:your |the |all )?(?:safety|security|guard) ?(?:rules|policies|filters|guards)?\b/i,
  /<\|(?:im_start|im_end|system)\|>/i,
  /\[\/?(?:INST|SYS)\]/,
];

const CREDENTIAL_PATTERNS: readonly RegExp[] = [
  /\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}/,
  /\bAKIA[0-9A-Z]{16}\b/,
  /\bgh[pousr]_[A-Za-z0-9]{36,}\b/,
  /\bxox[abprs]-[A-Za-z0-9-]{10,}/,
  /\bAIza[0-9A-Za-z_-]{35}\b/,
  /-----BEGIN (?:[A-Z ]+ )?PRIVATE KEY-----/,
  /\bacgw_[A-Za-z0-9_-]{40,}/,
  /\bsyt_[A-Za-z0-9_]{20,}/,
];

/**
 * Methods whose params carry a secret by design: credential_material is not scored for them.
 * `incident.bundle` takes the leaked tokens to revoke: blocking it would keep them alive.
 */
const SECRET_CARRYING_METHODS = new Set(['store_key', 'matrix.login', 'incident.bundle']);

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
const BIDI = /[\u202a-\u202e\u2066-\u2069]/;
const MAX_DEPTH = 16;
const MAX_VALUES = 10_000;
const LONG_TEXT = 100_000;

export interface RiskContext {
  /** Authentication failures from the caller's address in the last 5 minutes. */
  recentAuthFailures: number;
}

export interface RiskScore {
  score: number;
  /** Ids of the rules that matched. */
  rules: string[];
}

/** Scores one request; the caller blocks it at RISK_BLOCK_THRESHOLD or more. */
export function scoreInboundRisk(method: string, params: unknown, ctx: RiskContext): RiskScore {
  const strings: string[] = [];
  let values = 0;
  let maxDepth = 0;
  const walk = (v: unknown, depth: number): void => {
    values++;
    if (depth > maxDepth) maxDepth = depth;
    if (depth > MAX_DEPTH || values > MAX_VALUES) return;
    if (typeof v === 'string') strings.push(v);
    else if (Array.isArray(v)) for (const item of v) walk(item, depth + 1);
    else if (v !== null && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        strings.push(k);
        walk(item, depth + 1);
      }
    }
  };
  walk(params, 0);

  const rules: string[] = [];
  let score = 0;
  const add = (rule: RiskRule, points = rule.score) => {
    rules.push(rule.id);
    score += points;
  };
  const phrases = new Set<number>();
  let credential = false;
  let control = false;
  let bidi = false;
  let long = false;
  for (const s of strings) {
    if (s.length > LONG_TEXT) long = true;
    if (s.length < 8) {
      if (!control && CONTROL.test(s)) control = true;
      continue;
    }
    INJECTION_PHRASES.forEach((re, i) => {
      if (!phrases.has(i) && re.test(s)) phrases.add(i);
    });
    if (!credential && CREDENTIAL_PATTERNS.some((re) => re.test(s))) credential = true;
    if (!control && CONTROL.test(s)) control = true;
    if (!bidi && BIDI.test(s)) bidi = true;
  }
  if (phrases.size > 0) {
    add(RISK_RULES.prompt_injection, RISK_RULES.prompt_injection.score + 30 * (phrases.size - 1));
  }
  if (credential && !SECRET_CARRYING_METHODS.has(method)) add(RISK_RULES.credential_material);
  if (control) add(RISK_RULES.control_characters);
  if (bidi) add(RISK_RULES.bidi_override);
  if (maxDepth > MAX_DEPTH) add(RISK_RULES.deep_params);
  if (values > MAX_VALUES) add(RISK_RULES.many_params);
  if (long) add(RISK_RULES.long_text);
  if (ctx.recentAuthFailures >= 5) add(RISK_RULES.auth_failures);
  return { score, rules };
}

const FAILURE_WINDOW_MS = 5 * 60_000;
const MAX_TRACKED_ADDRESSES = 10_000;

/** Authentication failures per address over the last 5 minutes (the auth_failures rule). */
export class AuthFailureTracker {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly nowMs: () => number = () => Date.now()) {}

  record(address: string): void {
    const now = this.nowMs();
    if (!this.failures.has(address) && this.failures.size >= MAX_TRACKED_ADDRESSES) {
      // Oldest first (insertion order): an address flood costs memory, never correctness.
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
    const list = this.recent(address, now);
    list.push(now);
    // Only whether the count reaches the rule's 5 matters; keep a bounded tail.
    if (list.length > 20) list.splice(0, list.length - 20);
    this.failures.set(address, list);
  }

  count(address: string): number {
    if (this.failures.size === 0) return 0;
    return this.recent(address, this.nowMs()).length;
  }

  private recent(address: string, now: number): number[] {
    const list = this.failures.get(address);
    if (!list) return [];
    const fresh = list.filter((t) => now - t < FAILURE_WINDOW_MS);
    if (fresh.length === 0) this.failures.delete(address);
    else this.failures.set(address, fresh);
    return fresh;
  }
}
