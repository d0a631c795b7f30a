/**
 * Peer addresses as the gateway's guards see them: IPv4-mapped IPv6 (`::ffff:10.0.0.1`, what a
 * dual-stack socket reports) reduced to plain IPv4, and loopback as the spec means it.
 */

/** `::ffff:a.b.c.d` → `a.b.c.d`; anything else as it is. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return '';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address.toLowerCase();
}

/** Loopback: 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopbackAddress(address: string | undefined): boolean {
  const a = normalizeAddress(address);
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a);
}
