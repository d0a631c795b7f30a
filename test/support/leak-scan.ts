/**
 * Looking for a secret where an agent could hold it, from the host: the processes of a
 * container and their readable memory (root reads /proc/<pid>/mem of any process).
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { docker } from './docker';

/** The host pids of a container's processes. */
export async function containerPids(name: string): Promise<number[]> {
  const r = await docker(['top', name, '-eo', 'pid']);
  if (r.code !== 0) throw new Error(`docker top ${name} failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .slice(1)
    .map((l) => Number.parseInt(l.trim(), 10))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** Whether `needle` (as Latin-1 and as UTF-16) is anywhere in the readable memory of `pid`. */
export function memoryHolds(pid: number, needle: string): boolean {
  const forms = [Buffer.from(needle, 'latin1'), Buffer.from(needle, 'utf16le')];
  const overlap = Math.max(...forms.map((f) => f.length));
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  const mem = openSync(`/proc/${pid}/mem`, 'r');
  try {
    const chunk = Buffer.alloc(1 << 20);
    for (const line of maps) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (r)/.exec(line);
      if (!m || /\[(vvar|vsyscall)\]/.test(line)) continue;
      const end = Number.parseInt(m[2]!, 16);
      for (let at = Number.parseInt(m[1]!, 16); at < end; at += chunk.length - overlap) {
        let n: number;
        try {
          n = readSync(mem, chunk, 0, Math.min(chunk.length, end - at), at);
        } catch {
          break; // unreadable region (guard pages and the like)
        }
        const view = chunk.subarray(0, n);
        if (forms.some((f) => view.includes(f))) return true;
        if (n < chunk.length) break;
      }
    }
    return false;
  } finally {
    closeSync(mem);
  }
}
