// Long prefills reported to the client: LSP work-done progress (server-initiated, cancellable;
// VS Code shows it natively) and the same numbers in internlm/status for the extension's status bar.
// "Reading the workspace: 12,288 / 80,000 tokens · 1,150 tok/s · about 1 min left".
// Cancelling the progress (window/workDoneProgress/cancel) aborts the request it belongs to, so the
// engine stops within one chunk, as for $/cancelRequest.
import { randomUUID } from 'node:crypto';
import {
  WorkDoneProgress, WorkDoneProgressCancelNotification, WorkDoneProgressCreateRequest, type Connection, type WorkDoneProgressBegin,
  type WorkDoneProgressEnd, type WorkDoneProgressReport,
} from 'vscode-languageserver';
import type { PrefillStatus } from '../protocol';
import type { StatusReporter } from '../status';

/** Prefills computing fewer tokens than this are quick enough to go without progress. */
export const PROGRESS_MIN_TOKENS = 2048;
/** Updates sent at most this often (the engine reports every chunk, many per second on a GPU). */
const REPORT_INTERVAL_MS = 250;

const count = (n: number) => Math.round(n).toLocaleString('en-US');

/** "about 40 s left", "about 3 min left", "about 1 h 20 min left". */
export function timeLeft(seconds: number): string {
  if (seconds < 10) return 'a few seconds left';
  if (seconds < 60) return `about ${Math.round(seconds / 5) * 5} s left`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${minutes} min left`;
  return `about ${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ''} left`;
}

export function progressMessage(p: PrefillStatus): string {
  const parts = [`${p.title}: ${count(p.done)} / ${count(p.total)} tokens`];
  if (p.tokensPerSecond !== undefined) parts.push(`${count(p.tokensPerSecond)} tok/s`);
  if (p.secondsLeft !== undefined) parts.push(timeLeft(p.secondsLeft));
  return parts.join(' · ');
}

/**
 * The work-done progresses this server created, by token. It handles the client's cancel itself
 * (replacing vscode-languageserver's handler, which knows only the library's own reporters), so
 * that the token can also travel in internlm/status.
 */
export class WorkDoneProgresses {
  private readonly cancels = new Map<string, () => void>();
  private supported = false;

  constructor(private readonly connection: Connection, readonly status: StatusReporter, readonly log: (message: string) => void) {}

  /** Call from onInitialize: clientSupport is the client's window.workDoneProgress capability. */
  listen(clientSupport: boolean): void {
    this.supported = clientSupport;
    this.connection.onNotification(WorkDoneProgressCancelNotification.type, ({ token }) => this.cancels.get(String(token))?.());
  }

  /** Progress for one request's prefill; its `signal` aborts on the request's own signal or a cancel of the progress. */
  prefill(title: string, requestSignal: AbortSignal): PrefillProgress {
    return new PrefillProgress(this, title, requestSignal);
  }

  /** Sends window/workDoneProgress/create; false when the client cannot show work-done progress. */
  async create(token: string, cancel: () => void): Promise<boolean> {
    this.cancels.set(token, cancel);
    if (!this.supported) return false;
    try {
      await this.connection.sendRequest(WorkDoneProgressCreateRequest.type, { token });
      return true;
    } catch (error) {
      this.log(`work-done progress refused by the client: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  }

  send(token: string, value: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd): void {
    void this.connection.sendProgress(WorkDoneProgress.type, token, value);
  }

  forget(token: string): void {
    this.cancels.delete(token);
  }
}

export class PrefillProgress {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly token = randomUUID();
  private state: 'idle' | 'creating' | 'shown' | 'ended' = 'idle';
  /** Whether the client accepted the token (then $/progress goes out). */
  private created = false;
  private origin: { at: number; done: number } | undefined;
  private latest: PrefillStatus | undefined;
  private lastSent = 0;

  constructor(private readonly owner: WorkDoneProgresses, private readonly title: string, requestSignal: AbortSignal) {
    this.signal = AbortSignal.any([requestSignal, this.controller.signal]);
  }

  /** The engine's count: `done` of `total` tokens computed (the cache's reused tokens not included). */
  readonly update = (done: number, total: number): void => {
    if (this.state === 'ended' || (this.state === 'idle' && total < PROGRESS_MIN_TOKENS)) return;
    const now = performance.now();
    this.origin ??= { at: now, done };
    const elapsed = (now - this.origin.at) / 1000;
    const rate = elapsed > 0.2 && done > this.origin.done ? (done - this.origin.done) / elapsed : undefined;
    this.latest = {
      token: this.token,
      title: this.title,
      done,
      total,
      tokensPerSecond: rate === undefined ? undefined : Math.round(rate),
      secondsLeft: rate === undefined ? undefined : Math.round((total - done) / rate),
    };
    if (this.state === 'idle') {
      this.begin();
    } else if (done >= total) {
      this.end();
    } else if (now - this.lastSent >= REPORT_INTERVAL_MS) {
      this.report();
    }
  };

  /** Ends the progress (idempotent): the prefill finished, failed or was cancelled. */
  end(): void {
    if (this.state === 'ended') return;
    const shown = this.state === 'shown' && this.created;
    this.state = 'ended';
    if (shown) this.owner.send(this.token, { kind: 'end' });
    this.owner.forget(this.token);
    this.owner.status.prefill(this, undefined);
  }

  private begin(): void {
    this.state = 'creating';
    this.lastSent = performance.now();
    if (this.latest) this.owner.status.prefill(this, this.latest);
    void this.owner.create(this.token, () => this.controller.abort()).then((created) => {
      if (this.state !== 'creating') {
        // Ended while the client was asked: a begin-less end is not allowed, so begin then end.
        if (created) {
          this.owner.send(this.token, { kind: 'begin', title: 'InternLM', cancellable: true });
          this.owner.send(this.token, { kind: 'end' });
        }
        return;
      }
      this.created = created;
      this.state = 'shown';
      if (created && this.latest) {
        this.owner.send(this.token, { kind: 'begin', title: 'InternLM', cancellable: true, message: progressMessage(this.latest), percentage: percent(this.latest) });
      }
      if (this.latest && this.latest.done >= this.latest.total) this.end();
    });
  }

  private report(): void {
    if (!this.latest) return;
    this.lastSent = performance.now();
    if (this.state === 'shown' && this.created) {
      this.owner.send(this.token, { kind: 'report', cancellable: true, message: progressMessage(this.latest), percentage: percent(this.latest) });
    }
    this.owner.status.prefill(this, this.latest);
  }
}

function percent(p: PrefillStatus): number {
  return Math.min(100, Math.floor((p.done / Math.max(1, p.total)) * 100));
}
