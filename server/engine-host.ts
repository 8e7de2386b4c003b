// Owns the model: loads it as the settings say, sizes its sessions with the memory plan
// (context-plan.ts), reports progress and errors as internlm/status, and loads it again when a
// setting that shapes it changes. Requests ask for the engine and wait while it loads; a request
// that finds it in error gets the error's message.
import { existsSync } from 'node:fs';
import { Model, type MemoryPlan } from '../native/index';
import { ContextDoesNotFit, planContexts, type ContextPlan } from './context-plan';
import type { ErrorKind, ServerSettings } from './protocol';
import { SessionPool } from './sessions';
import { DEFAULT_SETTINGS, modelKey } from './settings';
import type { StatusReporter } from './status';

export interface Engine {
  model: Model;
  sessions: SessionPool;
}

/** Why there is no engine, in words for the user (the client offers a fix per kind). */
export class EngineUnavailable extends Error {
  constructor(readonly kind: ErrorKind, message: string) {
    super(message);
  }
}

const SELECT_HINT = 'Choose a GGUF file or a Hugging Face checkpoint folder with "InternLM: Select Model File…"';

function unavailable(error: unknown): EngineUnavailable {
  if (error instanceof EngineUnavailable) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (/native engine not built/.test(message)) return new EngineUnavailable('internal', `The InternLM engine is missing from this installation: ${message}`);
  if (/out of memory|bad_alloc|cannot allocate/i.test(message)) {
    return new EngineUnavailable('outOfMemory', `Not enough memory to load the model: ${message}. A smaller quantization or a smaller internlm.contextLength may help.`);
  }
  // The engine names device problems itself ("no usable CUDA device: …", "no CUDA backend", "the
  // model needs 14.7 GiB of GPU memory; GPU 0 has 7.5 GiB free"); a path may contain "GPU" too.
  if (/no usable CUDA device|CUDA device \d+ is not usable|no CUDA backend|of GPU memory; GPU \d+ has/.test(message)) {
    return new EngineUnavailable('noGpu', `${message}. Set internlm.device to "auto" or "cpu".`);
  }
  if (/ENOENT|no such file|not found/i.test(message)) return new EngineUnavailable('modelNotFound', `${message}. ${SELECT_HINT}.`);
  return new EngineUnavailable('badModel', `The model could not be loaded: ${message}. ${SELECT_HINT}.`);
}

export class EngineHost {
  private settingsNow: ServerSettings = DEFAULT_SETTINGS;
  /** The loaded model, also while its sessions cannot be sized (then `failure` says why). */
  private model: Model | undefined;
  private loaded: Engine | undefined;
  private pending: Promise<Model> | undefined;
  private failure: EngineUnavailable | undefined;
  private generation = 0;
  /** Counts size() calls: only the latest one creates sessions. */
  private sizing = 0;
  /**
   * Resolves when every disposed session pool's running calls have ended and let go of their KV
   * caches. Sizing and loading wait for it, however many settings changes came in between.
   */
  private released: Promise<void> = Promise.resolve();
  private configured = false;

  constructor(private readonly status: StatusReporter, private readonly log: (message: string) => void) {}

  get settings(): ServerSettings {
    return this.settingsNow;
  }

  /** Applies new settings: a different model file or load option reloads; a new context length or KV type renews the sessions. */
  configure(next: ServerSettings): void {
    const previous = this.settingsNow;
    this.settingsNow = next;
    if (!this.configured || modelKey(previous) !== modelKey(next)) {
      this.configured = true;
      this.reload();
    } else if ((previous.contextLength !== next.contextLength || previous.kvType !== next.kvType) && this.model) {
      this.size(this.model);
    }
  }

  /** The engine, once loaded; waits for a load in progress. Throws EngineUnavailable. */
  async engine(): Promise<Engine> {
    for (;;) {
      if (this.loaded) return this.loaded;
      if (this.failure) throw this.failure;
      if (!this.pending) throw new EngineUnavailable('internal', 'The language server has not received its settings yet.');
      // A reload during the wait replaces `pending`; the loop then waits for the new one.
      await this.pending.catch(() => undefined);
    }
  }

  /** The engine if it is ready right now (inline completions never wait for a load). */
  readyEngine(): Engine | undefined {
    return this.loaded;
  }

  dispose(): void {
    this.generation++;
    this.unload();
  }

