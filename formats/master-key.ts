/**
 * The text forms of the keystore's 32-byte master key: 64 hex characters, or base64 (padded or
 * base64url) of 32 bytes.
 *
 * Why formats/: config/ checks ARMORCLAW_MASTER_KEY when it loads, and the keystore (services/)
 * decodes the same value and key files; neither may import the other. Modules here import
 * nothing at all, so any layer may use them without reaching up or sideways.
 */

/** A master key given as 64 hex characters or as base64 of 32 bytes, or null if it is neither. */
export function decodeMasterKey(text: string): Buffer | null {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/]{43}=$/.test(t) || /^[A-Za-z0-9_-]{43}$/.test(t)) {
    const b = Buffer.from(t, t.includes('=') || /[+/]/.test(t) ? 'base64' : 'base64url');
    return b.length === 32 ? b : null;
  }
  return null;
}
