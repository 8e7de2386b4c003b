// The contract between the extension and the language server: our LSP extensions' method names and
// their parameter, result and progress types, imported by both sides (docs/protocol.md explains
// them). Pure types and constants: this module must not import 'vscode' or vscode-languageserver,
// so that either side can use it. Positions and ranges are LSP's (0-based lines, UTF-16 columns).

/** A request's method name bound to its types. The type fields are phantom: never set at run time. */
export interface RequestMethod<Params, Result, Partial = never> {
  readonly method: string;
  readonly types?: { params: Params; result: Result; partial: Partial };
}

/** A notification's method name bound to its parameter type (phantom field, as above). */
export interface NotificationMethod<Params> {
  readonly method: string;
  readonly types?: { params: Params };
}

export type ProgressToken = number | string;

// ---------------------------------------------------------------- settings

export type Device = 'auto' | 'cpu' | 'cuda';
/** "auto" keeps what the model file says; "none" and "dynamic" override it (dynamic = NTK scaling). */
export type RopeScaling = 'auto' | 'none' | 'dynamic';

/**
 * The settings the server needs, sent as `initializationOptions` and again as
 * `workspace/didChangeConfiguration` `{settings: ServerSettings}` whenever one of them changes.
 */
export type KVTypeSetting = 'auto' | 'f32' | 'f16' | 'q8' | 'q4';

export interface ServerSettings {
  /** Absolute path of a GGUF file or a Hugging Face checkpoint folder; "" when none is chosen. */
  modelPath: string;
  device: Device;
  /** CPU threads; 0 = one per physical core. */
  threads: number;
  /**
   * Most tokens the workspace session may hold (the other sessions get at most this much); 0 =
   * automatic: the longest context the free memory holds for kvType, capped at what the model can use.
   */
  contextLength: number;
  /** The sessions' KV cache type; "auto" = the device's default (f32 on the CPU, f16 on CUDA). */
  kvType: KVTypeSetting;
  ropeScaling: RopeScaling;
  completion: {
    /** Most tokens one inline suggestion may have. */
    maxTokens: number;
  };
  workspaceCache: {
    /** Disk space the saved workspace KV caches may take together (oldest go first); 0 = none saved. */
    maxBytes: number;
  };
}

/** `initializationOptions`: the settings plus what only the client knows about its environment. */
export interface InitializationOptions extends ServerSettings {
  /**
   * A folder the server may keep caches in (the extension's workspace storage, else its global
   * storage). Without it nothing is saved to disk.
   */
  storagePath?: string;
}

// ---------------------------------------------------------------- internlm/status

export type ServerState = 'loading' | 'ready' | 'busy' | 'error';

/** Why the server is in the error state; the client offers the matching fix. */
export type ErrorKind =
  | 'noModel' // modelPath is empty
  | 'modelNotFound' // modelPath does not exist
  | 'badModel' // unreadable, unsupported architecture or tensor type
  | 'outOfMemory' // weights or KV cache do not fit (a smaller contextLength may help)
  | 'noGpu' // device "cuda" but no usable GPU
  | 'internal';

export interface StatusParams {
  state: ServerState;
  /** A sentence for the user: what happens, or what went wrong and how to fix it. */
  message?: string;
  /** Loading progress in [0, 1]. */
  progress?: number;
  /** Where the model runs, e.g. "CUDA: NVIDIA H200" or "CPU, 16 threads". */
  device?: string;
  /** Bytes the model holds (weights + KV caches), and the device's total where known. */
  memory?: { used: number; total?: number };
  /** The loaded model's name. */
  model?: string;
  /** Decoding speed of the generation in progress (busy) or the last one (ready). */
  tokensPerSecond?: number;
  /** Set with state "error". */
  errorKind?: ErrorKind;
  /** The longest context a request gets (the workspace session's) and its KV cache type. */
  context?: { tokens: number; kvType: string };
  /** A long prompt being read (prefilled) right now; the oldest one when several are. */
  prefill?: PrefillStatus;
}

/**
 * A long prefill, as also reported through LSP work-done progress (`window/workDoneProgress/create`
 * + `$/progress`). Sending `window/workDoneProgress/cancel` with its token cancels the request.
 */
export interface PrefillStatus {
  /** The work-done progress token; absent when the client does not support work-done progress. */
  token?: ProgressToken;
  /** What is being read, e.g. "Reading the workspace". */
  title: string;
  /** Prompt tokens computed so far and in all (tokens reused from the cache are not counted). */
  done: number;
  total: number;
  /** Measured since the prefill began; absent until there is a measurement. */
  tokensPerSecond?: number;
  secondsLeft?: number;
}

export const StatusNotification: NotificationMethod<StatusParams> = { method: 'internlm/status' };

// ---------------------------------------------------------------- generation results

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface SamplingParams {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
}

/** What `$/progress` carries on a request's partialResultToken while text streams. */
export interface TextDelta {
  delta: string;
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens whose KV cache was reused instead of recomputed. */
  cachedTokens: number;
}

export interface Timings {
  promptMs: number;
  generateMs: number;
}

export interface GenerationResult {
  /** The whole text, also when cancelled (then: the text so far). */
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  timings: Timings;
}

// ---------------------------------------------------------------- internlm/chat

export interface ChatParams extends SamplingParams {
  /** The conversation; a leading system message replaces the server's default one. */
  messages: ChatMessage[];
  partialResultToken?: ProgressToken;
}

export type ChatResult = GenerationResult;

export const ChatRequest: RequestMethod<ChatParams, ChatResult, TextDelta> = { method: 'internlm/chat' };

// ---------------------------------------------------------------- internlm/askWorkspace

export interface AskWorkspaceParams extends SamplingParams {
  question: string;
  partialResultToken?: ProgressToken;
}

export type SkipReason = 'binary' | 'tooLarge' | 'generated' | 'overBudget';

/** A file considered but left out of the context (ignored files are not listed). */
export interface SkippedFile {
  /** Workspace-relative, with forward slashes. */
  path: string;
  reason: SkipReason;
}

export interface AskWorkspaceResult extends GenerationResult {
  filesIncluded: number;
  filesSkipped: SkippedFile[];
  /** Tokens of workspace content put into the prompt. */
  contextTokens: number;
}

export const AskWorkspaceRequest: RequestMethod<AskWorkspaceParams, AskWorkspaceResult, TextDelta> = {
  method: 'internlm/askWorkspace',
};

// ---------------------------------------------------------------- internlm/analyzeFile

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export type FindingSeverity = 'error' | 'warning' | 'information' | 'hint';

export interface Finding {
  range: Range;
  severity: FindingSeverity;
  message: string;
}

export interface AnalyzeFileParams {
  /** A document the client has open (the server reads the synchronized text, saved or not). */
  uri: string;
}

export interface AnalyzeFileResult {
  /** Markdown. */
  report: string;
  /** Also published as diagnostics with source DIAGNOSTIC_SOURCE. */
  findings: Finding[];
  usage: Usage;
  timings: Timings;
}

export const AnalyzeFileRequest: RequestMethod<AnalyzeFileParams, AnalyzeFileResult> = {
  method: 'internlm/analyzeFile',
};

export const DIAGNOSTIC_SOURCE = 'InternLM';
