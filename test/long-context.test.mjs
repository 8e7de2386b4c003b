// Long contexts on tiny generated models whose trained context is 256 tokens:
// - dynamic NTK stays exact far past it: at L = 8192 (32× the context) our last positions match
//   llama.cpp run with base'(L) (REFERENCE.md), and a decoded token after the prompt keeps that base;
// - a 16K-token prefill needs memory for the KV cache and a constant, not an L × L matrix.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeModel } from './fixtures/make-model.mjs';
import { randomTokens, referenceLogprobsAt } from './reference/llamacpp.mjs';

const ENGINE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'engine.js');
const { Model } = createRequire(import.meta.url)(ENGINE);

const CONTEXT = 256;
const FACTOR = 2;
const THETA = 1e6;
// Same math in F32 on both sides (parity.test.mjs); measured ~1e-6 here too.
const F32_TOLERANCE = 1e-4;
// A wrong base moves logprobs by 0.1–2 (REFERENCE.md).
const MISMATCH_FLOOR = 1e-2;

/** base'(L) of REFERENCE.md's dynamic NTK formula. */
const dynamicBase = (length, headDim) => THETA * ((FACTOR * length) / CONTEXT - (FACTOR - 1)) ** (headDim / (headDim - 2));

/** max over our top-20 ids (and our best against the reference's best) of |Δlogprob|. */
function maxDelta(row, reference) {
  let worst = Math.abs(row[0][1] - reference.reduce((a, b) => Math.max(a, b), -Infinity));
  for (const [id, logprob] of row) worst = Math.max(worst, Math.abs(logprob - reference[id]));
  return worst;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'internlm-long-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('dynamic NTK at 32× the trained context', () => {
  const L = 8192;
  let file;
  let headDim;
  // L prompt tokens and one more decoded after them.
  const tokens = [1, ...randomTokens(L, 1000, 11)];
  // Around the trained context, the middle, and the last positions of the prompt; L is the decoded one.
  const positions = [0, CONTEXT - 1, CONTEXT, L / 2, ...Array.from({ length: 8 }, (_, i) => L - 8 + i), L];

  before(async () => {
    // 2 layers, dim 64, 4 heads sharing 2 KV heads (head_dim 16), vocab 1000.
    const made = await makeModel({
      dir: path.join(dir, 'ntk'), preset: 'tiny', contextLength: CONTEXT, ropeTheta: THETA,
      ropeScaling: { type: 'dynamic', factor: FACTOR }, formats: ['gguf-f32'],
    });
    file = made.paths['gguf-f32'];
    headDim = made.config.dim / made.config.nHeads;
  });

  test(`L = ${L}: logits match llama.cpp at base'(L), including a decoded token`, async (t) => {
    const expectedBase = dynamicBase(L, headDim);
    const model = await Model.load(file, { threads: 2 });
    let ours;
    try {
      const session = model.createSession({ contextLength: L + 1 });
      const prompt = await session.evaluate(tokens.slice(0, L), { topK: 20 });
      // The engine keeps the base in float32, as llama.cpp does.
      assert.ok(Math.abs(prompt.ropeBase - expectedBase) <= expectedBase * 1e-6, `ropeBase ${prompt.ropeBase}, expected ${expectedBase}`);
      const decoded = await session.evaluate([tokens[L]], { topK: 20 });
      assert.equal(decoded.ropeBase, prompt.ropeBase, 'decoding keeps the prompt\'s base');
      session.dispose();
      ours = [...prompt.top, ...decoded.top];
    } finally {
      model.dispose();
    }
    // llama.cpp has no dynamic NTK: it runs the whole sequence at the fixed base'(L).
    const reference = await referenceLogprobsAt(file, tokens, positions, { ropeBase: expectedBase });
    const deltas = positions.map((p) => maxDelta(ours[p], reference.get(p)));
    t.diagnostic(`max |Δlogprob| vs llama.cpp at base'(${L}) = ${expectedBase.toExponential(4)}: `
      + positions.map((p, i) => `${p}: ${deltas[i].toExponential(1)}`).join(', '));
    deltas.forEach((d, i) => assert.ok(d <= F32_TOLERANCE, `position ${positions[i]}: max |Δlogprob| ${d} > ${F32_TOLERANCE}`));

    // The same model without scaling is far from that reference: the check above can tell.
    const none = await Model.load(file, { threads: 2, ropeScaling: 'none' });
    try {
      const session = none.createSession({ contextLength: L });
      const plain = await session.evaluate(tokens.slice(0, L), { topK: 20 });
      session.dispose();
      assert.equal(plain.ropeBase, THETA);
      const off = Math.max(...positions.filter((p) => p >= L - 8 && p < L).map((p) => maxDelta(plain.top[p], reference.get(p))));
      t.diagnostic(`without scaling, last 8 positions: max |Δlogprob| ${off.toExponential(2)}`);
      assert.ok(off > MISMATCH_FLOOR, `the plain base is only ${off} from base'(L): the test cannot see the scaling`);
    } finally {
      none.dispose();
    }
  });
});

