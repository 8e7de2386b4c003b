// The engine's typed JavaScript face. Everything above the native addon (CLI, language server,
// tests) goes through this module; it adds AbortSignal support and argument defaults.
import path from 'node:path';
import { existsSync } from 'node:fs';

export type RopeScalingType = 'none' | 'dynamic';

export interface LoadOptions {
  threads?: number;
  /** "auto" (default: CUDA when present and the model fits, else CPU), "cpu", "cuda" or "cuda:N". */
  device?: string;
  /** Overrides the file's RoPE scaling type / factor. */
  ropeScaling?: RopeScalingType;
  ropeFactor?: number;
  /**
   * Where the weight files live: "mapped" (paged in on demand), "ram" (read into huge-page memory:
   * several times faster decode on the CPU for multi-GB files), or "auto" (default: RAM when the
   * model will run on the CPU and it fits with 1 GiB to spare, else mapped).
   */
  weights?: 'auto' | 'mapped' | 'ram';
  /** Called with a fraction in [0, 1] while the weights are mapped and checked. */
  onProgress?: (fraction: number) => void;
}

export interface ModelInfo {
  path: string;
  format: 'gguf' | 'hf';
  name: string;
  architecture: 'internlm2';
  vocabSize: number;
  contextLength: number;
  embeddingLength: number;
  blockCount: number;
  headCount: number;
  headCountKv: number;
  headDim: number;
  feedForwardLength: number;
  rmsNormEps: number;
  ropeFreqBase: number;
  ropeScaling: { type: RopeScalingType; factor: number };
  ropeLayout: 'pairwise' | 'rotate-half';
  /** Number of weight tensors per type name, e.g. {"F16": 225, "F32": 65}. */
  weightTypes: Record<string, number>;
  parameterCount: number;
  fileBytes: number;
  /** Where the weights ended up (LoadOptions.weights). */
  weights: 'mapped' | 'ram';
  /** 16 hex digits identifying these exact weights (config, vocabulary, tensor shapes, sampled data); saved KV caches carry it. */
  fingerprint: string;
  bosId: number;
  eosId: number;
  stopTokens: number[];
  backends: string[];
  /** The backend this model runs on, with the reason for auto's choice, e.g. "cpu (no CUDA device: ...)". */
  device: string;
  threads: number;
}

