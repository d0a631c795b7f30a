/**
 * Headless Chromium (Debian's `chromium`, driven by playwright-core) for the `e2e` tier, with a
 * fake microphone fed from a WAV file. Throws — never skips — when Chromium is missing: a voice
 * suite that silently skips its browser proves nothing (`bash scripts/setup.sh --test`
 * installs it).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.ARMORCLAW_CHROMIUM ?? '/usr/bin/chromium';

export interface LaunchedChromium {
  browser: Browser;
  /** The fake microphone's WAV file. */
  wavPath: string;
  /** Closes the browser and removes the temporary directory. */
  cleanup(): Promise<void>;
}

export interface ChromiumOptions {
  /** The fake microphone's tone. Default 440 Hz. */
  toneHz?: number;
  /** Tone length; Chromium loops the file. Default 30 s. */
  toneSeconds?: number;
  extraArgs?: string[];
}

/** Launches headless Chromium whose microphone plays a sine tone (48 kHz mono s16 WAV). */
export async function launchChromium(options: ChromiumOptions = {}): Promise<LaunchedChromium> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}; run \`bash scripts/setup.sh --test\` (Debian package chromium)` +
        (process.env.CI === 'true'
          ? '. CI must provide it: this test fails, it never skips.'
          : '.'),
    );
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'armorclaw-chromium-'));
  const wavPath = path.join(dir, 'tone.wav');
  writeFileSync(wavPath, toneWav(options.toneHz ?? 440, options.toneSeconds ?? 30));
  let browser: Browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
        `--use-file-for-fake-audio-capture=${wavPath}`,
        // The signaling server's certificate is self-signed in tests.
        '--ignore-certificate-errors',
        // On a loopback-only host the only ICE candidates are 127.0.0.1.
        '--allow-loopback-in-peer-connection',
        // Remote audio must play (and feed WebAudio) without a click.
        '--autoplay-policy=no-user-gesture-required',
        ...(options.extraArgs ?? []),
      ],
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    browser,
    wavPath,
    cleanup: async () => {
      await browser.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A RIFF/WAVE file of a sine tone: 48 kHz, mono, signed 16-bit PCM. */
export function toneWav(frequencyHz: number, seconds: number, amplitude = 0.5): Buffer {
  const sampleRate = 48_000;
  const samples = Math.round(sampleRate * seconds);
  const dataBytes = samples * 2;
  const wav = Buffer.alloc(44 + dataBytes);
  wav.write('RIFF', 0, 'ascii');
  wav.writeUInt32LE(36 + dataBytes, 4);
  wav.write('WAVE', 8, 'ascii');
  wav.write('fmt ', 12, 'ascii');
  wav.writeUInt32LE(16, 16); // fmt chunk size
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(sampleRate, 24);
  wav.writeUInt32LE(sampleRate * 2, 28); // byte rate
  wav.writeUInt16LE(2, 32); // block align
  wav.writeUInt16LE(16, 34); // bits per sample
  wav.write('data', 36, 'ascii');
  wav.writeUInt32LE(dataBytes, 40);
  const scale = amplitude * 32767;
  for (let i = 0; i < samples; i++) {
    wav.writeInt16LE(
      Math.round(scale * Math.sin((2 * Math.PI * frequencyHz * i) / sampleRate)),
      44 + 2 * i,
    );
  }
  return wav;
}
