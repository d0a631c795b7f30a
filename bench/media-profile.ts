/**
 * Where a call's CPU goes: N caller/bridge AudioPeer pairs in one process, each bridge peer
 * linked to an in-process echo agent (the bridge's media path without Temporal or Docker),
 * streaming a tone both ways for 10 s. Prints the process CPU; run under a profiler to see the
 * split (docs/benchmarks/voice.md, notes):
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/media-profile.ts 10
 *   node --import tsx bench/media-profile.ts 10 wasm    # the WASM Opus build, for comparison
 */
import { rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { linkAgent } from '../media/agent-link';
import { runEchoAgent, ToneGenerator } from '../media/echo';
import { opusBackend, preferOpusBackend } from '../media/opus';
import { AudioPeer } from '../media/peer';

async function pair(i: number) {
  const sock = path.join(os.tmpdir(), `media-profile-${process.pid}-${i}.sock`);
  const agentSide = new Promise<net.Socket>((resolve) => {
    const srv = net.createServer((s) => resolve(s));
    srv.listen(sock);
    srv.unref();
  });
  const client = net.connect(sock);
  const agent = await agentSide;
  rmSync(sock, { force: true }); // connected: the path is no longer needed
  runEchoAgent(agent);
  const c = await AudioPeer.offer({ additionalHostAddresses: ['127.0.0.1'] });
  const b = await AudioPeer.answer(c.offerSdp, { additionalHostAddresses: ['127.0.0.1'] });
  await c.peer.acceptAnswer(b.answerSdp);
  await c.peer.waitConnected(10_000);
  linkAgent(b.peer, client);
  return c.peer;
}

async function main() {
  const n = Number(process.argv[2] ?? 10);
  if (process.argv[3] === 'wasm' || process.argv[3] === 'native')
    preferOpusBackend(process.argv[3]);
  const peers = [];
  for (let i = 0; i < n; i++) peers.push(await pair(i));
  const tones = peers.map(() => new ToneGenerator(440, 0.5));
  let got = 0;
  for (const p of peers) p.onAudioFrame(() => got++);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (let k = 0; k < 500; k++) {
    peers.forEach((p, i) => p.sendAudioFrame(tones[i]!.next()));
    const due = t0 + (k + 1) * 20;
    await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
  }
  const cpu = process.cpuUsage(cpu0);
  const pct = ((cpu.user + cpu.system) / 1000 / (performance.now() - t0)) * 100;
  console.log(
    `calls ${n} (Opus ${opusBackend()}): ${pct.toFixed(1)} % of a core for both sides, frames back ${got}/${n * 500}`,
  );
  process.exit(0);
}
void main();
