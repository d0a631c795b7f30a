/**
 * The call page in a real browser: headless Chromium (fake microphone playing a 440 Hz WAV)
 * opens /call#session=…&token=…, authenticates over WSS, offers, and talks to a real werift
 * `AudioPeer` linked to an echo agent (no Temporal). Proves: the page reaches Live, the bridge
 * decodes the caller's 440 Hz tone, the page hears the agent's audio (the echo) at 440 Hz, and
 * hang-up goes page → bridge → page (Ended). Fails — never skips — without Chromium.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { Page } from 'playwright-core';
import { rms, zeroCrossingFrequency } from '../../media/audio-analysis';
import { SignalingServer, type SignalingAuditEntry } from '../../media/signaling-server';
import { signCallToken } from '../../services/call-tokens';
import { launchChromium, type LaunchedChromium } from '../support/chromium';
import { EchoMediaBackend } from '../support/media-backend';

jest.setTimeout(90_000);

const KEY = Buffer.alloc(32, 3);
const SESSION = 'e2e-session-1';

let chromium: LaunchedChromium;
let server: SignalingServer;
let backend: EchoMediaBackend;
let port: number;
let dir: string;
const audits: SignalingAuditEntry[] = [];

beforeAll(async () => {
  chromium = await launchChromium({ toneHz: 440, toneSeconds: 30 });
  dir = mkdtempSync(path.join(tmpdir(), 'call-page-'));
  backend = new EchoMediaBackend();
  server = new SignalingServer({
    host: '127.0.0.1',
    port: 0,
    tls: { selfSignedDir: path.join(dir, 'tls') },
    tokenKey: KEY,
    backend,
    allowedOrigins: [],
    maxMessageBytes: 64 * 1024,
    messagesPerSecond: 50,
    audit: (e) => audits.push(e),
    log: pino({ level: 'silent' }),
  });
  ({ port } = await server.listen());
});

afterAll(async () => {
  await backend?.close();
  await server?.close();
  await chromium?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function stateOf(page: Page): Promise<string> {
  return (await page.textContent('#state')) ?? '';
}

async function waitForState(page: Page, state: string, timeoutMs = 15_000): Promise<void> {
  await page.waitForFunction(
    (s) =>
      (globalThis as unknown as PageGlobals).document.getElementById('state')?.textContent === s,
    state,
    {
      timeout: timeoutMs,
    },
  );
}

/** Polls `fn` until it returns a truthy value or the time is up (then returns the last value). */
async function poll<T>(
  fn: () => Promise<T> | T,
  ok: (v: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await fn();
  while (!ok(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    value = await fn();
  }
  return value;
}

describe('call page in Chromium ⇄ signaling server ⇄ AudioPeer ⇄ echo agent', () => {
  it('goes Live, carries the 440 Hz tone both ways, and hangs up to Ended', async () => {
    backend.addSession(SESSION);
    const token = signCallToken(KEY, {
      session_id: SESSION,
      room_id: '!room:example.org',
      expires_at: Math.floor(Date.now() / 1000) + 600,
    });
    const page = await chromium.browser.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    await page.goto(`https://127.0.0.1:${port}/call#session=${SESSION}&token=${token}`);
    // The page drops the fragment (and so the token) from the address bar once read.
    await poll(
      () => page.url(),
      (u) => !u.includes('#'),
      5000,
    );
    expect(page.url()).toBe(`https://127.0.0.1:${port}/call`);

    await waitForState(page, 'Live');
    expect(
      await page.evaluate(() => (globalThis as unknown as PageGlobals).armorclawCall.state),
    ).toBe('Live');

    // Caller → bridge: what the bridge's peer decoded (and fed the echo agent) is the tone.
    const decoded = await poll(
      () => backend.decodedAudio(SESSION, 50),
      (pcm) => pcm.length >= 50 * 1920 && rms(pcm) > 0.05,
      10_000,
    );
    expect(Math.abs(zeroCrossingFrequency(decoded) - 440)).toBeLessThan(5);
    expect(rms(decoded)).toBeGreaterThan(0.1); // 0.5 amplitude ≈ 0.35 RMS, processing off
    expect(backend.agentFrames(SESSION)).toBeGreaterThan(50);
    console.log(
      `bridge decoded ${zeroCrossingFrequency(decoded).toFixed(1)} Hz, RMS ${rms(decoded).toFixed(3)}`,
    );

    // Agent → caller: the page's WebAudio analyser hears the echo at 440 Hz.
    const heard = await poll(
      () =>
        page.evaluate(() => (globalThis as unknown as PageGlobals).armorclawCall.receivedAudio()),
      (a) => a.rms > 0.05 && Math.abs(a.frequency - 440) < 10,
      15_000,
    );
    console.log(`page heard ${heard.frequency.toFixed(1)} Hz, RMS ${heard.rms.toFixed(3)}`);
    expect(heard.rms).toBeGreaterThan(0.05);
    expect(Math.abs(heard.frequency - 440)).toBeLessThan(10);

    // Hang up: the page sends bye, the backend's hangup runs, its bye makes the page Ended.
    await page.click('#hangup');
    await poll(
      () => backend.hangups.length,
      (n) => n > 0,
      5000,
    );
    expect(backend.hangups).toEqual([{ sessionId: SESSION, reason: 'caller hung up' }]);
    await waitForState(page, 'Ended');
    expect(await stateOf(page)).toBe('Ended');
    expect(backend.has(SESSION)).toBe(false);
    expect(audits).toEqual([]);
    expect(consoleErrors).toEqual([]);
    await page.close();
  });

  it('a page with a bad token shows Failed and the bridge audits it', async () => {
    backend.addSession('e2e-session-2');
    const forged = signCallToken(Buffer.alloc(32, 9), {
      session_id: 'e2e-session-2',
      room_id: '!room:example.org',
      expires_at: Math.floor(Date.now() / 1000) + 600,
    });
    const page = await chromium.browser.newPage();
    await page.goto(`https://127.0.0.1:${port}/call#session=e2e-session-2&token=${forged}`);
    await waitForState(page, 'Failed');
    expect(audits).toEqual([
      expect.objectContaining({
        event_type: 'security_violation',
        session_id: 'e2e-session-2',
        details: expect.objectContaining({ reason: 'invalid_call_token' }),
      }),
    ]);
    await page.close();
  });
});

/** What the test reads inside the page (this file is compiled without the DOM lib). */
interface PageGlobals {
  document: { getElementById(id: string): { textContent: string | null } | null };
  armorclawCall: {
    state: string;
    hangup(): void;
    receivedAudio(): { rms: number; frequency: number };
  };
}
