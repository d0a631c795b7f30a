/**
 * A QR code as terminal text, for `armorclaw pair`: Unicode half blocks, two QR rows per line,
 * one character per module column, so a phone can scan the pairing link off the screen.
 */
import qrcode from 'qrcode-generator';

/** Light modules around the symbol (the QR specification asks for 4; 2 scans fine on screens). */
const QUIET_ZONE = 2;

/**
 * The character for one line cell: its upper and lower module, `true` when that module is drawn
 * as a block (in the terminal's foreground colour).
 */
const HALF_BLOCKS: Record<string, string> = {
  'true,true': '█',
  'true,false': '▀',
  'false,true': '▄',
  'false,false': ' ',
};

/**
 * `text` as a QR code (error correction M, the smallest version that holds it) in `█`, `▀`, `▄`
 * and spaces, each line ending in a newline.
 *
 * Terminals draw a block in the foreground colour and a space in the background colour, and
 * which of the two is the light one depends on the terminal. Scanners look for dark modules on
 * a light ground (some also try the inverse, not all do), so one choice has to be made: the
 * typical terminal - and the one an operator runs `armorclaw` in over SSH - is light text on a
 * dark background. The *light* modules, quiet zone included, are therefore drawn as blocks and
 * the dark ones left as background: on a dark terminal the code comes out dark-on-light, as
 * printed on paper. On a light terminal it shows inverted; most phone cameras still read that,
 * and the pairing link is printed beside it anyway. ANSI colours could force black on white
 * everywhere, but they would put escape sequences into output that may be piped or logged.
 */
export function renderQrText(text: string): string {
  const qr = qrcode(0, 'M');
  qr.addData(text, 'Byte');
  qr.make();
  const count = qr.getModuleCount();
  const size = count + 2 * QUIET_ZONE;
  /** Whether the module at (row, col) of the padded symbol is drawn as a block, i.e. light. */
  const block = (row: number, col: number): boolean => {
    // Below the last row (an odd number of rows): terminal background, nothing drawn.
    if (row >= size) return false;
    const r = row - QUIET_ZONE;
    const c = col - QUIET_ZONE;
    const inSymbol = r >= 0 && r < count && c >= 0 && c < count;
    return !(inSymbol && qr.isDark(r, c));
  };
  let out = '';
  for (let row = 0; row < size; row += 2) {
    for (let col = 0; col < size; col++) {
      out += HALF_BLOCKS[`${block(row, col)},${block(row + 1, col)}`];
    }
    out += '\n';
  }
  return out;
}
