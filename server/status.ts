// The server's state as the client sees it (internlm/status). Loading, error and the model's
// identity come from the engine host; busy/ready follows the scheduler's activity. A notification is
// sent only when something the client shows changes.
import os from 'node:os';
import type { ErrorKind, PrefillStatus, StatusParams } from './protocol';

export interface ModelIdentity {
  model: string;
  device: string;
  context?: { tokens: number; kvType: string };
}

export class StatusReporter {
  private identity: ModelIdentity | undefined;
  private lastSent = '';
  private active = 0;
  private tokensPerSecond: number | undefined;
  /** Long prefills running, oldest first (a Map keeps insertion order). */
  private readonly prefills = new Map<object, PrefillStatus>();

  constructor(private readonly send: (params: StatusParams) => void) {}

  loading(progress: number, message: string): void {
    this.identity = undefined;
    this.tokensPerSecond = undefined;
    // Whole percents: the client shows no more, and finer steps would flood the connection.
    this.publish({ state: 'loading', progress: Math.round(Math.min(1, Math.max(0, progress)) * 100) / 100, message });
  }

  ready(identity: ModelIdentity): void {
    this.identity = identity;
    this.publish(this.idleOrBusy());
  }

  error(errorKind: ErrorKind, message: string): void {
    this.identity = undefined;
    this.publish({ state: 'error', errorKind, message });
  }

  /** The number of requests running on the engine. */
  activity(active: number): void {
    this.active = active;
    if (this.identity) this.publish(this.idleOrBusy());
  }

  /** Decoding speed of the generation that just produced tokens. */
  speed(tokensPerSecond: number): void {
    if (!Number.isFinite(tokensPerSecond) || tokensPerSecond <= 0) return;
    this.tokensPerSecond = Math.round(tokensPerSecond * 10) / 10;
    if (this.identity) this.publish(this.idleOrBusy());
  }

  /** A long prefill's progress (callers throttle it); undefined when it has ended. */
  prefill(owner: object, progress: PrefillStatus | undefined): void {
    if (progress) this.prefills.set(owner, progress);
    else if (!this.prefills.delete(owner)) return;
    if (this.identity) this.publish(this.idleOrBusy());
  }

  private idleOrBusy(): StatusParams {
    return {
      state: this.active > 0 ? 'busy' : 'ready',
      ...this.identity,
      // The weights are memory-mapped: resident memory is what the model actually holds.
      memory: { used: process.memoryUsage().rss, total: os.totalmem() },
      tokensPerSecond: this.tokensPerSecond,
      prefill: this.prefills.values().next().value,
    };
  }

  private publish(params: StatusParams): void {
    // Memory changes constantly; it alone is not worth a notification.
    const key = JSON.stringify({ ...params, memory: undefined });
    if (key === this.lastSent) return;
    this.lastSent = key;
    this.send(params);
  }
}
