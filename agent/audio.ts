/**
 * The reference agent's voice: when the bridge sends `audio.start` {session_id, format} it
 * connects to its audio socket (/run/armorclaw/audio.sock) and answers the caller's PCM frames
 * (media/README.md, "Agent audio interface") in the configured mode — `echo` (every frame
 * back, same timestamps) or `tone:<hz>` (a steady tone at real time, whatever it hears). While
 * audio flows it reports what it HEARS once a second, as `notify` {kind: 'status', message:
 * 'audio_in frequency_hz=<f> rms=<r> frames=<n>'}, so a test can prove the caller reached it.
 * `audio.end` {session_id} or an END frame ends the call.
 *
 * Bundled into the image with media/echo.ts, media/pcm-framing.ts, media/pcm.ts and
 * media/audio-analysis.ts: Node built-ins only, never werift or Opus (the build script checks).
 */
import net from 'node:net';
import { rms, zeroCrossingFrequency } from '../media/audio-analysis';
import { runEchoAgent, type EchoAgentHandle, type EchoMode } from '../media/echo';
import { FRAME_MS, SAMPLE_RATE } from '../media/pcm';
import { PcmFramingError, type PcmFrame } from '../media/pcm-framing';

/** How the agent answers a call: `echo`, or `tone` at `frequency` Hz. */
export type AgentAudioMode = { kind: 'echo' } | { kind: 'tone'; frequency: number };

/** Parses `ARMORCLAW_AGENT_AUDIO` (`echo`, the default, or `tone:<hz>`); throws a message. */
export function parseAudioMode(raw: string | undefined): AgentAudioMode {
  const value = (raw ?? '').trim();
  if (value === '' || value === 'echo') return { kind: 'echo' };
  const tone = /^tone:(\d+(?:\.\d+)?)$/.exec(value);
  const frequency = tone ? Number(tone[1]) : NaN;
  if (frequency > 0 && frequency < SAMPLE_RATE / 2) return { kind: 'tone', frequency };
  throw new Error(
    `ARMORCLAW_AGENT_AUDIO must be echo or tone:<hz> below ${SAMPLE_RATE / 2}, not ${JSON.stringify(value)}`,
  );
}

/** The only format the framing carries; `audio.start` must name it. */
const FORMAT = {
  sample_rate: SAMPLE_RATE,
  channels: 1,
  sample_format: 's16le',
  frame_ms: FRAME_MS,
};
/** Input analysed for each `audio_in` report: the last second. */
const HEARD_FRAMES = 1000 / FRAME_MS;
const REPORT_EVERY_MS = 1000;

export interface AgentAudioDeps {
  socketPath: string;
  mode: AgentAudioMode;
  log(message: string): void;
}

type Notify = (kind: 'status' | 'progress' | 'error', message: string) => void;

interface Call {
  sessionId: string;
  ended: boolean;
  socket?: net.Socket;
  handle?: EchoAgentHandle;
  report?: NodeJS.Timeout;
  heard: Buffer[];
  framesThisSecond: number;
}

/** One call at a time, as the bridge lends the audio channel to one call at a time. */
export class AgentAudio {
  private call?: Call;

  constructor(private readonly deps: AgentAudioDeps) {}

