// The terminal QR code of `armorclaw pair`, read back the way a phone would: the text is painted
// as a dark terminal shows it (a block in the light foreground, a space in the dark background)
// and decoded with jsQR, which is told not to try the inverted image.
import jsQR from 'jsqr';
import { renderQrText } from '../../cli/qr';

/** Pixels per module, and how much dark terminal background surrounds the printed code. */
const SCALE = 4;
const MARGIN = 16;
const LIGHT = 255;
const DARK = 0;

/** Each character is one module wide and two tall: its upper and lower half, true when lit. */
const HALVES: Record<string, [boolean, boolean]> = {
  '█': [true, true],
  '▀': [true, false],
  '▄': [false, true],
  ' ': [false, false],
};

/** The printed code as an RGBA image of a light-on-dark terminal. */
function paint(text: string): { data: Uint8ClampedArray; width: number; height: number } {
  const lines = text.split('\n');
  expect(lines.pop()).toBe(''); // every line ends in a newline
  const cols = [...lines[0]!].length;
  const width = cols * SCALE + 2 * MARGIN;
  const height = lines.length * 2 * SCALE + 2 * MARGIN;
  const data = new Uint8ClampedArray(width * height * 4);
  const set = (x: number, y: number, v: number) => {
    const i = (y * width + x) * 4;
    data[i] = data[i + 1] = data[i + 2] = v;
    data[i + 3] = 255;
  };
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) set(x, y, DARK);
  lines.forEach((line, li) => {
    const chars = [...line];
    expect(chars).toHaveLength(cols);
    chars.forEach((ch, col) => {
      const halves = HALVES[ch];
      if (!halves) throw new Error(`unexpected character ${JSON.stringify(ch)} in the QR text`);
      halves.forEach((lit, half) => {
        const top = MARGIN + (li * 2 + half) * SCALE;
        const left = MARGIN + col * SCALE;
        for (let dy = 0; dy < SCALE; dy++) {
          for (let dx = 0; dx < SCALE; dx++) set(left + dx, top + dy, lit ? LIGHT : DARK);
        }
      });
    });
  });
  return { data, width, height };
}

const decode = (text: string): string | undefined => {
  const { data, width, height } = paint(text);
  return jsQR(data, width, height, { inversionAttempts: 'dontInvert' })?.data;
};

test.each([
  ['a short link', 'http://127.0.0.1:8787/pair#VC-7M2K-91Q4'],
  ['a public link', 'https://bridge.example.com/pair#VC-AB3D-Q9ZX'],
  [
    'a ~100 character link',
    'https://armorclaw-bridge.internal.example.org:18443/some/longer/prefix/for/devices/pair#VC-7M2K-91Q4',
  ],
])('%s decodes back to itself', (_name, url) => {
  const text = renderQrText(url);
  expect(decode(text)).toBe(url);
});

test('the code has a lit quiet zone of 2 modules and two QR rows per line', () => {
  const lines = renderQrText('http://127.0.0.1:8787/pair#VC-7M2K-91Q4').split('\n').slice(0, -1);
  const cols = [...lines[0]!].length;
  // Version 3 (29 modules) holds this link at level M; 2 + 29 + 2 modules, 33 rows in 17 lines.
  expect(cols).toBe(33);
  expect(lines).toHaveLength(17);
  expect(lines[0]).toBe('█'.repeat(33)); // quiet rows 0 and 1
  // Line 1 holds the symbol's rows 0 and 1: after the lit quiet columns, the top-left finder
  // pattern (a dark edge over a dark/light/dark row), then its lit separator.
  expect(lines[1]!.startsWith('██ ▄▄▄▄▄ █')).toBe(true);
  // The last line holds only quiet row 32; below it is terminal background.
  expect(lines[16]).toBe('▀'.repeat(33));
});

test('an inverted rendering does not decode as a dark-on-light code', () => {
  const invert: Record<string, string> = { '█': ' ', ' ': '█', '▀': '▄', '▄': '▀', '\n': '\n' };
  const text = renderQrText('http://127.0.0.1:8787/pair#VC-7M2K-91Q4');
  const inverted = [...text].map((c) => invert[c]).join('');
  expect(decode(inverted)).toBeUndefined();
});
