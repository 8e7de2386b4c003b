// Restart delays for a server that keeps dying: doubling from initialMs up to maxMs, back to the
// start once a run has lasted resetAfterMs (a server that crashes once a day restarts at once).
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  resetAfterMs: number;
}

export class Backoff {
  private failures = 0;
  private startedAt = 0;

  constructor(private readonly options: BackoffOptions) {}

  /** Call when the server has started. */
  started(now: number): void {
    this.startedAt = now;
  }

  /** Call when the server died; returns how long to wait before the next start. */
  nextDelay(now: number): number {
    if (this.startedAt > 0 && now - this.startedAt >= this.options.resetAfterMs) this.failures = 0;
    this.startedAt = 0;
    const delay = Math.min(this.options.maxMs, this.options.initialMs * 2 ** this.failures);
    this.failures++;
    return delay;
  }

  /** How many deaths in a row the current delay counts. */
  get attempts(): number {
    return this.failures;
  }

  reset(): void {
    this.failures = 0;
    this.startedAt = 0;
  }
}
