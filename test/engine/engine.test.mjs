// The engine through its JS API on tiny generated models: KV cache consistency, sessions and
// prefix reuse, sampling, stop handling, streaming, cancellation and disposal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { makeModel } from '../fixtures/make-model.mjs';

const require = createRequire(import.meta.url);
const { Model } = require('../../dist/engine.js');

let dir, tiny, slow;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ilm-engine-'));
  tiny = await makeModel({ dir: path.join(dir, 'tiny'), formats: ['gguf-f32'], contextLength: 128 });
  // Big enough that a long prefill takes seconds, so cancellation has something to stop.
  slow = await makeModel({ dir: path.join(dir, 'slow'), formats: ['gguf-f16'], dim: 512, nLayers: 4, nHeads: 8, nKvHeads: 2, ffnDim: 1536 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const ids = (n, seed = 1) => Array.from({ length: n }, (_, i) => 3 + ((i + seed) * 7919) % 900);

test('incremental evaluation through the KV cache equals one pass', async () => {
  const model = await Model.load(tiny.paths['gguf-f32'], { ropeScaling: 'none' });
  const tokens = [1, ...ids(47)];
  const whole = model.createSession();
  const one = await whole.evaluate(tokens, { topK: 5 });
  const parts = model.createSession();
  const a = await parts.evaluate(tokens.slice(0, 20), { topK: 5 });
  const b = await parts.evaluate(tokens.slice(20), { topK: 5 });
  const pieces = [...a.top, ...b.top];
  assert.equal(parts.length, tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    assert.deepEqual(pieces[i].map(([id]) => id), one.top[i].map(([id]) => id), `position ${i}`);
    for (let k = 0; k < 5; k++) assert.ok(Math.abs(pieces[i][k][1] - one.top[i][k][1]) < 1e-4);
  }
  // Log-probabilities: sorted, negative, and a distribution.
  for (const row of one.top) {
    for (let k = 1; k < row.length; k++) assert.ok(row[k][1] <= row[k - 1][1]);
    assert.ok(row.reduce((s, [, lp]) => s + Math.exp(lp), 0) <= 1 + 1e-6);
  }
  model.dispose();
});

test('dynamic NTK: a one-pass evaluation past the context length uses base\'(L)', async () => {
  const model = await Model.load(tiny.paths['gguf-f32']);
  assert.equal(model.info.ropeScaling.type, 'dynamic');
  const L = 300, M = 128, f = model.info.ropeScaling.factor, d = model.info.headDim;
  const session = model.createSession({ contextLength: 512 });
  const result = await session.evaluate(ids(L));
  const expected = 1e6 * Math.pow((f * L) / M - (f - 1), d / (d - 2));
  assert.ok(Math.abs(result.ropeBase - expected) / expected < 1e-6, `${result.ropeBase} vs ${expected}`);
  const short = model.createSession();
  assert.equal((await short.evaluate(ids(20))).ropeBase, 1e6);
  model.dispose();
});

test('greedy generation is deterministic and seeded sampling is reproducible', async () => {
  const model = await Model.load(tiny.paths['gguf-f32']);
  const prompt = [1, ...ids(10)];
  const run = async (opts) => (await model.createSession().generate({ prompt, maxTokens: 24, stopTokens: [], ...opts })).tokens;
  assert.deepEqual(await run({ temperature: 0 }), await run({ temperature: 0 }));
  const seeded = { temperature: 1.5, topK: 50, topP: 0.95, seed: 42 };
  const a = await run(seeded);
  assert.deepEqual(a, await run(seeded));
  assert.notDeepEqual(a, await run({ ...seeded, seed: 43 }));
  assert.equal(a.length, 24);
  model.dispose();
});

test('prefix reuse: a follow-up prompt prefills only its new tokens and matches a fresh session', async () => {
  const model = await Model.load(tiny.paths['gguf-f32']);
  const session = model.createSession();
  const first = [1, ...ids(30)];
  const r1 = await session.generate({ prompt: first, maxTokens: 5, temperature: 0, stopTokens: [] });
  assert.equal(r1.cachedTokens, 0);
  const follow = [...first, ...r1.tokens, ...ids(8, 5)];
  const r2 = await session.generate({ prompt: follow, maxTokens: 8, temperature: 0, stopTokens: [] });
  // The cache holds the first prompt and all generated tokens but the last (never evaluated).
  assert.equal(r2.cachedTokens, first.length + r1.tokens.length - 1);
  const fresh = await model.createSession().generate({ prompt: follow, maxTokens: 8, temperature: 0, stopTokens: [] });
  assert.deepEqual(r2.tokens, fresh.tokens);
  model.dispose();
});

test('stop strings cut the text and streaming delivers exactly the final text', async () => {
  const model = await Model.load(tiny.paths['gguf-f32']);
  const prompt = [1, ...ids(12)];
  const base = await model.createSession().generate({ prompt, maxTokens: 40, temperature: 0, stopTokens: [] });
  assert.ok(base.text.length > 10, 'the tiny model produces some text');
  const stop = base.text.slice(Math.floor(base.text.length / 2), Math.floor(base.text.length / 2) + 3);
  const streamed = [];
  const cut = await model.createSession().generate({
    prompt, maxTokens: 40, temperature: 0, stopTokens: [], stopStrings: [stop], onText: (t) => streamed.push(t),
  });
  assert.equal(cut.finishReason, 'stop');
  assert.equal(cut.text, base.text.slice(0, base.text.indexOf(stop)));
  assert.equal(streamed.join(''), cut.text);
  assert.equal(base.finishReason, 'length');
  model.dispose();
});

test('generation stops on a stop token', async () => {
  const model = await Model.load(tiny.paths['gguf-f32']);
  const prompt = [1, ...ids(12)];
  const base = await model.createSession().generate({ prompt, maxTokens: 20, temperature: 0, stopTokens: [] });
  const stopAt = base.tokens[6];
  const stopped = await model.createSession().generate({ prompt, maxTokens: 20, temperature: 0, stopTokens: [stopAt] });
  assert.equal(stopped.finishReason, 'stop');
  assert.deepEqual(stopped.tokens, base.tokens.slice(0, base.tokens.indexOf(stopAt)));
  model.dispose();
});

test('cancellation stops a long prefill within a chunk and a generation within a token', async () => {
  const model = await Model.load(slow.paths['gguf-f16']);
  const session = model.createSession({ contextLength: 8192 });
  // Measure one chunk first so the bound below adapts to this machine's speed.
  let t = performance.now();
  await session.evaluate(ids(256));
  const chunkMs = performance.now() - t;
  session.truncate(0);
  const controller = new AbortController();
  t = performance.now();
  const pending = session.evaluate(ids(8000), { signal: controller.signal });
  setTimeout(() => controller.abort(), chunkMs * 1.5);
  await assert.rejects(pending, /cancelled/);
  const elapsed = performance.now() - t;
  assert.ok(elapsed < chunkMs * 4 + 200, `cancelled after ${elapsed.toFixed(0)} ms (chunk ${chunkMs.toFixed(0)} ms)`);
  assert.ok(session.length < 8000 && session.length % 256 === 0, `kept ${session.length} whole chunks`);

  const gen = new AbortController();
  let pieces = 0;
  const generation = session.generate({
    prompt: [1, ...ids(16)], maxTokens: 100000, temperature: 0, stopTokens: [], signal: gen.signal,
    onText: () => { if (++pieces === 5) gen.abort(); },
  });
  const result = await generation;
  assert.equal(result.finishReason, 'cancelled');
  assert.ok(result.tokens.length >= 5 && result.tokens.length < 50, `${result.tokens.length} tokens`);
  // An already-aborted signal cancels before any token.
  const aborted = AbortSignal.abort();
  const none = await session.generate({ prompt: [1, ...ids(16)], maxTokens: 100, stopTokens: [], signal: aborted });
  assert.equal(none.finishReason, 'cancelled');
  model.dispose();
});

test('sessions: busy, disposed and full contexts give clear errors', async () => {
  const model = await Model.load(tiny.paths['gguf-f32']);
  const session = model.createSession({ contextLength: 32 });
  await assert.rejects(session.evaluate(ids(40)), /context full/);
  const running = session.evaluate(ids(20));
  await assert.rejects(session.evaluate(ids(2)), /busy/);
  await running;
  await assert.rejects(session.evaluate([5000000]), /out of range/);
  session.dispose();
  assert.throws(() => session.length, /disposed/);
  model.dispose();
  assert.throws(() => model.createSession(), /disposed/);
});