export interface SamplingOptions {
  /** 0 = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  repeatLastN?: number;
  seed?: number;
}

/** Called after every computed chunk of a prompt: positions computed so far and in all (reused ones count in neither). */
export type PrefillProgressFn = (done: number, total: number) => void;

export interface EvaluateOptions {
  /** Per-position top-K log-probabilities for every evaluated position (0 = none). */
  topK?: number;
  signal?: AbortSignal;
  onPrefillProgress?: PrefillProgressFn;
  /**
   * With an empty cache, chooses the dynamic-NTK RoPE base for this many positions instead of the
   * batch's own length, so later appends up to it keep the base (docs/rope-policy.md).
   */
  ropeLength?: number;
}

export interface EvaluateResult {
  /** top[i]: the K best [id, logprob] of the next-token distribution after position i. */
  top: Array<Array<[number, number]>>;
  ropeBase: number;
  cachedTokens: number;
  ms: number;
}

export interface GenerateOptions extends SamplingOptions {
  /** Full prompt token ids; the session reuses the longest cached prefix. */
  prompt: number[];
  maxTokens?: number;
  stopTokens?: number[];
  stopStrings?: string[];
  signal?: AbortSignal;
  /** Streams decoded text (complete UTF-8 only) as tokens are accepted. */
  onText?: (text: string) => void;
  /** Progress of the prompt's uncached part. */
  onPrefillProgress?: PrefillProgressFn;
  /**
   * The RoPE base needed is base'(max(prompt length, ropeLength)): a cached prefix built with the
   * same ropeLength stays reusable as the question after it changes length (docs/rope-policy.md).
   */
  ropeLength?: number;
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface GenerateResult {
  text: string;
  tokens: number[];
  finishReason: FinishReason;
  promptTokens: number;
  cachedTokens: number;
  promptMs: number;
  generateMs: number;
}

export interface SaveOptions {
  /** Save only the first `length` positions (e.g. a workspace prefix without the question after it); default: all. */
  length?: number;
}

export interface SaveResult {
  /** Size of the written file. */
  bytes: number;
  /** Positions saved. */
  tokens: number;
  ms: number;
}

export interface RestoreResult {
  /** Positions now held (the saved ones). */
  tokens: number;
  /** The RoPE base the saved cache was built with; a later prompt reuses it only under the same base. */
  ropeBase: number;
  ms: number;
}

export interface SessionOptions {
  /** Most positions this session may hold (default: the model's context length). */
  contextLength?: number;
  /** KV cache element type (default: f32 on the CPU, f16 on CUDA; both offer f32, f16, q8 and q4, with the same bytes per row). */
  kvType?: KVType;
  /** CPU: throw now, naming the numbers, when the whole context's KV cache cannot fit in free RAM. */
  checkMemory?: boolean;
}

/** How long a context fits in free host RAM per KV type (engine/memory_plan.h). */
export interface MemoryPlan {
  device: string;
  memoryBytes: number;
  weightsBytes: number;
  workspaceBytes: number;
  /** The weights were read into RAM, so memoryBytes (MemAvailable) already excludes them. */
  weightsInRam: boolean;
  /**
   * What is left for KV caches. Host RAM: memoryBytes - workspace - the weights unless already in
   * RAM. A GPU (device "cuda:N"): its free memory after the weights, less workspaceBytes (a reserve
   * and the headroom of a cache's layer-by-layer growth).
   */
  kvBudgetBytes: number;
  kvTypes: Record<KVType, { bytesPerToken: number; maxContext: number }>;
}

export const KV_TYPES = ['f32', 'f16', 'q8', 'q4'] as const;
export type KVType = (typeof KV_TYPES)[number];

interface NativeSession {
  ropeBase(): number;
  length(): number;
  cacheCapacity(): number;
  tokens(): number[];
  evaluate(tokens: number[], topK: number, onPrefillProgress?: PrefillProgressFn, ropeLength?: number): Promise<EvaluateResult>;
  generate(
    options: Omit<GenerateOptions, 'signal' | 'onText' | 'onPrefillProgress'>,
    onText: (text: string) => void,
    onPrefillProgress?: PrefillProgressFn,
  ): Promise<GenerateResult>;
  cancel(): void;
  truncate(n: number): void;
  save(path: string, length?: number): Promise<SaveResult>;
  restore(path: string): Promise<RestoreResult>;
  dispose(): void;
}

interface NativeModel {
  info(): ModelInfo;
  tokenize(text: string, special: boolean): number[];
  detokenize(ids: number[]): string;
  createSession(contextLength: number, kvType?: KVType, checkMemory?: boolean): NativeSession;
  memoryPlan(memoryBytes?: number): MemoryPlan;
  dispose(): void;
}

interface NativeTokenizer {
  encode(text: string, special: boolean): number[];
  decode(ids: number[]): string;
  decodeStream(ids: number[]): string[];
  vocabSize(): number;
}

/** llama.cpp file types `quantize` writes (same per-tensor mix and general.file_type as llama.cpp's). */
export const QUANTIZE_TYPES = ['Q8_0', 'Q4_0', 'Q5_0', 'Q2_K', 'Q3_K_M', 'Q4_K_M', 'Q5_K_M', 'Q6_K', 'Q4_1', 'Q5_1'] as const;
export type QuantizeType = (typeof QUANTIZE_TYPES)[number];

export interface QuantizeOptions {
  /** Worker threads (default: physical cores). */
  threads?: number;
  /** Keep output.weight in its source type, as llama.cpp's --leave-output-tensor. */
  leaveOutputTensor?: boolean;
  /** Called with a fraction in [0, 1] as tensors are written. */
  onProgress?: (fraction: number) => void;
}

export interface QuantizeResult {
  type: QuantizeType;
  /** Size of the written file. */
  bytes: number;
  tensors: number;
  /** Tensors per ggml type, e.g. {"Q4_K": 150, "Q6_K": 44, "F32": 65}. */
  types: Record<string, number>;
}

interface NativeAddon {
  loadModel(path: string, options: Omit<LoadOptions, 'onProgress'>, onProgress: (f: number) => void): Promise<NativeModel>;
  quantizeModel(input: string, output: string, type: string, options: Omit<QuantizeOptions, 'onProgress'>, onProgress: (f: number) => void): Promise<QuantizeResult>;
  loadTokenizer(path: string): NativeTokenizer;
  physicalCores(): number;
}

function loadAddon(): NativeAddon {
  const candidates = [
    process.env.INTERNLM_NATIVE,
    path.join(__dirname, 'internlm.node'),
    path.join(__dirname, '..', 'native', 'build', 'internlm.node'),
    path.join(__dirname, 'build', 'internlm.node'),
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`native engine not built (looked for ${candidates.join(', ')}); run npm run build`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(found) as NativeAddon;
}

let addon: NativeAddon | undefined;
function native(): NativeAddon {
  addon ??= loadAddon();
  return addon;
}

// The native call resets the session's cancel flag when it starts, so an already-aborted
// signal is applied right after the call has begun.
async function withSignal<T>(signal: AbortSignal | undefined, cancel: () => void, run: () => Promise<T>): Promise<T> {
  if (!signal) return run();
  const running = run();
  if (signal.aborted) cancel();
  signal.addEventListener('abort', cancel);
  try {
    return await running;
  } finally {
    signal.removeEventListener('abort', cancel);
  }
}

export class Session {
  /** Engine calls still running: each holds this session's KV cache until it ends. */
  private readonly running = new Set<Promise<unknown>>();

  constructor(private readonly handle: NativeSession) {}

  /**
   * Resolves when no engine call of this session is running. After dispose() (or a cancel), a
   * call ends at the engine's next chunk boundary, and its KV cache is freed only then.
   */
  settled(): Promise<void> {
    return Promise.all([...this.running]).then(() => undefined);
  }

  private track<T>(call: Promise<T>): Promise<T> {
    const ended = call.then(() => undefined, () => undefined);
    this.running.add(ended);
    void ended.then(() => this.running.delete(ended));
    return call;
  }

  /** The RoPE base this session's KV cache was built with. */
  get ropeBase(): number { return this.handle.ropeBase(); }
  /** Positions currently held in the KV cache. */
  get length(): number { return this.handle.length(); }
  /** Positions the KV cache has room for now: it grows as needed, not past the session's context (on a GPU rounded up to 64). */
  get cacheCapacity(): number { return this.handle.cacheCapacity(); }
  get tokens(): number[] { return this.handle.tokens(); }

  /** Appends tokens to the cache, returning top-K log-probabilities per position. */
  evaluate(tokens: number[], options: EvaluateOptions = {}): Promise<EvaluateResult> {
    return this.track(withSignal(options.signal, () => this.handle.cancel(),
      () => this.handle.evaluate(tokens, options.topK ?? 0, options.onPrefillProgress, options.ropeLength ?? 0)));
  }

  generate(options: GenerateOptions): Promise<GenerateResult> {
    const { signal, onText, onPrefillProgress, ...rest } = options;
    return this.track(withSignal(signal, () => this.handle.cancel(), () => this.handle.generate(rest, onText ?? (() => {}), onPrefillProgress)));
  }

  /** Keeps only the first n cached positions. */
  truncate(n: number): void { this.handle.truncate(n); }

  /**
   * Writes the KV cache (first `length` positions), its tokens and RoPE base to a file, atomically:
   * the file appears (or is replaced) only when complete. Busy sessions reject, as for evaluate.
   */
  async save(filePath: string, options: SaveOptions = {}): Promise<SaveResult> {
    return this.track(this.handle.save(path.resolve(filePath), options.length));
  }

  /**
   * Replaces this session's contents with a saved KV cache. Rejects with a message naming the
   * difference (another model, KV type or shape, truncated or corrupt file) and then leaves the
   * session unchanged.
   */
  async restore(filePath: string): Promise<RestoreResult> {
    return this.track(this.handle.restore(path.resolve(filePath)));
  }

  dispose(): void { this.handle.dispose(); }
}

export class Model {
  readonly info: ModelInfo;
  private constructor(private readonly handle: NativeModel) {
    this.info = handle.info();
  }

  static async load(modelPath: string, options: LoadOptions = {}): Promise<Model> {
    const { onProgress, ...rest } = options;
    const handle = await native().loadModel(path.resolve(modelPath), rest, onProgress ?? (() => {}));
    return new Model(handle);
  }

  /** Token ids without BOS. special=true turns control-token text into control tokens (trusted text only). */
  tokenize(text: string, options: { special?: boolean } = {}): number[] {
    return this.handle.tokenize(text, options.special ?? false);
  }

  detokenize(ids: number[]): string { return this.handle.detokenize(ids); }

  createSession(options: SessionOptions = {}): Session {
    return new Session(this.handle.createSession(options.contextLength ?? 0, options.kvType, options.checkMemory ?? false));
  }

  /** memoryBytes: the RAM to plan for (default: MemAvailable now). */
  memoryPlan(memoryBytes?: number): MemoryPlan { return this.handle.memoryPlan(memoryBytes); }

  dispose(): void { this.handle.dispose(); }
}

export interface Tokenizer {
  encode(text: string, options?: { special?: boolean }): number[];
  decode(ids: number[]): string;
  /** The text released after each token by the streaming decoder (complete UTF-8 only). */
  decodeStream(ids: number[]): string[];
  readonly vocabSize: number;
}

/** A tokenizer alone, from a tokenizer.model, a GGUF file or an HF directory. */
export function loadTokenizer(filePath: string): Tokenizer {
  const t = native().loadTokenizer(path.resolve(filePath));
  return {
    encode: (text, options) => t.encode(text, options?.special ?? false),
    decode: (ids) => t.decode(ids),
    decodeStream: (ids) => t.decodeStream(ids),
    vocabSize: t.vocabSize(),
  };
}

/**
 * Writes a GGUF of the given llama.cpp file type from a Hugging Face checkpoint directory or an
 * F32/F16/BF16 GGUF. The file appears only when complete (written under OUTPUT.partial first).
 */
export function quantizeModel(input: string, output: string, type: QuantizeType, options: QuantizeOptions = {}): Promise<QuantizeResult> {
  const { onProgress, ...rest } = options;
  return native().quantizeModel(path.resolve(input), path.resolve(output), type, rest, onProgress ?? (() => {}));
}

export function physicalCores(): number {
  return native().physicalCores();
}
