// One engine session per purpose, created on first use and kept: a session's KV cache is the prefix
// cache, so the next chat turn, keystroke or workspace question only prefills what changed. Purposes
// never share a session, so a workspace question does not evict the completion's file context.
import type { KVType, Model, Session } from '../native/index';
import type { Purpose } from './scheduler';

export class SessionPool {
  private readonly sessions = new Map<Purpose, Session>();

  constructor(private readonly model: Model, readonly contextLength: number, readonly kvType?: KVType) {}

  get(purpose: Purpose): Session {
    let session = this.sessions.get(purpose);
    if (!session) {
      session = this.model.createSession({ contextLength: this.contextLength, kvType: this.kvType });
      this.sessions.set(purpose, session);
    }
    return session;
  }

  /** Cancels running work in every session and frees the caches. */
  dispose(): void {
    for (const session of this.sessions.values()) session.dispose();
    this.sessions.clear();
  }
}
