/* ArmorClaw call page: one voice call to an agent through the bridge (docs/signaling.md).
 *
 * Plain browser JavaScript, no bundler. Opened as /call#session=<id>&token=<jwt>[&turn=<json>]:
 * the fragment never reaches the server or its logs, and the token travels only inside the
 * WebSocket `hello`. The bridge is the only WebRTC peer; this page offers, the bridge answers
 * (and may later offer an ICE restart, which we answer).
 */
/* global window, document, location, history, RTCPeerConnection, MediaStream, AudioContext */
'use strict';

(function () {
  const stateEl = document.getElementById('state');
  const detailEl = document.getElementById('detail');
  const hangupButton = document.getElementById('hangup');
  const remoteAudio = document.getElementById('remote');

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
  let analyser = null;
  let audioContext = null;
  let hungUp = false;
  let authenticated = false;
  let mediaStarted = false;
  // Messages are handled one at a time: an ICE candidate must not overtake its description.
  let inbox = Promise.resolve();
  // Remote candidates that arrive before the remote description cannot be added yet.
  let pendingCandidates = [];

  const TERMINAL = ['Ended', 'Failed'];

  function setState(next, detail) {
    if (TERMINAL.includes(state)) return; // the end is final
    state = next;
    stateEl.textContent = next;
    if (detail !== undefined) detailEl.textContent = detail;
    if (TERMINAL.includes(next)) {
      hangupButton.disabled = true;
      teardown();
    }
  }

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
    // Processing off: the agent hears the caller as captured (and level checks stay honest).
    localStream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      video: false,
    });
    pc = new RTCPeerConnection({ iceServers: turn });
    for (const track of localStream.getAudioTracks()) pc.addTrack(track, localStream);
    pc.onicecandidate = (event) => {
      if (event.candidate) send('ice', event.candidate.toJSON());
    };
    pc.ontrack = (event) => playRemote(event.track);
    await pc.setLocalDescription(await pc.createOffer());
    send('offer', { sdp: pc.localDescription.sdp });
  }

  function playRemote(track) {
    // The bridge's answer carries no msid, so event.streams may be empty: build the stream.
    const stream = new MediaStream([track]);
    remoteAudio.srcObject = stream;
    remoteAudio.play().catch(() => {
      detailEl.textContent = 'Click anywhere to hear the agent.';
      document.addEventListener('click', () => remoteAudio.play(), { once: true });
    });
    // Chromium feeds a remote stream to WebAudio only while a media element also plays it.
    audioContext = new AudioContext();
    const source = audioContext.createMediaStreamSource(stream);
    analyser = audioContext.createAnalyser();
    analyser.fftSize = 32768; // ~0.7 s at 48 kHz: enough cycles for a precise frequency
    source.connect(analyser);
    audioContext.resume().catch(() => {});
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
        setState(message.payload.state);
        if (!mediaStarted && !TERMINAL.includes(state)) {
          mediaStarted = true;
          hangupButton.disabled = false;
          await startMedia();
        }
        break;
      case 'answer':
        await applyRemote({ type: 'answer', sdp: message.payload.sdp });
        break;
      case 'offer': // the bridge restarts ICE
        await applyRemote({ type: 'offer', sdp: message.payload.sdp });
        await pc.setLocalDescription(await pc.createAnswer());
        send('answer', { sdp: pc.localDescription.sdp });
        break;
      case 'ice':
        if (pc && pc.remoteDescription) await pc.addIceCandidate(message.payload).catch(() => {});
        else pendingCandidates.push(message.payload);
        break;
      case 'bye':
        setState(message.payload.state === 'Failed' ? 'Failed' : 'Ended', message.payload.reason);
        break;
      case 'error':
        detailEl.textContent = message.payload.message;
        if (!authenticated) setState('Failed', message.payload.message);
        break;
    }
  }

  function hangup() {
    if (TERMINAL.includes(state) || hungUp) return;
    hungUp = true;
    hangupButton.disabled = true;
    send('bye', { reason: 'caller hung up' });
    // The bridge answers with bye (→ Ended); the socket closing after it does the same.
  }

  function teardown() {
    if (pc) pc.close();
    if (localStream) for (const t of localStream.getTracks()) t.stop();
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }

  /** Level and pitch of what the agent sends, for tests: `{rms, frequency}` (0..1, Hz). */
  function receivedAudio() {
    if (!analyser) return { rms: 0, frequency: 0 };
    const samples = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    return {
      rms,
      frequency: rms < 1e-4 ? 0 : zeroCrossingFrequency(samples, audioContext.sampleRate),
    };
  }

  /** Upward zero crossings, interpolated between samples, over the span they cover. */
  function zeroCrossingFrequency(samples, sampleRate) {
    let first = -1;
    let last = -1;
    let count = 0;
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1];
      const b = samples[i];
      if (a < 0 && b >= 0) {
        const at = i - 1 + a / (a - b);
        if (first < 0) first = at;
        last = at;
        count++;
      }
    }
    return count < 2 ? 0 : ((count - 1) * sampleRate) / (last - first);
  }

  window.armorclawCall = {
    get state() {
      return state;
    },
    hangup,
    receivedAudio,
  };
  hangupButton.addEventListener('click', hangup);

  if (!sessionId || !token) {
    setState('Failed', 'This link is incomplete: it needs #session=…&token=….');
    return;
  }
  stateEl.textContent = state;
  ws = new WebSocket(`wss://${location.host}/webrtc`);
  ws.onopen = () => send('hello', { token });
  ws.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    inbox = inbox
      .then(() => onMessage(message))
      .catch((err) => setState('Failed', String((err && err.message) || err)));
  };
  ws.onerror = () => setState('Failed', 'Lost the connection to the bridge.');
  ws.onclose = (event) => {
    if (hungUp && event.code === 1000) setState('Ended');
    else setState('Failed', event.reason || 'The bridge closed the connection.');
  };
})();
