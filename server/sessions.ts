// One engine session per purpose, created on first use and kept: a session's KV cache is the prefix
// cache, so the next chat turn, keystroke or workspace question only prefills what changed. Purposes
// never share a session, so a workspace question does not evict the completion's file context.
// Each purpose has its own context length (context-plan.ts explains the budget).
import type { KVType, Model, Session } from '../native/index';
import type { ContextPlan } from './context-plan';
import type { Purpose } from './scheduler';

export class SessionPool {
  private readonly sessions = new Map<Purpose, Session>();

  /** explicitKv: the type to ask the engine for; undefined leaves the device's default. */
  constructor(private readonly model: Model, readonly plan: ContextPlan, private readonly explicitKv: KVType | undefined) {}

  /** The KV cache type every session uses. */
  get kvType(): KVType {
    return this.plan.kvType;
  }

  /** The most tokens a request of `purpose` may put into its session. */
  contextOf(purpose: Purpose): number {
    return this.plan.contexts[purpose];
  }

  get(purpose: Purpose): Session {
    let session = this.sessions.get(purpose);
    if (!session) {
      session = this.model.createSession({ contextLength: this.contextOf(purpose), kvType: this.explicitKv });
      this.sessions.set(purpose, session);
    }
    return session;
  }

  /**
   * Cancels running work in every session and frees the caches. A call still running keeps its
   * session's cache until it ends (at the engine's next chunk boundary), so the promise resolves
   * when those calls have ended: memory measured before then still counts their caches (on a GPU,
   * a workspace cache can be most of its memory).
   */
  dispose(): Promise<void> {
    const sessions = [...this.sessions.values()];
    for (const session of sessions) session.dispose();
    this.sessions.clear();
    return Promise.all(sessions.map((session) => session.settled())).then(() => undefined);
  }
}
