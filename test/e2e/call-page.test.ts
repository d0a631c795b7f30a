/**
 * The call page as a person uses it on a phone, in headless Chromium (390×844, fake microphone
 * playing a 440 Hz WAV), through the real bridge: Temporal, Synapse, the echo agent in Docker,
 * the bridge's own signaling server and media hub. Proves: the page goes Live; both level meters
 * move (the caller's microphone and the agent's echo); the timer runs from Live; mute makes the
 * agent hear silence (its `audio_in` report) and unmute brings the tone back; hang-up ends the
 * call (Ended in the page and the workflow); and bad, incomplete or expired links, and a call that
 * runs out of time, each show their own message. Fails — never skips — without Chromium, Docker
 * or Synapse.
 *
 * With ARMORCLAW_CALL_PAGE_SCREENSHOTS=1 it also writes docs/images/call-page-{live,muted,ended}.png.
 */
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { CALL_PAGE_CSP } from '../../media/signaling-server';
import { signCallToken } from '../../services/call-tokens';
import { PROJECT_ROOT } from '../support/bridge-process';
import { launchChromium, type LaunchedChromium } from '../support/chromium';
import { sleep, waitFor } from '../support/matrix-scenario';
import {
  agentHeard,
  callPageUrl,
  joinedRoom,
  startVoiceWorld,
  type VoiceWorld,
} from '../support/voice-scenario';

jest.setTimeout(180_000);

const SCREENSHOTS = process.env.ARMORCLAW_CALL_PAGE_SCREENSHOTS === '1';
const PHONE = { width: 390, height: 844 };

let chromium: LaunchedChromium | undefined;
let v: VoiceWorld | undefined;
let room: string;

beforeAll(async () => {
  chromium = await launchChromium({ toneHz: 440, toneSeconds: 60 });
  v = await startVoiceWorld(async (w) => {
    room = await joinedRoom(w, 'call page');
    return { ARMORCLAW_MATRIX_TRUSTED_ROOMS: room };
  });
}, 180_000);

afterAll(async () => {
  await v?.stop();
  await chromium?.cleanup();
}, 120_000);

/** What a person sees, read from the page's DOM. */
interface Seen {
  state: string;
  elapsed: string;
  error: string | null;
  notice: string;
  reason: string | undefined;
  mic: number;
  agent: number;
  mute: string;
  mutedBadge: boolean;
  hangupDisabled: boolean;
}

/** The DOM as the test reads it (this file is compiled without the DOM lib). */
interface El {
  textContent: string | null;
  hidden: boolean;
  disabled: boolean;
  id: string;
  dataset: Record<string, string | undefined>;
  getAttribute(name: string): string | null;
  getBoundingClientRect(): { left: number; right: number; height: number };
}
interface PageGlobals {
  document: {
    getElementById(id: string): El;
    activeElement: El | null;
    documentElement: { scrollWidth: number };
  };
  getComputedStyle(el: El): { outlineStyle: string; outlineWidth: string };
  armorclawCall: { state: string; muted: boolean };
}

const seen = (page: Page): Promise<Seen> =>
  page.evaluate(() => {
    const { document } = globalThis as unknown as PageGlobals;
    const $ = (id: string) => document.getElementById(id);
    const error = $('error');
    return {
      state: $('state').textContent ?? '',
      elapsed: $('elapsed').textContent ?? '',
      error: error.hidden ? null : error.textContent,
      notice: $('notice').textContent ?? '',
      reason: $('call').dataset.reason,
      mic: Number($('mic-level').getAttribute('aria-valuenow')),
      agent: Number($('agent-level').getAttribute('aria-valuenow')),
      mute: $('mute').textContent ?? '',
      mutedBadge: !$('muted-badge').hidden,
      hangupDisabled: $('hangup').disabled,
    };
  });

