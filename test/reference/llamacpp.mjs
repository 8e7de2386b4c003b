// The independent reference: llama.cpp (prebuilt CPU binary via node-llama-cpp 3.21.1) run on the
// same GGUF file and the same token ids as our engine. Settings follow REFERENCE.md
// ("Independent references available offline"): CPU only, flash attention off, F32 KV cache and one
// thread, which brings an exact forward pass within ~1e-6 of llama.cpp on F32 weights.
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

let llamaPromise;
function llama() {
  // One llama.cpp instance per process; 'never' building keeps a missing prebuilt binary a clear
  // error instead of a silent multi-minute source build.
  llamaPromise ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  return llamaPromise;
}

// node-llama-cpp keeps one context slot free and silently erases the oldest tokens ("context
// shift") once a sequence would fill it, so every context gets room for one token more than it holds.
async function withContext(modelPath, { ropeBase, threads, tokens, exact = true }, run) {
  const contextSize = tokens + 1;
  const model = await (await llama()).loadModel({
    modelPath,
    gpuLayers: 0,
    ...(exact && {
      defaultContextFlashAttention: false,
      experimentalDefaultContextKvCacheKeyType: 'F32',
      experimentalDefaultContextKvCacheValueType: 'F32',
    }),
    // An integer-valued number is written as an integer override, which llama.cpp ignores for the
    // float key rope.freq_base; the added 1e-9 keeps it a float without changing the base.
    ...(ropeBase !== undefined && { metadataOverrides: { internlm2: { rope: { freq_base: ropeBase + 1e-9 } } } }),
  });
  try {
    const context = await model.createContext({
      contextSize,
      batchSize: Math.min(contextSize, 512),
      threads: { ideal: threads, min: threads },
      sequences: 1,
    });
    try {
      return await run(context.getSequence(), model);
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/**
 * Full next-token distributions after every prefix of `tokens`.
 * Returns one Float64Array of log-probabilities (indexed by token id) per position.
 *
 * node-llama-cpp returns, with the default greedy sampler (temperature 0, no top-k/top-p), the
 * softmax over the whole vocabulary, computed in float32 and normalised by a float32 sum. We take
 * log(p) and renormalise in double, which removes the float32 summation error (a constant offset
 * per position of up to ~1e-5) and leaves only the per-entry rounding (~1e-7 relative).
 * Tokens more than ~87 nats below the best underflow to p = 0 and get -Infinity; compare only ids
 * near the top of the distribution.
 */
export async function referenceLogprobs(modelPath, tokens, { ropeBase, threads = 1 } = {}) {
  if (tokens.length === 0) throw new Error('referenceLogprobs: no tokens');
  return withContext(modelPath, { ropeBase, threads, tokens: tokens.length }, async (sequence) => {
    const outputs = await sequence.controlledEvaluate(tokens.map((t) => [t, { generateNext: { probabilities: true } }]));
    if (sequence.nextTokenIndex !== tokens.length) throw new Error('llama.cpp shifted the context; the distributions are not of the given tokens');
    return tokens.map((_, i) => {
      const probabilities = outputs[i]?.next.probabilities;
      if (!probabilities) throw new Error(`llama.cpp returned no distribution for position ${i}`);
      return toLogprobs(probabilities);
    });
  });
}

/**
 * Full next-token distributions after tokens[0..p] for the given positions p only (llama.cpp then
 * computes logits for those rows alone: cheap at long lengths). Returns a Map position → Float64Array
 * of log-probabilities, as referenceLogprobs.
 */
export async function referenceLogprobsAt(modelPath, tokens, positions, { ropeBase, threads = 1 } = {}) {
  const wanted = new Set(positions);
  for (const p of wanted) if (!(Number.isInteger(p) && p >= 0 && p < tokens.length)) throw new Error(`referenceLogprobsAt: bad position ${p}`);
  return withContext(modelPath, { ropeBase, threads, tokens: tokens.length }, async (sequence) => {
    const input = tokens.map((t, i) => (wanted.has(i) ? [t, { generateNext: { probabilities: true } }] : t));
    const outputs = await sequence.controlledEvaluate(input);
    if (sequence.nextTokenIndex !== tokens.length) throw new Error('llama.cpp shifted the context; the distributions are not of the given tokens');
    const result = new Map();
    for (const p of [...wanted].sort((a, b) => a - b)) {
      const probabilities = outputs[p]?.next.probabilities;
      if (!probabilities) throw new Error(`llama.cpp returned no distribution for position ${p}`);
      result.set(p, toLogprobs(probabilities));
    }
    return result;
  });
}

// The map holds every vocabulary entry (nothing filters it under greedy sampling), so its size is
// the vocabulary size.
function toLogprobs(probabilities) {
  const logprobs = new Float64Array(probabilities.size);
  let sum = 0;
  for (const [id, p] of probabilities) {
    if (id >= logprobs.length) throw new Error(`llama.cpp returned a partial distribution (id ${id} of ${probabilities.size} entries)`);
    logprobs[id] = Math.log(p);
    sum += p;
  }
  const logSum = Math.log(sum);
  for (let id = 0; id < logprobs.length; id++) logprobs[id] -= logSum;
  return logprobs;
}

/** The K most likely [id, logprob] pairs of one position's distribution, best first. */
export function topOf(logprobs, topK) {
  const ids = Array.from(logprobs.keys()).sort((a, b) => logprobs[b] - logprobs[a]).slice(0, topK);
  return ids.map((id) => [id, logprobs[id]]);
}

/**
 * Per-position top-K [[id, logprob], ...] from llama.cpp, in the shape of `internlm eval --json`'s
 * "top": entry i is the distribution after tokens[0..i]. ropeBase overrides the file's RoPE base.
 */
export async function referenceTopK(modelPath, tokens, { topK = 20, ropeBase, threads = 1 } = {}) {
  const distributions = await referenceLogprobs(modelPath, tokens, { ropeBase, threads });
  return distributions.map((logprobs) => topOf(logprobs, topK));
}

/** Greedy continuation of `tokens` by llama.cpp: the next `count` token ids (stop tokens included). */
export async function referenceGreedy(modelPath, tokens, count, { threads = 1 } = {}) {
  return withContext(modelPath, { threads, tokens: tokens.length + count }, async (sequence) => {
    const generated = [];
    for await (const token of sequence.evaluate(tokens, { temperature: 0 })) {
      generated.push(token);
      if (generated.length === count) break;
    }
    return generated;
  });
}

/**
 * llama.cpp's CPU speed on a random prompt: prefill (prompt evaluation up to the first sampled
 * token) and greedy decode of genTokens more tokens, ignoring stop tokens. Uses llama.cpp's
 * default fast settings (flash attention and KV cache type as it picks them), as a user would run it.
 */
export async function referenceBench(modelPath, { promptTokens = 256, genTokens = 64, threads = 1, seed = 1 } = {}) {
  return withContext(modelPath, { threads, tokens: promptTokens + genTokens, exact: false }, async (sequence, model) => {
    const prompt = randomTokens(promptTokens, model.fileInfo.metadata.tokenizer.ggml.tokens.length, seed);
    const started = performance.now();
    let prefillMs = 0;
    let generated = 0;
    for await (const _token of sequence.evaluate(prompt, { temperature: 0 })) {
      if (generated === 0) prefillMs = performance.now() - started;
      if (generated === genTokens) break;
      generated++;
    }
    const decodeMs = performance.now() - started - prefillMs;
    return {
      prefill_tok_s: promptTokens / (prefillMs / 1000),
      decode_tok_s: genTokens / (decodeMs / 1000),
      prompt_tokens: promptTokens,
      gen_tokens: genTokens,
      threads,
    };
  });
}

/** Deterministic pseudo-random ids in [259, vocabSize): past the control and byte tokens. */
export function randomTokens(count, vocabSize, seed = 1) {
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13; state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5; state >>>= 0;
    return state;
  };
  return Array.from({ length: count }, () => 259 + (next() % (vocabSize - 259)));
}
