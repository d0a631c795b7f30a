/**
 * The device pages (devices/pages.ts) over real HTTP on loopback: each route serves its file
 * with its content type, `no-store`, nosniff, no Referer, no framing and DEVICE_PAGE_CSP; HEAD
 * answers the headers alone; any other verb is 405 with Allow. The HTML can run under that CSP:
 * no inline script, style or event handler, and every script and stylesheet it names is one of
 * the routes. /devices/qrcode.js is qrcode-generator's plain browser build: run as a classic
 * script it defines the global `qrcode`.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import vm from 'node:vm';
import { DEVICE_PAGE_CSP, devicePageRoutes } from '../../devices/pages';
import type { GatewayRoute } from '../../gateway/server';

const PAGE_DIR = path.join(__dirname, '..', '..', 'devices', 'pages');

const EXPECTED: Record<string, { file: string; type: string }> = {
  '/pair': { file: 'pair.html', type: 'text/html; charset=utf-8' },
  '/pair.js': { file: 'pair.js', type: 'text/javascript; charset=utf-8' },
  '/devices': { file: 'devices.html', type: 'text/html; charset=utf-8' },
  '/devices.js': { file: 'devices.js', type: 'text/javascript; charset=utf-8' },
  '/devices.css': { file: 'devices.css', type: 'text/css; charset=utf-8' },
  '/devices/qrcode.js': {
    file: require.resolve('qrcode-generator'),
    type: 'text/javascript; charset=utf-8',
  },
};

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let server: http.Server;
let base: string;
let routes: Record<string, GatewayRoute>;

function request(method: string, pathname: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(pathname, base), { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    if (method === 'POST') req.write('{}');
    req.end();
  });
}

beforeAll(async () => {
  routes = devicePageRoutes();
  // The gateway's dispatch, reduced: the route of the path, or 404.
  server = http.createServer((req, res) => {
    const route = routes[(req.url ?? '/').split('?', 1)[0]!];
    if (!route) return void res.writeHead(404).end();
    route(req, res).catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test('the routes are exactly the pages, their script, the stylesheet and the QR encoder', () => {
  expect(Object.keys(routes).sort()).toEqual(Object.keys(EXPECTED).sort());
});

test('the CSP allows this origin only and nothing inline', () => {
  expect(DEVICE_PAGE_CSP).toBe(
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
      "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  );
  expect(DEVICE_PAGE_CSP).not.toMatch(/unsafe-|\*|https?:/);
});

test.each(Object.entries(EXPECTED))('GET %s serves its file with the headers', async (route, e) => {
  const r = await request('GET', route);
  expect(r.status).toBe(200);
  const file = readFileSync(path.isAbsolute(e.file) ? e.file : path.join(PAGE_DIR, e.file));
  expect(r.body).toBe(file.toString('utf8'));
  expect(r.headers).toMatchObject({
    'content-type': e.type,
    'content-length': String(file.length),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'content-security-policy': DEVICE_PAGE_CSP,
  });
});

test('HEAD answers the headers without a body', async () => {
  const get = await request('GET', '/devices');
  const head = await request('HEAD', '/devices');
  expect(head.status).toBe(200);
  expect(head.body).toBe('');
  expect(head.headers['content-length']).toBe(get.headers['content-length']);
  expect(head.headers['content-security-policy']).toBe(DEVICE_PAGE_CSP);
});

test.each(['POST', 'PUT', 'DELETE', 'PATCH'])('%s is 405 with Allow: GET, HEAD', async (verb) => {
  for (const route of ['/pair', '/devices.js', '/devices/qrcode.js']) {
    const r = await request(verb, route);
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('GET, HEAD');
    expect(JSON.parse(r.body)).toEqual({
      ok: false,
      error: { code: 'BAD_REQUEST', message: 'use GET' },
    });
  }
});

describe.each(['pair.html', 'devices.html'])('%s runs under the CSP', (name) => {
  const html = readFileSync(path.join(PAGE_DIR, name), 'utf8');

  test('no inline script, style or event handler', () => {
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      expect(attrs).toMatch(/\bsrc="\/[^"]+"/);
      expect(body!.trim()).toBe('');
    }
    expect(html).not.toMatch(/<style\b/i);
    expect(html).not.toMatch(/\sstyle\s*=/i);
    expect(html).not.toMatch(/\son[a-z]+\s*=/i);
    expect(html).not.toMatch(/javascript:/i);
  });

  test('every script and stylesheet it loads is one of the routes', () => {
    const urls = [
      ...[...html.matchAll(/<script\b[^>]*\bsrc="([^"]+)"/gi)].map((m) => m[1]!),
      ...[...html.matchAll(/<link\b[^>]*rel="stylesheet"[^>]*href="([^"]+)"/gi)].map((m) => m[1]!),
    ];
    expect(urls.length).toBeGreaterThanOrEqual(2);
    for (const url of urls) expect(Object.keys(EXPECTED)).toContain(url);
  });

  test('says it is light and dark, and sized for phones', () => {
    expect(html).toContain('<meta name="color-scheme" content="light dark" />');
    expect(html).toMatch(/<meta name="viewport" content="width=device-width/);
    expect(html).toMatch(/<html lang="en">/);
  });
});

test('the scripts never write markup or inline styles', () => {
  for (const name of ['pair.js', 'devices.js']) {
    const js = readFileSync(path.join(PAGE_DIR, name), 'utf8');
    expect(js).not.toMatch(/\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write/);
    expect(js).not.toMatch(/setAttribute\(\s*['"]style['"]|\.style\.|cssText/);
    expect(js).not.toMatch(/\beval\(|new Function\(/);
  }
});

test('the stylesheet follows the colour scheme', () => {
  const css = readFileSync(path.join(PAGE_DIR, 'devices.css'), 'utf8');
  expect(css).toContain('@media (prefers-color-scheme: dark)');
  expect(css).toContain(':focus-visible');
});

test('/devices/qrcode.js defines the global qrcode, which encodes a pairing link', async () => {
  const r = await request('GET', '/devices/qrcode.js');
  const sandbox: Record<string, any> = {};
  vm.createContext(sandbox);
  // As a browser runs a classic script: no module, no exports, no define.
  vm.runInContext(r.body, sandbox);
  expect(typeof sandbox.qrcode).toBe('function');
  const qr = sandbox.qrcode(0, 'M');
  qr.addData('https://bridge.example:8787/pair#VC-7M2K-91Q4');
  qr.make();
  expect(qr.getModuleCount()).toBeGreaterThanOrEqual(21);
  // Its own SVG would carry no style attribute either (the page draws its own anyway).
  expect(qr.createSvgTag({ scalable: true })).not.toMatch(/style=/);
});
