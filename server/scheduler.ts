// Orders work per purpose, never across purposes. Each purpose has one engine session, and a session
// runs one request at a time, so requests of the same purpose queue (FIFO). Different purposes run
// concurrently: the engine serializes its forward passes per chunk, so a completion interleaves with a
// long workspace prefill at chunk boundaries instead of waiting for the whole request. Completions are
// "latest wins": a new one aborts the running one and drops those still waiting.

export type Purpose = 'chat' | 'completion' | 'analyze' | 'workspace';

/** Thrown into callers whose queued work was dropped by a newer request or cancelled while waiting. */
export class Superseded extends Error {
  constructor() {
    super('superseded by a newer request');
  }
}

export class Scheduler {
  private readonly tails = new Map<Purpose, Promise<unknown>>();
  private readonly latest = new Map<Purpose, AbortController>();
  private active = 0;

  /**
   * onActivity gets the number of requests running on the engine whenever it changes; requests of
   * the `quiet` purposes are not counted.
   */
  constructor(private readonly onActivity: (active: number) => void, private readonly quiet: ReadonlySet<Purpose> = new Set()) {}

  /**
   * Runs `work` once every earlier request of this purpose has finished. Work whose signal aborts
   * while it waits is not started (rejects with Superseded).
   */
  run<T>(purpose: Purpose, signal: AbortSignal, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const previous = this.tails.get(purpose) ?? Promise.resolve();
    const result = previous.catch(() => undefined).then(async () => {
      if (signal.aborted) throw new Superseded();
      const counted = !this.quiet.has(purpose);
      if (counted) this.setActive(+1);
      try {
        return await work(signal);
      } finally {
        if (counted) this.setActive(-1);
      }
    });
    const tail = result.catch(() => undefined);
    this.tails.set(purpose, tail);
    // Forget the chain once it is idle, so a long-lived lane does not pin settled promises.
    void tail.then(() => {
      if (this.tails.get(purpose) === tail) this.tails.delete(purpose);
    });
    return result;
  }

  /** Like run, but a newer call for the same purpose aborts this one (running or waiting). */
  runLatest<T>(purpose: Purpose, signal: AbortSignal, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.latest.get(purpose)?.abort();
    const mine = new AbortController();
    this.latest.set(purpose, mine);
    const combined = AbortSignal.any([signal, mine.signal]);
    return this.run(purpose, combined, work).finally(() => {
      if (this.latest.get(purpose) === mine) this.latest.delete(purpose);
    });
  }

  private setActive(delta: number): void {
    this.active += delta;
    this.onActivity(this.active);
  }
}
