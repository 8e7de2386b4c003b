// Model files: the GGUF and Hugging Face forms of the same generated weights load with the same
// hyperparameters, tokenizer and outputs, the generated GGUF files are what llama.cpp expects, and
// every kind of broken input gives a JS exception whose message names the cause.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { ALL_FORMATS, makeModel } from './fixtures/make-model.mjs';
import { ggufLayout } from './fixtures/gguf-layout.mjs';

const require = createRequire(import.meta.url);
const { Model, loadTokenizer } = require('../dist/engine.js');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ilm-model-files-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let counter = 0;
const scratch = (name) => path.join(tmp, `${counter++}-${name}`);

async function info(modelPath, options) {
  const model = await Model.load(modelPath, options);
  try {
    return model.info;
  } finally {
    model.dispose();
  }
}

async function rejects(modelPath, pattern, options) {
  await assert.rejects(Model.load(modelPath, options), (err) => {
    assert.ok(err instanceof Error, 'a JS Error');
    assert.match(err.message, pattern);
    return true;
  });
}

// ------------------------------------------------------------------ editing helpers

function patch(file, name, edit) {
  const out = scratch(name);
  const buf = Buffer.from(readFileSync(file));
  edit(buf, ggufLayout(buf));
  writeFileSync(out, buf);
  return out;
}

function readSafetensors(file) {
  const buf = readFileSync(file);
  const len = Number(buf.readBigUInt64LE(0));
  return { header: JSON.parse(buf.toString('utf8', 8, 8 + len)), data: buf.subarray(8 + len) };
}

function writeSafetensors(file, header, data) {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, data]));
}

