// Runs one generation on a session and reports it in the protocol's terms (usage, timings), feeding
// the decoding speed to the status bar. Long prompts are prefilled in slices that yield to inline
// completions (prefill.ts).
import type { GenerateOptions, ModelInfo, Session } from '../native/index';
import { plannedRopeLength, prefillInSlices, type PrefillProgressCallback } from './prefill';
import type { GenerationResult } from './protocol';

/** The model's default chat sampling (REFERENCE.md: temperature 0.8, top-p 0.8). */
export const CHAT_SAMPLING = { temperature: 0.8, topP: 0.8, maxTokens: 1024 };

export class PromptTooLong extends Error {}

export interface GenerationTarget {
  session: Session;
  info: ModelInfo;
  contextLength: number;
  /** Resolves when no inline completion is running. */
  interactiveIdle: () => Promise<void>;
  onSpeed: (tokensPerSecond: number) => void;
  /** Progress of the prompt's prefill, counted over the whole prompt (slices included). */
  onPrefillProgress?: PrefillProgressCallback;
}

export interface Generation {
  result: GenerationResult;
  /** The generated token ids (the stop token excluded). */
  tokens: number[];
}

/** The result for a request cancelled before it produced anything. */
export function cancelledBeforeStart(): GenerationResult {
  return {
    text: '',
    finishReason: 'cancelled',
    usage: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 },
    timings: { promptMs: 0, generateMs: 0 },
  };
}

/**
 * Generates for `options.prompt`, capping maxTokens to the room the context leaves. Throws
 * PromptTooLong when the prompt alone fills the context.
 */
export async function generate(target: GenerationTarget, options: GenerateOptions & { signal: AbortSignal }): Promise<Generation> {
  const { session, contextLength } = target;
  const room = contextLength - options.prompt.length;
  if (room < 1) {
    throw new PromptTooLong(`The prompt needs ${options.prompt.length} tokens, more than the context of ${contextLength} tokens holds. Raise internlm.contextLength or send less.`);
  }
  const sliced = await prefillInSlices(session, target.info, options.prompt, options.signal, target.interactiveIdle, target.onPrefillProgress);
  if (sliced?.cancelled) {
    const result = cancelledBeforeStart();
    result.usage = { promptTokens: options.prompt.length, completionTokens: 0, cachedTokens: sliced.reused };
    result.timings.promptMs = sliced.ms;
    return { result, tokens: [] };
  }
  const maxTokens = Math.min(options.maxTokens ?? CHAT_SAMPLING.maxTokens, room);
  const raw = await session.generate({
    ...options,
    maxTokens,
    ropeLength: plannedRopeLength(target.info, options.prompt.length, maxTokens, contextLength),
    // After the slices only the last prompt token is left: the slices' progress already ended.
    onPrefillProgress: sliced ? undefined : target.onPrefillProgress,
  });
  if (raw.tokens.length > 1 && raw.generateMs > 0) target.onSpeed(raw.tokens.length / (raw.generateMs / 1000));
  return {
    tokens: raw.tokens,
    result: {
      text: raw.text,
      finishReason: raw.finishReason,
      usage: {
        promptTokens: raw.promptTokens,
        completionTokens: raw.tokens.length,
        // What was cached before this request, not what the slices just put there.
        cachedTokens: sliced ? sliced.reused : raw.cachedTokens,
      },
      timings: { promptMs: raw.promptMs + (sliced?.ms ?? 0), generateMs: raw.generateMs },
    },
  };
}
