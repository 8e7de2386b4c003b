// The planned RoPE base (ropeLength, docs/rope-policy.md) on a tiny model trained for 128 positions
// with dynamic NTK: a prefix evaluated for a planned length keeps its base while questions of other
// lengths extend it, gives the same logits as one pass under that base, and without the plan a
// question of another length cannot reuse the prefix. The server's bucket rule is checked too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { makeModel } from '../fixtures/make-model.mjs';
import { importTs } from '../server/support.mjs';

const require = createRequire(import.meta.url);
const { Model } = require('../../dist/engine.js');

let dir, model, prefill;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ilm-rope-plan-'));
  const made = await makeModel({ dir, formats: ['gguf-f32'], contextLength: 128 });
  model = await Model.load(made.paths['gguf-f32'], { threads: 1 });
  prefill = await importTs('server/prefill.ts');
});
after(() => {
  model?.dispose?.();
  rmSync(dir, { recursive: true, force: true });
});

const ids = (n, seed) => Array.from({ length: n }, (_, i) => 3 + ((i + seed) * 7919) % 900);
const prefix = ids(300, 1);
const question = (n) => ids(n, 50 + n);

function baseFor(length) {
  const { ropeFreqBase, contextLength, headDim, ropeScaling } = model.info;
  assert.equal(ropeScaling.type, 'dynamic');
  if (length <= contextLength) return ropeFreqBase;
  const f = ropeScaling.factor;
  return ropeFreqBase * Math.pow((f * length) / contextLength - (f - 1), headDim / (headDim - 2));
}
const close = (a, b) => Math.abs(a - b) <= 1e-6 * Math.abs(b);

test('evaluate with ropeLength uses base\'(ropeLength) from the first position, and appends keep it', async () => {
  const planned = model.createSession({ contextLength: 1024 });
  const first = await planned.evaluate(prefix, { ropeLength: 724 });
  assert.ok(close(first.ropeBase, baseFor(724)), `${first.ropeBase} vs ${baseFor(724)}`);
  assert.ok(!close(first.ropeBase, baseFor(300)), 'the plan changes the base');
  const q = question(20);
  const continued = await planned.evaluate(q, { topK: 5 });
  assert.ok(close(continued.ropeBase, baseFor(724)));

  // One pass over the same 320 tokens under the same planned base gives the same logits.
  const whole = model.createSession({ contextLength: 1024 });
  const once = await whole.evaluate([...prefix, ...q], { topK: 5, ropeLength: 724 });
  for (let i = 0; i < q.length; i++) {
    const a = continued.top[i], b = once.top[prefix.length + i];
    assert.deepEqual(a.map(([id]) => id), b.map(([id]) => id));
    for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j][1] - b[j][1]) < 1e-4, `position ${i}: ${a[j][1]} vs ${b[j][1]}`);
  }
  planned.dispose();
  whole.dispose();
});

test('generate: with a planned length, questions of other lengths reuse the prefix; without it they cannot', async () => {
  const planned = model.createSession({ contextLength: 1024 });
  const plain = model.createSession({ contextLength: 1024 });
  const run = (session, q, ropeLength) => session.generate({ prompt: [...prefix, ...q], maxTokens: 4, temperature: 0, stopTokens: [], ropeLength });
  await run(planned, question(10), 724);
  await run(plain, question(10), 0);
  const reused = await run(planned, question(37), 724);
  const cold = await run(plain, question(37), 0);
  assert.equal(reused.cachedTokens, prefix.length, 'the planned base stays valid for the longer question');
  assert.equal(cold.cachedTokens, 0, 'base\'(347) differs from base\'(310): the prefix is recomputed');

  // The reused cache answers exactly like a fresh session under the same planned base.
  const fresh = model.createSession({ contextLength: 1024 });
  const reference = await run(fresh, question(37), 724);
  assert.deepEqual(reused.tokens, reference.tokens);
  for (const s of [planned, plain, fresh]) s.dispose();
});

test('the server plans half-octave buckets of the trained context, only past it, capped by the session', () => {
  const info = model.info;
  const M = info.contextLength;
  assert.equal(prefill.plannedRopeLength(info, M, 1000, 10_000), 0, 'within the trained context: the plain base');
  assert.equal(prefill.plannedRopeLength(info, M + 1, 10, 10_000), Math.ceil(M * Math.SQRT2));
  assert.equal(prefill.plannedRopeLength(info, 300, 24, 10_000), Math.ceil(M * 2 ** 1.5));
  assert.equal(prefill.plannedRopeLength(info, 300, 300, 10_000), Math.ceil(M * 2 ** 2.5));
  assert.equal(prefill.plannedRopeLength(info, 300, 24, 340), 340, 'capped by the session context');
  assert.equal(prefill.plannedRopeLength(info, 300, 200, 400), 500, 'never below prompt + answer');
  // Every question length in a bucket needs the same base.
  const bases = new Set([305, 320, 335].map((n) => prefill.neededRopeBase(info, n, 24, 10_000)));
  assert.equal(bases.size, 1);
  assert.equal(prefill.plannedRopeLength({ ...info, ropeScaling: { type: 'none', factor: 1 } }, 300, 24, 10_000), 0);
});
