/**
 * Relay-only calls through a real coturn (Debian `coturn`, REST credentials): the bridge's
 * AudioPeer with `iceTransportPolicy: 'relay'` connects and receives audio with valid
 * credentials, and fails with wrong or expired ones. Fails (never skips) when `turnserver` is missing: `bash scripts/setup.sh --test` installs Debian's coturn.
 */
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { MediaStreamTrack, RtpHeader, RtpPacket } from 'werift';
import { ToneGenerator } from '../../media/echo';
import { rms, zeroCrossingFrequency } from '../../media/audio-analysis';
import { OpusEncoder } from '../../media/opus';
import { AudioPeer, type TurnServer } from '../../media/peer';
import { startCoturn, type Coturn } from '../support/coturn';
import { callerPeerConnection } from '../support/media-client';
import { issueTurnCredentials } from '../../services/turn-credentials';

const hasCoturn =
  spawnSync('sh', ['-c', 'command -v turnserver'], { encoding: 'utf8' }).status === 0;
if (!hasCoturn) {
  throw new Error(
    'turnserver (Debian coturn) is not installed: run `bash scripts/setup.sh --test`',
  );
}

jest.setTimeout(90_000);

const SECRET = 'media-turn-test-secret';

/** Credentials as `webrtc.start` issues them (services/turn-credentials.ts), for `urls`. */
function restCredentials(
  urls: string,
  session: string,
  expiresAt: number,
  secret = SECRET,
): TurnServer {
  const ttlSeconds = 600;
  const issued = issueTurnCredentials({
    secret,
    sessionId: session,
    ttlSeconds,
    nowMs: expiresAt - ttlSeconds * 1000,
  });
  return { urls, username: issued.username, credential: issued.password };
}

/** A werift caller (all candidate types) offering Opus audio. */
async function caller() {
  const pc = callerPeerConnection();
  const track = new MediaStreamTrack({ kind: 'audio' });
  pc.addTransceiver(track, { direction: 'sendrecv' });
  await pc.setLocalDescription(await pc.createOffer());
  return { pc, track, offerSdp: pc.localDescription?.sdp ?? '' };
}

describe('media over TURN (coturn, relay only)', () => {
  let turn: Coturn;
  beforeAll(async () => {
    turn = await startCoturn(SECRET);
  });
  afterAll(() => {
    turn?.proc.kill();
    // werift 0.24 leaks the UDP socket of a TURN allocation that failed (createTurnClient does
    // not close its transport when ALLOCATE is rejected); let jest exit despite it.
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
    for (const h of handles) if (h instanceof dgram.Socket) h.unref();
  });

  it('a relay-only call with issued credentials connects and carries a 440 Hz tone', async () => {
    const { pc, track, offerSdp } = await caller();
    const t0 = performance.now();
    const { peer, answerSdp } = await AudioPeer.answer(offerSdp, {
      turn: restCredentials(turn.url, 'call-ok', Date.now() + 600_000),
      iceTransportPolicy: 'relay',
    });
    const candidates = answerSdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate'));
    expect(candidates.length).toBeGreaterThan(0);
    expect(candidates.every((c) => / typ relay /.test(c))).toBe(true);
    await pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
    await peer.waitConnected(10_000);
    console.log(`relay-only connect: ${(performance.now() - t0).toFixed(0)} ms`);

    const pcm: Buffer[] = [];
    peer.onAudioFrame((f) => pcm.push(f.pcm));
    const enc = new OpusEncoder();
    const tone = new ToneGenerator(440);
    for (let i = 0; i < 50; i++) {
      track.writeRtp(
        new RtpPacket(
          new RtpHeader({ payloadType: 111, sequenceNumber: i, timestamp: i * 960 }),
          enc.encode(tone.next()),
        ),
      );
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(pcm.length).toBeGreaterThanOrEqual(45);
    const steady = Buffer.concat(pcm.slice(10, 40));
    expect(Math.abs(zeroCrossingFrequency(steady) - 440)).toBeLessThan(4.4);
    expect(rms(steady)).toBeGreaterThan(0.3);

    enc.close();
    await peer.close();
    await pc.close();
  });

  it('wrong or expired credentials: the relay-only call is refused', async () => {
    const attempts = [
      restCredentials(turn.url, 'call-wrong', Date.now() + 600_000, 'not-the-secret'),
      restCredentials(turn.url, 'call-expired', Date.now() - 60_000),
    ].map(async (credentials) => {
      const { pc, offerSdp } = await caller();
      try {
        await AudioPeer.answer(offerSdp, { turn: credentials, iceTransportPolicy: 'relay' });
        return 'connected?';
      } catch (err) {
        return String(err);
      } finally {
        await pc.close();
      }
    });
    const t0 = performance.now();
    const results = await Promise.all(attempts);
    console.log(
      `rejected TURN credentials reported after ${(performance.now() - t0).toFixed(0)} ms`,
    );
    for (const r of results) expect(r).toMatch(/no TURN relay candidate/);
    expect(turn.log()).toMatch(/check_stun_auth|401|expired|Cannot find credentials/i);
  });
});
