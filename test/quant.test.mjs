// Quantized weights and `internlm quantize`, against llama.cpp (test/reference/llamacpp.mjs) as the
// independent reference:
//  - dequantization: a model whose attention and feed-forward outputs are zero, so each position's
//    logits are the F32 output matrix times the normalized token embedding, and whose token_embd
//    is the type under test. Both engines dequantize the same bits and nothing else is quantized,
//    so any difference from ggml's dequantization of one weight shows far above float rounding.
//  - full models: every file type our quantizer writes loads in llama.cpp, with its per-tensor mix,
//    and our logits match llama.cpp's on that file (both quantize activations the same way).
//  - the file itself: metadata and the llama.cpp type mix; bad inputs give clear errors.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ggufLayout } from './fixtures/gguf-layout.mjs';
import { makeModel } from './fixtures/make-model.mjs';
import { randomTokens, referenceLogprobs } from './reference/llamacpp.mjs';
import { runCli, runCliJson } from './support/cli.mjs';

const { quantizeModel, Model } = createRequire(import.meta.url)('../dist/engine.js');

// file type -> the type its token_embd (and most matrices) get; Q4_1/Q5_1 are llama.cpp's too.
const FILE_TYPES = {
  Q8_0: 'Q8_0', Q4_0: 'Q4_0', Q5_0: 'Q5_0', Q4_1: 'Q4_1', Q5_1: 'Q5_1',
  Q2_K: 'Q2_K', Q3_K_M: 'Q3_K', Q4_K_M: 'Q4_K', Q5_K_M: 'Q5_K', Q6_K: 'Q6_K',
};

// Dequantization: same bits, F32 arithmetic on both sides, so only float rounding differs
// (measured ~1e-6, as F32 files). One level of one weight off moves logprobs by ~1e-3 or more.
const DEQUANT_TOLERANCE = 2e-5;

// Full models. Both engines quantize activations to 8 bits with llama.cpp's rounding (Q8_0 / Q8_K),
// so positions agree to ~1e-6 until an activation lands within float rounding of a rounding
// boundary and rounds to the neighbouring level on one side (our own AVX2/AVX-512/generic kernels
// do the same among themselves). That moves one value by one step (1/127 of its block's largest),
// and the change cascades through later layers and, via the KV cache, later positions. Measured on
// this 8-layer model over 3 seeds x 10 types: max |Δlogprob| 7.1e-2 (Q3_K_M), median per file
// 7e-7 to 5e-2 (bench/RESULTS.md). The bound is twice the worst measurement; the exactness itself
// is checked by the dequantization tests above and by native/tools/kernel_check.
const MODEL_TOLERANCE = 0.15;

// Deviation per position between our top-20 and llama.cpp's full distributions.
function deltas(ours, reference) {
  assert.equal(ours.length, reference.length);
  return ours.map((row, p) => {
    let worst = 0;
    for (const [id, logprob] of row) worst = Math.max(worst, Math.abs(logprob - reference[p][id]));
    const best = reference[p].reduce((a, b) => Math.max(a, b), -Infinity);
    return Math.max(worst, Math.abs(row[0][1] - best));
  });
}

async function ours(file, tokens) {
  const result = await runCliJson(['eval', '--model', file, '--tokens', tokens.join(','), '--top', '20', '--threads', '1']);
  return result.top;
}

function tensorTypes(file) {
  const layout = ggufLayout(readFileSync(file));
  const names = { 0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 30: 'BF16' };
  return new Map(layout.tensors.map((t) => [t.name, names[t.type] ?? `type ${t.type}`]));
}

let dir;
let base;       // {paths, config} of a model with 256-wide rows (K-quant blocks)
let zeroedF32;  // the same model as F32 GGUF with attn_output and ffn_down zeroed
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'internlm-quant-'));
  base = await makeModel({
    dir: path.join(dir, 'src'), dim: 256, nHeads: 4, nKvHeads: 1, ffnDim: 512, nLayers: 8, vocabSize: 1000,
    formats: ['gguf-f32', 'hf-bf16', 'gguf-f16'],
  });
  zeroedF32 = path.join(dir, 'zeroed-f32.gguf');
  const buf = readFileSync(base.paths['gguf-f32']);
  const layout = ggufLayout(buf);
  for (const t of layout.tensors) {
    if (!/attn_output|ffn_down/.test(t.name)) continue;
    const start = layout.dataStart + t.offset;
    buf.fill(0, start, start + 4 * t.dims.reduce((a, b) => a * b, 1));
  }
  writeFileSync(zeroedF32, buf);
});
after(() => rmSync(dir, { recursive: true, force: true }));

