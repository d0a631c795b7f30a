/**
 * A short, stable, non-cryptographic hash (FNV-1a over UTF-8, 64 bits, first 12 hex digits) for
 * readable names derived from free text: a gateway session's agent container, a turn's. Pure
 * arithmetic, so workflows (whose sandbox has no `node:crypto`), activities and the gateway
 * compute the same name. Not for secrets: it hides nothing.
 */
export function shortHash(text: string): string {
  let h = 0xcbf29ce484222325n;
  const add = (byte: number) => {
    h = ((h ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  };
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) add(c);
    else if (c < 0x800) [0xc0 | (c >> 6), 0x80 | (c & 63)].forEach(add);
    else if (c < 0x10000) [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)].forEach(add);
    else
      [0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)].forEach(
        add,
      );
  }
  return h.toString(16).padStart(16, '0').slice(0, 12);
}
