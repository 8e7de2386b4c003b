// Saved KV caches (engine/kv_file.h) and prefill progress, through the JS API on tiny generated
// models: exact continuation after a restore in a fresh process-like model load, partial saves,
// every validation error, a mutation fuzz, atomic replacement, model fingerprints, progress.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { makeModel } from '../fixtures/make-model.mjs';

const require = createRequire(import.meta.url);
const { Model, KV_TYPES } = require('../../dist/engine.js');

let dir, tiny, other, ntk, slow;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ilm-kvfile-'));
  tiny = await makeModel({ dir: path.join(dir, 'tiny'), formats: ['gguf-f32', 'gguf-f16'], contextLength: 4096 });
  other = await makeModel({ dir: path.join(dir, 'other'), formats: ['gguf-f32'], contextLength: 4096, seed: 2 });
  // A short trained context, so prefixes of a few hundred tokens get a dynamic-NTK base' != 1e6.
  ntk = await makeModel({ dir: path.join(dir, 'ntk'), formats: ['gguf-f32'], contextLength: 128 });
  slow = await makeModel({ dir: path.join(dir, 'slow'), formats: ['gguf-f16'], dim: 512, nLayers: 4, nHeads: 8, nKvHeads: 2, ffnDim: 1536 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const ids = (n, seed = 1) => Array.from({ length: n }, (_, i) => 3 + ((i + seed) * 7919) % 900);
let fileCount = 0;
const freshPath = (name = 'cache') => path.join(dir, `${name}-${fileCount++}.kv`);

// ---------------------------------------------------------------- the file format, for crafting files

const H = { version: 8, kvType: 12, fingerprint: 16, ropeBase: 24, nLayers: 28, nKvHeads: 32, headDim: 36,
  positionBytes: 40, nTokens: 48, dataOffset: 56, blockBytes: 64, fileBytes: 72, tokensChecksum: 80, headerChecksum: 120 };
const HEADER_BYTES = 128;

// util/hash.h's Hash64: FNV-1a 64, then the MurmurHash3 finalizer.
function hash64(bytes) {
  const mask = (1n << 64n) - 1n;
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & mask;
  h ^= h >> 33n;
  h = (h * 0xff51afd7ed558ccdn) & mask;
  h ^= h >> 33n;
  h = (h * 0xc4ceb9fe1a85ec53n) & mask;
  return h ^ (h >> 33n);
}

// Recomputes both checksums, so an edited field reaches the checks behind them.
function reseal(buf) {
  const n = Number(buf.readBigUInt64LE(H.nTokens));
  buf.writeBigUInt64LE(hash64(buf.subarray(HEADER_BYTES, HEADER_BYTES + 4 * n)), H.tokensChecksum);
  buf.writeBigUInt64LE(hash64(buf.subarray(0, H.headerChecksum)), H.headerChecksum);
  return buf;
}

function writeVariant(source, edit) {
  const buf = Buffer.from(readFileSync(source));
  const out = freshPath('variant');
  writeFileSync(out, edit(buf) ?? buf);
  return out;
}

async function savedTiny(kvType = 'f32', n = 40) {
  const model = await Model.load(tiny.paths['gguf-f32']);
  const session = model.createSession({ kvType });
  await session.evaluate([1, ...ids(n - 1)]);
  const file = freshPath(`tiny-${kvType}`);
  await session.save(file);
  session.dispose();
  return { model, file };
}

function snapshot(session) {
  return { length: session.length, tokens: session.tokens, ropeBase: session.ropeBase };
}

// ---------------------------------------------------------------- round trips

test('every KV type: a restored cache in a fresh model load continues bit-identically', async () => {
  const prefix = [1, ...ids(299)];  // two engine chunks
  const rest = ids(40, 7);
  for (const kvType of KV_TYPES) {
    const model = await Model.load(ntk.paths['gguf-f32']);
    const straight = model.createSession({ kvType, contextLength: 1024 });
    await straight.evaluate(prefix);
    const expected = await straight.evaluate(rest, { topK: 8 });
    assert.notEqual(straight.ropeBase, 1e6, 'the prefix was built with a dynamic-NTK base');

    const saver = model.createSession({ kvType, contextLength: 1024 });
    await saver.evaluate(prefix);
    const file = freshPath(`roundtrip-${kvType}`);
    const saved = await saver.save(file);
    assert.equal(saved.tokens, prefix.length);
    assert.equal(saved.bytes, statSync(file).size);
    model.dispose();

    const reloaded = await Model.load(ntk.paths['gguf-f32']);
    const restored = reloaded.createSession({ kvType, contextLength: 1024 });
    const result = await restored.restore(file);
    assert.equal(result.tokens, prefix.length);
    assert.equal(result.ropeBase, straight.ropeBase, `${kvType}: the file keeps the exact RoPE base`);
    assert.deepEqual(restored.tokens, prefix);
    const actual = await restored.evaluate(rest, { topK: 8 });
    assert.deepEqual(actual.top, expected.top, `${kvType}: identical top-8 log-probabilities after the restore`);
    reloaded.dispose();
  }
});

test('file layout: 128-byte header, token ids, 4096-aligned K and V blocks per layer', async () => {
  const { model, file } = await savedTiny('q8', 40);
  const buf = readFileSync(file);
  const info = model.info;
  assert.equal(buf.subarray(0, 8).toString('latin1'), 'INTERNKV');
  assert.equal(buf.readUInt32LE(H.version), 1);
  assert.equal(buf.readUInt32LE(H.kvType), 2);
  assert.equal(buf.readBigUInt64LE(H.fingerprint).toString(16).padStart(16, '0'), info.fingerprint);
  assert.equal(buf.readUInt32LE(H.nLayers), info.blockCount);
  assert.equal(buf.readUInt32LE(H.nKvHeads), info.headCountKv);
  assert.equal(buf.readUInt32LE(H.headDim), info.headDim);
  const positionBytes = Number(buf.readBigUInt64LE(H.positionBytes));
  assert.equal(positionBytes, info.headCountKv * (8 + info.headDim));  // q8 rows: scale, zero, codes
  assert.equal(Number(buf.readBigUInt64LE(H.nTokens)), 40);
  assert.equal(buf.readInt32LE(HEADER_BYTES), 1);
  const dataOffset = Number(buf.readBigUInt64LE(H.dataOffset));
  const block = Number(buf.readBigUInt64LE(H.blockBytes));
  assert.equal(dataOffset % 4096, 0);
  assert.equal(block % 4096, 0);
  assert.ok(block >= 40 * positionBytes);
  assert.equal(buf.length, dataOffset + 2 * info.blockCount * block);
  assert.equal(Number(buf.readBigUInt64LE(H.fileBytes)), buf.length);
  assert.equal(reseal(Buffer.from(buf)).compare(buf), 0, 'the test reimplements the checksums exactly');
  model.dispose();
});

test('a restored workspace prefix is reused by generate exactly like a computed one', async () => {
  const model = await Model.load(tiny.paths['gguf-f32']);
  const workspace = [1, ...ids(279)];
  const prompt = [...workspace, ...ids(30, 3)];
  const options = { prompt, maxTokens: 12, temperature: 0, stopTokens: [] };
  const straight = model.createSession();
  await straight.evaluate(workspace);
  const expected = await straight.generate(options);
  assert.equal(expected.cachedTokens, workspace.length);

  const saver = model.createSession();
  await saver.evaluate(workspace);
  const file = freshPath('workspace');
  await saver.save(file);
  const reloaded = await Model.load(tiny.paths['gguf-f32']);
  const restored = reloaded.createSession();
  await restored.restore(file);
  const actual = await restored.generate(options);
  assert.equal(actual.cachedTokens, workspace.length);
  assert.deepEqual(actual.tokens, expected.tokens);
  assert.equal(actual.text, expected.text);
  reloaded.dispose();
  model.dispose();
});

test('a partial save holds only the prefix; a restore replaces what a session held', async () => {
  const model = await Model.load(tiny.paths['gguf-f16']);
  const tokens = [1, ...ids(299)];
  const straight = model.createSession({ kvType: 'f16' });
  await straight.evaluate(tokens.slice(0, 200));
  const expected = await straight.evaluate(tokens.slice(200), { topK: 5 });

  const saver = model.createSession({ kvType: 'f16' });
  await saver.evaluate(tokens);
  const file = freshPath('partial');
  const saved = await saver.save(file, { length: 200 });
  assert.equal(saved.tokens, 200);
  assert.equal(saver.length, 300, 'saving leaves the session as it was');

  const restored = model.createSession({ kvType: 'f16' });
  await restored.evaluate(ids(50, 9));
  assert.equal((await restored.restore(file)).tokens, 200);
  assert.deepEqual(restored.tokens, tokens.slice(0, 200));
  assert.deepEqual((await restored.evaluate(tokens.slice(200), { topK: 5 })).top, expected.top);

  await assert.rejects(saver.save(freshPath(), { length: 301 }), /cannot save 301 positions: the session holds 300/);
  await assert.rejects(saver.save(freshPath(), { length: 0 }), /length must be a positive whole number/);
  await assert.rejects(model.createSession().save(freshPath()), /cannot save 0 positions/);
  model.dispose();
});

// ---------------------------------------------------------------- mismatches and damage

test('restoring into another KV type, another model or a shorter context: clear errors, session unchanged', async () => {
  const { model, file } = await savedTiny('q8', 40);
  const f16 = model.createSession({ kvType: 'f16' });
  await f16.evaluate(ids(20, 4));
  const before = snapshot(f16);
  await assert.rejects(f16.restore(file), /has KV type q8, this session uses f16/);
  assert.deepEqual(snapshot(f16), before);
  await f16.evaluate(ids(5, 5));
  assert.equal(f16.length, 25, 'the session still works');

  const short = model.createSession({ kvType: 'q8', contextLength: 32 });
  await assert.rejects(short.restore(file), /holds 40 tokens, more than this session's context of 32 tokens/);
  assert.equal(short.length, 0);

  const stranger = await Model.load(other.paths['gguf-f32']);
  assert.notEqual(stranger.info.fingerprint, model.info.fingerprint);
  const theirs = stranger.createSession({ kvType: 'q8' });
  await theirs.evaluate(ids(10, 6));
  const theirsBefore = snapshot(theirs);
  await assert.rejects(theirs.restore(file), /was made by a different model \(fingerprint [0-9a-f]{16}, this model's is [0-9a-f]{16}\)/);
  assert.deepEqual(snapshot(theirs), theirsBefore);
  stranger.dispose();
  model.dispose();
});

test('damaged files: truncated, bad magic, corrupt header or tokens, crafted fields', async () => {
  const { model, file } = await savedTiny('f32', 40);
  const session = model.createSession();
  await session.evaluate(ids(12, 8));
  const before = snapshot(session);
  const size = statSync(file).size;
  const rejects = async (variant, pattern) => {
    await assert.rejects(session.restore(variant), pattern);
    assert.deepEqual(snapshot(session), before, `unchanged after ${pattern}`);
  };

  await rejects(path.join(dir, 'missing.kv'), /file not found/);
  for (const cut of [size - 1, size - 4096, 4096, 300]) {
    await rejects(writeVariant(file, (b) => b.subarray(0, cut)), new RegExp(`is truncated \\(${cut} of ${size} bytes\\)`));
  }
  await rejects(writeVariant(file, (b) => b.subarray(0, 100)), /is truncated \(100 of at least 128 bytes\)/);
  await rejects(writeVariant(file, (b) => b.subarray(0, 0)), /is empty/);
  await rejects(writeVariant(file, (b) => Buffer.concat([b, Buffer.alloc(10)])), /is corrupt \(\d+ bytes where its header says \d+\)/);
  await rejects(writeVariant(file, (b) => { b[0] = 0x58; }), /is not a saved KV cache/);
  await rejects(writeVariant(file, (b) => { b.writeUInt32LE(3, H.nLayers); }), /is corrupt \(its header checksum does not match\)/);
  await rejects(writeVariant(file, (b) => { b.writeInt32LE(5, HEADER_BYTES + 8); }), /is corrupt \(its token list checksum does not match\)/);

  // Crafted with valid checksums: the checks behind them.
  await rejects(writeVariant(file, (b) => { b.writeUInt32LE(2, H.version); reseal(b); }), /has format version 2; this build reads version 1/);
  await rejects(writeVariant(file, (b) => { b.writeInt32LE(model.info.vocabSize + 7, HEADER_BYTES + 4 * 5); reseal(b); }),
    new RegExp(`holds token id ${model.info.vocabSize + 7} at position 5, outside this model's vocabulary of ${model.info.vocabSize} tokens`));
  await rejects(writeVariant(file, (b) => { b.writeInt32LE(-1, HEADER_BYTES); reseal(b); }), /holds token id -1 at position 0/);
  await rejects(writeVariant(file, (b) => { b.writeUInt32LE(model.info.headDim * 2, H.headDim); reseal(b); }), /has shape 2 layers x 2 KV heads x 32 .*, this session's cache is 2 layers x 2 KV heads x 16/);
  await rejects(writeVariant(file, (b) => { b.writeUInt32LE(9, H.kvType); reseal(b); }), /is corrupt \(unknown KV type 9\)/);
  await rejects(writeVariant(file, (b) => { b.writeBigUInt64LE(100n, H.nTokens); reseal(b); }), /is corrupt \(its offsets do not match its sizes\)/);
  await rejects(writeVariant(file, (b) => { b.writeBigUInt64LE(1n << 62n, H.positionBytes); reseal(b); }), /is corrupt \(position size/);
  await rejects(writeVariant(file, (b) => { b.writeFloatLE(Number.NaN, H.ropeBase); reseal(b); }), /is corrupt \(RoPE base/);
  await rejects(writeVariant(file, (b) => { b[100] = 1; reseal(b); }), /reserved header bytes are not zero/);

  assert.equal((await session.restore(file)).tokens, 40, 'the intact file still restores');
  model.dispose();
});

test('fuzz: hundreds of mutated or truncated files never crash; each restores or throws an Error', async () => {
  const { model, file } = await savedTiny('q4', 24);
  const original = readFileSync(file);
  const session = model.createSession({ kvType: 'q4' });
  let seed = 12345;
  const rand = (n) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const target = path.join(dir, 'fuzz.kv');
  let restored = 0, rejected = 0;
  for (let i = 0; i < 400; i++) {
    let buf = Buffer.from(original);
    const kind = rand(4);
    if (kind === 0) {
      buf = buf.subarray(0, rand(buf.length));
    } else if (kind === 3) {
      buf = Buffer.concat([buf, Buffer.alloc(1 + rand(64), rand(256))]);
    } else {
      // Mostly the header and token ids, where every byte matters; sometimes the rows.
      const region = kind === 1 ? HEADER_BYTES + 4 * 24 : buf.length;
      for (let m = 1 + rand(4); m > 0; m--) buf[rand(region)] ^= 1 + rand(255);
    }
    writeFileSync(target, buf);
    try {
      const result = await session.restore(target);
      assert.equal(result.tokens, session.length);
      restored++;
    } catch (e) {
      assert.ok(e instanceof Error && e.message.length > 10, `iteration ${i}: ${e}`);
      rejected++;
    }
  }
  assert.ok(rejected > 200, `${rejected} rejected`);
  assert.ok(restored > 0, 'mutated rows (no checksum) still restore');
  await session.restore(file);
  assert.equal(session.length, 24);
  await session.evaluate(ids(4));
  model.dispose();
});

// ---------------------------------------------------------------- saving

test('saving is atomic: an existing file is replaced whole, failures leave no temporary files', async () => {
  const model = await Model.load(tiny.paths['gguf-f32']);
  const folder = path.join(dir, 'atomic');
  mkdirSync(folder);
  const target = path.join(folder, 'prefix.kv');
  writeFileSync(target, Buffer.alloc(1 << 20, 0x55));  // larger than the cache: nothing may survive of it

  const session = model.createSession();
  await session.evaluate([1, ...ids(30)]);
  const saved = await session.save(target);
  assert.equal(statSync(target).size, saved.bytes);
  assert.deepEqual(readdirSync(folder), ['prefix.kv']);
  await session.evaluate(ids(300, 2));
  const again = await session.save(target);
  assert.ok(again.bytes > saved.bytes);
  assert.deepEqual(readdirSync(folder), ['prefix.kv']);
  const check = model.createSession();
  assert.equal((await check.restore(target)).tokens, 331);

  mkdirSync(path.join(folder, 'a-directory'));
  await assert.rejects(session.save(path.join(folder, 'a-directory')), /cannot save the KV cache to .*a-directory: Is a directory/);
  await assert.rejects(session.save(path.join(folder, 'missing', 'x.kv')), /cannot save the KV cache to .*x\.kv: No such file or directory/);
  assert.deepEqual(readdirSync(folder).sort(), ['a-directory', 'prefix.kv']);

  // A session is one request at a time, saves included.
  const running = session.evaluate(ids(200, 3));
  await assert.rejects(session.save(target), /busy/);
  await assert.rejects(session.restore(target), /busy/);
  await running;
  assert.equal(session.length, 531);
  model.dispose();
});

test('fingerprint: differs between seeds and weight types, stable across loads and load options', async () => {
  const a = await Model.load(tiny.paths['gguf-f32']);
  const b = await Model.load(tiny.paths['gguf-f32'], { ropeScaling: 'none', threads: 1 });
  const f16 = await Model.load(tiny.paths['gguf-f16']);
  const seed2 = await Model.load(other.paths['gguf-f32']);
  assert.match(a.info.fingerprint, /^[0-9a-f]{16}$/);
  assert.equal(a.info.fingerprint, b.info.fingerprint);
  assert.notEqual(a.info.fingerprint, f16.info.fingerprint);
  assert.notEqual(a.info.fingerprint, seed2.info.fingerprint);
  assert.notEqual(f16.info.fingerprint, seed2.info.fingerprint);
  for (const m of [a, b, f16, seed2]) m.dispose();
});

// ---------------------------------------------------------------- prefill progress

function checkProgress(reports, total) {
  assert.ok(reports.length > 0);
  for (let i = 0; i < reports.length; i++) {
    assert.equal(reports[i][1], total);
    assert.ok(reports[i][0] > (i ? reports[i - 1][0] : 0), 'strictly increasing');
  }
  assert.equal(reports.at(-1)[0], total);
}

test('prefill progress: per chunk, monotone, ends at the total, counts only computed tokens', async () => {
  const model = await Model.load(tiny.paths['gguf-f32']);
  const session = model.createSession();
  const reports = [];
  await session.evaluate([1, ...ids(599)], { onPrefillProgress: (done, total) => reports.push([done, total]) });
  checkProgress(reports, 600);
  assert.ok(reports.length >= 3, `${reports.length} chunks`);

  const chat = model.createSession();
  const workspace = [1, ...ids(399)];
  const first = [];
  const r1 = await chat.generate({ prompt: workspace, maxTokens: 1, stopTokens: [], onPrefillProgress: (d, t) => first.push([d, t]) });
  checkProgress(first, 400);
  assert.equal(r1.cachedTokens, 0);
  const second = [];
  const r2 = await chat.generate({
    prompt: [...workspace, ...ids(45, 11)], maxTokens: 3, stopTokens: [], onPrefillProgress: (d, t) => second.push([d, t]),
  });
  assert.equal(r2.cachedTokens, 400);
  checkProgress(second, 45);

  // Without a callback nothing changes.
  const plain = await model.createSession().evaluate(ids(10), { topK: 1 });
  assert.equal(plain.top.length, 10);
  model.dispose();
});

test('cancelling a long evaluate from its progress callback stops within a chunk; computed chunks stay', async () => {
  const model = await Model.load(slow.paths['gguf-f16']);
  const session = model.createSession({ contextLength: 8192 });
  const controller = new AbortController();
  const reports = [];
  const pending = session.evaluate(ids(8000), {
    signal: controller.signal,
    onPrefillProgress: (done, total) => {
      reports.push([done, total]);
      if (done >= 512) controller.abort();
    },
  });
  await assert.rejects(pending, /cancelled/);
  assert.ok(reports.length >= 2 && reports.length <= 6, `${reports.length} chunks before the cancel took`);
  for (let i = 1; i < reports.length; i++) assert.ok(reports[i][0] > reports[i - 1][0]);
  assert.ok(reports.every(([, total]) => total === 8000));
  assert.equal(session.length, reports.at(-1)[0], 'every reported chunk is in the cache');
  model.dispose();
});
