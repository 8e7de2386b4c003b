// Runs one generation on a session and reports it in the protocol's terms (usage, timings), feeding
// the decoding speed to the status bar.
import type { GenerateOptions, GenerateResult, Session } from '../native/index';
import type { GenerationResult } from './protocol';

/** The model's default chat sampling (REFERENCE.md: temperature 0.8, top-p 0.8). */
export const CHAT_SAMPLING = { temperature: 0.8, topP: 0.8, maxTokens: 1024 };

export interface Generation {
  result: GenerationResult;
  /** The engine's result, for callers that need the tokens. */
  raw: GenerateResult;
}

export class PromptTooLong extends Error {}

/**
 * Generates on `session`, capping maxTokens to the room the context leaves. Throws PromptTooLong
 * when the prompt alone fills the context.
 */
export async function generate(session: Session, contextLength: number, options: GenerateOptions,
  onSpeed: (tokensPerSecond: number) => void): Promise<Generation> {
  const room = contextLength - options.prompt.length;
  if (room < 1) {
    throw new PromptTooLong(`The prompt needs ${options.prompt.length} tokens, more than the context of ${contextLength} tokens holds. Raise internlm.contextLength or send less.`);
  }
  const raw = await session.generate({ ...options, maxTokens: Math.min(options.maxTokens ?? CHAT_SAMPLING.maxTokens, room) });
  if (raw.tokens.length > 1 && raw.generateMs > 0) onSpeed(raw.tokens.length / (raw.generateMs / 1000));
  return {
    raw,
    result: {
      text: raw.text,
      finishReason: raw.finishReason,
      usage: { promptTokens: raw.promptTokens, completionTokens: raw.tokens.length, cachedTokens: raw.cachedTokens },
      timings: { promptMs: raw.promptMs, generateMs: raw.generateMs },
    },
  };
}

/** The result for a request cancelled while it waited for its session: nothing was generated. */
export function cancelledBeforeStart(): GenerationResult {
  return {
    text: '',
    finishReason: 'cancelled',
    usage: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 },
    timings: { promptMs: 0, generateMs: 0 },
  };
}