// The SIMD kernel tables this CPU runs (generic, AVX2, AVX-512) against an exact double reference
// of ggml's dequantization, for every weight type: native/tools/kernel_check.
test('kernel_check: every kernel table matches the exact reference', () => {
  const tool = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'native', 'build', 'kernel_check');
  const r = spawnSync(tool, { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.error, undefined, `cannot run ${tool} (npm run build:native builds it)`);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /generic: ok/);
});

describe('dequantization matches llama.cpp (ggml) for every type', () => {
  for (const [fileType, type] of Object.entries(FILE_TYPES)) {
    test(type, async (t) => {
      const file = path.join(dir, `embd-${fileType}.gguf`);
      await quantizeModel(zeroedF32, file, fileType, { leaveOutputTensor: true });
      const types = tensorTypes(file);
      assert.equal(types.get('token_embd.weight'), type);
      assert.equal(types.get('output.weight'), 'F32');
      // Each position depends on its own token only: 48 embedding rows per type.
      const tokens = randomTokens(48, base.vocabSize, 11);
      const d = deltas(await ours(file, tokens), await referenceLogprobs(file, tokens));
      const worst = Math.max(...d);
      t.diagnostic(`${type}: max |Δlogprob| ${worst.toExponential(2)}`);
      assert.ok(worst <= DEQUANT_TOLERANCE, `${type}: max |Δlogprob| ${worst} at position ${d.indexOf(worst)}`);
    });
  }
});

describe('quantized models match llama.cpp', () => {
  for (const fileType of Object.keys(FILE_TYPES)) {
    test(fileType, async (t) => {
      const file = path.join(dir, `model-${fileType}.gguf`);
      await quantizeModel(base.paths['hf-bf16'], file, fileType);
      const tokens = randomTokens(24, base.vocabSize, 5);
      const d = deltas(await ours(file, tokens), await referenceLogprobs(file, tokens));
      const worst = Math.max(...d);
      t.diagnostic(`${fileType}: max |Δlogprob| ${worst.toExponential(2)}, median ${[...d].sort((a, b) => a - b)[d.length >> 1].toExponential(2)}`);
      assert.ok(worst <= MODEL_TOLERANCE, `${fileType}: max |Δlogprob| ${worst} at position ${d.indexOf(worst)}`);
    });
  }
});

