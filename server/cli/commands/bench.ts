// internlm bench: prefill and decode speed on a random prompt. Decode is greedy and ignores stop
// tokens (one evaluate call per token, taking the top-1 id), so every run decodes --gen-tokens.
import type { Model, SessionOptions } from '../../../native/index';
import { intOption, parseOptions, requiredString } from '../args';
import { ENGINE_FLAGS, SESSION_FLAGS, engineOptions, loadModel, sessionOptions } from '../model';
import { printJson } from '../output';

export interface BenchResult {
  prefill_tok_s: number;
  decode_tok_s: number;
  prompt_tokens: number;
  gen_tokens: number;
  threads: number;
  model: string;
  model_type: string;
}

export async function benchCommand(args: string[]): Promise<void> {
  const options = parseOptions(args, {
    model: { type: 'string' },
    'prompt-tokens': { type: 'string' },
    'gen-tokens': { type: 'string' },
    ...ENGINE_FLAGS,
    ...SESSION_FLAGS,
    json: { type: 'boolean' },
  });
  const modelPath = requiredString(options, 'model');
  const promptTokens = intOption(options, 'prompt-tokens', { min: 1 }) ?? 256;
  const genTokens = intOption(options, 'gen-tokens', { min: 1 }) ?? 64;
  const model = await loadModel(modelPath, engineOptions(options));
  try {
    const result = await bench(model, promptTokens, genTokens, sessionOptions(options, promptTokens + genTokens));
    if (options.json) {
      printJson(result);
      return;
    }
    process.stdout.write(
      `${result.model} (${result.model_type}, ${result.threads} threads)\n` +
      `prefill ${result.prompt_tokens} tokens: ${result.prefill_tok_s.toFixed(2)} tok/s\n` +
      `decode  ${result.gen_tokens} tokens: ${result.decode_tok_s.toFixed(2)} tok/s\n`);
  } finally {
    model.dispose();
  }
}

async function bench(model: Model, promptTokens: number, genTokens: number, options: SessionOptions): Promise<BenchResult> {
  const prompt = randomTokens(promptTokens, model.info.vocabSize);
  const session = model.createSession(options);
  try {
    // Prefill ends with the first greedy token, as llama.cpp's does: all but the last prompt token
    // without logits, then the last one with its top-1.
    const prefillStart = performance.now();
    if (promptTokens > 1) await session.evaluate(prompt.slice(0, -1));
    const next = topToken(await session.evaluate(prompt.slice(-1), { topK: 1 }));
    const prefillMs = performance.now() - prefillStart;

    // Decode through generate, the path chat and completions use: one native call for the whole
    // run. Its one-token prompt (the first greedy token) plus the generated tokens make genTokens
    // forward passes, so both phases count.
    const decoded = await session.generate({ prompt: [...prompt, next], maxTokens: genTokens, temperature: 0, stopTokens: [] });
    if (decoded.tokens.length !== genTokens) throw new Error(`decode stopped after ${decoded.tokens.length} of ${genTokens} tokens (${decoded.finishReason})`);
    const decodeMs = decoded.promptMs + decoded.generateMs;

    return {
      prefill_tok_s: promptTokens / (prefillMs / 1000),
      decode_tok_s: genTokens / (decodeMs / 1000),
      prompt_tokens: promptTokens,
      gen_tokens: genTokens,
      threads: model.info.threads,
      model: model.info.path,
      model_type: weightType(model.info.weightTypes),
    };
  } finally {
    session.dispose();
  }
}

function topToken(result: { top: Array<Array<[number, number]>> }): number {
  return result.top[result.top.length - 1][0][0];
}

/** The type most 2-D weights use: the F32 norms are never what a file is called by. */
function weightType(types: Record<string, number>): string {
  const entries = Object.entries(types).filter(([type]) => type !== 'F32');
  if (entries.length === 0) return 'F32';
  return entries.sort((a, b) => b[1] - a[1])[0][0];
}

/** Deterministic pseudo-random ids past the control and byte tokens (xorshift32). */
function randomTokens(count: number, vocabSize: number, seed = 1): number[] {
  let state = seed;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const first = Math.min(259, vocabSize - 1);
  return Array.from({ length: count }, () => first + (next() % (vocabSize - first)));
}
