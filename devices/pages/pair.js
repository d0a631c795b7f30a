/* ArmorClaw pairing page: a browser becomes a paired device of the bridge (docs/devices.md).
 *
 * Plain browser JavaScript, no bundler. Opened as /pair#VC-XXXX-XXXX (the QR code of
 * `armorclaw pair` or of the Devices page): the code is in the fragment, which never reaches a
 * server; it can also be typed. Pairing is `POST /api/bridge/pair/complete`; the answer
 * `{bridgeId, wsToken, scope}` is kept in localStorage, and the code leaves the address bar.
 * Then the page holds the device WebSocket `/api/bridge/ws`, authenticating with its first
 * message (a browser cannot set an Authorization header on a WebSocket), reconnecting with
 * exponential backoff and jitter, and offers a small chat with the device's agent
 * (`chatCompletions` invokes). A close with 4403 (revoked), 4409 (token replaced) or 4401
 * (unknown token) forgets the pairing: the token will never work again.
 *
 * The CSP allows no inline style or script: looks change through classes, data-* attributes
 * and the hidden property only.
 */
/* global window, document, location, history, indexedDB, CSS */
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const root = $('pair');
  const title = $('title');
  const stateEl = $('state');
  const deviceLine = $('device-line');
  const errorEl = $('error');
  const noticeEl = $('notice');
  const pairForm = $('pair-form');
  const codeInput = $('code');
  const nameInput = $('name');
  const pairButton = $('pair-button');
  const chat = $('chat');
  const messagesEl = $('messages');
  const chatEmpty = $('chat-empty');
  const chatForm = $('chat-form');
  const messageInput = $('message');
  const sendButton = $('send');
  const pairedActions = $('paired-actions');
  const forgetButton = $('forget');

  const STORAGE_KEY = 'armorclaw.device';
  const BRIDGE_VERSION = 'web-1';
  const WS_PATH = '/api/bridge/ws';
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  /** Close codes of the device socket (formats/device-frames.ts). */
  const CLOSE = {
    unauthorized: 4401,
    revoked: 4403,
    rotated: 4409,
    authTimeout: 4408,
    tooMany: 4429,
  };

  /** What a person reads for each way pairing or a connection is refused (pair.html). */
  const reasons = $('reasons').content;
  const messageFor = (reason) => {
    const el = reason && reasons.querySelector(`[data-reason="${CSS.escape(reason)}"]`);
    return el ? el.textContent.replace(/\s+/g, ' ').trim() : '';
  };

  const browser = describeBrowser(navigator.userAgent, navigator.maxTouchPoints || 0);
  let device = loadDevice(); // {bridgeId, wsToken, scope, name} or null
  let ws = null;
  let connected = false;
  let attempts = 0; // failed connections since the last `ready`
  let retryTimer = null;
  let retryAt = 0;
  let countdownTimer = null;
  let forgetting = false;
  let waiting = false; // a chat answer is awaited
  let seq = 0;
  const pending = new Map(); // invoke id → {resolve, reject}
  const conversation = []; // the chat so far, as chatCompletions messages

  // ---- state and messages -------------------------------------------------------------------

  /** `kind`: idle | busy | connected | waiting | revoked | refused (styles the dot). */
  function setState(kind, text) {
    root.dataset.state = kind;
    if (stateEl.textContent !== text) stateEl.textContent = text;
  }

  function showError(text) {
    errorEl.textContent = text;
    errorEl.hidden = !text;
  }

  const notice = (text) => {
    if (noticeEl.textContent !== text) noticeEl.textContent = text;
  };

  /** The pairing form (no device) or the chat and "Forget" (a device). */
  function render() {
    pairForm.hidden = Boolean(device);
    chat.hidden = !device;
    pairedActions.hidden = !device;
    deviceLine.hidden = !device;
    title.textContent = device ? 'Your paired device' : 'Pair this device';
    if (device) deviceLine.textContent = `Paired as “${device.name}”`;
    updateChatControls();
  }

  function updateChatControls() {
    const usable = Boolean(device) && connected;
    messageInput.disabled = !usable;
    sendButton.disabled = !usable || waiting;
  }

  // ---- local storage of the pairing ---------------------------------------------------------

  function loadDevice() {
    try {
      const d = JSON.parse(localStorage.getItem(STORAGE_KEY) || 'null');
      if (d && typeof d.wsToken === 'string' && typeof d.bridgeId === 'string') {
        return {
          bridgeId: d.bridgeId,
          wsToken: d.wsToken,
          scope: typeof d.scope === 'string' ? d.scope : '',
          name: typeof d.name === 'string' ? d.name : '',
        };
      }
    } catch {
      // No storage (private mode, disabled) or garbage: not paired.
    }
    return null;
  }

  function saveDevice(d) {
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(d));
      return true;
    } catch {
      return false;
    }
  }

  /** Forgets the pairing in this browser: the token, and the device key. */
  function dropDevice() {
    device = null;
    resetChat();
    try {
      localStorage.removeItem(STORAGE_KEY);
    } catch {
      // Nothing stored.
    }
    keyStore('readwrite', (store) => store.delete('device')).catch(() => {});
  }

  // ---- the device key -----------------------------------------------------------------------

  /**
   * An ECDSA P-256 key pair made by WebCrypto; the public half (SPKI, base64) goes to the
   * bridge as `pubKey`. The private key is made non-extractable and kept in this browser's
   * IndexedDB (as a CryptoKey: scripts of this origin can use it, nobody can read it out), ready
   * for a later proof of possession; the bridge only stores the public key for now. Keeping it
   * is best effort: pairing does not depend on it.
   */
  async function makeDeviceKey() {
    if (!window.isSecureContext || !crypto.subtle) throw new Error('insecure');
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
      'sign',
      'verify',
    ]);
    const spki = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey));
    await keyStore('readwrite', (store) => store.put(pair, 'device')).catch(() => {});
    let binary = '';
    for (const byte of spki) binary += String.fromCharCode(byte);
    return btoa(binary);
  }

  function keyStore(mode, use) {
    return new Promise((resolve, reject) => {
      if (!window.indexedDB) return reject(new Error('no IndexedDB'));
      const opening = indexedDB.open('armorclaw-device', 1);
      opening.onupgradeneeded = () => opening.result.createObjectStore('keys');
      opening.onerror = () => reject(opening.error);
      opening.onsuccess = () => {
        const db = opening.result;
        const tx = db.transaction('keys', mode);
        use(tx.objectStore('keys'));
        tx.oncomplete = () => {
          db.close();
          resolve();
        };
        tx.onerror = tx.onabort = () => {
          db.close();
          reject(tx.error);
        };
      };
    });
  }

  // ---- pairing ------------------------------------------------------------------------------

  async function pair(event) {
    event.preventDefault();
    showError('');
    notice('');
    const pairCode = codeInput.value.trim();
    const name = nameInput.value.trim();
    if (!pairCode) {
      showError('Enter the pairing code.');
      return codeInput.focus();
    }
    if (!name) {
      showError('Enter a name for this device.');
      return nameInput.focus();
    }
    pairButton.disabled = true;
    setState('busy', 'Pairing…');
    try {
      await redeem(pairCode, name);
    } finally {
      pairButton.disabled = false;
    }
  }

  async function redeem(pairCode, name) {
    let pubKey;
    try {
      pubKey = await makeDeviceKey();
    } catch {
      setState('refused', 'Refused: no WebCrypto on this page');
      return showError(messageFor('insecure'));
    }
    let res;
    let body = null;
    try {
      res = await fetch('/api/bridge/pair/complete', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          pairCode,
          device: { name, os: browser.os, bridgeVersion: BRIDGE_VERSION },
          pubKey,
        }),
        cache: 'no-store',
        credentials: 'omit',
      });
      body = await res.json().catch(() => null);
    } catch {
      setState('idle', 'Not paired');
      return showError(messageFor('network'));
    }
    if (res.ok && body && typeof body.wsToken === 'string' && typeof body.bridgeId === 'string') {
      device = { bridgeId: body.bridgeId, wsToken: body.wsToken, scope: body.scope, name };
      const kept = saveDevice(device);
      // The code is spent: out of the address bar, the history and bookmarks.
      history.replaceState(null, '', location.pathname + location.search);
      codeInput.value = '';
      notice(
        kept ? '' : 'This browser does not keep the pairing: it lasts until this page is closed.',
      );
      render();
      return connect();
    }
    const error = (body && body.error) || {};
    const serverText = typeof error.message === 'string' ? error.message : `HTTP ${res.status}`;
    let text = messageFor(error.reason) || `The bridge refused the pairing (HTTP ${res.status}).`;
    if (error.reason === 'locked_out') {
      const seconds = Number(res.headers.get('retry-after'));
      if (seconds > 0) text = `Too many failed attempts: try again in ${seconds} s.`;
    }
    if (error.reason === 'invalid_request') text = `${text} ${serverText}`;
    setState('refused', `Refused: ${serverText}`);
    showError(text);
    codeInput.focus();
  }

  // ---- the device socket --------------------------------------------------------------------

  function connect() {
    clearRetry();
    if (!device) return;
    setState('busy', 'Connecting…');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${location.host}${WS_PATH}`);
    } catch {
      return scheduleReconnect();
    }
    ws = socket;
    const token = device.wsToken;
    // Browsers cannot set headers on a WebSocket: the token is the first message.
    socket.onopen = () => socket.send(JSON.stringify({ type: 'auth', token }));
    socket.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (socket === ws) onFrame(frame);
    };
    // An error event is always followed by close, which decides.
    socket.onclose = (event) => {
      if (socket !== ws) return;
      ws = null;
      onClosed(event.code, event.reason);
    };
  }

  function onFrame(frame) {
    if (frame.type === 'ready') {
      connected = true;
      attempts = 0;
      if (device && typeof frame.scope === 'string' && frame.scope !== device.scope) {
        device.scope = frame.scope;
        saveDevice(device);
      }
      setState('connected', `Connected (${frame.scope})`);
      showError('');
      notice('');
      render();
    } else if (frame.type === 'result') {
      const waiter = pending.get(frame.id);
      if (waiter) {
        pending.delete(frame.id);
        waiter.resolve(frame);
      }
    }
  }

  function onClosed(code, reason) {
    connected = false;
    for (const waiter of pending.values()) {
      waiter.reject(new Error('The connection to the bridge closed before the answer came.'));
    }
    pending.clear();
    updateChatControls();
    if (forgetting || !device) return;
    if (code === CLOSE.revoked || code === CLOSE.unauthorized || code === CLOSE.rotated) {
      // The token will never work again (a rotated one was handed to the operator): forget it,
      // and offer to pair anew.
      const revoked = code === CLOSE.revoked;
      dropDevice();
      render();
      setState('revoked', revoked ? 'Revoked — pair again' : 'Unknown device — pair again');
      showError(messageFor(revoked ? 'revoked' : 'unknown'));
      return;
    }
    if (code === CLOSE.tooMany || code === CLOSE.authTimeout) {
      notice(`Refused: ${reason || 'the bridge closed the connection'}`);
    }
    scheduleReconnect();
  }

  /** Exponential backoff from 1 s, doubling to 30 s, with "equal jitter" (half to all of it). */
  function scheduleReconnect() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempts);
    attempts += 1;
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    retryAt = Date.now() + delay;
    retryTimer = window.setTimeout(connect, delay);
    renderCountdown();
    countdownTimer = window.setInterval(renderCountdown, 250);
  }

  function renderCountdown() {
    const seconds = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
    setState('waiting', `Reconnecting in ${seconds} s`);
  }

  function clearRetry() {
    window.clearTimeout(retryTimer);
    window.clearInterval(countdownTimer);
    retryTimer = null;
    countdownTimer = null;
  }

  /** Back online or back in front: a pending reconnect happens now. */
  function reconnectNow() {
    if (device && !ws && retryTimer !== null && !document.hidden) connect();
  }

  function invoke(kind, body) {
    return new Promise((resolve, reject) => {
      if (!ws || !connected) return reject(new Error('Not connected to the bridge.'));
      const id = `web-${++seq}`;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, type: 'invoke', payload: { kind, body } }));
    });
  }

  // ---- chat ---------------------------------------------------------------------------------

  function addBubble(kind, who, text) {
    chatEmpty.hidden = true;
    const li = document.createElement('li');
    li.className = `bubble bubble-${kind}`;
    const label = document.createElement('span');
    label.className = 'visually-hidden';
    label.textContent = `${who}: `;
    const content = document.createElement('span');
    content.className = 'bubble-text';
    content.textContent = text;
    li.append(label, content);
    messagesEl.append(li);
    li.scrollIntoView({ block: 'nearest' });
    return li;
  }

  /** A new device, a new conversation. */
  function resetChat() {
    conversation.length = 0;
    for (const li of [...messagesEl.querySelectorAll('.bubble:not(#chat-empty)')]) li.remove();
    chatEmpty.hidden = false;
  }

  /** The assistant's text of a chat completion (a string, or text parts). */
  function answerText(payload) {
    const content =
      payload && payload.choices && payload.choices[0] && payload.choices[0].message
        ? payload.choices[0].message.content
        : null;
    if (typeof content === 'string') return content;
    if (Array.isArray(content)) {
      return content
        .map((part) => (part && typeof part.text === 'string' ? part.text : ''))
        .join('');
    }
    return '';
  }

  async function sendChat(event) {
    event.preventDefault();
    const text = messageInput.value.trim();
    if (!text || !connected || waiting) return;
    conversation.push({ role: 'user', content: text });
    addBubble('user', 'You', text);
    messageInput.value = '';
    waiting = true;
    updateChatControls();
    const thinking = addBubble('pending', 'Agent', 'Thinking…');
    thinking.setAttribute('aria-hidden', 'true');
    const asking = device;
    try {
      const frame = await invoke('chatCompletions', { messages: conversation.slice() });
      thinking.remove();
      if (device !== asking) return; // forgotten or revoked meanwhile: a new conversation
      if (frame.ok) {
        const answer = answerText(frame.payload);
        conversation.push({ role: 'assistant', content: answer });
        addBubble('assistant', 'Agent', answer || '(an empty answer)');
      } else {
        conversation.pop(); // not answered: not part of the conversation
        const e = frame.error || {};
        addBubble('error', 'Error', `${e.message || 'The request failed'} (${e.code || 'ERROR'})`);
      }
    } catch (err) {
      thinking.remove();
      if (device !== asking) return;
      conversation.pop();
      addBubble('error', 'Error', err.message);
    } finally {
      waiting = false;
      updateChatControls();
    }
  }

  // ---- forgetting ---------------------------------------------------------------------------

  async function forget() {
    if (!device) return;
    const ok = window.confirm(
      'Forget this device? It is revoked on the bridge and has to be paired again with a new code.',
    );
    if (!ok) return;
    const current = device;
    forgetButton.disabled = true;
    forgetting = true;
    showError('');
    notice('Revoking this device on the bridge…');
    let res;
    let body = null;
    try {
      res = await fetch('/api/bridge/revoke', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${current.wsToken}`,
        },
        body: JSON.stringify({ bridgeId: current.bridgeId }),
        cache: 'no-store',
        credentials: 'omit',
      });
      body = await res.json().catch(() => null);
    } catch {
      res = null;
    }
    forgetButton.disabled = false;
    const code = body && body.error && body.error.code;
    // Revoked now, or already unknown to the bridge: either way the token is worthless.
    const gone = res && (res.ok || code === 'AUTH_INVALID' || code === 'NOT_FOUND');
    if (!gone) {
      forgetting = false;
      notice('');
      showError(
        res
          ? `The bridge refused: ${(body && body.error && body.error.message) || `HTTP ${res.status}`}`
          : messageFor('network'),
      );
      if (device && !ws && retryTimer === null) scheduleReconnect();
      return;
    }
    clearRetry();
    dropDevice();
    if (ws) ws.close(1000, 'forgotten');
    ws = null;
    connected = false;
    forgetting = false;
    render();
    setState('idle', 'Not paired');
    notice('This device was forgotten and revoked on the bridge.');
  }

  // ---- start --------------------------------------------------------------------------------

  /** "Chrome on Android", and the short `os` token the bridge keeps. */
  function describeBrowser(ua, touchPoints) {
    const name = /Edg(A|iOS)?\//.test(ua)
      ? 'Edge'
      : /OPR\/|Opera/.test(ua)
        ? 'Opera'
        : /SamsungBrowser\//.test(ua)
          ? 'Samsung Internet'
          : /Firefox\/|FxiOS\//.test(ua)
            ? 'Firefox'
            : /Chrome\/|CriOS\/|Chromium\//.test(ua)
              ? 'Chrome'
              : /Safari\//.test(ua)
                ? 'Safari'
                : 'Browser';
    const systems = [
      [/Android/, 'Android', 'android'],
      [/iPhone|iPod/, 'iPhone', 'ios'],
      [/iPad/, 'iPad', 'ios'],
      // iPadOS asks for desktop pages as a Mac; a Mac has no touch screen.
      [/Macintosh/, touchPoints > 1 ? 'iPad' : 'Mac', touchPoints > 1 ? 'ios' : 'macos'],
      [/Windows/, 'Windows', 'windows'],
      [/CrOS/, 'ChromeOS', 'chromeos'],
      [/Linux/, 'Linux', 'linux'],
    ];
    const found = systems.find(([pattern]) => pattern.test(ua));
    return found
      ? { name: `${name} on ${found[1]}`, os: found[2] }
      : { name: `${name} on the web`, os: 'web' };
  }

  /** The code in the fragment (`#VC-7M2K-91Q4`), if it looks like one. */
  function codeFromHash() {
    let raw = location.hash.slice(1);
    try {
      raw = decodeURIComponent(raw);
    } catch {
      return '';
    }
    raw = raw.trim();
    return /^[A-Za-z0-9 -]{4,24}$/.test(raw) ? raw : '';
  }

  function takeCodeFromHash() {
    const fromHash = codeFromHash();
    if (!fromHash) return;
    codeInput.value = fromHash;
    if (device) {
      notice(
        `This browser is already paired as “${device.name}”. Forget this device to pair it again.`,
      );
    }
  }

  pairForm.addEventListener('submit', pair);
  chatForm.addEventListener('submit', sendChat);
  messageInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      chatForm.requestSubmit();
    }
  });
  forgetButton.addEventListener('click', forget);
  window.addEventListener('hashchange', takeCodeFromHash);
  window.addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', reconnectNow);

  nameInput.value = browser.name;
  takeCodeFromHash();
  render();
  if (device) connect();
  else setState('idle', 'Not paired');
})();
