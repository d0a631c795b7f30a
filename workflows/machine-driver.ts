import { allHandlersFinished, CancellationScope, condition } from '@temporalio/workflow';
import {
  initialTransition,
  transition,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type EventFromLogic,
  type InputFrom,
  type SnapshotFrom,
} from 'xstate';
import { MachineTimers } from './machine-timers';

type Snapshot<M extends AnyStateMachine> = SnapshotFrom<M>;
type Event<M extends AnyStateMachine> = EventFromLogic<M>;
/** One action of a transition's list, as XState's pure functions return them. */
export type MachineAction = { type: string; params?: unknown };

export interface MachineDriverOptions<M extends AnyStateMachine> {
  machine: M;
  input: InputFrom<M>;
  /**
   * What the search attributes show: published at the start and again whenever it changes
   * (a key of the snapshot's state and whatever else the attributes carry).
   */
  publishKey(snapshot: Snapshot<M>): string;
  publish(snapshot: Snapshot<M>): void;
  /** The workflow's start set the initial state's attributes: they are not published again. */
  publishedAtStart?: boolean;
  /**
   * Performs one of the machine's own actions (XState's delayed events and `cleanup` are the
   * driver's). Awaited: work that must not hold up the next event runs in the background.
   */
  perform(action: MachineAction, snapshot: Snapshot<M>): Promise<void> | void;
  /** The `cleanup` action of every terminal state: runs to its end, whatever is cancelled. */
  cleanup(snapshot: Snapshot<M>): Promise<void>;
  /** After an event's actions are performed (e.g. work tied to a state change). */
  afterStep?(before: Snapshot<M>, after: Snapshot<M>): Promise<void> | void;
}

/**
 * Runs a lifecycle machine inside a workflow: "the machine decides, the workflow acts". Events
 * (signals, updates, timer fires, activity results) are queued and fed one at a time through
 * XState's pure `transition`; each step publishes the search attributes on a change and
 * performs the returned actions in order. Delayed events are Temporal timers (MachineTimers).
 * The run ends when the machine reaches a final state, whose `cleanup` has then run.
 */
export class MachineDriver<M extends AnyStateMachine> {
  private current: Snapshot<M>;
  private readonly initialActions: MachineAction[];
  private readonly queue: Event<M>[] = [];
  private readonly timers: MachineTimers<Event<M>>;
  private published: string | undefined;
  private cleaned = false;

  constructor(private readonly opts: MachineDriverOptions<M>) {
    const [snapshot, actions] = initialTransition(opts.machine, opts.input);
    this.current = snapshot as Snapshot<M>;
    this.initialActions = actions as MachineAction[];
    if (opts.publishedAtStart) this.published = opts.publishKey(this.current);
    this.timers = new MachineTimers<Event<M>>((event) => this.push(event));
  }

  get snapshot(): Snapshot<M> {
    return this.current;
  }

  /** The machine reached a final state. */
  get done(): boolean {
    return (this.current as AnyMachineSnapshot).status === 'done';
  }

  /** Cleanup has finished (every ending's effects are done). */
  get cleanupDone(): boolean {
    return this.cleaned;
  }

  /** Queues an event; a machine that is done ignores it. */
  push(event: Event<M>): void {
    if (!this.done) this.queue.push(event);
  }

  /**
   * Publishes the first state and performs the initial actions; call once, before `run`, when
   * the workflow's handlers are set.
   */
  async start(): Promise<void> {
    this.publishIfChanged();
    await this.performAll(this.initialActions);
  }

  /** Steps through queued events until the machine is done, then waits for its handlers. */
  async run(): Promise<Snapshot<M>> {
    while (!this.done) {
      await condition(() => this.queue.length > 0);
      await this.step(this.queue.shift()!);
    }
    // Whatever is still queued (a late signal) changes nothing now.
    this.queue.length = 0;
    await condition(() => this.cleaned && allHandlersFinished());
    return this.current;
  }

  private async step(event: Event<M>): Promise<void> {
    const before = this.current;
    const [next, actions] = transition(this.opts.machine, before, event);
    this.current = next as Snapshot<M>;
    this.publishIfChanged();
    await this.performAll(actions as MachineAction[]);
    await this.opts.afterStep?.(before, this.current);
  }

  private publishIfChanged(): void {
    const key = this.opts.publishKey(this.current);
    if (key === this.published) return;
    this.published = key;
    this.opts.publish(this.current);
  }

  private async performAll(actions: MachineAction[]): Promise<void> {
    for (const action of actions) {
      if (this.timers.handle(action)) continue;
      if (action.type === 'cleanup') {
        await CancellationScope.nonCancellable(async () => {
          this.timers.cancelAll();
          await this.opts.cleanup(this.current);
        });
        this.cleaned = true;
      } else if (!action.type.startsWith('xstate.')) {
        await this.opts.perform(action, this.current);
      }
    }
  }
}

/**
 * An activity the machine's final state may overtake (it is not cancelled): its promise, and
 * whether and how it settled, for the cleanup that has to wait for it.
 */
export class InFlight<T> {
  private state: { settled: false } | { settled: true; value?: T } = { settled: false };

  constructor(readonly promise: Promise<T>) {
    promise.then(
      (value) => (this.state = { settled: true, value }),
      () => (this.state = { settled: true }),
    );
  }

  /** Its answer, if it succeeded. */
  get value(): T | undefined {
    return this.state.settled ? this.state.value : undefined;
  }

  /** Waits for it to settle, at most `ms`; answers whether it did. */
  async settle(ms: number): Promise<boolean> {
    if (!this.state.settled) await condition(() => this.state.settled, ms);
    return this.state.settled;
  }
}
