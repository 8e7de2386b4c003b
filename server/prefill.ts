// Long prompts are prefilled in slices that step aside for interactive work. The engine serializes
// forward passes per chunk, so without this an inline completion would wait one prefill chunk for
// each of its own forward passes (dozens of them) while a workspace question prefills. Between
// slices this waits until no completion is running, so a completion waits for one slice at most.
//
// Slicing is exact only while the whole prompt is within the model's trained context: there the
// RoPE base is the same for every length. Beyond it (dynamic NTK) the base depends on the final
// length, so such prompts go to the engine in one call, which picks the base for the full length.
//
// Progress: the engine reports each chunk of a call; the slices' counts are added up here so that
// the caller sees one count for the whole prompt.
import type { ModelInfo, Session } from '../native/index';

/**
 * Tokens per slice: short enough that a completion never waits long for one. On a GPU a slice is
 * one engine chunk (1024 tokens, some 25-40 ms for a 7B on an H200 by estimate): a low-bit
 * model's prefill decodes every weight matrix once per chunk, so shorter slices would pay that
 * more often, and longer ones would keep completions waiting.
 */
function sliceTokens(info: ModelInfo): number {
  return info.device.startsWith('cuda') ? 1024 : 512;
}

interface Prefilled {
  /** Prompt tokens that were already in the cache before this request. */
  reused: number;
  ms: number;
  cancelled: boolean;
}

/** Equal up to the engine's float32 rounding. */
export function sameBase(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-6 * Math.max(Math.abs(a), Math.abs(b));
}

/** The RoPE base the engine gives a fresh prompt of `length` tokens (engine/rope.cpp, docs/rope-policy.md). */
export function ropeBaseFor(info: ModelInfo, length: number): number {
  const { type, factor } = info.ropeScaling;
  if (type !== 'dynamic' || info.contextLength <= 0 || length <= info.contextLength) return info.ropeFreqBase;
  const d = info.headDim;
  return info.ropeFreqBase * Math.pow((factor * length) / info.contextLength - (factor - 1), d / (d - 2));
}

/**
 * The length the RoPE base is planned for (the engine's ropeLength; 0 = the prompt's own length).
 * Within the trained context the base is the plain one whatever the length, so 0. Beyond it the
 * base grows with the length (dynamic NTK), and choosing it from the exact prompt length would make
 * every follow-up question of another length miss the cached prefix. So the base is planned for a
 * bucket: the smallest half-octave step of the trained context (M·√2^k) that also holds the answer,
 * capped by the session's context (docs/rope-policy.md).
 */
export function plannedRopeLength(info: ModelInfo, promptLength: number, maxTokens: number, context: number): number {
  const trained = info.contextLength;
  if (info.ropeScaling.type !== 'dynamic' || trained <= 0 || promptLength <= trained) return 0;
  const wanted = promptLength + Math.max(0, maxTokens);
  const bucket = Math.ceil(trained * Math.SQRT2 ** Math.ceil(2 * Math.log2(wanted / trained) - 1e-9));
  return Math.max(wanted, Math.min(bucket, context));
}

/** The base a generation of `maxTokens` after `promptLength` tokens runs under (see plannedRopeLength). */
export function neededRopeBase(info: ModelInfo, promptLength: number, maxTokens: number, context: number): number {
  return ropeBaseFor(info, Math.max(promptLength, plannedRopeLength(info, promptLength, maxTokens, context)));
}

/** `done` of `total` prompt tokens computed; reused tokens count in neither. */
export type PrefillProgressCallback = (done: number, total: number) => void;

/**
 * Brings the session's cache to `prompt` minus its last token (the generation computes that one
 * for its logits), pausing before each slice until `interactiveIdle` resolves.
 */
export async function prefillInSlices(session: Session, info: ModelInfo, prompt: readonly number[], signal: AbortSignal,
  interactiveIdle: () => Promise<void>, onProgress?: PrefillProgressCallback): Promise<Prefilled | undefined> {
  if (prompt.length > info.contextLength) return undefined;
  if (session.length > 0 && !sameBase(session.ropeBase, info.ropeFreqBase)) session.truncate(0);
  const cached = session.tokens;
  let reused = 0;
  while (reused < cached.length && reused < prompt.length - 1 && cached[reused] === prompt[reused]) reused++;
  const slice = sliceTokens(info);
  if (prompt.length - 1 - reused <= slice) return undefined;

  session.truncate(reused);
  const started = performance.now();
  const total = prompt.length - 1 - reused;
  onProgress?.(0, total);
  for (let at = reused; at < prompt.length - 1; at += slice) {
    await interactiveIdle();
    if (signal.aborted) return { reused, ms: performance.now() - started, cancelled: true };
    const before = at - reused;
    try {
      await session.evaluate(prompt.slice(at, Math.min(at + slice, prompt.length - 1)), {
        signal,
        onPrefillProgress: onProgress && ((done) => onProgress(before + done, total)),
      });
    } catch (error) {
      if (signal.aborted) return { reused, ms: performance.now() - started, cancelled: true };
      throw error;
    }
  }
  return { reused, ms: performance.now() - started, cancelled: false };
}
