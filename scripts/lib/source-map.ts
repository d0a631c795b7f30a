/**
 * Source maps (version 3) cut down to what a reader of stack traces needs, for the workflow
 * bundle (scripts/build.ts). A map's `mappings` is one segment per mapped position: generated
 * column, then source, original line and column and name, each in base64 VLQ and each relative
 * to the segment before it (the generated column to the one before it on the same line).
 */

export interface SourceMap {
  version: 3;
  file?: string;
  sources: string[];
  names: string[];
  mappings: string;
  sourcesContent?: Array<string | null>;
}

/** One segment, every field absolute. */
interface Segment {
  column: number;
  source?: number;
  line?: number;
  originalColumn?: number;
  name?: number;
}

const DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const VALUE_OF = new Map([...DIGITS].map((c, i) => [c, i]));

function decodeValues(text: string): number[] {
  const values: number[] = [];
  let value = 0;
  let shift = 0;
  for (const c of text) {
    const digit = VALUE_OF.get(c);
    if (digit === undefined) throw new Error(`not a base64 VLQ digit: ${JSON.stringify(c)}`);
    value += (digit & 31) * 2 ** shift;
    if (digit & 32) {
      shift += 5;
      continue;
    }
    values.push(value % 2 === 1 ? -(value - 1) / 2 : value / 2);
    value = 0;
    shift = 0;
  }
  if (shift !== 0) throw new Error('a base64 VLQ value is cut short');
  return values;
}

function encodeValue(n: number): string {
  let value = n < 0 ? -n * 2 + 1 : n * 2;
  let out = '';
  do {
    const digit = value % 32;
    value = Math.floor(value / 32);
    out += DIGITS[value > 0 ? digit | 32 : digit];
  } while (value > 0);
  return out;
}

/** The mappings as lines of absolute segments. */
export function decodeMappings(mappings: string): Segment[][] {
  let source = 0;
  let line = 0;
  let originalColumn = 0;
  let name = 0;
  return mappings.split(';').map((text) => {
    let column = 0;
    return text
      .split(',')
      .filter((s) => s.length > 0)
      .map((s) => {
        const v = decodeValues(s);
        if (![1, 4, 5].includes(v.length)) throw new Error(`a segment of ${v.length} fields`);
        column += v[0]!;
        if (v.length === 1) return { column };
        source += v[1]!;
        line += v[2]!;
        originalColumn += v[3]!;
        if (v.length === 4) return { column, source, line, originalColumn };
        name += v[4]!;
        return { column, source, line, originalColumn, name };
      });
  });
}

export function encodeMappings(lines: Segment[][]): string {
  let source = 0;
  let line = 0;
  let originalColumn = 0;
  let name = 0;
  return lines
    .map((segments) => {
      let column = 0;
      return segments
        .map((s) => {
          let text = encodeValue(s.column - column);
          column = s.column;
          if (s.source === undefined) return text;
          text += encodeValue(s.source - source) + encodeValue(s.line! - line);
          text += encodeValue(s.originalColumn! - originalColumn);
          [source, line, originalColumn] = [s.source, s.line!, s.originalColumn!];
          if (s.name === undefined) return text;
          text += encodeValue(s.name - name);
          name = s.name;
          return text;
        })
        .join(',');
    })
    .join(';');
}

/**
 * The map at the grain of source lines: of the positions in a row that lead to the same line of
 * the same source, only the first is kept, and no names (a stack frame is then named by the
 * running code, and still placed at its file and line; its column is where that line's code
 * starts). A minified bundle has a position for nearly every token: this keeps about one in four.
 * No copies of the sources.
 */
export function byLine(map: SourceMap): SourceMap {
  const lines = decodeMappings(map.mappings).map((segments) =>
    segments
      .filter(
        (s, i) =>
          s.source === undefined ||
          i === 0 ||
          segments[i - 1]!.source !== s.source ||
          segments[i - 1]!.line !== s.line,
      )
      .map(({ name: _name, ...s }) => s),
  );
  return {
    version: 3,
    ...(map.file === undefined ? {} : { file: map.file }),
    sources: map.sources,
    names: [],
    mappings: encodeMappings(lines),
  };
}
