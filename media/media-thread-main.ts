/**
 * A media thread of media-threads.ts: its calls' peers and agent links, run as `InProcessPeers`
 * runs them on the main thread, with each agent stream replaced by a stream over the port.
 */
import { Duplex } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { InProcessPeers, type CallPeer } from './call-peer';
import type { FromThread, MediaThreadData, PeerOp, ToThread } from './media-threads';
import type { RTCIceCandidateInit } from 'werift';

const port = parentPort!;
const peers = new InProcessPeers((workerData as MediaThreadData).options);
const calls = new Map<number, { stream: Duplex; peer?: CallPeer }>();

const post = (m: FromThread, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

/** The agent's end of a call, as this thread sees it: bytes in and out through the port. */
function agentStream(call: number): Duplex {
  return new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      const bytes = new Uint8Array(chunk);
      post({ t: 'agent-write', call, bytes }, [bytes.buffer]);
      done();
    },
    final(done) {
      post({ t: 'agent-end', call });
      done();
    },
  });
}

async function answer(call: number, sdp: string): Promise<unknown> {
  const stream = agentStream(call);
  calls.set(call, { stream });
  try {
    const { peer, answerSdp } = await peers.answer(sdp, stream);
    calls.set(call, { stream, peer });
    peer.onStateChange((change) => post({ t: 'state', call, change }));
    peer.onIceCandidate((candidate) => post({ t: 'candidate', call, candidate }));
    peer.agentDone.then(
      () => post({ t: 'agent-done', call }),
      (err: Error) => post({ t: 'agent-done', call, error: err.message }),
    );
    return { answerSdp, opus: peers.describe().opus };
  } catch (err) {
    calls.delete(call);
    stream.destroy();
    throw err;
  }
}

async function operate(call: number, op: PeerOp, arg: unknown): Promise<unknown> {
  const entry = calls.get(call);
  if (!entry?.peer) throw new Error(`no call ${call} on this media thread`);
  const { peer } = entry;
  switch (op) {
    case 'acceptOffer':
      return peer.acceptOffer(arg as string);
    case 'acceptAnswer':
      return peer.acceptAnswer(arg as string);
    case 'addIceCandidate':
      return peer.addIceCandidate(arg as RTCIceCandidateInit);
    case 'restartIce':
      return peer.restartIce();
    case 'close':
      calls.delete(call);
      await peer.close();
      entry.stream.destroy();
      return undefined;
  }
}

function reply(req: number, work: Promise<unknown>): void {
  work.then(
    (value) => post({ t: 'reply', req, ok: true, value }),
    (err: Error) => post({ t: 'reply', req, ok: false, error: err.message }),
  );
}

port.on('message', (m: ToThread) => {
  switch (m.t) {
    case 'answer':
      reply(m.req, answer(m.call, m.sdp));
      break;
    case 'op':
      reply(m.req, operate(m.call, m.op, m.arg));
      break;
    case 'agent-data':
      calls
        .get(m.call)
        ?.stream.push(Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength));
      break;
    case 'agent-closed':
      calls.get(m.call)?.stream.destroy();
      break;
  }
});
