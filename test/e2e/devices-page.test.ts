/**
 * The device pages as people use them, in headless Chromium, through the real bridge: its HTTP
 * gateway serving /devices and /pair, the pairing endpoint, the device WebSocket, and
 * chatCompletions answered by a real agent container (the reference agent, its model the
 * provider stub behind the real provider proxy). Proves, on a desktop-sized /devices and a
 * phone-sized (390×844) /pair:
 *
 * - a bad gateway token on /devices shows the gateway's refusal;
 * - "New pairing code" shows the code, a countdown, the link and a QR code that decodes (jsQR,
 *   from a screenshot of the element) to exactly that link;
 * - the phone opening the link pairs (keyboard only), drops the code from the address bar,
 *   authenticates its WebSocket with its first message (never in the URL; allowed by the CSP's
 *   `connect-src 'self'`) and shows Connected; /devices shows "Paired: <name>" and
 *   "connected (1)";
 * - the phone's chat gets the agent's answer, the whole conversation sent each time;
 * - Revoke on /devices shows Revoked on the phone within 2 s, and "revoked" in the list;
 * - a bridge killed and restarted: the phone shows "Reconnecting in N s", then Connected again;
 * - "Forget this device" revokes it from the phone;
 * - used, expired and unknown codes show their messages, and a lockout its Retry-After.
 * No CSP violation or script error on any page. Fails — never skips — without Chromium or
 * Docker.
 *
 * With ARMORCLAW_DEVICE_PAGE_SCREENSHOTS=1 it also writes docs/images/devices-page-{code,
 * connected}.png and docs/images/pair-page-{connected,revoked}.png.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import jsQR from 'jsqr';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DEVICE_PAGE_CSP } from '../../devices/pages';
import {
  PROJECT_ROOT,
  removeDir,
  spawnBridge,
  type BridgeProcess,
} from '../support/bridge-process';
import { launchChromium, type LaunchedChromium } from '../support/chromium';
import { removeTestContainers, waitFor } from '../support/containers';
import { ensureAgentImage, ensureDocker } from '../support/docker';
import { freePort } from '../support/ports';
import { ProviderStub } from '../support/provider-stub';
import { call } from '../support/socket-clients';

jest.setTimeout(300_000);

const SCREENSHOTS = process.env.ARMORCLAW_DEVICE_PAGE_SCREENSHOTS === '1';
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 900 };
const ANDROID_UA =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) ' +
  'Chrome/126.0.0.0 Mobile Safari/537.36';
const PHONE_NAME = 'Chrome on Android';
const KEY = `sk-devpage-${randomBytes(12).toString('hex')}`;
const STUB_ANSWER = 'tok0 tok1 tok2';
const CODE = /^VC-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/;

let chromium: LaunchedChromium | undefined;
let stub: ProviderStub | undefined;
let bridge: BridgeProcess | undefined;
let base: string;
let gatewayToken: string;
let gatewayPort: number;
let temporalPort: number;
let uiPort: number;
/** The operator's /devices page, signed in, used across the tests. */
let admin: Opened;
/** The code of the first pairing (used by then). */
let usedCode: string;

interface Opened {
  context: BrowserContext;
  page: Page;
  /** Console errors (a CSP violation is one) and uncaught page errors. */
  problems: string[];
}

async function startBridge(dir?: string): Promise<void> {
  bridge = await spawnBridge({
    dir,
    env: {
      ARMORCLAW_MASTER_KEY: 'd8'.repeat(32),
      ARMORCLAW_PROXY_BASE_URLS: JSON.stringify({ openai: stub!.url }),
      ARMORCLAW_SECRETS_MODE: 'proxy',
      ARMORCLAW_GATEWAY_AGENT_KEY_ID: 'dev',
      // The same port after a restart: the pages reconnect to the origin they came from.
      ARMORCLAW_GATEWAY_PORT: String(gatewayPort),
    },
    temporalPort,
    uiPort,
  });
  base = await bridge.gatewayUrl();
}

async function socket(method: string, params: unknown = {}): Promise<any> {
  const r = await call(bridge!.socketPath, method, params);
  if (r.error) throw new Error(`${method}: ${JSON.stringify(r.error)}`);
  return r.result;
}

