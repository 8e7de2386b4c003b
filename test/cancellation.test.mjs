// Cancellation through the engine API (dist/engine.js): an AbortSignal stops a long generate or
// evaluate promptly, generation reports what it produced, and the session stays usable.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { makeModel } from './fixtures/make-model.mjs';

const { Model } = createRequire(import.meta.url)('../dist/engine.js');

// The engine checks for cancellation between tokens and between prefill chunks.
const PROMPT_RESPONSE_MS = 1000;

const dir = mkdtempSync(path.join(os.tmpdir(), 'internlm-cancel-'));
let model;

before(async () => {
  // 32,000 tokens, so greedy decoding of the random weights loops without meeting a stop token.
  const made = await makeModel({ dir, preset: 'tiny', vocabSize: 32000, formats: ['gguf-f32'] });
  model = await Model.load(made.paths['gguf-f32']);
});
after(() => {
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** Aborts `controller` after `ms` and resolves with the time of the abort. */
function abortAfter(controller, ms) {
  return new Promise((resolve) => setTimeout(() => { controller.abort(); resolve(performance.now()); }, ms));
}

test('generate: abort returns promptly with finishReason "cancelled" and the text so far', async () => {
  const session = model.createSession({ contextLength: 30_100 });
  const controller = new AbortController();
  let streamed = '';
  const aborted = abortAfter(controller, 300);
  const result = await session.generate({
    prompt: [1, 300, 301], maxTokens: 30_000, temperature: 0, signal: controller.signal,
    onText: (text) => { streamed += text; },
  });
  const latency = performance.now() - (await aborted);
  assert.equal(result.finishReason, 'cancelled');
  assert.ok(latency < PROMPT_RESPONSE_MS, `took ${latency} ms after the abort`);
  assert.ok(result.tokens.length > 0 && result.tokens.length < 30_000);
  assert.equal(result.text, streamed);

  // The session is free again and keeps the prompt as a cached prefix.
  const again = await session.generate({ prompt: [1, 300, 301], maxTokens: 2, temperature: 0 });
  assert.equal(again.finishReason, 'length');
  assert.deepEqual(again.tokens, result.tokens.slice(0, 2));
  assert.ok(again.cachedTokens >= 2, `reused ${again.cachedTokens} cached tokens`);
  session.dispose();
});

test('evaluate: abort during a long prefill rejects promptly; the session stays usable', async () => {
  const length = 20_000;
  const session = model.createSession({ contextLength: length });
  const tokens = Array.from({ length }, (_, i) => 259 + ((i * 7919) % 31000));
  const controller = new AbortController();
  const aborted = abortAfter(controller, 300);
  await assert.rejects(session.evaluate(tokens, { signal: controller.signal }), /cancel/i);
  const latency = performance.now() - (await aborted);
  assert.ok(latency < PROMPT_RESPONSE_MS, `took ${latency} ms after the abort`);
  assert.ok(session.length < length);

  session.truncate(0);
  const result = await session.evaluate([1, 300], { topK: 3 });
  assert.equal(result.top.length, 2);
  session.dispose();
});

test('an already aborted signal cancels before any work', async () => {
  const session = model.createSession({ contextLength: 1000 });
  const result = await session.generate({ prompt: [1, 300], maxTokens: 500, temperature: 0, signal: AbortSignal.abort() });
  assert.equal(result.finishReason, 'cancelled');
  assert.equal(result.tokens.length, 0);
  session.dispose();
});
