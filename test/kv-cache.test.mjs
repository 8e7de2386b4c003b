// KV cache types (f32, f16, q8, q4) on tiny generated models: accuracy against the f32 cache,
// incremental decode against one pass, the CLI flags, `internlm plan` and the too-long-context error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { makeModel } from './fixtures/make-model.mjs';
import { runCli, runCliJson } from './support/cli.mjs';

const require = createRequire(import.meta.url);
const { Model } = require('../dist/engine.js');

// Bounds on max |Δ log-probability| over the f32 cache's top-20 over 300 positions, 2-3x the
// worst measured on these models (bench/RESULTS.md, 2026-11-28).
const BOUNDS = { f16: 2e-3, q8: 0.03, q4: 0.6 };
const POSITIONS = 300;

let dir, models;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ilm-kv-'));
  // head_dim 16 and 32 run the AVX2 loops whole; 12 leaves a scalar tail.
  const shapes = { hd16: {}, hd32: { dim: 128, nHeads: 4, nKvHeads: 2 }, hd12: { dim: 48, nHeads: 4, nKvHeads: 1 } };
  models = {};
  for (const [name, shape] of Object.entries(shapes)) {
    models[name] = (await makeModel({ dir: path.join(dir, name), formats: ['gguf-f32'], ropeScaling: null, ...shape })).paths['gguf-f32'];
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

const ids = (n, seed = 1) => Array.from({ length: n }, (_, i) => 3 + ((i + seed) * 7919) % 900);

async function evaluate(model, kvType, tokens, topK) {
  const session = model.createSession({ contextLength: tokens.length, kvType });
  try {
    return (await session.evaluate(tokens, { topK })).top;
  } finally {
    session.dispose();
  }
}

// max over positions and the reference's top-20 ids of |logprob_type - logprob_f32|.
function maxDelta(reference, other) {
  let worst = 0;
  for (let i = 0; i < reference.length; i++) {
    const lp = new Map(other[i]);
    for (const [id, ref] of reference[i]) worst = Math.max(worst, Math.abs(lp.get(id) - ref));
  }
  return worst;
}

test('quantized KV caches stay within their bounds of the f32 cache', async () => {
  const measured = {};
  for (const [name, file] of Object.entries(models)) {
    const model = await Model.load(file);
    const tokens = [1, ...ids(POSITIONS - 1)];
    const reference = await evaluate(model, 'f32', tokens, 20);
    for (const kvType of ['f16', 'q8', 'q4']) {
      const delta = maxDelta(reference, await evaluate(model, kvType, tokens, model.info.vocabSize));
      measured[`${name} ${kvType}`] = delta.toExponential(2);
      assert.ok(delta < BOUNDS[kvType], `${name} ${kvType}: max |Δlogprob| ${delta} ≥ ${BOUNDS[kvType]}`);
      assert.ok(kvType === 'f16' || delta > 0, `${kvType} should differ from f32 at all`);
    }
    model.dispose();
  }
  console.log('max |Δlogprob| over top-20 vs f32:', measured);
});

test('incremental decode with a quantized cache equals one pass with the same cache', async () => {
  const model = await Model.load(models.hd32);
  const tokens = [1, ...ids(279, 5)];
  for (const kvType of ['f16', 'q8', 'q4']) {
    const one = await evaluate(model, kvType, tokens, 5);
    const session = model.createSession({ contextLength: tokens.length, kvType });
    const pieces = [...(await session.evaluate(tokens.slice(0, 200), { topK: 5 })).top];
    for (let i = 200; i < tokens.length; i++) pieces.push(...(await session.evaluate([tokens[i]], { topK: 5 })).top);
    session.dispose();
    let worst = 0;
    for (let i = 0; i < tokens.length; i++) {
      assert.deepEqual(pieces[i].map(([id]) => id), one[i].map(([id]) => id), `${kvType} position ${i}`);
      for (let k = 0; k < 5; k++) worst = Math.max(worst, Math.abs(pieces[i][k][1] - one[i][k][1]));
    }
    assert.ok(worst < 1e-4, `${kvType}: incremental vs one pass ${worst}`);
  }
  model.dispose();
});

test('a KV cache grows with headroom, but never past its session\'s context', async () => {
  const model = await Model.load(models.hd16);
  const tokens = Array.from({ length: 600 }, (_, i) => 3 + ((i * 37) % 200));
  // The memory plan counts each session's context once: a 1.5x growth step past it would be
  // memory planned for nobody (on a GPU, a million-token workspace cache starved the others).
  const capped = model.createSession({ contextLength: 700 });
  assert.equal(capped.cacheCapacity, 512);  // sessions start small and grow on demand
  await capped.evaluate(tokens);
  assert.equal(capped.cacheCapacity, 700);
  const roomy = model.createSession({ contextLength: 4096 });
  await roomy.evaluate(tokens);
  assert.equal(roomy.cacheCapacity, 768);  // 1.5x: fewer regrowths, each of which copies the cache
  capped.dispose();
  roomy.dispose();
  model.dispose();
});

test('settled() resolves once a disposed session\'s running call has ended (its cache is freed then)', async () => {
  const model = await Model.load(models.hd16);
  const session = model.createSession({ contextLength: 4096 });
  const running = session.evaluate(Array.from({ length: 3000 }, (_, i) => 3 + ((i * 11) % 200)));
  let ended = false;
  running.then(() => (ended = true), () => (ended = true));
  session.dispose();  // cancels at the next chunk boundary
  await session.settled();
  assert.ok(ended, 'settled() resolved while the evaluate call was still running');
  model.dispose();
});

test('an unknown KV type is refused', async () => {
  const model = await Model.load(models.hd16);
  assert.throws(() => model.createSession({ kvType: 'q3' }), /unknown KV cache type 'q3'/);
  model.dispose();
});

test('plan: JSON shape and bytes per token from the model shape', async () => {
  const plan = await runCliJson(['plan', '--model', models.hd32]);
  assert.deepEqual(Object.keys(plan).sort(), ['device', 'kvBudgetBytes', 'kvTypes', 'memoryBytes', 'weightsBytes', 'weightsInRam', 'workspaceBytes']);
  assert.equal(plan.weightsInRam, true, 'the CPU reads small models into RAM');
  // Weights in RAM are already out of MemAvailable: only the workspace is taken off.
  assert.equal(plan.kvBudgetBytes, plan.memoryBytes - plan.workspaceBytes);
  assert.equal(plan.device, 'cpu');
  // hd32 model: 2 layers (tiny preset), 2 KV heads, head_dim 32.
  const layers = 2, kvHeads = 2, hd = 32;
  const expected = {
    f32: 2 * layers * kvHeads * hd * 4,
    f16: 2 * layers * kvHeads * hd * 2,
    q8: 2 * layers * kvHeads * (hd + 8),      // codes + f32 scale and zero per row
    q4: 2 * layers * kvHeads * (hd / 2 + 8),
  };
  for (const [type, bytes] of Object.entries(expected)) {
    assert.equal(plan.kvTypes[type].bytesPerToken, bytes, type);
    assert.equal(plan.kvTypes[type].maxContext, Math.floor(plan.kvBudgetBytes / bytes), type);
  }
  assert.ok(plan.weightsBytes > 0 && plan.workspaceBytes > 0 && plan.memoryBytes > plan.weightsBytes);
  const mapped = await runCliJson(['plan', '--model', models.hd32, '--weights', 'mapped']);
  assert.equal(mapped.weightsInRam, false);
  assert.equal(mapped.kvBudgetBytes, mapped.memoryBytes - mapped.weightsBytes - mapped.workspaceBytes, 'mapped weights are page cache: taken off');
  const text = await runCli(['plan', '--model', models.hd32]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /q4\s+\d+\s+[\d,]+/);
});

test('--kv-type and --context through the CLI', async () => {
  const args = ['eval', '--model', models.hd16, '--tokens', '1,5,9,13,17,21', '--top', '3'];
  const f32 = await runCliJson(args);
  const q8 = await runCliJson([...args, '--kv-type', 'q8', '--context', '64']);
  assert.equal(q8.positions?.length ?? q8.top?.length, f32.positions?.length ?? f32.top?.length);
  assert.notDeepEqual(q8, f32, 'a q8 cache changes the numbers slightly');
  const bad = await runCli([...args, '--kv-type', 'q3']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--kv-type must be one of f32, f16, q8, q4/);
  const short = await runCli([...args, '--context', '3']);
  assert.notEqual(short.code, 0);
  assert.match(short.stderr, /context/);
});

test('a context that cannot fit in RAM fails up front, naming the numbers', async () => {
  const { code, stderr } = await runCli(['eval', '--model', models.hd32, '--tokens', '1,2,3', '--kv-type', 'q8', '--context', '2000000000']);
  assert.equal(code, 1);
  assert.match(stderr, /a 2000M-token context needs [\d.]+ GiB of KV cache in q8; this machine has [\d.]+ (GiB|MiB) free/);
  assert.match(stderr, /use (q4 or )?≤ [\d.KM]+ tokens/);
});
