/**
 * Secrets (tokens, passwords) reach the CLI on stdin or through a hidden prompt, never on argv,
 * where `ps`, /proc/<pid>/cmdline and shell history would expose them to other users.
 */
import readline from 'node:readline';
import { Writable } from 'node:stream';

/** Reads a secret: a hidden prompt on a terminal, else stdin without one trailing newline. */
export function readSecret(prompt: string, what: string, maxBytes: number): Promise<string> {
  return process.stdin.isTTY ? promptHidden(prompt, what) : readStdin(what, maxBytes);
}

/** All of stdin as UTF-8, without one trailing newline (CRLF too); at most `maxBytes`. */
export async function readStdin(what: string, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Room for the secret plus a trailing CRLF; anything bigger would be refused anyway, and
    // stopping early keeps `cat /dev/urandom | armorclaw ...` from eating memory.
    if (size > maxBytes + 2) {
      throw new Error(`the ${what} on stdin is larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Asks on stderr with echo off; rejects when the user closes the prompt (Ctrl-C, Ctrl-D). */
export function promptHidden(prompt: string, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let muted = false;
    // readline echoes keystrokes to its output; once the prompt is shown, swallow that echo.
    const output = new Writable({
      write(chunk, encoding, callback) {
        if (!muted) process.stderr.write(chunk, encoding);
        callback();
      },
    });
    const rl = readline.createInterface({
      input: process.stdin,
      output,
      terminal: true,
      historySize: 0,
    });
    let answered = false;
    rl.on('SIGINT', () => {
      rl.close();
    });
    rl.on('close', () => {
      process.stderr.write('\n');
      if (!answered) reject(new Error(`no ${what} entered`));
    });
    // The prompt goes out before muting; readline would redraw it through the muted stream.
    process.stderr.write(prompt);
    muted = true;
    rl.question('', (answer) => {
      answered = true;
      rl.close();
      resolve(answer);
    });
  });
}
