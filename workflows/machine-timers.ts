import { CancellationScope, isCancellation, sleep } from '@temporalio/workflow';

/**
 * XState's delayed events as Temporal timers (docs/architecture.md, rule 1: no `setTimeout` in a
 * workflow). The machine asks for them with its built-in `xstate.raise` (with a delay) and
 * `xstate.cancel` actions; a fired timer pushes its event onto the workflow's queue.
 */
export class MachineTimers<E> {
  private readonly timers = new Map<string, CancellationScope>();

  constructor(private readonly push: (event: E) => void) {}

  /**
   * Performs `action` if it is one of XState's raise/cancel actions (an undelayed raise is
   * queued at once); answers whether it was.
   */
  handle(action: { type: string; params?: unknown }): boolean {
    if (action.type === 'xstate.raise') {
      const params = action.params as { event: E; id: string; delay?: number };
      if (params.delay !== undefined) this.start(params.id, params.delay, params.event);
      else this.push(params.event);
      return true;
    }
    if (action.type === 'xstate.cancel') {
      const { sendId } = action.params as { sendId: string };
      this.timers.get(sendId)?.cancel();
      this.timers.delete(sendId);
      return true;
    }
    return false;
  }

  /** Cancels every pending timer (the session ended). */
  cancelAll(): void {
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
  }

  private start(id: string, delayMs: number, event: E): void {
    const scope = new CancellationScope();
    this.timers.set(id, scope);
    scope
      .run(() => sleep(delayMs))
      .then(
        () => {
          this.timers.delete(id);
          this.push(event);
        },
        (err) => {
          if (!isCancellation(err)) throw err;
        },
      );
  }
}
