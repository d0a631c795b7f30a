/* ArmorClaw devices page: the operator pairs and revokes devices (docs/devices.md).
 *
 * Plain browser JavaScript, no bundler. Every action is a gateway call, `POST /rpc` with the
 * gateway token the operator typed (kept in sessionStorage: this tab only): `devices.list`
 * (polled every 2 s, so a device pairing, connecting or being revoked shows at once),
 * `pair.start` (the code, a countdown to `expiresAt`, the link and its QR code) and
 * `devices.revoke`. These are the gateway's admin role's only (an authenticated caller on the
 * bridge's own host); a refusal's message is shown as the gateway wrote it.
 *
 * The QR code is drawn by qrcode-generator (/devices/qrcode.js, the global `qrcode`) into an
 * SVG built with DOM calls: under the CSP no inline style, so colours are SVG attributes.
 */
/* global window, document */
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const root = $('devices-page');
  const errorEl = $('error');
  const noticeEl = $('notice');
  const tokenForm = $('token-form');
  const tokenInput = $('token');
  const tokenButton = $('token-button');
  const consoleEl = $('console');
  const signOutButton = $('sign-out');
  const pairForm = $('pair-form');
  const scopeSelect = $('scope');
  const newCodeButton = $('new-code');
  const codePanel = $('code-panel');
  const codeEl = $('code');
  const countdownEl = $('countdown');
  const codeScopeEl = $('code-scope');
  const pairUrlEl = $('pair-url');
  const loopbackHint = $('loopback-hint');
  const qrEl = $('qr');
  const pairedEl = $('paired');
  const rows = $('device-rows');
  const table = $('device-table');
  const noDevices = $('no-devices');
  const listStatus = $('list-status');

  const TOKEN_KEY = 'armorclaw.gatewayToken';
  const POLL_MS = 2000;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  /** Errors after which the token is of no use: back to the token form. */
  const TOKEN_REFUSED = ['AUTH_INVALID', 'AUTH_MISSING'];

  let token = readToken();
  let seq = 0;
  let pollTimer = null;
  let polling = false;
  /** The code shown: {pairCode, expiresAt, scope, pairUrl, known: Set of bridgeIds before it}. */
  let shown = null;
  let countdownTimer = null;
  /** An error shown by polling, cleared by the next poll that works. */
  let pollError = false;
  const rowsById = new Map();

  class RpcFailure extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  // ---- messages -----------------------------------------------------------------------------

  function showError(text) {
    errorEl.textContent = text;
    errorEl.hidden = !text;
  }

  const notice = (text) => {
    if (noticeEl.textContent !== text) noticeEl.textContent = text;
  };

  // ---- the gateway token --------------------------------------------------------------------

  function readToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch {
      return '';
    }
  }

  function keepToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // No session storage: the token lasts as long as the page.
    }
  }

  /** One gateway call: its result, or an RpcFailure with the gateway's code and message. */
  async function rpc(method, params) {
    let res;
    try {
      res = await fetch('/rpc', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ id: `web-${++seq}`, version: '2.0', method, params: params || {} }),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch {
      throw new RpcFailure('NETWORK', 'Could not reach the bridge.');
    }
    const body = await res.json().catch(() => null);
    if (body && body.ok === true) return body.result;
    const e = (body && body.error) || {};
    throw new RpcFailure(e.code || 'HTTP', e.message || `The gateway answered HTTP ${res.status}.`);
  }

  async function signIn(event) {
    event.preventDefault();
    const value = tokenInput.value.trim();
    showError('');
    if (!value) {
      showError('Enter a gateway token.');
      return tokenInput.focus();
    }
    token = value;
    tokenButton.disabled = true;
    notice('Checking the token…');
    try {
      const { devices } = await rpc('devices.list');
      keepToken(token);
      tokenInput.value = '';
      notice('');
      enterConsole(devices);
    } catch (err) {
      token = '';
      notice('');
      showError(`Refused: ${err.message}`);
      tokenInput.focus();
    } finally {
      tokenButton.disabled = false;
    }
  }

  function enterConsole(devices) {
    root.dataset.signedIn = 'true';
    tokenForm.hidden = true;
    consoleEl.hidden = false;
    if (devices) renderDevices(devices);
    schedulePoll(devices ? POLL_MS : 0);
  }

  /** Back to the token form (`why`: the refusal to show, if any). */
  function signOut(why) {
    token = '';
    keepToken('');
    window.clearTimeout(pollTimer);
    pollTimer = null;
    hideCode();
    pairedEl.hidden = true;
    root.dataset.signedIn = 'false';
    consoleEl.hidden = true;
    tokenForm.hidden = false;
    for (const row of rowsById.values()) row.remove();
    rowsById.clear();
    notice('');
    showError(why || '');
    tokenInput.focus();
  }

  // ---- devices.list, every 2 s --------------------------------------------------------------

  function schedulePoll(delay) {
    window.clearTimeout(pollTimer);
    pollTimer = window.setTimeout(poll, delay);
  }

  async function poll() {
    pollTimer = null;
    if (!token || polling) return;
    // Nobody looks at a hidden tab: it is polled again when it shows.
    if (document.hidden) return schedulePoll(POLL_MS);
    polling = true;
    try {
      const { devices } = await rpc('devices.list');
      if (pollError) showError('');
      pollError = false;
      renderDevices(devices);
    } catch (err) {
      if (TOKEN_REFUSED.includes(err.code)) return signOut(`Refused: ${err.message}`);
      pollError = true;
      showError(
        err.code === 'NETWORK'
          ? 'Lost contact with the bridge; retrying…'
          : `Refused: ${err.message}`,
      );
      // The admin role is a matter of where the page is opened: retrying will not change it.
      if (err.code === 'AUTH_ROLE_MISMATCH') return;
    } finally {
      polling = false;
    }
    if (token && pollTimer === null) schedulePoll(POLL_MS);
  }

  function stateOf(device) {
    if (device.revokedAt) return { key: 'revoked', text: 'revoked' };
    if (device.connections > 0) {
      return { key: 'connected', text: `connected (${device.connections})` };
    }
    return { key: 'offline', text: 'offline' };
  }

  function renderDevices(devices) {
    const sorted = devices
      .slice()
      .sort((a, b) => (a.pairedAt < b.pairedAt ? 1 : a.pairedAt > b.pairedAt ? -1 : 0));
    const seen = new Set();
    sorted.forEach((device, index) => {
      seen.add(device.bridgeId);
      let row = rowsById.get(device.bridgeId);
      if (!row) {
        row = makeRow(device);
        rowsById.set(device.bridgeId, row);
      }
      updateRow(row, device);
      // Rows move only when the order changes: a focused Revoke button keeps its focus.
      if (rows.children[index] !== row) rows.insertBefore(row, rows.children[index] || null);
    });
    for (const [id, row] of rowsById) {
      if (!seen.has(id)) {
        row.remove();
        rowsById.delete(id);
      }
    }
    table.hidden = sorted.length === 0;
    noDevices.hidden = sorted.length > 0;
    listStatus.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    if (shown) {
      const fresh = sorted.find((d) => !shown.known.has(d.bridgeId) && !d.revokedAt);
      if (fresh) {
        hideCode();
        notice('');
        pairedEl.textContent = `Paired: ${fresh.name}`;
        pairedEl.hidden = false;
      }
    }
  }

  function cell(row, label, tag) {
    const el = document.createElement(tag || 'td');
    el.dataset.label = label;
    row.append(el);
    return el;
  }

  function makeRow(device) {
    const row = document.createElement('tr');
    row.dataset.bridgeId = device.bridgeId;
    const name = cell(row, 'Name', 'th');
    name.scope = 'row';
    name.className = 'cell-name';
    cell(row, 'OS').className = 'cell-os';
    cell(row, 'Scope').className = 'cell-scope';
    const paired = cell(row, 'Paired at');
    paired.className = 'cell-paired';
    paired.append(document.createElement('time'));
    const state = cell(row, 'State');
    state.className = 'cell-state';
    const dot = document.createElement('span');
    dot.className = 'state-dot';
    dot.setAttribute('aria-hidden', 'true');
    const text = document.createElement('span');
    text.className = 'state-text';
    state.append(dot, text);
    const actions = cell(row, 'Actions');
    actions.className = 'cell-actions';
    const revoke = document.createElement('button');
    revoke.type = 'button';
    revoke.className = 'button button-danger button-small';
    revoke.textContent = 'Revoke';
    revoke.addEventListener('click', () => revokeDevice(row));
    actions.append(revoke);
    return row;
  }

  const setText = (el, text) => {
    if (el.textContent !== text) el.textContent = text;
  };

  function updateRow(row, device) {
    row.device = device;
    const state = stateOf(device);
    row.dataset.state = state.key;
    setText(row.querySelector('.cell-name'), device.name);
    setText(row.querySelector('.cell-os'), device.os);
    setText(row.querySelector('.cell-scope'), device.scope);
    const time = row.querySelector('.cell-paired time');
    time.dateTime = device.pairedAt;
    setText(time, new Date(device.pairedAt).toLocaleString());
    setText(row.querySelector('.state-text'), state.text);
    const revoke = row.querySelector('.cell-actions button');
    revoke.setAttribute('aria-label', `Revoke ${device.name}`);
    revoke.hidden = Boolean(device.revokedAt);
  }

  async function revokeDevice(row) {
    const device = row.device;
    if (!device || device.revokedAt) return;
    const ok = window.confirm(
      `Revoke “${device.name}”? Its connections close at once and its token stops working; ` +
        'it has to be paired again.',
    );
    if (!ok) return;
    const button = row.querySelector('.cell-actions button');
    button.disabled = true;
    showError('');
    try {
      const result = await rpc('devices.revoke', { bridgeId: device.bridgeId });
      updateRow(row, result.device);
      notice(`Revoked ${device.name}.`);
      // Keyboard users lose the button they pressed: keep them on the row's name.
      const name = row.querySelector('.cell-name');
      name.tabIndex = -1;
      name.focus();
    } catch (err) {
      showError(`Refused: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  // ---- pairing codes ------------------------------------------------------------------------

  async function newCode(event) {
    event.preventDefault();
    newCodeButton.disabled = true;
    showError('');
    pairedEl.hidden = true;
    try {
      // The devices before this code: a device not among them paired with it.
      const { devices } = await rpc('devices.list');
      renderDevices(devices);
      const started = await rpc('pair.start', { scope: scopeSelect.value });
      showCode(started, new Set(devices.map((d) => d.bridgeId)));
    } catch (err) {
      if (TOKEN_REFUSED.includes(err.code)) return signOut(`Refused: ${err.message}`);
      showError(`Refused: ${err.message}`);
    } finally {
      newCodeButton.disabled = false;
    }
  }

  function showCode(started, known) {
    shown = { ...started, known };
    codeEl.textContent = started.pairCode;
    codeScopeEl.textContent = started.scope;
    if (started.pairUrl) {
      pairUrlEl.href = started.pairUrl;
      pairUrlEl.textContent = started.pairUrl;
      drawQr(qrEl, started.pairUrl);
      qrEl.hidden = false;
      pairUrlEl.parentElement.hidden = false;
      loopbackHint.hidden = !isLoopback(started.pairUrl);
    } else {
      qrEl.hidden = true;
      pairUrlEl.parentElement.hidden = true;
      loopbackHint.hidden = true;
    }
    codePanel.hidden = false;
    notice(`New pairing code ${started.pairCode}, scope ${started.scope}.`);
    tick();
    window.clearInterval(countdownTimer);
    countdownTimer = window.setInterval(tick, 250);
  }

  /** A link to this host's loopback address: no phone can open it. */
  function isLoopback(url) {
    try {
      const host = new URL(url).hostname;
      return host === 'localhost' || host === '[::1]' || /^127\./.test(host);
    } catch {
      return false;
    }
  }

  function hideCode() {
    shown = null;
    window.clearInterval(countdownTimer);
    countdownTimer = null;
    codePanel.hidden = true;
    codeEl.textContent = '';
    qrEl.replaceChildren();
  }

  function tick() {
    if (!shown) return;
    const left = Date.parse(shown.expiresAt) - Date.now();
    if (!(left > 0)) {
      hideCode();
      notice('The pairing code expired. Make a new one to pair a device.');
      return;
    }
    const seconds = Math.ceil(left / 1000);
    const text = `Expires in ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
    setText(countdownEl, text);
  }

  /** The QR code of `text` as an SVG of black modules on white, with a 4-module quiet zone. */
  function drawQr(container, text) {
    const encoder = window.qrcode;
    encoder.stringToBytes = encoder.stringToBytesFuncs['UTF-8'];
    const qr = encoder(0, 'M');
    qr.addData(text);
    qr.make();
    const count = qr.getModuleCount();
    const quiet = 4;
    const size = count + 2 * quiet;
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', `0 0 ${size} ${size}`);
    svg.setAttribute('shape-rendering', 'crispEdges');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const background = document.createElementNS(SVG_NS, 'rect');
    background.setAttribute('width', String(size));
    background.setAttribute('height', String(size));
    background.setAttribute('fill', '#ffffff');
    let d = '';
    for (let r = 0; r < count; r++) {
      for (let c = 0; c < count; c++) {
        if (qr.isDark(r, c)) d += `M${c + quiet} ${r + quiet}h1v1h-1z`;
      }
    }
    const modules = document.createElementNS(SVG_NS, 'path');
    modules.setAttribute('d', d);
    modules.setAttribute('fill', '#000000');
    svg.append(background, modules);
    container.replaceChildren(svg);
  }

  // ---- start --------------------------------------------------------------------------------

  tokenForm.addEventListener('submit', signIn);
  signOutButton.addEventListener('click', () => signOut(''));
  pairForm.addEventListener('submit', newCode);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && token && pollTimer !== null) schedulePoll(0);
  });

  if (token) enterConsole(null);
  else tokenInput.focus();
})();
