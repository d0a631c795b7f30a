import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { ChildMessage, ParentMessage } from './protocol';

export const PROJECT_ROOT = path.join(__dirname, '..', '..');

/**
 * Starts a bench helper (a .ts file) in its own Node process, so it never shares an event
 * loop with the load generator or a server. Talks over Node's IPC pipe.
 */
export function forkHelper(entry: string, args: string[] = []): ChildProcess {
  return fork(path.join(__dirname, '..', entry), args, {
    // tsx is resolved from the working directory: run from the project root.
    cwd: PROJECT_ROOT,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

export function send(child: ChildProcess, message: ParentMessage): void {
  child.send(message);
}

/** The child's next message; rejects if it exits first or says nothing within `timeoutMs`. */
export function nextMessage(
  child: ChildProcess,
  timeoutMs: number,
  what: string,
): Promise<ChildMessage> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: ChildMessage) => {
      done();
      resolve(message);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      done();
      reject(new Error(`${what} exited (${signal ?? code}) before answering`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
export async function stopChild(child: ChildProcess, graceMs = 3_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Helpers exit when the orchestrator goes away, so a crashed bench leaves nothing running. */
export function exitWithParent(): void {
  process.on('disconnect', () => process.exit(0));
}

export function tell(message: ChildMessage): void {
  process.send!(message);
}
