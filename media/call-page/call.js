/* ArmorClaw call page: one voice call to an agent through the bridge (docs/signaling.md).
 *
 * Plain browser JavaScript, no bundler. Opened as /call#session=<id>&token=<jwt>[&turn=<json>]:
 * the fragment never reaches the server or its logs, and the token travels only inside the
 * WebSocket `hello`. The bridge is the only WebRTC peer; this page offers, the bridge answers
 * (and may later offer an ICE restart, which we answer).
 *
 * The CSP allows no inline style: looks change through classes, data-* attributes and CSSOM
 * properties (element.style.x = …), never a style attribute.
 */
/* global window, document, location, history, requestAnimationFrame,
   RTCPeerConnection, MediaStream, AudioContext, CSS */
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const root = $('call');
  const stateEl = $('state');
  const elapsedEl = $('elapsed');
  const errorEl = $('error');
  const noticeEl = $('notice');
  const muteButton = $('mute');
  const mutedBadge = $('muted-badge');
  const hangupButton = $('hangup');
  const remoteAudio = $('remote');
  const { meter, levelAndPitch } = window.armorclawAudio;
  const micMeter = meter($('mic-level'));
  const agentMeter = meter($('agent-level'));

  /** What the caller reads for each way a call can end or fail (signaling codes, bye reasons). */
  const messages = $('messages').content;
  const messageFor = (reason) => {
    const el = reason && messages.querySelector(`[data-reason="${CSS.escape(reason)}"]`);
    return el ? el.textContent.replace(/\s+/g, ' ').trim() : '';
  };
  /** Signaling errors after which this socket is closed for good (docs/signaling.md). */
  const FATAL_ERRORS = 'unauthorized token_expired session_not_found hello_timeout replaced';
  const MIC_ERRORS = {
    NotAllowedError: 'mic_denied',
    SecurityError: 'mic_denied',
    NotFoundError: 'mic_missing',
  };
  const TERMINAL = ['Ended', 'Failed'];
  const MAX_RECONNECTS = 3;

  const params = new URLSearchParams(location.hash.slice(1));
  const sessionId = params.get('session');
  const token = params.get('token');
  const turn = parseTurn(params.get('turn'));
  // Keep the token out of the address bar, history and bookmarks once read.
  history.replaceState(null, '', location.pathname);

  let state = 'Connecting';
  let ws = null;
  let pc = null;
  let localStream = null;
  let audioContext = null;
  let analyser = null; // the agent's audio, long window: frequency for tests
  let hungUp = false;
  let muted = false;
  let authenticated = false;
  let mediaStarted = false;
  let reconnects = 0;
  let liveSince = null;
  let endedAfterMs = null;
  // Messages are handled one at a time: an ICE candidate must not overtake its description.
  let inbox = Promise.resolve();
  // Remote candidates that arrive before the remote description cannot be added yet.
  let pendingCandidates = [];

  function setState(next) {
    if (TERMINAL.includes(state)) return; // the end is final
    state = next;
    stateEl.textContent = next;
    root.dataset.state = next;
    if (next === 'Live') {
      if (liveSince === null) liveSince = performance.now();
      notice('');
      showError('');
    }
    if (next === 'Reconnecting') notice('Reconnecting the audio…');
    if (TERMINAL.includes(next)) {
      if (liveSince !== null) endedAfterMs = performance.now() - liveSince;
      hangupButton.disabled = true;
      muteButton.disabled = true;
      teardown();
    }
    renderElapsed();
  }

  /** Ends the call on the page with the caller-facing text for `reason`. */
  function finish(next, reason) {
    if (TERMINAL.includes(state)) return;
    root.dataset.reason = reason;
    const text = messageFor(reason) || messageFor(next === 'Failed' ? 'failed' : 'ended');
    if (next === 'Failed') showError(text);
    notice(next === 'Failed' ? '' : text);
    setState(next);
  }

  function showError(text) {
    errorEl.textContent = text;
    errorEl.hidden = !text;
  }

  const notice = (text) => (noticeEl.textContent = text);

  function send(type, payload) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type, session_id: sessionId, payload }));
    }
  }

  function parseTurn(raw) {
    if (!raw) return [];
    try {
      const t = JSON.parse(raw);
      const list = Array.isArray(t) ? t : [t];
      return list.filter((s) => s && s.urls);
    } catch {
      return [];
    }
  }

  async function startMedia() {
    try {
      // Processing off: the agent hears the caller as captured (and level checks stay honest).
      localStream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
        video: false,
      });
    } catch (err) {
      hangup(); // the bridge holds the call (and an agent) for us: release it
      finish('Failed', MIC_ERRORS[err && err.name] || 'mic_failed');
      return;
    }
    if (TERMINAL.includes(state)) return teardown();
    pc = new RTCPeerConnection({ iceServers: turn });
    for (const track of localStream.getAudioTracks()) pc.addTrack(track, localStream);
    applyMute();
    micMeter.source(ensureAudioContext().createMediaStreamSource(localStream));
    pc.onicecandidate = (event) => {
      if (event.candidate) send('ice', event.candidate.toJSON());
    };
    pc.onconnectionstatechange = () => {
      // The bridge decides the call's fate (restart, end); the caller learns why it is quiet.
      if (pc.connectionState === 'failed' && !TERMINAL.includes(state)) {
        notice('The audio connection is failing…');
      }
    };
    pc.ontrack = (event) => playRemote(event.track);
    await pc.setLocalDescription(await pc.createOffer());
    send('offer', { sdp: pc.localDescription.sdp });
    muteButton.disabled = false;
  }

  function ensureAudioContext() {
    if (!audioContext) {
      audioContext = new AudioContext();
      // Phones start audio suspended until a tap.
      if (audioContext.state !== 'running') {
        audioContext.resume().catch(() => {});
        document.addEventListener('click', () => audioContext.resume().catch(() => {}), {
          once: true,
        });
      }
    }
    return audioContext;
  }

  function playRemote(track) {
    // The bridge's answer carries no msid, so event.streams may be empty: build the stream.
    const stream = new MediaStream([track]);
    remoteAudio.srcObject = stream;
    remoteAudio.play().catch(() => {
      notice('Tap anywhere to hear the agent.');
      document.addEventListener('click', () => remoteAudio.play().then(() => notice('')), {
        once: true,
      });
    });
    // Chromium feeds a remote stream to WebAudio only while a media element also plays it.
    const source = ensureAudioContext().createMediaStreamSource(stream);
    analyser = audioContext.createAnalyser();
    analyser.fftSize = 32768; // ~0.7 s at 48 kHz: enough cycles for a precise frequency
    source.connect(analyser);
    agentMeter.source(source);
  }

  function tick(now) {
    const active = !TERMINAL.includes(state);
    micMeter.update(now, active);
    agentMeter.update(now, active);
    renderElapsed();
    requestAnimationFrame(tick);
  }

  function renderElapsed() {
    const ms =
      endedAfterMs !== null ? endedAfterMs : liveSince !== null ? performance.now() - liveSince : 0;
    const total = Math.floor(ms / 1000);
    const two = (n) => String(n).padStart(2, '0');
    const h = Math.floor(total / 3600);
    const text = (h > 0 ? `${h}:` : '') + `${two(Math.floor(total / 60) % 60)}:${two(total % 60)}`;
    if (elapsedEl.textContent !== text) elapsedEl.textContent = text;
  }

  async function applyRemote(description) {
    await pc.setRemoteDescription(description);
    const queued = pendingCandidates;
    pendingCandidates = [];
    for (const c of queued) await pc.addIceCandidate(c).catch(() => {});
  }

  async function onMessage(message) {
    switch (message.type) {
      case 'state':
        authenticated = true;
        reconnects = 0;
        if (TERMINAL.includes(message.payload.state)) return finish(message.payload.state, '');
        setState(message.payload.state);
        if (!mediaStarted) {
          mediaStarted = true;
          hangupButton.disabled = false;
          await startMedia();
        }
        break;
      case 'answer':
        if (pc) await applyRemote({ type: 'answer', sdp: message.payload.sdp });
        break;
      case 'offer': // the bridge restarts ICE
        if (!pc) break;
        await applyRemote({ type: 'offer', sdp: message.payload.sdp });
        await pc.setLocalDescription(await pc.createAnswer());
        send('answer', { sdp: pc.localDescription.sdp });
        break;
      case 'ice':
        if (pc && pc.remoteDescription) await pc.addIceCandidate(message.payload).catch(() => {});
        else pendingCandidates.push(message.payload);
        break;
      case 'bye': {
        const reason =
          message.payload.reason === 'user_hangup' && hungUp
            ? 'you_hung_up'
            : message.payload.reason;
        finish(message.payload.state === 'Failed' ? 'Failed' : 'Ended', reason);
        break;
      }
      case 'error': {
        const code = message.payload.code;
        if (FATAL_ERRORS.split(' ').includes(code)) finish('Failed', code);
        else if (code === 'negotiation_failed') showError(messageFor('negotiation_failed'));
        break; // rate_limited, bad_message, wrong_session: this page's own slip; nothing to tell
      }
    }
  }

  function hangup() {
    if (TERMINAL.includes(state) || hungUp) return;
    hungUp = true;
    hangupButton.disabled = true;
    muteButton.disabled = true;
    notice('Hanging up…');
    if (authenticated && ws && ws.readyState === WebSocket.OPEN) {
      send('bye', { reason: 'caller hung up' });
      // The bridge answers with bye (→ Ended), or closes; a bridge that does neither is gone.
      window.setTimeout(() => finish('Ended', 'you_hung_up'), 5000);
    } else {
      finish('Ended', 'you_hung_up');
    }
  }

  function setMuted(next) {
    if (TERMINAL.includes(state) || !localStream) return;
    muted = next;
    applyMute();
    notice(muted ? 'Microphone muted: the agent hears silence.' : 'Microphone on.');
  }

  function applyMute() {
    // A disabled track keeps sending frames, of silence: the agent hears nothing, the call stays up.
    for (const t of localStream.getAudioTracks()) t.enabled = !muted;
    muteButton.textContent = muted ? 'Unmute' : 'Mute';
    muteButton.classList.toggle('is-muted', muted);
    mutedBadge.hidden = !muted;
    root.dataset.muted = String(muted);
  }

  function teardown() {
    if (pc) pc.close();
    if (localStream) for (const t of localStream.getTracks()) t.stop();
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
    if (audioContext) audioContext.close().catch(() => {});
  }

  /** Level and pitch of what the agent sends, for tests: `{rms, frequency}` (0..1, Hz). */
  function receivedAudio() {
    if (!analyser || TERMINAL.includes(state)) return { rms: 0, frequency: 0 };
    return levelAndPitch(analyser);
  }

  function connect() {
    const socket = new WebSocket(`wss://${location.host}/webrtc`);
    ws = socket;
    socket.onopen = () => send('hello', { token });
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      inbox = inbox
        .then(() => onMessage(message))
        .catch(() => {
          hangup();
          finish('Failed', 'page_error');
        });
    };
    // An error event is always followed by close, which decides.
    socket.onclose = (event) => {
      if (socket !== ws || TERMINAL.includes(state)) return;
      if (hungUp) return finish('Ended', 'you_hung_up');
      // The call's media outlives its signaling socket: say hello again, with the same token.
      if (authenticated && event.code !== 1000 && reconnects < MAX_RECONNECTS) {
        reconnects++;
        notice('Lost the connection to the bridge; reconnecting…');
        window.setTimeout(() => TERMINAL.includes(state) || connect(), 1000 * reconnects);
        return;
      }
      finish('Failed', 'signaling_closed');
    };
  }

  window.armorclawCall = {
    get state() {
      return state;
    },
    get muted() {
      return muted;
    },
    hangup,
    setMuted,
    receivedAudio,
  };
  hangupButton.addEventListener('click', hangup);
  muteButton.addEventListener('click', () => setMuted(!muted));
  // A reload cannot rejoin (the token left the address bar): leaving the page is hanging up.
  window.addEventListener('pagehide', hangup);
  requestAnimationFrame(tick);

  if (!sessionId || !token) return finish('Failed', 'link_incomplete');
  connect();
})();
