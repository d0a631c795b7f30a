/**
 * A value read through `load` at most once per `maxAgeMs`, with concurrent readers sharing one
 * load (single flight). Lets hot read paths (`status`, `health`) answer thousands of requests a
 * second from what Temporal, Docker and the stores said a moment ago, instead of asking them
 * each time.
 */
export class SingleFlightCache<T> {
  private value?: { at: number; data: T };
  private inFlight?: Promise<T>;
  private generation = 0;

  constructor(
    private readonly load: () => Promise<T>,
    private readonly maxAgeMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The cached value if fresh, else a (shared) new load. A failed load is not cached. */
  get(): Promise<T> {
    if (this.value && this.now() - this.value.at < this.maxAgeMs)
      return Promise.resolve(this.value.data);
    if (this.inFlight) return this.inFlight;
    const generation = this.generation;
    const started = this.now();
    const flight = this.load().then(
      (data) => {
        if (generation === this.generation) this.value = { at: started, data };
        return data;
      },
      (err: unknown) => {
        throw err;
      },
    );
    this.inFlight = flight;
    const clear = () => {
      if (this.inFlight === flight) this.inFlight = undefined;
    };
    flight.then(clear, clear);
    return flight;
  }

  /** Forgets the value: the next `get` loads again (after a change the caller made). */
  invalidate(): void {
    this.generation++;
    this.value = undefined;
    this.inFlight = undefined;
  }
}