// A copy of an HF directory with some files replaced.
function hfCopy(dir, name, edit) {
  const out = scratch(name);
  mkdirSync(out);
  for (const f of ['config.json', 'tokenizer.model', 'tokenizer_config.json', 'model.safetensors', 'model.safetensors.index.json',
    'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
    try {
      copyFileSync(path.join(dir, f), path.join(out, f));
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
  }
  edit(out);
  return out;
}

// ------------------------------------------------------------------ fixtures

let tiny; // all formats, synthetic vocab
let sharded; // hf-f32 in two shards
before(async () => {
  tiny = await makeModel({ dir: path.join(tmp, 'tiny'), formats: ALL_FORMATS, seed: 11 });
  sharded = await makeModel({ dir: path.join(tmp, 'sharded'), formats: ['hf-f32'], seed: 11, hfShards: 2 });
});

const SHAPE_KEYS = ['vocabSize', 'contextLength', 'embeddingLength', 'blockCount', 'headCount', 'headCountKv', 'headDim',
  'feedForwardLength', 'rmsNormEps', 'ropeFreqBase', 'ropeScaling', 'parameterCount', 'bosId', 'stopTokens', 'architecture'];

describe('the same weights in every form', () => {
  test('GGUF and HF forms report the same hyperparameters', async () => {
    const infos = {};
    for (const format of ALL_FORMATS) infos[format] = await info(tiny.paths[format]);
    infos['hf-sharded'] = await info(sharded.paths['hf-f32']);
    const c = tiny.config;
    const expected = {
      vocabSize: c.vocabSize, contextLength: c.contextLength, embeddingLength: c.dim, blockCount: c.nLayers,
      headCount: c.nHeads, headCountKv: c.nKvHeads, headDim: c.dim / c.nHeads, feedForwardLength: c.ffnDim,
      rmsNormEps: Math.fround(c.normEps), ropeFreqBase: c.ropeTheta, ropeScaling: { type: 'dynamic', factor: 2 },
      bosId: 1, stopTokens: [2, tiny.imEndId], architecture: 'internlm2',
    };
    for (const [format, i] of Object.entries(infos)) {
      for (const key of SHAPE_KEYS) {
        if (key === 'parameterCount') continue;
        assert.deepEqual(i[key], expected[key], `${format}: ${key}`);
      }
      assert.equal(i.parameterCount, infos['hf-f32'].parameterCount, `${format}: parameterCount`);
      assert.equal(i.format, format.startsWith('gguf') ? 'gguf' : 'hf');
      assert.equal(i.ropeLayout, format.startsWith('gguf') ? 'pairwise' : 'rotate-half');
    }
    // llama.cpp's converter makes <|im_end|> the chat model's eos; HF keeps </s>.
    assert.equal(infos['gguf-f32'].eosId, tiny.imEndId);
    assert.equal(infos['hf-f32'].eosId, 2);
    const nMatrices = 2 + 7 * c.nLayers;
    assert.deepEqual(infos['gguf-f32'].weightTypes, { F32: nMatrices });
    assert.deepEqual(infos['gguf-f16'].weightTypes, { F16: nMatrices });
    assert.deepEqual(infos['gguf-bf16'].weightTypes, { BF16: nMatrices });
    assert.deepEqual(infos['gguf-q8_0'].weightTypes, { Q8_0: nMatrices });
    assert.deepEqual(infos['hf-bf16'].weightTypes, { BF16: 2 + 5 * c.nLayers }); // packed wqkv
    assert.deepEqual(infos['hf-f16'].weightTypes, { F16: 2 + 5 * c.nLayers });
    assert.equal(infos['gguf-f32'].name, 'internlm2-test-64x2');
    assert.equal(infos['hf-f32'].name, 'hf-f32');
  });

  test('GGUF (pairwise RoPE, split Q/K/V) and HF (rotate-half, packed wqkv) compute the same distribution', async () => {
    const tokens = [1, 300, 301, 400, 500, 617, 700, 800];
    const tops = {};
    for (const format of ['gguf-f32', 'hf-f32', 'gguf-bf16', 'hf-bf16']) {
      const model = await Model.load(tiny.paths[format]);
      const session = model.createSession();
      tops[format] = (await session.evaluate(tokens, { topK: 8 })).top;
      session.dispose();
      model.dispose();
    }
    let maxDiff = 0;
    for (const other of ['hf-f32', 'gguf-bf16', 'hf-bf16']) {
      tops[other].forEach((row, i) => row.forEach(([id, lp], k) => {
        assert.equal(id, tops['gguf-f32'][i][k][0], `${other} position ${i} rank ${k}`);
        maxDiff = Math.max(maxDiff, Math.abs(lp - tops['gguf-f32'][i][k][1]));
      }));
    }
    assert.ok(maxDiff < 1e-4, `max |Δlogprob| ${maxDiff}`);
  });

  test('a GGUF with a fused attn_qkv tensor loads like separate Q/K/V', async () => {
    // Rebuild the F32 file with blk.N.attn_q/k/v concatenated into attn_qkv (llama.cpp's fused
    // layout: all Q rows, all K rows, all V rows), by rewriting the tensor infos.
    const fused = await makeModel({ dir: scratch('fused'), formats: ['gguf-f32'], seed: 11, fuseQkv: true });
    const a = await info(tiny.paths['gguf-f32']);
    const b = await info(fused.paths['gguf-f32']);
    assert.equal(b.parameterCount, a.parameterCount);
    const tokens = [1, 320, 330, 340];
    const run = async (p) => {
      const model = await Model.load(p);
      const s = model.createSession();
      const r = (await s.evaluate(tokens, { topK: 4 })).top;
      s.dispose();
      model.dispose();
      return r;
    };
    assert.deepEqual(await run(fused.paths['gguf-f32']), await run(tiny.paths['gguf-f32']));
  });

  test('loading reports progress up to 1', async () => {
    for (const p of [tiny.paths['gguf-f32'], sharded.paths['hf-f32']]) {
      const seen = [];
      (await Model.load(p, { onProgress: (f) => seen.push(f) })).dispose();
      assert.ok(seen.length > 3, `${p}: ${seen}`);
      assert.deepEqual([...seen].sort((a, b) => a - b), seen, 'non-decreasing');
      assert.equal(seen.at(-1), 1);
    }
  });

  test('tokenizers of the GGUF, the HF directory and the bare tokenizer.model agree', () => {
    const text = 'Hello world, the<s> cat\x00 sat <|im_start|>user\n';
    const g = loadTokenizer(tiny.paths['gguf-q8_0']);
    const h = loadTokenizer(tiny.paths['hf-bf16']);
    const sp = loadTokenizer(path.join(tiny.paths['hf-bf16'], 'tokenizer.model'));
    assert.equal(g.vocabSize, tiny.vocabSize);
    assert.equal(h.vocabSize, tiny.vocabSize);
    assert.equal(sp.vocabSize, tiny.vocabSize);
    assert.deepEqual(g.encode(text), h.encode(text));
    assert.deepEqual(g.encode(text, { special: true }), h.encode(text, { special: true }));
    assert.ok(g.encode('<|im_end|>', { special: true }).includes(tiny.imEndId));
    assert.equal(g.decode(g.encode(text)), text);
  });
});

describe('the real InternLM2 vocabulary', () => {
  let real;
  before(async () => {
    real = await makeModel({ dir: path.join(tmp, 'real'), formats: ['gguf-q8_0', 'hf-bf16'], vocab: 'internlm2', seed: 3 });
  });

  test('GGUF and HF forms expose 92544 tokens, chat stop tokens and the same ids', async () => {
    const g = await info(real.paths['gguf-q8_0']);
    const h = await info(real.paths['hf-bf16']);
    for (const i of [g, h]) {
      assert.equal(i.vocabSize, 92544);
      assert.deepEqual(i.stopTokens, [2, 92542]);
    }
    assert.equal(g.eosId, 92542);
    const tg = loadTokenizer(real.paths['gguf-q8_0']);
    const th = loadTokenizer(real.paths['hf-bf16']);
    // Piece 354 is "\x00", stored as "🐉" in GGUF files.
    for (const text of ['def main():\n    print("hi")\n', 'a\x00b', '🐉 dragons', '<|im_start|>user\nhi<|im_end|>']) {
      assert.deepEqual(tg.encode(text), th.encode(text), JSON.stringify(text));
      assert.deepEqual(tg.encode(text, { special: true }), th.encode(text, { special: true }), JSON.stringify(text));
    }
    assert.ok(tg.encode('a\x00b').includes(354));
    assert.deepEqual(tg.encode('<|im_end|>', { special: true }), [92542]);
  });
});

describe('generated GGUF files in llama.cpp (node-llama-cpp)', () => {
  // llama.cpp aborts the process on rope.scaling.type "dynamic": such files are not loaded here.
  test('every GGUF form, our RoPE key and the real vocabulary load with the same vocabulary', async () => {
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
    const ours = await makeModel({ dir: scratch('ours'), formats: ['gguf-f16'], ropeScalingKey: 'ours', ropeScaling: { type: 'dynamic', factor: 2.5 } });
    const real = await makeModel({ dir: scratch('real-llama'), formats: ['gguf-q8_0'], vocab: 'internlm2' });
    const files = [
      ...ALL_FORMATS.filter((f) => f.startsWith('gguf')).map((f) => [tiny.paths[f], tiny]),
      [ours.paths['gguf-f16'], ours],
      [real.paths['gguf-q8_0'], real],
    ];
    for (const [file, made] of files) {
      const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
      try {
        assert.equal(model.fileInfo.metadata.tokenizer.ggml.tokens.length, made.vocabSize, file);
        assert.equal(model.tokens.eos, made.imEndId, file);
        assert.deepEqual(model.tokenize('<|im_end|>', true), [made.imEndId], file);
      } finally {
        await model.dispose();
      }
    }
  });
});

describe('RoPE scaling', () => {
  const variants = [
    ['official GGUF without keys: dynamic 2.0', { ropeScalingKey: 'none' }, 'gguf-f32', { type: 'dynamic', factor: 2 }],
    ['official GGUF of a 262144-token model: dynamic 2.5', { ropeScalingKey: 'none', contextLength: 262144 }, 'gguf-f32', { type: 'dynamic', factor: 2.5 }],
    ['our key', { ropeScalingKey: 'ours', ropeScaling: { type: 'dynamic', factor: 3 } }, 'gguf-f32', { type: 'dynamic', factor: 3 }],
    ['our key set to 0: none', { ropeScalingKey: 'ours', ropeScaling: null }, 'gguf-f32', { type: 'none', factor: 1 }],
    ['llama.cpp keys, dynamic', { ropeScalingKey: 'llama', ropeScaling: { type: 'dynamic', factor: 2.5 } }, 'gguf-f32', { type: 'dynamic', factor: 2.5 }],
    ['llama.cpp keys, linear 1 counts as absent', { ropeScalingKey: 'llama', ropeScaling: { type: 'linear', factor: 1 } }, 'gguf-f32', { type: 'dynamic', factor: 2 }],
    ['HF dynamic', { ropeScaling: { type: 'dynamic', factor: 2.5 } }, 'hf-f32', { type: 'dynamic', factor: 2.5 }],
    ['HF rope_type spelling', { ropeScaling: { rope_type: 'dynamic', factor: 3 } }, 'hf-f32', { type: 'dynamic', factor: 3 }],
    ['HF null: none', { ropeScaling: null }, 'hf-f32', { type: 'none', factor: 1 }],
  ];
  for (const [name, opts, format, expected] of variants) {
    test(name, async () => {
      const m = await makeModel({ dir: scratch('rope'), formats: [format], ...opts });
      assert.deepEqual((await info(m.paths[format])).ropeScaling, expected);
    });
  }

  test('load options override the file', async () => {
    const p = tiny.paths['gguf-f32'];
    assert.deepEqual((await info(p, { ropeScaling: 'none' })).ropeScaling, { type: 'none', factor: 1 });
    assert.deepEqual((await info(p, { ropeFactor: 4 })).ropeScaling, { type: 'dynamic', factor: 4 });
    assert.deepEqual((await info(tiny.paths['hf-f32'], { ropeScaling: 'dynamic', ropeFactor: 3 })).ropeScaling, { type: 'dynamic', factor: 3 });
  });

  test('a scaling this engine cannot apply is refused by name', async () => {
    const g = await makeModel({ dir: scratch('linear'), formats: ['gguf-f32', 'hf-f32'], ropeScalingKey: 'llama', ropeScaling: { type: 'linear', factor: 4 } });
    await rejects(g.paths['gguf-f32'], /RoPE scaling type 'linear' with factor 4/);
    await rejects(g.paths['hf-f32'], /config\.json: RoPE scaling type 'linear'/);
    assert.deepEqual((await info(g.paths['gguf-f32'], { ropeScaling: 'none' })).ropeScaling, { type: 'none', factor: 1 });
  });
});

describe('broken GGUF files', () => {
  const src = () => tiny.paths['gguf-f32'];

  test('missing, empty, directory and non-model paths', async () => {
    await rejects(path.join(tmp, 'nope.gguf'), /model not found: .*nope\.gguf/);
    const empty = scratch('empty.gguf');
    writeFileSync(empty, '');
    await rejects(empty, /empty/);
    const text = scratch('notes.txt');
    writeFileSync(text, 'hello');
    await rejects(text, /is not a model/);
    await rejects(tmp, /config\.json is missing/);
  });

  test('unreadable file', { skip: process.getuid?.() === 0 && 'root can read anything' }, async () => {
    const p = scratch('secret.gguf');
    copyFileSync(src(), p);
    chmodSync(p, 0);
    await rejects(p, /permission denied/);
  });

  test('truncated at many offsets', async () => {
    const buf = readFileSync(src());
    const layout = ggufLayout(buf);
    const offsets = new Set([1, 3, 4, 7, 8, 12, 16, 20, 24, 30, layout.headerEnd - 1, layout.headerEnd,
      layout.dataStart + 1, buf.length - 1, buf.length - 1000]);
    for (let i = 0; i < 40; i++) offsets.add(Math.floor(((i + 0.5) / 40) * buf.length));
    for (let i = 0; i < 40; i++) offsets.add(Math.floor(((i + 0.5) / 40) * layout.headerEnd));
    const p = scratch('trunc.gguf');
    for (const at of offsets) {
      writeFileSync(p, buf.subarray(0, at));
      await rejects(p, /truncated|too small/);
    }
  });

  test('GGUF v2 files load like v3', async () => {
    const v2 = patch(src(), 'v2.gguf', (b) => b.writeUInt32LE(2, 4));
    assert.equal((await info(v2)).parameterCount, (await info(src())).parameterCount);
  });

  test('wrong magic and unsupported versions', async () => {
    await rejects(patch(src(), 'magic.gguf', (b) => b.write('GGML', 0)), /not a GGUF file \(magic 'GGML', expected 'GGUF'\)/);
    await rejects(patch(src(), 'v1.gguf', (b) => b.writeUInt32LE(1, 4)), /unsupported GGUF version 1/);
    await rejects(patch(src(), 'v99.gguf', (b) => b.writeUInt32LE(99, 4)), /unsupported GGUF version 99 \(supported: 2 and 3\)/);
    await rejects(patch(src(), 'bigendian.gguf', (b) => b.writeUInt32BE(3, 4)), /big-endian/);
  });

  test('absurd counts and lengths', async () => {
    const huge = 1n << 60n;
    await rejects(patch(src(), 'ntensors.gguf', (b, l) => b.writeBigUInt64LE(huge, l.tensorCountAt)), /tensor count \d+ is more than the file can hold/);
    await rejects(patch(src(), 'nkv.gguf', (b, l) => b.writeBigUInt64LE(huge, l.kvCountAt)), /metadata count \d+ is more than the file can hold/);
    await rejects(patch(src(), 'ntokens.gguf', (b, l) => b.writeBigUInt64LE(huge, l.kv.get('tokenizer.ggml.tokens').countAt)),
      /'tokenizer\.ggml\.tokens' claims \d+ strings/);
    await rejects(patch(src(), 'nscores.gguf', (b, l) => b.writeBigUInt64LE(1n << 40n, l.kv.get('tokenizer.ggml.scores').countAt)),
      /'tokenizer\.ggml\.scores' claims \d+ elements/);
    await rejects(patch(src(), 'strlen.gguf', (b, l) => b.writeBigUInt64LE(huge, l.kv.get('general.name').valueAt)),
      /string value length \d+ runs past the end of the file/);
    await rejects(patch(src(), 'keylen.gguf', (b) => b.writeBigUInt64LE(0xffffffffffffffffn, 24)), /metadata key length \d+ runs past/);
    await rejects(patch(src(), 'ndims.gguf', (b, l) => b.writeUInt32LE(9, l.tensors[0].dimsAt - 4)), /token_embd\.weight' has 9 dimensions/);
    await rejects(patch(src(), 'dim.gguf', (b, l) => b.writeBigUInt64LE(1n << 50n, l.tensors[0].dimsAt + 8)), /absurd dimension/);
    await rejects(patch(src(), 'bigtensor.gguf', (b, l) => b.writeBigUInt64LE(1n << 39n, l.tensors[0].dimsAt + 8)), /larger than the file/);
    await rejects(patch(src(), 'valtype.gguf', (b, l) => b.writeUInt32LE(77, l.kv.get('general.name').typeAt)), /unknown value type 77/);
    await rejects(patch(src(), 'nested.gguf', (b, l) => b.writeUInt32LE(9, l.kv.get('tokenizer.ggml.scores').countAt - 4)), /array of arrays/);
  });

  test('tensor data offsets past the end, overflowing or misaligned', async () => {
    const last = (l) => l.tensors[l.tensors.length - 1];
    await rejects(patch(src(), 'offset.gguf', (b, l) => b.writeBigUInt64LE(BigInt(last(l).offset + 32 * 1024), last(l).offsetAt)),
      /tensor 'output\.weight' .* runs past the end of the file/);
    await rejects(patch(src(), 'overflow.gguf', (b, l) => b.writeBigUInt64LE(0xffffffffffffffe0n, last(l).offsetAt)), /runs past the end of the file/);
    await rejects(patch(src(), 'misaligned.gguf', (b, l) => b.writeBigUInt64LE(BigInt(last(l).offset + 4), last(l).offsetAt)),
      /offset \d+ is not a multiple of the alignment 32/);
  });

  test('unknown and unsupported tensor types', async () => {
    const q = (l) => l.tensors.find((t) => t.name === 'blk.0.attn_q.weight');
    await rejects(patch(src(), 'type99.gguf', (b, l) => b.writeUInt32LE(99, q(l).typeAt)), /tensor 'blk\.0\.attn_q\.weight' has unknown type id 99/);
    // IQ4_NL (ggml id 20, blocks of 32) is a real ggml type this engine has no kernels for.
    await rejects(patch(src(), 'iq4nl.gguf', (b, l) => b.writeUInt32LE(20, q(l).typeAt)),
      /tensor blk\.0\.attn_q\.weight has type IQ4_NL, which this build does not support yet \(supported: F32, F16, [^)]*\bQ8_0\b[^)]*\bBF16\)/);
    await rejects(patch(src(), 'q4krows.gguf', (b, l) => b.writeUInt32LE(12, q(l).typeAt)), /rows of 64 elements, not a multiple of its block size 256/);
  });

  test('wrong architecture, missing tensors, shape mismatches', async () => {
    const arch = (b, l, name) => b.write(name, l.kv.get('general.architecture').valueAt + 8);
    await rejects(patch(src(), 'arch.gguf', (b, l) => arch(b, l, 'internlm3')), /unsupported architecture 'internlm3'/);
    const rename = (b, l, from, to) => b.write(to, l.tensors.find((t) => t.name === from).nameAt + 8);
    await rejects(patch(src(), 'missing.gguf', (b, l) => rename(b, l, 'blk.1.ffn_up.weight', 'blk.1.ffn_uX.weight')),
      /missing tensors: blk\.1\.ffn_up\.weight/);
    await rejects(patch(src(), 'missing2.gguf', (b, l) => {
      rename(b, l, 'output.weight', 'outpuX.weight');
      rename(b, l, 'blk.0.attn_k.weight', 'blk.0.attn_X.weight');
    }), /missing tensors: output\.weight, blk\.0\.attn_k\.weight/);
    await rejects(patch(src(), 'embd.gguf', (b, l) => rename(b, l, 'token_embd.weight', 'token_embX.weight')), /missing tensor token_embd\.weight/);
    const k = (l) => l.tensors.find((t) => t.name === 'blk.0.attn_k.weight');
    await rejects(patch(src(), 'shape.gguf', (b, l) => b.writeBigUInt64LE(16n, k(l).dimsAt + 8)),
      /tensor blk\.0\.attn_k\.weight has shape \{64, 16\}, expected \{64, 32\}/);
    const norm = (l) => l.tensors.find((t) => t.name === 'blk.0.ffn_norm.weight');
    await rejects(patch(src(), 'norm.gguf', (b, l) => b.writeBigUInt64LE(32n, norm(l).dimsAt)), /ffn_norm\.weight has shape \{32\}, expected \{64\}/);
  });

  test('inconsistent hyperparameters', async () => {
    const set = (key, v) => (b, l) => b.writeUInt32LE(v, l.kv.get(key).valueAt);
    await rejects(patch(src(), 'heads.gguf', set('internlm2.attention.head_count', 3)), /hidden size 64 is not divisible by the head count 3/);
    await rejects(patch(src(), 'kvheads.gguf', set('internlm2.attention.head_count_kv', 3)), /head count 4 is not divisible by the key\/value head count 3/);
    await rejects(patch(src(), 'zero.gguf', set('internlm2.block_count', 0)), /layer count is 0, must be positive/);
    await rejects(patch(src(), 'ffn.gguf', set('internlm2.feed_forward_length', 100)), /ffn_gate\.weight has shape \{64, 128\}, expected \{64, 100\}/);
    await rejects(patch(src(), 'layers.gguf', set('internlm2.block_count', 3)), /missing tensors: blk\.2\./);
    await rejects(patch(src(), 'eos.gguf', set('tokenizer.ggml.eos_token_id', 5000)), /eos_token_id = 5000 is outside the vocabulary/);
    await rejects(patch(src(), 'ctxtype.gguf', (b, l) => b.writeUInt32LE(6, l.kv.get('internlm2.context_length').typeAt)), /context_length.*expected an integer|has type f32, expected an integer/);
  });
});

describe('broken Hugging Face directories', () => {
  const src = () => tiny.paths['hf-f32'];

  test('broken config.json names the position', async () => {
    await rejects(hfCopy(src(), 'badjson', (d) => writeFileSync(path.join(d, 'config.json'), '{"hidden_size": 64,,}')),
      /config\.json: invalid JSON at line 1, column 20 \(byte 19\): expected a string key/);
    await rejects(hfCopy(src(), 'cut', (d) => truncateSync(path.join(d, 'config.json'), 100)), /config\.json: invalid JSON at line \d+, column \d+ .*: unexpected end of input|unterminated string/);
    await rejects(hfCopy(src(), 'noconfig', (d) => unlinkSync(path.join(d, 'config.json'))), /config\.json is missing/);
  });

  const editConfig = (name, edit) => hfCopy(src(), name, (d) => {
    const p = path.join(d, 'config.json');
    const c = JSON.parse(readFileSync(p, 'utf8'));
    edit(c);
    writeFileSync(p, JSON.stringify(c));
  });

  test('wrong architecture and inconsistent hyperparameters', async () => {
    await rejects(editConfig('arch', (c) => { c.architectures = ['LlamaForCausalLM']; c.model_type = 'llama'; }), /unsupported architecture 'LlamaForCausalLM'/);
    await rejects(editConfig('heads', (c) => { c.num_attention_heads = 3; }), /hidden size 64 is not divisible by the head count 3/);
    await rejects(editConfig('kv', (c) => { c.num_key_value_heads = 3; }), /not divisible by the key\/value head count 3/);
    await rejects(editConfig('zero', (c) => { c.intermediate_size = 0; }), /feed-forward size is 0, must be positive/);
    await rejects(editConfig('neg', (c) => { c.hidden_size = -64; }), /"hidden_size" must be a non-negative integer/);
    await rejects(editConfig('missing', (c) => { delete c.num_hidden_layers; }), /"num_hidden_layers" is missing/);
    await rejects(editConfig('bias', (c) => { c.bias = true; }), /"bias": true is not supported/);
    await rejects(editConfig('vocab', (c) => { c.vocab_size = 2000; }), /model\.tok_embeddings\.weight has shape \{64, 1000\}, expected \{64, 2000\}/);
    await rejects(editConfig('smallvocab', (c) => { c.vocab_size = 500; }), /tokenizer has 1000 tokens but the model's embedding has only 500 rows/);
  });

  test('missing shard, missing tensors, shape and dtype problems', async () => {
    await rejects(hfCopy(sharded.paths['hf-f32'], 'noshard', (d) => unlinkSync(path.join(d, 'model-00002-of-00002.safetensors'))),
      /shard model-00002-of-00002\.safetensors listed in model\.safetensors\.index\.json is missing/);
    await rejects(hfCopy(sharded.paths['hf-f32'], 'escape', (d) => {
      const p = path.join(d, 'model.safetensors.index.json');
      const index = JSON.parse(readFileSync(p, 'utf8'));
      index.weight_map['output.weight'] = '../model.safetensors';
      writeFileSync(p, JSON.stringify(index));
    }), /invalid shard file '\.\.\/model\.safetensors'/);
    await rejects(hfCopy(src(), 'noweights', (d) => unlinkSync(path.join(d, 'model.safetensors'))), /no weights found/);
    await rejects(hfCopy(src(), 'notok', (d) => unlinkSync(path.join(d, 'tokenizer.model'))), /tokenizer\.model is missing/);

    const editTensors = (name, edit) => hfCopy(src(), name, (d) => {
      const p = path.join(d, 'model.safetensors');
      const { header, data } = readSafetensors(p);
      edit(header);
      writeSafetensors(p, header, data);
    });
    await rejects(editTensors('drop', (h) => { delete h['model.layers.1.feed_forward.w3.weight']; }),
      /missing tensors: model\.layers\.1\.feed_forward\.w3\.weight/);
    await rejects(editTensors('shape', (h) => { h['model.layers.0.attention.wo.weight'].shape = [32, 128]; }),
      /model\.layers\.0\.attention\.wo\.weight has shape \{128, 32\}, expected \{64, 64\}/);
    await rejects(editTensors('dtype', (h) => { h['model.layers.0.attention.wo.weight'].dtype = 'I32'; }),
      /tensor model\.layers\.0\.attention\.wo\.weight has dtype I32, which this build does not support \(supported: BF16, F16, F32\)/);
    await rejects(editTensors('dtype2', (h) => { h['output.weight'].dtype = 'Q4'; }), /tensor 'output\.weight': unknown dtype 'Q4'/);
    await rejects(editTensors('span', (h) => { h['output.weight'].data_offsets[1] -= 4; }), /shape and dtype need \d+ bytes but data_offsets span/);
    await rejects(editTensors('past', (h) => { h['output.weight'].data_offsets = [0, 1e12]; }), /runs past the end of the file/);
    await rejects(editTensors('neg', (h) => { h['output.weight'].data_offsets = [-1, 4]; }), /data_offsets are not non-negative integers/);
  });

  test('truncated or corrupt safetensors', async () => {
    const p = path.join(src(), 'model.safetensors');
    const size = readFileSync(p).length;
    for (const at of [1, 7, 8, 9, 100, 500, size - 1]) {
      await rejects(hfCopy(src(), 'trunc', (d) => truncateSync(path.join(d, 'model.safetensors'), at)), /truncated|invalid JSON/);
    }
    await rejects(hfCopy(src(), 'hugeheader', (d) => {
      const f = path.join(d, 'model.safetensors');
      const b = readFileSync(f);
      b.writeBigUInt64LE(1n << 62n, 0);
      writeFileSync(f, b);
    }), /header length \d+ exceeds the file size/);
    await rejects(hfCopy(src(), 'garbage', (d) => writeFileSync(path.join(d, 'model.safetensors'), Buffer.alloc(64, 0x41))),
      /not a safetensors file|exceeds the file size/);
  });

  test('a file inside the checkpoint loads the checkpoint', async () => {
    assert.equal((await info(path.join(src(), 'config.json'))).format, 'hf');
    assert.equal((await info(path.join(sharded.paths['hf-f32'], 'model-00001-of-00002.safetensors'))).format, 'hf');
  });
});

describe('loadTokenizer', () => {
  test('bad paths give clear errors', () => {
    assert.throws(() => loadTokenizer(path.join(tmp, 'missing.model')), /not found/);
    const bad = scratch('bad.model');
    writeFileSync(bad, 'not a protobuf at all');
    assert.throws(() => loadTokenizer(bad), /bad\.model/);
  });
});