  /** `audio.start` {session_id, format}: connect and answer. A repeat for the same call is a no-op. */
  async start(params: unknown, notify: Notify): Promise<void> {
    const sessionId = sessionIdOf(params);
    if (!sessionId) {
      this.deps.log('audio.start without a session_id ignored');
      return;
    }
    if (!formatMatches((params as { format?: unknown }).format)) {
      this.deps.log(`audio call ${sessionId}: unsupported format; refused`);
      notify('error', `audio: unsupported format for ${sessionId}`);
      return;
    }
    // The bridge repeats audio.start to a control connection that (re)connects while it waits.
    if (this.call?.sessionId === sessionId && !this.call.ended) return;
    if (this.call) this.finish(this.call, 'superseded');
    const call: Call = { sessionId, ended: false, heard: [], framesThisSecond: 0 };
    this.call = call;
    let socket: net.Socket;
    try {
      socket = await connect(this.deps.socketPath);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      this.deps.log(`audio call ${sessionId}: cannot connect (${String(code ?? 'error')})`);
      notify('error', `audio: cannot connect for ${sessionId}`);
      if (this.call === call) this.call = undefined;
      return;
    }
    if (call.ended) {
      socket.destroy();
      return;
    }
    call.socket = socket;
    socket.on('error', () => undefined); // 'close' follows; the handle reports the end
    const mode = this.deps.mode;
    const echoMode: EchoMode =
      mode.kind === 'echo' ? mode : { kind: 'tone', frequency: mode.frequency, pace: 'clock' };
    this.deps.log(
      `audio call ${sessionId} started (${mode.kind === 'echo' ? 'echo' : `tone ${mode.frequency} Hz`})`,
    );
    call.handle = runEchoAgent(socket, echoMode, { onAudio: (frame) => hear(call, frame) });
    call.report = setInterval(() => report(call, notify), REPORT_EVERY_MS);
    call.handle.done.then(
      () => this.finish(call, 'stream ended'),
      // A reset or EPIPE is the bridge hanging up mid-write, not a fault of the stream.
      (err) =>
        this.finish(call, err instanceof PcmFramingError ? 'bad framing' : 'connection lost'),
    );
  }

  /** `audio.end` {session_id}: stop answering and close the audio socket. */
  end(params: unknown): void {
    const call = this.call;
    if (call && call.sessionId === sessionIdOf(params)) this.finish(call, 'audio.end');
  }

  /** Ends whatever call is going (the agent is stopping). */
  endAll(): void {
    if (this.call) this.finish(this.call, 'agent stopping');
  }

  private finish(call: Call, why: string): void {
    if (call.ended) return;
    call.ended = true;
    if (this.call === call) this.call = undefined;
    if (call.report) clearInterval(call.report);
    // END to the bridge, then close; a bridge that does not close its side is cut off.
    call.handle?.stop();
    const socket = call.socket;
    if (socket) setTimeout(() => socket.destroy(), 500).unref();
    if (socket) {
      this.deps.log(
        `audio call ${call.sessionId} ended: ${why} (${call.handle?.received() ?? 0} frames heard)`,
      );
    }
  }
}

function hear(call: Call, frame: PcmFrame): void {
  call.heard.push(frame.payload);
  if (call.heard.length > HEARD_FRAMES) call.heard.shift();
  call.framesThisSecond++;
}

/** One `audio_in` report on the last second heard; silence from the caller says nothing. */
function report(call: Call, notify: Notify): void {
  const frames = call.framesThisSecond;
  call.framesThisSecond = 0;
  if (frames === 0 || call.ended) return;
  const pcm = Buffer.concat(call.heard);
  const frequency = zeroCrossingFrequency(pcm);
  const level = rms(pcm);
  notify(
    'status',
    `audio_in frequency_hz=${Number.isFinite(frequency) ? Math.round(frequency) : 0} ` +
      `rms=${level.toFixed(3)} frames=${frames}`,
  );
}

function sessionIdOf(params: unknown): string | undefined {
  if (typeof params !== 'object' || params === null) return undefined;
  const id = (params as { session_id?: unknown }).session_id;
  return typeof id === 'string' && id.length > 0 && id.length <= 256 ? id : undefined;
}

/** An absent format means the default one; a different one cannot be framed. */
function formatMatches(format: unknown): boolean {
  if (format === undefined) return true;
  if (typeof format !== 'object' || format === null) return false;
  const f = format as Record<string, unknown>;
  return Object.entries(FORMAT).every(([k, v]) => f[k] === v);
}

function connect(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}