async function open(
  browser: Browser,
  url: string,
  kind: 'phone' | 'desktop',
  ignore: RegExp[] = [],
): Promise<Opened> {
  const context = await browser.newContext(
    kind === 'phone'
      ? {
          viewport: PHONE,
          deviceScaleFactor: 2,
          isMobile: true,
          hasTouch: true,
          userAgent: ANDROID_UA,
        }
      : { viewport: DESKTOP },
  );
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !ignore.some((re) => re.test(m.text()))) problems.push(m.text());
  });
  page.on('pageerror', (err) => problems.push(err.message));
  await page.goto(url);
  return { context, page, problems };
}

/** An element's text, whitespace collapsed. */
async function text(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).first().textContent()) ?? '').replace(/\s+/g, ' ').trim();
}

async function until(
  page: Page,
  selector: string,
  what: string,
  ok: (t: string) => boolean,
  timeoutMs = 10_000,
): Promise<string> {
  return waitFor(
    what,
    async () => {
      const t = await text(page, selector);
      return ok(t) ? t : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

const visible = (page: Page, selector: string) => page.locator(selector).first().isVisible();

async function screenshot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  const file = path.join(PROJECT_ROOT, 'docs', 'images', `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`wrote ${path.relative(PROJECT_ROOT, file)}`);
}

/** Nothing wider than the screen at `width`. */
async function fitsWidth(page: Page, width: number): Promise<void> {
  const before = page.viewportSize();
  await page.setViewportSize({ width, height: 812 });
  const scrollWidth = await page.evaluate(
    () => (globalThis as any).document.documentElement.scrollWidth as number,
  );
  expect(scrollWidth).toBeLessThanOrEqual(width);
  if (before) await page.setViewportSize(before);
}

const storedDevice = async (page: Page): Promise<any> =>
  JSON.parse(
    (await page.evaluate(() => (globalThis as any).localStorage.getItem('armorclaw.device'))) ??
      'null',
  );

/**
 * Decodes a PNG into RGBA pixels in a blank page of the browser (no PNG decoder among the
 * project's packages), for jsQR.
 */
async function pngPixels(
  png: Buffer,
): Promise<{ data: Uint8ClampedArray; width: number; height: number }> {
  const page = await chromium!.browser.newPage();
  try {
    const out = await page.evaluate(async (b64: string) => {
      const g = globalThis as any;
      const bytes = Uint8Array.from(g.atob(b64), (c: string) => c.charCodeAt(0));
      const bitmap = await g.createImageBitmap(new g.Blob([bytes], { type: 'image/png' }));
      const canvas = new g.OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext('2d');
      ctx.drawImage(bitmap, 0, 0);
      const rgba: Uint8ClampedArray = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
      let binary = '';
      for (let i = 0; i < rgba.length; i += 0x8000) {
        binary += String.fromCharCode(...rgba.subarray(i, i + 0x8000));
      }
      return {
        width: bitmap.width as number,
        height: bitmap.height as number,
        b64: g.btoa(binary),
      };
    }, png.toString('base64'));
    return {
      data: new Uint8ClampedArray(Buffer.from(out.b64, 'base64')),
      width: out.width,
      height: out.height,
    };
  } finally {
    await page.close();
  }
}

/** The row of a device on /devices. */
const row = (bridgeId: string) => `#device-rows tr[data-bridge-id="${bridgeId}"]`;

/** New pairing code on /devices: the code and link it shows. */
async function newCode(): Promise<{ code: string; url: string }> {
  await admin.page.click('#new-code');
  const code = await until(admin.page, '#code', 'a pairing code', (t) => CODE.test(t));
  const url = (await admin.page.locator('#pair-url').getAttribute('href')) ?? '';
  expect(url).toBe(`${base}/pair#${code}`);
  return { code, url };
}

/** Opens a pairing link on a phone and pairs from the keyboard: Enter in the name field. */
async function pairPhone(url: string): Promise<Opened & { bridgeId: string }> {
  const phone = await open(chromium!.browser, url, 'phone');
  await phone.page.locator('#name').press('Enter');
  await until(phone.page, '#state', 'Connected', (t) => t === 'Connected (tools_safe)');
  const stored = await storedDevice(phone.page);
  return { ...phone, bridgeId: stored.bridgeId };
}

beforeAll(async () => {
  chromium = await launchChromium();
  await ensureDocker();
  await ensureAgentImage();
  stub = await ProviderStub.start({});
  gatewayPort = await freePort();
  temporalPort = await freePort();
  uiPort = await freePort();
  await startBridge();
  await socket('store_key', { id: 'dev', provider: 'openai', token: KEY });
  gatewayToken = (await socket('gateway.token_create', { name: 'devices page' })).token;
}, 300_000);

afterAll(async () => {
  await chromium?.cleanup();
  await bridge?.stop('SIGKILL');
  if (bridge) {
    await removeTestContainers([], [bridge.dir]);
    removeDir(bridge.dir);
  }
  await stub?.close();
}, 120_000);

test('a bad gateway token on /devices shows the refusal; a good one opens the page', async () => {
  const ignore = [/Failed to load resource: the server responded with a status of 401/];
  admin = await open(chromium!.browser, `${base}/devices`, 'desktop', ignore);
  const { page } = admin;
  // The token field has the focus: typed and sent from the keyboard.
  await page.keyboard.type('acgw_not-a-real-token');
  await page.keyboard.press('Enter');
  const refused = await until(page, '#error', 'the refusal', (t) => t.length > 0);
  expect(refused).toBe('Refused: the token is not valid');
  expect(await visible(page, '#console')).toBe(false);
  expect(
    await page.evaluate(() => (globalThis as any).sessionStorage.getItem('armorclaw.gatewayToken')),
  ).toBeNull();

  await page.fill('#token', gatewayToken);
  await page.locator('#token').press('Enter');
  await waitFor('the device console', () => visible(page, '#console'));
  expect(await visible(page, '#error')).toBe(false);
  expect(await text(page, '#no-devices')).toBe('No device is paired yet.');
  // Kept for this tab only.
  expect(
    await page.evaluate(() => (globalThis as any).sessionStorage.getItem('armorclaw.gatewayToken')),
  ).toBe(gatewayToken);
  expect(admin.problems.filter((p) => !/401/.test(p))).toEqual([]);
});

test('a code and its QR on /devices; the phone pairs, chats, and is cut off by Revoke', async () => {
  const { page } = admin;
  const css = page
    .waitForResponse((r) => r.url().endsWith('/devices.css'), { timeout: 15_000 })
    .then((r) => ({ status: r.status(), headers: r.headers() }));
  await page.reload();
  // Signed in still (sessionStorage), and the stylesheet under the pages' policy.
  await waitFor('the device console', () => visible(page, '#console'));
  expect(await css).toMatchObject({
    status: 200,
    headers: expect.objectContaining({
      'content-type': 'text/css; charset=utf-8',
      'content-security-policy': DEVICE_PAGE_CSP,
    }),
  });

  const { code, url } = await newCode();
  usedCode = code;
  expect(await text(page, '#pair-url')).toBe(url);
  expect(await text(page, '#code-scope')).toBe('tools_safe');
  // The test bridge has no devices.public_url: its link names 127.0.0.1, and the page says so.
  expect(await text(page, '#loopback-hint')).toMatch(/^This link points at this computer only/);
  const countdown = await text(page, '#countdown');
  expect(countdown).toMatch(/^Expires in (10:00|9:[0-5]\d)$/);

  // What a camera reads from the QR code is exactly the link.
  const png = await page.locator('#qr').screenshot();
  const pixels = await pngPixels(png);
  const decoded = jsQR(pixels.data, pixels.width, pixels.height);
  expect(decoded?.data).toBe(url);
  await screenshot(page, 'devices-page-code');

  // The phone opens the link: the code is filled in, the name guessed from the browser.
  const phone = await open(chromium!.browser, url, 'phone');
  const sent: string[] = [];
  let wsUrl = '';
  phone.page.on('websocket', (ws) => {
    wsUrl = ws.url();
    ws.on('framesent', (f) => sent.push(String(f.payload)));
  });
  expect(await phone.page.inputValue('#code')).toBe(code);
  expect(await phone.page.inputValue('#name')).toBe(PHONE_NAME);
  expect(await text(phone.page, '#state')).toBe('Not paired');
  await fitsWidth(phone.page, 390);
  await phone.page.locator('#name').press('Enter');
  await until(phone.page, '#state', 'Connected', (t) => t === 'Connected (tools_safe)');
  // The code left the address bar; the token lives in localStorage and went in the first
  // message, never in the socket's URL.
  expect(phone.page.url()).toBe(`${base}/pair`);
  const stored = await storedDevice(phone.page);
  expect(stored).toMatchObject({
    bridgeId: expect.stringMatching(/^br_[0-9a-f]{16}$/),
    wsToken: expect.stringMatching(/^acdv_/),
    scope: 'tools_safe',
  });
  expect(wsUrl).toBe(`${base.replace(/^http/, 'ws')}/api/bridge/ws`);
  expect(JSON.parse(sent[0]!)).toEqual({ type: 'auth', token: stored.wsToken });
  expect(await text(phone.page, '#device-line')).toBe(`Paired as “${PHONE_NAME}”`);
  expect(await text(phone.page, 'h1')).toBe('Your paired device');

  // The operator sees it paired and connected within a poll or two.
  const r = row(stored.bridgeId);
  await until(page, `${r} .state-text`, 'connected (1)', (t) => t === 'connected (1)', 6_000);
  await until(page, '#paired', 'Paired: <name>', (t) => t === `Paired: ${PHONE_NAME}`);
  expect(await visible(page, '#code-panel')).toBe(false);
  expect(await text(page, `${r} .cell-name`)).toBe(PHONE_NAME);
  expect(await text(page, `${r} .cell-os`)).toBe('android');
  expect(await text(page, `${r} .cell-scope`)).toBe('tools_safe');
  await screenshot(page, 'devices-page-connected');

  // A chat: the agent's answer (the provider stub's text) shows on the phone.
  await phone.page.fill('#message', 'hello from the phone page');
  await phone.page.locator('#message').press('Enter');
  const answer = await until(
    phone.page,
    '#messages .bubble-assistant .bubble-text',
    "the agent's answer",
    (t) => t.length > 0,
    180_000,
  );
  expect(answer).toBe(STUB_ANSWER);
  const asked = JSON.parse(stub!.requests.at(-1)!.body);
  expect(asked.messages.at(-1)).toEqual({ role: 'user', content: 'hello from the phone page' });
  expect(stub!.requests.at(-1)!.headers.authorization).toBe(`Bearer ${KEY}`);
  // The whole conversation goes with each message.
  await phone.page.fill('#message', 'and once more');
  await phone.page.click('#send');
  await waitFor(
    'the second answer',
    async () => (await phone.page.locator('#messages .bubble-assistant').count()) === 2,
    { timeoutMs: 120_000, intervalMs: 200 },
  );
  const invokes = sent.slice(1).map((s) => JSON.parse(s));
  expect(invokes.at(-1)).toMatchObject({
    type: 'invoke',
    payload: {
      kind: 'chatCompletions',
      body: {
        messages: [
          { role: 'user', content: 'hello from the phone page' },
          { role: 'assistant', content: STUB_ANSWER + ' ' },
          { role: 'user', content: 'and once more' },
        ],
      },
    },
  });
  await screenshot(phone.page, 'pair-page-connected');

  // Revoke on /devices: confirmed, and the phone is told at once.
  page.once('dialog', (d) => void d.accept());
  const clicked = Date.now();
  await page.click(`${r} .cell-actions button`);
  await until(phone.page, '#state', 'Revoked', (t) => t === 'Revoked — pair again', 3_000);
  const tookMs = Date.now() - clicked;
  console.log(`revoke → phone shows Revoked in ${tookMs} ms`);
  expect(tookMs).toBeLessThan(2_000);
  expect(await text(phone.page, '#error')).toBe(
    'This device was revoked on the bridge. Pair it again.',
  );
  expect(await storedDevice(phone.page)).toBeNull();
  expect(await visible(phone.page, '#pair-form')).toBe(true);
  expect(await visible(phone.page, '#chat')).toBe(false);
  await until(page, `${r} .state-text`, 'revoked', (t) => t === 'revoked', 3_000);
  expect(await visible(page, `${r} .cell-actions button`)).toBe(false);
  await screenshot(phone.page, 'pair-page-revoked');

  await fitsWidth(page, 390);
  expect(phone.problems).toEqual([]);
  expect(admin.problems.filter((p) => !/401/.test(p))).toEqual([]);
  await phone.context.close();
});

test('a killed bridge: the phone counts down to reconnect and is Connected again; Forget revokes it', async () => {
  const { url } = await newCode();
  const phone = await pairPhone(url);
  await until(admin.page, `${row(phone.bridgeId)} .state-text`, 'connected', (t) =>
    t.startsWith('connected'),
  );

  await bridge!.stop('SIGKILL');
  await until(phone.page, '#state', 'Reconnecting in N s', (t) =>
    /^Reconnecting in \d+ s$/.test(t),
  );
  await until(admin.page, '#error', 'lost contact', (t) => t.startsWith('Lost contact'));
  await startBridge(bridge!.dir);
  await until(
    phone.page,
    '#state',
    'Connected again',
    (t) => t === 'Connected (tools_safe)',
    90_000,
  );
  // The row kept its last state while the bridge was down: the first poll that works again
  // clears the error.
  await waitFor(
    'the operator page to poll the bridge again',
    async () => ((await visible(admin.page, '#error')) ? undefined : true),
    { timeoutMs: 20_000 },
  );
  await until(admin.page, `${row(phone.bridgeId)} .state-text`, 'connected', (t) =>
    t.startsWith('connected'),
  );

  // Forget, from the phone: revoked on the bridge, not paired on the phone.
  phone.page.once('dialog', (d) => void d.accept());
  await phone.page.click('#forget');
  await until(phone.page, '#state', 'Not paired', (t) => t === 'Not paired');
  expect(await text(phone.page, '#notice')).toBe(
    'This device was forgotten and revoked on the bridge.',
  );
  expect(await storedDevice(phone.page)).toBeNull();
  expect(await visible(phone.page, '#pair-form')).toBe(true);
  await until(admin.page, `${row(phone.bridgeId)} .state-text`, 'revoked', (t) => t === 'revoked');

  // Failed loads while the bridge was down are expected; nothing else.
  const unexpected = (ps: string[]) =>
    ps.filter((p) => !/401|Failed to load resource|ERR_CONNECTION_REFUSED|WebSocket/.test(p));
  expect(unexpected(phone.problems)).toEqual([]);
  expect(unexpected(admin.problems)).toEqual([]);
  await phone.context.close();
});

test('used, expired and unknown codes on /pair say so; a lockout gives its Retry-After', async () => {
  const refusals = [/Failed to load resource: the server responded with a status of 4\d\d/];
  // Used: the first test's code.
  const used = await open(chromium!.browser, `${base}/pair#${usedCode}`, 'phone', refusals);
  await used.page.click('#pair-button');
  await until(used.page, '#state', 'Refused', (t) => t.startsWith('Refused'));
  expect(await text(used.page, '#state')).toBe(
    'Refused: this pairing code has already been used: start pairing again',
  );
  expect(await text(used.page, '#error')).toBe(
    'This code has already been used. Ask for a new pairing code.',
  );
  // Not paired: the code stays where the person can see it.
  expect(await storedDevice(used.page)).toBeNull();
  expect(used.page.url()).toContain('#');

  // Expired: replaced by a newer code.
  const stale = (await socket('pair.start')).pairCode;
  await socket('pair.start');
  await used.page.fill('#code', stale);
  await used.page.click('#pair-button');
  await until(used.page, '#error', 'expired', (t) => t.startsWith('This code has expired'));
  expect(await text(used.page, '#error')).toBe(
    'This code has expired or was replaced by a newer one. Ask for a new pairing code.',
  );
  expect(await text(used.page, '#state')).toMatch(/^Refused: this pairing code has expired/);

  // Unknown codes, typed, until pairing locks out (5 failures per address).
  let shown = '';
  for (let i = 0; i < 8; i++) {
    // Each refusal is read afresh.
    await used.page.evaluate(() => {
      (globalThis as any).document.getElementById('error').textContent = '';
    });
    await used.page.fill('#code', `VC-0000-${String(i).padStart(4, '0')}`);
    await used.page.click('#pair-button');
    shown = await until(used.page, '#error', 'a refusal', (t) => t.length > 0);
    if (shown.startsWith('Too many')) break;
    expect(shown).toBe(
      'That code is not valid. Check it against the one on the bridge, or ask for a new one.',
    );
  }
  expect(shown).toMatch(/^Too many failed attempts: try again in \d+ s\.$/);
  expect(Number(/in (\d+) s/.exec(shown)![1])).toBeGreaterThan(0);
  expect(used.problems).toEqual([]);
  await used.context.close();
});
