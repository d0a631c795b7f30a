/**
 * Media loopback on this machine: a werift "client" calls the bridge's AudioPeer, sends a
 * 440 Hz tone as Opus RTP; the bridge decodes it, passes the PCM through the agent framing
 * over a real Unix socket to an echo agent and back, encodes it and returns it; the client
 * decodes the echo and checks frequency and level. Connect time and latencies are logged
 * (their numbers belong in bench/, the assertions here are sanity bounds only).
 */
import { RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { linkAgent } from '../../media/agent-link';
import { rms, tonePurity, zeroCrossingFrequency } from '../../media/audio-analysis';
import { ToneGenerator, runEchoAgent } from '../../media/echo';
import { FRAME_SAMPLES, silentFrame } from '../../media/pcm';
import { AudioPeer, type AudioPeerOptions } from '../../media/peer';
import type { UserCallState } from '../../machines/voice-call.machine';
import { Client, percentile, sendPaced, socketPair } from '../support/media-client';

jest.setTimeout(60_000);

const LOOPBACK: AudioPeerOptions = { additionalHostAddresses: ['127.0.0.1'] };

describe('media loopback: werift client ⇄ AudioPeer ⇄ PCM framing ⇄ echo agent', () => {
  it('echoes a 440 Hz tone end to end; logs connect time and latencies', async () => {
    const client = new Client();
    const states: UserCallState[] = [];
    const t0 = performance.now();
    const { peer, answerSdp } = await AudioPeer.answer(await client.offer(), LOOPBACK);
    peer.onStateChange(({ userState }) => states.push(userState));
    await client.pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
    await Promise.all([peer.waitConnected(), client.connected()]);
    const connectMs = performance.now() - t0;

    // Bridge → agent over the framing on a real Unix socket, and back.
    const { bridgeEnd, agentEnd, cleanup } = await socketPair();
    const agent = runEchoAgent(agentEnd);
    const link = linkAgent(peer, bridgeEnd);

    // One-way: client send time → decoded frame at the bridge, matched by stream position.
    const bridgeArrival = new Map<number, number>();
    peer.onAudioFrame(({ timestamp }) =>
      bridgeArrival.set(timestamp / FRAME_SAMPLES, performance.now()),
    );

    const warmup = 50;
    const silence = 75; // the first `warmup` of them warm up
    const toneFrames = 150;
    const tone = new ToneGenerator(440, 0.5);
    const sendTimes = await sendPaced(client, silence + toneFrames, (i) =>
      i < silence ? silentFrame() : tone.next(),
    );
    const total = silence + toneFrames;
    // Let the tail come back (the machine may be loaded: wait for the frames, not a fixed time).
    for (let waited = 0; client.received.length < total && waited < 10_000; waited += 50) {
      await new Promise((r) => setTimeout(r, 50));
    }

    // Latency after the first second: until then werift, the WASM codec and jest warm up
    // (the first frames of a cold process arrive hundreds of ms late, then catch up).
    const oneWay = sendTimes
      .map((t, i) => (bridgeArrival.get(i) ?? NaN) - t)
      .slice(warmup)
      .filter(Number.isFinite);
    const onset = client.received.find((f) => rms(f.pcm) > 0.05);
    const roundTripMs = onset ? onset.at - (sendTimes[silence] as number) : NaN;
    // The echoed frames come back in order: analyse the middle of the tone.
    const steady = Buffer.concat(client.received.slice(silence + 20, total - 10).map((f) => f.pcm));
    const freq = zeroCrossingFrequency(steady);
    const level = rms(steady);
    const stats = peer.stats;

    console.log(
      [
        `connect (offer → both connected): ${connectMs.toFixed(0)} ms`,
        `one-way client → bridge PCM: p50 ${percentile(oneWay, 50).toFixed(2)} ms, p95 ${percentile(oneWay, 95).toFixed(2)} ms (n=${oneWay.length})`,
        `round trip client → bridge → echo agent → bridge → client (tone onset, incl. 2× Opus delay): ${roundTripMs.toFixed(1)} ms`,
        `echo at client: ${freq.toFixed(2)} Hz, RMS ${level.toFixed(4)} (sent 0.3536), purity ${tonePurity(steady, 440).toFixed(3)}`,
        `bridge stats: ${JSON.stringify(stats)}; link: ${JSON.stringify(link.counters())}; agent frames: ${agent.received()}`,
        `user states: ${states.join(' → ')}`,
      ].join('\n'),
    );

    expect(states[0]).toBe('Live');
    expect(Math.abs(freq - 440)).toBeLessThan(440 * 0.01);
    expect(Math.abs(level - 0.5 / Math.SQRT2) / (0.5 / Math.SQRT2)).toBeLessThan(0.05);
    expect(tonePurity(steady, 440)).toBeGreaterThan(0.95);
    expect(stats.packetsReceived).toBe(total);
    expect(stats.packetsLost).toBe(0);
    expect(stats.decodeErrors).toBe(0);
    expect(link.counters().toAgent).toBe(total);
    expect(client.received.length).toBe(total);
    // Sanity bounds only.
    expect(connectMs).toBeLessThan(5_000);
    expect(percentile(oneWay, 50)).toBeLessThan(50);
    expect(roundTripMs).toBeLessThan(300);

    link.close();
    await agent.done;
    await peer.close();
    expect(peer.userState).toBe('Ended');
    expect(states.at(-1)).toBe('Ended');
    await client.close();
    cleanup();
  });

  it('bridge offers, client answers; media loss → Reconnecting; one ICE restart → Live again; a second is refused', async () => {
    const client = new Client();
    const { peer, offerSdp } = await AudioPeer.offer({ ...LOOPBACK, mediaTimeoutMs: 400 });
    const states: string[] = [];
    peer.onStateChange(({ connectionState, userState }) =>
      states.push(`${connectionState}/${userState}`),
    );
    await peer.acceptAnswer(await client.answer(offerSdp));
    await Promise.all([peer.waitConnected(), client.connected()]);

    let frames = 0;
    peer.onAudioFrame(() => frames++);
    const tone = new ToneGenerator(440);
    await sendPaced(client, 25, () => tone.next());
    const before = frames;
    expect(before).toBeGreaterThan(20);

    // The client goes quiet (as after a network change): the watchdog reports Reconnecting.
    await new Promise((r) => setTimeout(r, 1000));
    expect(peer.userState).toBe('Reconnecting');

    const t0 = performance.now();
    const restartOffer = await peer.restartIce();
    const ufrag = (sdp: string) => /a=ice-ufrag:(\S+)/.exec(sdp)?.[1];
    expect(ufrag(restartOffer)).not.toBe(ufrag(offerSdp));
    await peer.acceptAnswer(await client.answer(restartOffer));
    await peer.waitConnected();
    const restartMs = performance.now() - t0;
    await sendPaced(client, 25, () => tone.next());
    await new Promise((r) => setTimeout(r, 100));
    console.log(
      `ICE restart: ${restartMs.toFixed(0)} ms offer → connected; states ${states.join(' → ')}`,
    );
    expect(frames - before).toBeGreaterThan(20);
    expect(peer.userState).toBe('Live');
    expect(states).toEqual([
      'connecting/Connecting',
      'connected/Live',
      'disconnected/Reconnecting',
      'connected/Live',
    ]);
    expect(peer.iceRestartsLeft).toBe(0);
    await expect(peer.restartIce()).rejects.toThrow(/limit/);

    // Audio back to the client too, after the restart.
    const got = client.received.length;
    for (let i = 0; i < 10; i++) peer.sendAudioFrame(tone.next());
    await new Promise((r) => setTimeout(r, 100));
    expect(client.received.length - got).toBe(10);

    await peer.close();
    await client.close();
  });

  it('refuses an offer without Opus, and sends nothing before it is connected', async () => {
    const pcmu = new RTCPeerConnection({
      iceServers: [],
      codecs: {
        audio: [
          new RTCRtpCodecParameters({
            mimeType: 'audio/PCMU',
            clockRate: 8000,
            channels: 1,
            payloadType: 0,
          }),
        ],
        video: [],
      },
    });
    pcmu.addTransceiver('audio', { direction: 'sendrecv' });
    await pcmu.setLocalDescription(await pcmu.createOffer());
    await expect(AudioPeer.answer(pcmu.localDescription?.sdp ?? '', LOOPBACK)).rejects.toThrow(
      /Opus/,
    );
    await pcmu.close();

    const { peer } = await AudioPeer.offer(LOOPBACK);
    expect(peer.userState).toBe('Connecting');
    expect(peer.sendAudioFrame(silentFrame())).toBe(false);
    expect(peer.stats.framesDropped).toBe(1);
    await peer.close();
    expect(peer.userState).toBe('Ended');
  });
});
