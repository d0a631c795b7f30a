/**
 * The workflow bundle's source map at the grain of source lines (scripts/lib/source-map.ts):
 * base64 VLQ both ways, and a cut that still places every position on its source line.
 */
import { transformSync } from 'esbuild';
import fc from 'fast-check';
import {
  decodeMappings,
  encodeMappings,
  byLine,
  type SourceMap,
} from '../../scripts/lib/source-map';

test('segments encode as the format says: relative values in base64 VLQ', () => {
  // 16 is "gB" (a continuation digit, then 1 × 32 / 2); -1 is "D"; each line restarts columns.
  expect(
    encodeMappings([
      [
        { column: 16, source: 0, line: 0, originalColumn: 0 },
        { column: 20, source: 0, line: 0, originalColumn: 0 },
      ],
      [{ column: 0, source: 0, line: 1, originalColumn: 0, name: 0 }, { column: 3 }],
    ]),
  ).toBe('gBAAA,IAAA;AACAA,G');
  expect(decodeMappings('gBAAA,IAAA;AACAA,G')[1]).toEqual([
    { column: 0, source: 0, line: 1, originalColumn: 0, name: 0 },
    { column: 3 },
  ]);
  expect(() => decodeMappings('AA!A')).toThrow(/not a base64 VLQ digit/);
  expect(() => decodeMappings('g')).toThrow(/cut short/);
});

test("esbuild's own map decodes and encodes back to itself", () => {
  const out = transformSync(
    'export function add(a, b) {\n  const sum = a + b;\n  return sum * 2;\n}\nconsole.log(add(1, -2));\n',
    { loader: 'js', minify: true, sourcemap: 'external', sourcefile: '/src/add.js' },
  );
  const map = JSON.parse(out.map) as SourceMap;
  expect(map.mappings.length).toBeGreaterThan(10);
  expect(encodeMappings(decodeMappings(map.mappings))).toBe(map.mappings);
});

/** Every position of a map (unmapped ones too), with its source and name spelled out. */
function positions(map: SourceMap) {
  return decodeMappings(map.mappings).flatMap((segments, line) =>
    segments.map((s) => ({
      line,
      column: s.column,
      source: s.source === undefined ? undefined : map.sources[s.source],
      originalLine: s.line,
      name: s.name === undefined ? undefined : map.names[s.name],
    })),
  );
}

test('by line: of a run of positions into one source line the first is kept, and no names', () => {
  const sources = ['/app/workflows/run.ts', '/app/node_modules/sdk/a.js'];
  const segment = fc.record({
    gap: fc.integer({ min: 1, max: 40 }),
    source: fc.option(fc.integer({ min: 0, max: sources.length - 1 }), { nil: undefined }),
    line: fc.integer({ min: 0, max: 4 }),
    originalColumn: fc.integer({ min: 0, max: 120 }),
    name: fc.option(fc.constant(0), { nil: undefined }),
  });
  fc.assert(
    fc.property(fc.array(fc.array(segment, { maxLength: 10 }), { maxLength: 6 }), (raw) => {
      const lines = raw.map((segs) => {
        let column = 0;
        return segs.map((s) => {
          column += s.gap;
          return s.source === undefined
            ? { column }
            : {
                column,
                source: s.source,
                line: s.line,
                originalColumn: s.originalColumn,
                ...(s.name === undefined ? {} : { name: s.name }),
              };
        });
      });
      const map: SourceMap = { version: 3, sources, names: ['x'], mappings: encodeMappings(lines) };
      const cut = byLine(map);
      expect(cut).toMatchObject({ version: 3, sources, names: [] });
      const before = positions(map);
      const after = positions(cut);
      // Every position of the map is still placed on its source and line: by the last kept
      // position at or before it on the same generated line.
      for (const p of before) {
        const placed = after.filter((a) => a.line === p.line && a.column <= p.column).at(-1);
        expect(placed?.source).toBe(p.source);
        expect(placed?.originalLine).toBe(p.originalLine);
      }
      // Kept: each run's first; consecutive mapped positions never share a source line.
      const unnamed = before.map((p) => ({ ...p, name: undefined }));
      for (const [i, a] of after.entries()) {
        expect(unnamed).toContainEqual(a);
        const prev = after[i - 1];
        if (a.source !== undefined && prev?.line === a.line) {
          expect([prev.source, prev.originalLine]).not.toEqual([a.source, a.originalLine]);
        }
      }
      expect(after.every((a) => a.name === undefined)).toBe(true);
    }),
  );
});
