/**
 * The device pages on the gateway (docs/devices.md), served when `devices.enabled`:
 *
 * - `GET /pair` (+ `/pair.js`): what a phone opens from the pairing QR code
 *   (`<base>/pair#VC-XXXX-XXXX`). It redeems the code, keeps the device token in the browser's
 *   localStorage, holds the device WebSocket and offers a small chat with the device's agent.
 * - `GET /devices` (+ `/devices.js`, `/devices/qrcode.js`): the operator's page. With a gateway
 *   token (an admin: an authenticated caller on the bridge's own host) it issues pairing codes
 *   (code, countdown, link and QR code), lists the devices as they connect and revokes them.
 * - `/devices.css`: the one stylesheet of both.
 *
 * The files are read once, at startup, from devices/pages/ (the QR encoder from the
 * `qrcode-generator` package: its plain browser build, which defines a global `qrcode`). Every
 * answer is `no-store` under DEVICE_PAGE_CSP: scripts, styles and connections to this origin
 * only, no inline script or style, no framing, no form posts, no Referer.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { sendJson, type GatewayRoute } from '../gateway/server';

/**
 * Everything from this origin only, nothing inline. `connect-src 'self'` covers the page's own
 * `ws:`/`wss:` socket (CSP Level 3, checked in Chromium by test/e2e/devices-page.test.ts).
 */
export const DEVICE_PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const PAGE_DIR = path.join(__dirname, 'pages');
const HTML = 'text/html; charset=utf-8';
const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

/** Headers of every page answer (and of HEAD). */
const COMMON_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  // The pairing code lives in the fragment, which no browser sends; belt and braces.
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy': DEVICE_PAGE_CSP,
} as const;

interface PageFile {
  body: Buffer;
  type: string;
}

/** The page routes, keyed by path; the files are read now, once. */
export function devicePageRoutes(): Record<string, GatewayRoute> {
  const page = (name: string, type: string): PageFile => ({
    body: readFileSync(path.join(PAGE_DIR, name)),
    type,
  });
  const files: Record<string, PageFile> = {
    '/pair': page('pair.html', HTML),
    '/pair.js': page('pair.js', JS),
    '/devices': page('devices.html', HTML),
    '/devices.js': page('devices.js', JS),
    '/devices.css': page('devices.css', CSS),
    // The package's `require` entry is its plain script (dist/qrcode.js): `var qrcode = …` at
    // the top level, a global in a browser; its UMD tail does nothing there.
    '/devices/qrcode.js': { body: readFileSync(require.resolve('qrcode-generator')), type: JS },
  };
  return Object.fromEntries(
    Object.entries(files).map(([route, file]) => [route, serveFile(file)] as const),
  );
}

function serveFile(file: PageFile): GatewayRoute {
  return async (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendJson(
        res,
        405,
        { ok: false, error: { code: 'BAD_REQUEST', message: 'use GET' } },
        { allow: 'GET, HEAD' },
      );
    }
    res.writeHead(200, {
      ...COMMON_HEADERS,
      'content-type': file.type,
      'content-length': String(file.body.length),
    });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  };
}
