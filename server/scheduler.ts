// Orders work per purpose, never across purposes. Each purpose has one engine session, and a session
// runs one request at a time, so requests of the same purpose queue (FIFO). Different purposes run
// concurrently: the engine serializes forward passes per chunk, and long prefills step aside between
// slices while interactive work (inline completions) runs, so a completion never waits for a whole
// workspace prefill. Interactive requests are "latest wins": a new one aborts the running one and
// drops those still waiting; they are short and frequent, so they do not flip the status to busy.

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
  private busy = 0;
  private interactive = 0;
  private idleWaiters: Array<() => void> = [];

  /**
   * onActivity gets the number of background requests running whenever it changes; requests of
   * the `interactive` purposes are not counted.
   */
  constructor(private readonly onActivity: (active: number) => void, private readonly interactivePurposes: ReadonlySet<Purpose>) {}

  /**
   * Runs `work` once every earlier request of this purpose has finished. Work whose signal aborts
   * while it waits is not started (rejects with Superseded).
   */
  run<T>(purpose: Purpose, signal: AbortSignal, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.enqueue(purpose, () => {
      if (signal.aborted) throw new Superseded();
      return this.interactivePurposes.has(purpose) ? this.asInteractive(() => work(signal)) : this.asBackground(() => work(signal));
    });
  }

  /**
   * Queues upkeep the user did not ask for (saving a session's cache) behind this purpose's
   * requests, so it never touches a session in use; it does not count as activity.
   */
  runQuietly<T>(purpose: Purpose, work: () => Promise<T>): Promise<T> {
    return this.enqueue(purpose, work);
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

  private enqueue<T>(purpose: Purpose, start: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(purpose) ?? Promise.resolve();
    const result = previous.catch(() => undefined).then(start);
    const tail = result.catch(() => undefined);
    this.tails.set(purpose, tail);
    // Forget the chain once it is idle, so a long-lived lane does not pin settled promises.
    void tail.then(() => {
      if (this.tails.get(purpose) === tail) this.tails.delete(purpose);
    });
    return result;
  }

  /** Resolves when no interactive request is running (immediately if none is). */
  interactiveIdle(): Promise<void> {
    return this.interactive === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async asInteractive<T>(work: () => Promise<T>): Promise<T> {
    this.interactive++;
    try {
      return await work();
    } finally {
      if (--this.interactive === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const resolve of waiters) resolve();
      }
    }
  }

  private async asBackground<T>(work: () => Promise<T>): Promise<T> {
    this.onActivity(++this.busy);
    try {
      return await work();
    } finally {
      this.onActivity(--this.busy);
    }
  }
}