// Runs in a child process so the measurement sees only the engine: the peak RSS (VmHWM, reset
// through /proc/self/clear_refs right before) during one prefill of L tokens, against RSS before it.
const MEMORY_PROBE = `
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const { Model } = createRequire(import.meta.url)(process.env.ENGINE);
const [file, L] = [process.env.MODEL, Number(process.env.LENGTH)];
const status = () => Object.fromEntries(readFileSync('/proc/self/status', 'utf8').split('\\n')
  .filter((l) => /^Vm(RSS|HWM):/.test(l)).map((l) => [l.split(':')[0], Number(l.split(/\\s+/)[1]) * 1024]));
const model = await Model.load(file, { threads: 2 });
const session = model.createSession({ contextLength: L, kvType: 'f32' });
const tokens = Array.from({ length: L }, (_, i) => 3 + ((i * 7919) % 900));
// Warm up the thread pool, the scratch and the JS side, then start from an empty cache.
await session.evaluate(tokens.slice(0, 300));
session.truncate(0);
let reset = true;
try { writeFileSync('/proc/self/clear_refs', '5'); } catch { reset = false; }
const before = status();
let sampled = before.VmRSS;
const timer = setInterval(() => { sampled = Math.max(sampled, process.memoryUsage.rss()); }, 2);
const started = performance.now();
const result = await session.evaluate(tokens, { topK: 0 });
clearInterval(timer);
const after = status();
process.stdout.write(JSON.stringify({ reset, rssBefore: before.VmRSS, peak: reset ? after.VmHWM : sampled, sampled,
  ms: performance.now() - started, length: session.length, ropeBase: result.ropeBase }));
`;

describe('memory of a long prefill', () => {
  test('a 16K-token prefill grows RSS by about the KV cache, with no L × L buffer', async (t) => {
    const L = 16384;
    // 1 layer, 2 heads sharing 1 KV head (head_dim 16): the cheapest shape with GQA.
    const made = await makeModel({
      dir: path.join(dir, 'memory'), preset: 'tiny', dim: 32, nHeads: 2, nKvHeads: 1, nLayers: 1, ffnDim: 64,
      contextLength: CONTEXT, formats: ['gguf-f32'],
    });
    const c = made.config;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', MEMORY_PROBE], {
      encoding: 'utf8', timeout: 120_000,
      env: { ...process.env, ENGINE, MODEL: made.paths['gguf-f32'], LENGTH: String(L) },
    });
    assert.equal(r.status, 0, r.stderr);
    const m = JSON.parse(r.stdout);
    assert.equal(m.length, L);
    const kvBytes = 2 * c.nLayers * c.nKvHeads * (c.dim / c.nHeads) * 4 * L;
    const growth = m.peak - m.rssBefore;
    const MiB = 2 ** 20;
    t.diagnostic(`prefill ${L} tokens in ${(m.ms / 1000).toFixed(1)} s: peak RSS +${(growth / MiB).toFixed(1)} MiB`
      + ` (KV cache ${(kvBytes / MiB).toFixed(1)} MiB; ${m.reset ? 'VmHWM reset before the prefill' : 'RSS sampled every 2 ms'})`);
    // The cache grows by 1.5× steps, old and new buffers both live while copying: up to ~2.5× the
    // final KV bytes, plus a few MiB for the JS side. One L × L f32 score matrix would be 1 GiB; even
    // one 256-row block of scores per head (L × 256 × heads) would be 32 MiB.
    const bound = 2.5 * kvBytes + 8 * MiB;
    assert.ok(growth <= bound, `peak RSS grew ${(growth / MiB).toFixed(1)} MiB during the prefill, more than ${(bound / MiB).toFixed(1)} MiB`);
  });
});