describe('quantize', () => {
  test('the type mix of llama.cpp\'s Q4_K_M, Q3_K_M and Q2_K', async () => {
    const n = base.config.nLayers;
    // use_more_bits for 8 layers: the first and last eighth (0, 7) and every third between (3, 6).
    const more = new Set([0, 3, 6, 7]);
    const file = path.join(dir, 'mix-q4_k_m.gguf');
    await quantizeModel(base.paths['gguf-f32'], file, 'Q4_K_M');
    const types = tensorTypes(file);
    for (let l = 0; l < n; l++) {
      for (const name of ['attn_v', 'ffn_down']) {
        assert.equal(types.get(`blk.${l}.${name}.weight`), more.has(l) ? 'Q6_K' : 'Q4_K', `blk.${l}.${name}`);
      }
      for (const name of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up']) assert.equal(types.get(`blk.${l}.${name}.weight`), 'Q4_K');
      for (const name of ['attn_norm', 'ffn_norm']) assert.equal(types.get(`blk.${l}.${name}.weight`), 'F32');
    }
    assert.equal(types.get('output.weight'), 'Q6_K');
    assert.equal(types.get('token_embd.weight'), 'Q4_K');
    assert.equal(types.get('output_norm.weight'), 'F32');

    const q3 = path.join(dir, 'mix-q3_k_m.gguf');
    await quantizeModel(base.paths['gguf-f32'], q3, 'Q3_K_M');
    const t3 = tensorTypes(q3);
    for (let l = 0; l < n; l++) {
      assert.equal(t3.get(`blk.${l}.attn_v.weight`), l < 2 ? 'Q5_K' : 'Q4_K');
      assert.equal(t3.get(`blk.${l}.ffn_down.weight`), l < Math.floor(n / 16) ? 'Q5_K' : 'Q4_K');
      assert.equal(t3.get(`blk.${l}.attn_output.weight`), 'Q4_K');
      assert.equal(t3.get(`blk.${l}.attn_q.weight`), 'Q3_K');
    }
    const q2 = path.join(dir, 'mix-q2_k.gguf');
    await quantizeModel(base.paths['gguf-f32'], q2, 'Q2_K');
    const t2 = tensorTypes(q2);
    // n_gqa = 4 heads / 1 kv head = 4: attn_v gets Q4_K.
    assert.equal(t2.get('blk.0.attn_v.weight'), 'Q4_K');
    assert.equal(t2.get('blk.0.ffn_down.weight'), 'Q3_K');
    assert.equal(t2.get('blk.0.attn_output.weight'), 'Q3_K');
    assert.equal(t2.get('blk.0.ffn_up.weight'), 'Q2_K');
    assert.equal(t2.get('output.weight'), 'Q6_K');
  });

  test('rows that do not fill a K-quant block fall back as llama.cpp does', async () => {
    const tiny = await makeModel({ dir: path.join(dir, 'tiny'), formats: ['gguf-f32'] });  // dim 64
    const file = path.join(dir, 'tiny-q4_k_m.gguf');
    await quantizeModel(tiny.paths['gguf-f32'], file, 'Q4_K_M');
    const types = tensorTypes(file);
    assert.equal(types.get('blk.0.attn_q.weight'), 'Q5_0');   // Q4_K -> Q5_0
    assert.equal(types.get('blk.0.attn_v.weight'), 'Q5_0');   // 2 layers: only the last gets more bits
    assert.equal(types.get('blk.1.attn_v.weight'), 'Q8_0');   // Q6_K -> Q8_0
    assert.equal(types.get('output.weight'), 'Q8_0');         // output: rows not a multiple of 256
    const tokens = randomTokens(16, tiny.vocabSize, 3);
    const d = deltas(await ours(file, tokens), await referenceLogprobs(file, tokens));
    assert.ok(Math.max(...d) <= MODEL_TOLERANCE);
  });

  test('from HF and from GGUF: the same tensors, the converter\'s vocabulary, our dynamic NTK key', async () => {
    const fromHf = path.join(dir, 'meta-hf.gguf');
    const fromGguf = path.join(dir, 'meta-gguf.gguf');
    await quantizeModel(base.paths['hf-bf16'], fromHf, 'Q8_0');
    await quantizeModel(base.paths['gguf-f32'], fromGguf, 'Q8_0');
    const reference = ggufLayout(readFileSync(base.paths['gguf-f32']));
    const read = (file) => {
      const buf = readFileSync(file);
      return { buf, layout: ggufLayout(buf) };
    };
    const src = { buf: readFileSync(base.paths['gguf-f32']), layout: reference };
    for (const file of [fromHf, fromGguf]) {
      const out = read(file);
      for (const key of ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type']) {
        const a = out.layout.kv.get(key);
        const b = src.layout.kv.get(key);
        assert.equal(a.count, b.count, `${key} count`);
        assert.equal(a.elem, b.elem, `${key} element type`);
      }
      assert.deepEqual(tokenList(out), tokenList(src), 'tokens');
      assert.deepEqual(numberArray(out, 'tokenizer.ggml.scores', 'f32'), numberArray(src, 'tokenizer.ggml.scores', 'f32'), 'scores');
      assert.deepEqual(numberArray(out, 'tokenizer.ggml.token_type', 'i32'), numberArray(src, 'tokenizer.ggml.token_type', 'i32'), 'token types');
      for (const key of ['tokenizer.ggml.eos_token_id', 'tokenizer.ggml.bos_token_id', 'general.quantization_version',
        'internlm2.block_count', 'internlm2.embedding_length', 'internlm2.attention.head_count_kv']) {
        assert.equal(out.layout.kv.get(key)?.value, src.layout.kv.get(key)?.value, key);
      }
      assert.equal(out.layout.kv.get('general.file_type').value, 7);
      assert.equal(out.layout.kv.get('tokenizer.chat_template').value, src.layout.kv.get('tokenizer.chat_template').value);
      assert.equal(out.layout.kv.get('internlm2.rope.scaling.type'), undefined, 'no rope.scaling.type (llama.cpp aborts on "dynamic")');
    }
    // The HF config says dynamic x2: written under our key; the official-style GGUF source says nothing.
    const hf = read(fromHf);
    assert.equal(hf.buf.readFloatLE(hf.layout.kv.get('internlm2.rope.scaling.dynamic_factor').valueAt), 2);
    const gguf = read(fromGguf);
    assert.equal(gguf.layout.kv.get('internlm2.rope.scaling.dynamic_factor'), undefined);
    // The bf16 checkpoint and the f32 GGUF hold the same values, so the HF path (packed wqkv split
    // into Q, K, V with the Q/K row permutation) must give the GGUF path's tensors byte for byte.
    assert.deepEqual(hf.layout.tensors.map((t) => t.name), gguf.layout.tensors.map((t) => t.name));
    hf.layout.tensors.forEach((t, i) => {
      const next = hf.layout.tensors[i + 1]?.offset ?? hf.buf.length - hf.layout.dataStart;
      const bytes = (b, l, at, end) => b.subarray(l.dataStart + at, l.dataStart + end);
      assert.ok(bytes(hf.buf, hf.layout, t.offset, next).equals(bytes(gguf.buf, gguf.layout, gguf.layout.tensors[i].offset,
        gguf.layout.tensors[i + 1]?.offset ?? gguf.buf.length - gguf.layout.dataStart)), `${t.name} differs`);
    });
    const info = await runCliJson(['info', '--model', fromHf]);
    assert.equal(info.ropeScaling.type, 'dynamic');
    assert.equal(info.weightTypes.Q8_0, 7 * base.config.nLayers + 2);
  });

  test('bad input gives a clear error', async () => {
    const out = path.join(dir, 'bad.gguf');
    let r = await runCli(['quantize', '--in', base.paths['gguf-f32'], '--out', out, '--type', 'Q4_K']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--type must be one of Q8_0, Q4_0, .*Q4_K_M.*got 'Q4_K'/);
    await assert.rejects(quantizeModel(base.paths['gguf-f32'], out, 'Q7'), /unknown quantization type 'Q7' \(supported: Q8_0, Q4_0/);

    // A quantized source: refused, naming the tensor and what to use instead.
    const q8 = path.join(dir, 'model-Q8_0.gguf');
    if (!existsSync(q8)) await quantizeModel(base.paths['hf-bf16'], q8, 'Q8_0');
    r = await runCli(['quantize', '--in', q8, '--out', out, '--type', 'Q4_K_M']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /tensor .* is Q8_0; quantize needs F32, F16 or BF16 weights/);
    assert.equal(existsSync(out), false);
    assert.equal(existsSync(`${out}.partial`), false, 'no partial file is left behind');

    r = await runCli(['quantize', '--in', path.join(dir, 'missing.gguf'), '--out', out, '--type', 'Q8_0']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /model not found: .*missing\.gguf/);

    r = await runCli(['quantize', '--in', base.paths['gguf-f32'], '--out', path.join(dir, 'no-such-dir', 'x.gguf'), '--type', 'Q8_0']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot write .*x\.gguf: directory .*no-such-dir does not exist/);

    // Unwritable outputs fail before any work, naming the path and the system's reason.
    await assert.rejects(quantizeModel(base.paths['gguf-f32'], path.join(base.paths['gguf-f32'], 'x.gguf'), 'Q8_0'),
      /cannot write .*x\.gguf: Not a directory/);
    if (process.getuid?.() !== 0) {  // root writes anywhere
      const locked = path.join(dir, 'locked');
      mkdirSync(locked);
      chmodSync(locked, 0o500);
      try {
        await assert.rejects(quantizeModel(base.paths['gguf-f32'], path.join(locked, 'x.gguf'), 'Q8_0'), /cannot write .*x\.gguf: Permission denied/);
      } finally {
        chmodSync(locked, 0o700);
      }
    }
  });

  test('the CLI reports the file it wrote', async () => {
    const out = path.join(dir, 'cli-q6_k.gguf');
    const result = await runCliJson(['quantize', '--in', base.paths['gguf-f16'], '--out', out, '--type', 'q6_k']);
    assert.equal(result.type, 'Q6_K');
    assert.equal(result.path, out);
    assert.equal(result.tensors, 3 + 9 * base.config.nLayers);
    assert.equal(result.types.Q6_K, 2 + 7 * base.config.nLayers);
    const model = await Model.load(out);
    try {
      assert.equal(model.info.weightTypes.Q6_K, 2 + 7 * base.config.nLayers);
    } finally {
      model.dispose();
    }
  });
});

function tokenList({ buf, layout }) {
  const kv = layout.kv.get('tokenizer.ggml.tokens');
  const out = [];
  let p = kv.dataAt;
  for (let i = 0; i < kv.count; i++) {
    const n = Number(buf.readBigUInt64LE(p));
    out.push(buf.toString('utf8', p + 8, p + 8 + n));
    p += 8 + n;
  }
  return out;
}

function numberArray({ buf, layout }, key, kind) {
  const kv = layout.kv.get(key);
  return Array.from({ length: kv.count }, (_, i) => (kind === 'f32' ? buf.readFloatLE(kv.dataAt + 4 * i) : buf.readInt32LE(kv.dataAt + 4 * i)));
}
