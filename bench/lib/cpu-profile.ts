/**
 * Where a CPU profile's time went, by what ran: a .cpuprofile's samples (their self time, so
 * each sample counts once) grouped by the package or project folder of the function that was on
 * top of the stack.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The group a function belongs to, from its script's URL (and name, for V8's own entries). */
export function profileGroup(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(garbage collector)') return 'garbage collection';
    if (functionName === '(program)') return 'V8 and native code (program)';
    return `native: ${functionName || '(anonymous)'}`;
  }
  if (url.startsWith('wasm://')) return 'WebAssembly (libopus in opusscript)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return `Node: ${url.slice(5).split('/')[0]}`;
  const own =
    /\/(media|rpc|activities|workflows|worker|matrix|services|sessions|proxy|gateway|devices|formats|machines|config)\//.exec(
      url,
    );
  if (own) return `bridge: ${own[1]}/`;
  return 'other';
}

/** Milliseconds per group, largest first, idle included (callers usually drop it). */
export function summariseProfile(profile: CpuProfile): Array<{ group: string; ms: number }> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (!node) return;
    const group = profileGroup(node.callFrame);
    ms.set(group, (ms.get(group) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return [...ms].map(([group, v]) => ({ group, ms: v })).sort((a, b) => b.ms - a.ms);
}
