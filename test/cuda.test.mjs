// The CUDA backend against the CPU backend on tiny generated models, one weight type at a time.
// Without a usable CUDA GPU every GPU test is skipped with "skipped: no GPU" (never a silent
// pass); the device-selection test runs everywhere.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { makeModel } from './fixtures/make-model.mjs';

const require = createRequire(import.meta.url);
const { Model } = require('../dist/engine.js');

const FORMATS = ['gguf-f32', 'gguf-f16', 'gguf-bf16', 'gguf-q8_0', 'hf-bf16'];
const NO_GPU = 'skipped: no GPU';
let dir, tiny, gpu = false, autoInfo;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ilm-cuda-'));
  // Fresh weights every run; context 64 so that 100 tokens switch on dynamic NTK.
  tiny = await makeModel({ dir: path.join(dir, 'tiny'), formats: FORMATS, seed: 1 + Math.floor(Math.random() * 1e6), contextLength: 64 });
  const probe = await Model.load(tiny.paths['gguf-f16'], { device: 'auto' });
  autoInfo = probe.info;
  gpu = autoInfo.device.startsWith('cuda');
  probe.dispose();
});
after(() => rmSync(dir, { recursive: true, force: true }));

const randomTokens = (n, vocab) => [1, ...Array.from({ length: n - 1 }, () => 3 + Math.floor(Math.random() * (vocab - 3)))];

// Max |Δlogprob| over the CPU's top-20 of every row; the GPU's top-40 must contain those ids.
function maxDelta(cpuTop, gpuTop) {
  let worst = 0;
  cpuTop.forEach((row, i) => {
    const other = new Map(gpuTop[i]);
    for (const [id, lp] of row) worst = Math.max(worst, other.has(id) ? Math.abs(lp - other.get(id)) : Infinity);
  });
  return worst;
}

test('device selection: "auto" says what it chose, and why when it is the CPU', async () => {
  assert.match(autoInfo.device, /^(cuda:\d+ \(.+\)|cpu \(.+\))$/);
  assert.ok(autoInfo.backends.includes('cpu'));
  const cpu = await Model.load(tiny.paths['gguf-f16'], { device: 'cpu' });
  assert.equal(cpu.info.device, 'cpu');
  cpu.dispose();
  await assert.rejects(Model.load(tiny.paths['gguf-f16'], { device: 'tpu' }), /device must be "auto", "cpu", "cuda" or "cuda:N"/);
  if (!gpu) {
    await assert.rejects(Model.load(tiny.paths['gguf-f16'], { device: 'cuda' }), /no usable CUDA device|no CUDA backend/);
  } else {
    assert.ok(autoInfo.backends.includes('cuda'));
    await assert.rejects(Model.load(tiny.paths['gguf-f16'], { device: 'cuda:99' }), /CUDA device 99 is not usable/);
  }
});

for (const format of FORMATS) {
  test(`${format}: GPU logits and greedy text match the CPU backend`, async (t) => {
    if (!gpu) return t.skip(NO_GPU);
    const cpu = await Model.load(tiny.paths[format], { device: 'cpu' });
    const cuda = await Model.load(tiny.paths[format], { device: 'cuda' });
    assert.match(cuda.info.device, /^cuda:\d+/);
    const tokens = randomTokens(100, cpu.info.vocabSize);
    // One prefill chunk (tensor cores, flash attention), then decode-sized steps (graph replay
    // for single tokens, matrix-vector kernels for up to 8).
    const pieces = [80, 1, 1, 5, 1, 8, 1, 1, 1, 1];
    const a = cpu.createSession({ contextLength: 256 });
    const b = cuda.createSession({ contextLength: 256 });
    let at = 0;
    for (const n of pieces) {
      const piece = tokens.slice(at, at + n);
      const [ra, rb] = [await a.evaluate(piece, { topK: 20 }), await b.evaluate(piece, { topK: 40 })];
      assert.equal(rb.ropeBase, ra.ropeBase);
      const d = maxDelta(ra.top, rb.top);
      assert.ok(d <= 1e-2, `${n} token(s) at ${at}: max |Δlogprob| ${d}`);
      at += n;
    }
    const gen = { prompt: tokens.slice(0, 20), maxTokens: 24, temperature: 0, stopTokens: [] };
    const [ga, gb] = [await cpu.createSession().generate(gen), await cuda.createSession().generate(gen)];
    assert.deepEqual(gb.tokens, ga.tokens);
    cpu.dispose();
    cuda.dispose();
  });
}

test('the GPU KV cache grows past its first allocation without losing positions', async (t) => {
  if (!gpu) return t.skip(NO_GPU);
  const cuda = await Model.load(tiny.paths['gguf-f16'], { device: 'cuda', ropeScaling: 'none' });
  const tokens = randomTokens(1300, cuda.info.vocabSize);
  const whole = await cuda.createSession({ contextLength: 2048 }).evaluate(tokens, { topK: 5 });
  const grown = cuda.createSession({ contextLength: 2048 });
  const parts = [];
  for (let at = 0; at < tokens.length; at += 400) parts.push(...(await grown.evaluate(tokens.slice(at, at + 400), { topK: 10 })).top);
  assert.ok(maxDelta(whole.top, parts) <= 1e-3);
  cuda.dispose();
});
