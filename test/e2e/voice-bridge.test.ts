/**
 * The whole product in a browser: the real bridge process (Temporal, Synapse, Docker), a call
 * placed with `webrtc.start` for an end-to-end encrypted room, and headless Chromium (fake
 * microphone playing a 440 Hz WAV) joining it through the bridge's own call page (`call_url`).
 * Proves: the page goes Live, the agent in its container hears the tone (its `audio_in`
 * report), the page hears the agent's echo, and hanging up in the page ends the call (Ended in
 * the page and in the workflow, agent stopped, `call_ended` audited). Fails — never skips —
 * without Chromium, Docker or Synapse.
 */
import type { Page } from 'playwright-core';
import { launchChromium, type LaunchedChromium } from '../support/chromium';
import { waitFor } from '../support/matrix-scenario';
import { joinedRoom, startVoiceWorld, type VoiceWorld } from '../support/voice-scenario';

jest.setTimeout(180_000);

interface PageGlobals {
  document: { getElementById(id: string): { textContent: string | null } | null };
  armorclawCall: { state: string; receivedAudio(): { rms: number; frequency: number } };
}

let chromium: LaunchedChromium | undefined;
let v: VoiceWorld | undefined;
let room: string;

const call = (method: string, params?: unknown) => v!.call(method, params);

beforeAll(async () => {
  chromium = await launchChromium({ toneHz: 440, toneSeconds: 60 });
  v = await startVoiceWorld(async (w) => {
    room = await joinedRoom(w, 'browser call');
    return { ARMORCLAW_MATRIX_TRUSTED_ROOMS: room };
  });
}, 180_000);

afterAll(async () => {
  await v?.stop();
  await chromium?.cleanup();
}, 120_000);

const pageState = (page: Page) =>
  page.evaluate(
    () =>
      (globalThis as unknown as PageGlobals).document.getElementById('state')?.textContent ?? '',
  );

test('Chromium joins through the call page: Live, the agent hears 440 Hz, the page hears it back, hangup → Ended', async () => {
  const started = await call('webrtc.start', {
    room_id: room,
    user_id: v!.w.alice.userId,
    key_id: v!.keyId,
  });
  expect(started.error).toBeUndefined();
  const r = started.result;
  v!.names.add(r.container_name);
  expect(r.sdp_answer).toBeNull(); // no offer: the page offers over signaling

  const page = await chromium!.browser.newPage();
  await page.goto(r.call_url);
  await waitFor('the page to be Live', async () => (await pageState(page)) === 'Live', {
    timeoutMs: 20_000,
  });
  await waitFor(
    'the call Live in webrtc.list',
    async () =>
      (await call('webrtc.list')).result.sessions.find(
        (s: { session_id: string; state: string }) =>
          s.session_id === r.session_id && s.state === 'connected',
      ),
    { timeoutMs: 10_000 },
  );

  // The agent, in its container, hears the caller's tone.
  const report = await waitFor(
    'the agent to report the tone',
    async () => {
      const status = await v!.agentRun(r.container_name);
      return status.notifications.find((n) => /audio_in frequency_hz=4[34]\d/.test(n.message));
    },
    { timeoutMs: 15_000, intervalMs: 250 },
  );
  console.log(`agent: ${report.message}`);

  // The page hears the agent's echo.
  const heard = await waitFor(
    'the page to hear the echo',
    async () => {
      const a = await page.evaluate(() =>
        (globalThis as unknown as PageGlobals).armorclawCall.receivedAudio(),
      );
      return a.rms > 0.05 && Math.abs(a.frequency - 440) < 10 ? a : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 250 },
  );
  console.log(`page heard ${heard.frequency.toFixed(1)} Hz, RMS ${heard.rms.toFixed(3)}`);

  await page.click('#hangup');
  await waitFor('the page to be Ended', async () => (await pageState(page)) === 'Ended', {
    timeoutMs: 15_000,
  });
  const result = await v!.callResult(r.session_id);
  expect(result).toMatchObject({ state: 'Ended', end_reason: 'user_hangup' });
  const run = await v!.agentRunCleanedUp(r.container_name, 20_000);
  expect(run.state).toBe('Ended');
  const log = (await call('webrtc.get_audit_log', { session_id: r.session_id })).result.entries;
  expect(log.map((e: { event_type: string }) => e.event_type)).toEqual([
    'call_ended',
    'call_created',
  ]);
  await page.close();
});