async function until(page: Page, what: string, ok: (s: Seen) => boolean, timeoutMs = 15_000) {
  return waitFor(
    what,
    async () => {
      const s = await seen(page);
      return ok(s) ? s : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

const seconds = (elapsed: string) =>
  elapsed.split(':').reduce((total, part) => total * 60 + Number(part), 0);

/** A phone-sized page that records console errors, failed page scripts and the stylesheet. */
async function phonePage(): Promise<{
  context: BrowserContext;
  page: Page;
  problems: string[];
  css: Promise<{ status: number; headers: Record<string, string> }>;
}> {
  const context = await chromium!.browser.newContext({
    viewport: PHONE,
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const page = await context.newPage();
  const problems: string[] = [];
  // A CSP violation (inline style or script) shows up as a console error.
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('pageerror', (err) => problems.push(err.message));
  const css = page
    .waitForResponse((r) => r.url().endsWith('/call.css'), { timeout: 15_000 })
    .then((r) => ({ status: r.status(), headers: r.headers() }));
  return { context, page, problems, css };
}

/** Opens a call link; a failure's message (which quotes the URL) never carries the token. */
async function open(page: Page, url: string): Promise<void> {
  try {
    await page.goto(url);
  } catch (err) {
    throw new Error(String((err as Error).message).replace(/token=[^&\s"']+/g, 'token=<redacted>'));
  }
}

async function screenshot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  const file = path.join(PROJECT_ROOT, 'docs', 'images', `call-page-${name}.png`);
  await page.screenshot({ path: file });
  console.log(`wrote ${path.relative(PROJECT_ROOT, file)}`);
}

/** Nothing wider than the screen, and both buttons on it and big enough for a thumb. */
async function fitsWidth(page: Page, width: number): Promise<void> {
  await page.setViewportSize({ width, height: 812 });
  const layout = await page.evaluate(() => {
    const { document } = globalThis as unknown as PageGlobals;
    return {
      scrollWidth: document.documentElement.scrollWidth,
      buttons: ['mute', 'hangup'].map((id) => document.getElementById(id).getBoundingClientRect()),
    };
  });
  expect(layout.scrollWidth).toBeLessThanOrEqual(width);
  for (const b of layout.buttons) {
    expect(b.left).toBeGreaterThanOrEqual(0);
    expect(b.right).toBeLessThanOrEqual(width);
    expect(b.height).toBeGreaterThanOrEqual(44);
  }
}

async function startCall(ttl?: string) {
  const started = await v!.call('webrtc.start', {
    room_id: room,
    user_id: v!.w.alice.userId,
    key_id: v!.keyId,
    ...(ttl && { ttl }),
  });
  expect(started.error).toBeUndefined();
  v!.names.add(started.result.container_name);
  return started.result as { session_id: string; container_name: string; call_url: string };
}

test('on a phone: Live, both meters move, the timer runs, mute silences the caller for the agent, hang up → Ended', async () => {
  const r = await startCall();
  const { context, page, problems, css } = await phonePage();
  await open(page, r.call_url);
  // The stylesheet is the page's own, under the same policy as the page.
  expect(await css).toMatchObject({
    status: 200,
    headers: expect.objectContaining({
      'content-type': 'text/css; charset=utf-8',
      'content-security-policy': CALL_PAGE_CSP,
    }),
  });
  // The token leaves the address bar as soon as the page has read it.
  await waitFor('the fragment to be dropped', () => !page.url().includes('#'));

  await until(page, 'Live', (s) => s.state === 'Live', 20_000);
  const liveAt = Date.now();

  // The caller's microphone (the WAV tone) and the agent's echo of it, on the meters.
  const moving = await until(page, 'both meters to move', (s) => s.mic > 40 && s.agent > 40);
  console.log(`meters: mic ${moving.mic}, agent ${moving.agent}`);
  const heard = await waitFor(
    'the agent to hear the tone',
    async () => {
      const h = await agentHeard(v!, r.container_name, liveAt);
      return h && Math.abs(h.frequencyHz - 440) < 10 && h.rms > 0.1 ? h : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 250 },
  );
  console.log(`agent heard ${heard.frequencyHz} Hz, RMS ${heard.rms}`);

  const running = await until(page, 'the timer to pass 2 s', (s) => seconds(s.elapsed) >= 2);
  expect(running.elapsed).toMatch(/^\d\d:\d\d$/);
  expect(seconds(running.elapsed)).toBeLessThanOrEqual(Math.ceil((Date.now() - liveAt) / 1000) + 1);
  await fitsWidth(page, 375);
  await page.setViewportSize(PHONE);
  await until(page, 'the meters to move for the picture', (s) => s.mic > 40 && s.agent > 40);
  await screenshot(page, 'live');

  // Mute from the keyboard: Tab reaches the button, its focus ring shows, Space presses it.
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(
      () => (globalThis as unknown as PageGlobals).document.activeElement?.id,
    );
    if (focused === 'mute') break;
  }
  const ring = await page.evaluate(() => {
    const w = globalThis as unknown as PageGlobals;
    const el = w.document.activeElement!;
    const style = w.getComputedStyle(el);
    return { id: el.id, style: style.outlineStyle, width: style.outlineWidth };
  });
  expect(ring).toEqual({ id: 'mute', style: 'solid', width: '3px' });
  await page.keyboard.press('Space');
  const mutedAt = Date.now();
  const muted = await until(page, 'the page to show muted', (s) => s.mute === 'Unmute');
  expect(muted.mutedBadge).toBe(true);
  expect(
    await page.evaluate(() => (globalThis as unknown as PageGlobals).armorclawCall.muted),
  ).toBe(true);

  // The agent still gets frames (the call is up) but they are silence; so is its echo.
  const silent = await waitFor(
    'the agent to hear silence',
    async () => {
      const h = await agentHeard(v!, r.container_name, mutedAt + 1200);
      return h && h.rms < 0.005 ? h : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 250 },
  );
  console.log(
    `muted: agent heard ${silent.frequencyHz} Hz, RMS ${silent.rms}, ${silent.frames} frames`,
  );
  expect(silent.frames).toBeGreaterThan(25);
  const quiet = await until(
    page,
    'both meters to fall silent',
    (s) => s.mic === 0 && s.agent === 0,
  );
  expect(quiet.state).toBe('Live');
  await screenshot(page, 'muted');

  await page.click('#mute');
  const unmutedAt = Date.now();
  await until(page, 'the page to show unmuted', (s) => s.mute === 'Mute' && !s.mutedBadge);
  const back = await waitFor(
    'the agent to hear the tone again',
    async () => {
      const h = await agentHeard(v!, r.container_name, unmutedAt + 1200);
      return h && Math.abs(h.frequencyHz - 440) < 10 && h.rms > 0.1 ? h : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 250 },
  );
  console.log(`unmuted: agent heard ${back.frequencyHz} Hz, RMS ${back.rms}`);
  await until(page, 'both meters to move again', (s) => s.mic > 40 && s.agent > 40);

  await page.click('#hangup');
  const ended = await until(page, 'Ended', (s) => s.state === 'Ended');
  expect(ended).toMatchObject({ notice: 'You hung up.', error: null, reason: 'you_hung_up' });
  expect(ended.hangupDisabled).toBe(true);
  // The timer stops at the end.
  await sleep(1500);
  expect((await seen(page)).elapsed).toBe(ended.elapsed);
  await until(page, 'the meters to settle', (s) => s.mic === 0 && s.agent === 0);
  await screenshot(page, 'ended');

  expect(await v!.callResult(r.session_id)).toMatchObject({
    state: 'Ended',
    end_reason: 'user_hangup',
  });
  await v!.agentRunCleanedUp(r.container_name, 20_000);
  expect(problems).toEqual([]);
  await context.close();
});

test('bad and incomplete links say so, on a 375 px screen', async () => {
  const url = callPageUrl(v!);
  const forged = signCallToken(Buffer.alloc(32, 9), {
    session_id: 'no-such-call',
    room_id: room,
    expires_at: Math.floor(Date.now() / 1000) + 600,
  });
  const { context, page, problems } = await phonePage();
  await page.setViewportSize({ width: 375, height: 812 });

  await open(page, `${url}#session=no-such-call&token=${forged}`);
  const refused = await until(page, 'Failed', (s) => s.state === 'Failed');
  expect(refused.reason).toBe('unauthorized');
  expect(refused.error).toMatch(/^This call link is not valid\./);
  expect(refused.hangupDisabled).toBe(true);
  expect(refused.elapsed).toBe('00:00');
  await fitsWidth(page, 375);

  // A new page: on the same one only the fragment would change, and nothing would reload.
  const second = await context.newPage();
  await open(second, `${url}#session=no-such-call`);
  const incomplete = await until(second, 'Failed', (s) => s.state === 'Failed');
  expect(incomplete.reason).toBe('link_incomplete');
  expect(incomplete.error).toMatch(/^This call link is incomplete\./);
  expect(problems).toEqual([]);
  await context.close();
});

test('a call that runs out of time ends with the time-limit message; its link then has expired', async () => {
  const r = await startCall('20s');
  const { context, page, problems } = await phonePage();
  await open(page, r.call_url);
  await until(page, 'Live', (s) => s.state === 'Live', 20_000);
  const ended = await until(page, 'the call to expire', (s) => s.state === 'Ended', 30_000);
  expect(ended).toMatchObject({ reason: 'ttl_expired', error: null });
  expect(ended.notice).toMatch(/time limit/);
  expect(seconds(ended.elapsed)).toBeGreaterThan(0);
  expect(await v!.callResult(r.session_id)).toMatchObject({ end_reason: 'ttl_expired' });

  const again = await context.newPage();
  await open(again, r.call_url);
  const expired = await until(again, 'Failed', (s) => s.state === 'Failed');
  expect(expired.reason).toBe('token_expired');
  expect(expired.error).toMatch(/^This call link has expired\./);
  expect(problems).toEqual([]);
  await v!.agentRunCleanedUp(r.container_name, 20_000);
  await context.close();
});