  /**
   * Sizes the sessions for the current settings once the previous sessions have let go of their
   * KV caches: a request still running keeps its cache until its current engine chunk ends, and a
   * plan made before then would count that memory as taken (contexts far too short, or an
   * outOfMemory error that stays until the next settings change). Requests wait meanwhile.
   */
  private size(model: Model): void {
    this.release(this.loaded?.sessions);
    this.loaded = undefined;
    this.failure = undefined;
    const ticket = ++this.sizing;
    const sized: Promise<Model> = this.released.then(() => {
      if (ticket === this.sizing && this.model === model) this.sizeNow(model);
      return model;
    });
    this.pending = sized;
    void sized.then(() => {
      if (this.pending === sized) this.pending = undefined;
    });
  }

  /** Plans the contexts (context-plan.ts) and creates the session pool; a context that does not fit is an outOfMemory error. */
  private sizeNow(model: Model): void {
    const { contextLength, kvType } = this.settingsNow;
    const { info } = model;
    let plan: ContextPlan;
    try {
      plan = planContexts(info, memoryPlanOf(model, this.log), contextLength, kvType);
    } catch (error) {
      this.failure = error instanceof ContextDoesNotFit ? new EngineUnavailable('outOfMemory', error.message) : unavailable(error);
      this.log(`sessions not created: ${this.failure.message}`);
      this.status.error(this.failure.kind, this.failure.message);
      return;
    }
    const { contexts } = plan;
    this.log(`contexts (${plan.kvType} KV): workspace ${contexts.workspace}, analyze ${contexts.analyze}, chat ${contexts.chat}, completion ${contexts.completion} tokens; ${plan.reason}`);
    this.loaded = { model, sessions: new SessionPool(model, plan, kvType === 'auto' ? undefined : kvType) };
    this.status.ready({
      model: info.name,
      device: info.device.startsWith('cpu') ? `CPU, ${info.threads} threads` : info.device,
      context: { tokens: contexts.workspace, kvType: plan.kvType },
    });
  }

  /** Disposes a session pool; `released` then also waits for its running calls. */
  private release(sessions: SessionPool | undefined): void {
    if (!sessions) return;
    const ended = sessions.dispose();
    this.released = Promise.all([this.released, ended]).then(() => undefined);
  }

  private unload(): void {
    this.release(this.loaded?.sessions);
    this.loaded = undefined;
    this.model?.dispose();
    this.model = undefined;
  }

  private reload(): void {
    const generation = ++this.generation;
    this.unload();
    this.failure = undefined;
    const pending = this.load(this.settingsNow, generation);
    this.pending = pending;
    pending.then(
      (model) => {
        if (generation !== this.generation) {
          model.dispose();
          return;
        }
        this.model = model;
        this.pending = undefined;
        this.size(model);
      },
      (error: unknown) => {
        if (generation !== this.generation) return;
        this.failure = unavailable(error);
        this.pending = undefined;
        this.log(`model load failed: ${this.failure.message}`);
        this.status.error(this.failure.kind, this.failure.message);
      },
    );
  }

  private async load(settings: ServerSettings, generation: number): Promise<Model> {
    const file = settings.modelPath;
    if (!file) throw new EngineUnavailable('noModel', `No model is set. ${SELECT_HINT}; the official files are at https://huggingface.co/internlm/internlm2_5-7b-chat-gguf.`);
    if (!existsSync(file)) throw new EngineUnavailable('modelNotFound', `Model file not found: ${file}. ${SELECT_HINT}, or fix internlm.modelPath.`);
    const name = file.split(/[\\/]/).filter(Boolean).pop() ?? file;
    this.status.loading(0, `Loading ${name}…`);
    this.log(`loading ${file} (${JSON.stringify({ ...settings, completion: undefined })})`);
    await this.released;  // on a GPU, "auto" and the fit check read its free memory
    const started = Date.now();
    const model = await Model.load(file, {
      threads: settings.threads || undefined,
      device: settings.device,
      ropeScaling: settings.ropeScaling === 'auto' ? undefined : settings.ropeScaling,
      onProgress: (fraction) => {
        if (generation === this.generation) this.status.loading(fraction, `Loading ${name}…`);
      },
    });
    const { info } = model;
    this.log(`loaded ${info.name} in ${Date.now() - started} ms: ${info.blockCount} layers, context ${info.contextLength}, backends ${info.backends.join(', ')}, ${info.threads} threads`);
    return model;
  }
}

/** The engine's memory plan, or undefined when it cannot make one (then contexts are not checked). */
function memoryPlanOf(model: Model, log: (message: string) => void): MemoryPlan | undefined {
  try {
    return model.memoryPlan();
  } catch (error) {
    log(`no memory plan: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}
