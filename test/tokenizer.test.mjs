// Tokenizer tests: id parity with Google's sentencepiece (compiled to WebAssembly in
// @agnai/sentencepiece-js) on the real InternLM2 tokenizer.model and on generated models that
// reach the corners InternLM2's model does not use; special tokens; decoding; bad files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { unitRandom } from './fixtures/make-model.mjs';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { loadTokenizer } = require(path.join(root, 'dist', 'engine.js'));
const { SentencePieceProcessor } = require('@agnai/sentencepiece-js');
const fixtures = path.join(root, '..', 'shared', 'fixtures', 'internlm2');
const modelPath = path.join(fixtures, 'tokenizer.model');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ilm-tokenizer-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

async function reference(file) {
  const sp = new SentencePieceProcessor();
  await sp.load(file);
  return sp;
}

// Seeded, so every run checks the same strings.
const rng = unitRandom;

const IM_START = 92543;
const IM_END = 92542;
const byteId = (b) => 3 + b; // <0x00> is id 3

const code = {
  js: 'export async function fetchAll(urls) {\n  const out = await Promise.all(urls.map((u) => fetch(u)));\n  return out.filter((r) => r.ok); // keep 2xx\n}\n',
  py: 'def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n',
  cpp: '#include <vector>\ntemplate <typename T>\nstd::vector<T> twice(const std::vector<T>& v) {\n\tstd::vector<T> r; r.reserve(v.size() * 2);\n\tfor (auto& x : v) { r.push_back(x); r.push_back(x); }\n\treturn r;\n}\n',
  rust: 'fn main() -> Result<(), Box<dyn std::error::Error>> {\n    let v: Vec<u8> = std::fs::read("a.bin")?;\n    println!("{:?}", &v[..4]);\n    Ok(())\n}\n',
  go: 'package main\n\nimport "fmt"\n\nfunc main() {\n\tch := make(chan int, 3)\n\tgo func() { ch <- 42 }()\n\tfmt.Println(<-ch)\n}\n',
  sql: "SELECT u.id, COUNT(*) AS n FROM users u JOIN orders o ON o.user_id = u.id WHERE o.total > 100.50 GROUP BY u.id HAVING n >= 2;",
  html: '<!DOCTYPE html>\n<html lang="zh">\n  <body>\n    <div class="a b" data-x=\'1\'>&amp; &lt;tag&gt;</div>\n  </body>\n</html>\n',
  shell: '#!/usr/bin/env bash\nset -euo pipefail\nfor f in "$@"; do\n  [[ -f "$f" ]] && wc -l "$f" | awk \'{print $1}\'\ndone 2>/dev/null\n',
};

const fixed = [
  '', ' ', '  ', '   ', 'a', ' a', 'a ', 'hello world', 'Hello,  World!!  ', '\t', '\n', '\r\n', '\t\t\n\n  \n',
  ...Object.values(code),
  '你好，世界！这是一个测试。', '日本語のテキストとカタカナ、ひらがな。', '한국어 문장입니다.', 'Ｈｅｌｌｏ　ＡＢＣ　１２３', '——……——', '———', '…',
  'Здравствуй, мир', 'Γειά σου Κόσμε', 'مرحبا بالعالم', 'नमस्ते दुनिया', 'שלום עולם', 'ไทย ภาษา',
  '😀', '😀😃😄', '👨‍👩‍👧‍👦 family', '👍🏽', '🇨🇳🇺🇸', '❤️', 'a😀b', '🐉',
  'e\u0301', 'a\u0300\u0301\u0302\u0303', 'Z\u0335\u0321\u0322a\u0337\u0328l\u0334g\u0336o', '\u0301', 'n\u0303o\u0308',
  ...Array.from({ length: 32 }, (_, i) => `x${String.fromCharCode(i)}y`), '\x00', '\x00\x00', '\x7f', 'a\x00b', '\x1b[31mred\x1b[0m',
  '<|im_end|>', '<|im_start|>user\nhi<|im_end|>', '<s>', '</s>', '<unk>', '  <s>at', '<s><s>', '[UNUSED_TOKEN_141]', '[UNUSED_TOKEN_0][UNUSED_TOKEN_146]',
  '<|plugin|>', '<|action_start|><|interpreter|>', '<0x41>', '\u2581', 'a\u2581b', '\uFFFD', '\uFEFFbom', '\u200b\u200c\u200d', '\u3000',
  '\uFFFF\uFFFE', '\u{10FFFF}', '\u{E000}', '\u{1D400}\u{1D401}', '\u{20000}\u{2A6D6}', '1234567890', '3.14159e-10', '0x7fffffff',
];

const longInputs = [
  Object.values(code).join('\n').repeat(60), // ~50 KB of code
  'a'.repeat(40000), // one run without spaces
  'ab'.repeat(20000),
  ' '.repeat(20000),
  '\n'.repeat(5000) + '\t'.repeat(5000),
  '中文'.repeat(10000),
  '😀'.repeat(5000),
  Array.from({ length: 30000 }, (_, i) => String.fromCharCode(97 + ((i * 7919) % 26))).join(''), // no spaces, varied
];

// Random strings mixing the alphabets above; ranges are [first, last] code points.
const alphabets = [
  [[0x61, 0x7a], [0x41, 0x5a], [0x30, 0x39]],
  [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  [[0x20, 0x20], [0x09, 0x0a], [0x0d, 0x0d]],
  [[0x00, 0x1f], [0x7f, 0x7f]],
  [[0x4e00, 0x9fff]],
  [[0x3040, 0x30ff], [0xac00, 0xd7a3]],
  [[0x0400, 0x04ff], [0x0370, 0x03ff], [0x0600, 0x06ff], [0x0900, 0x097f]],
  [[0x0300, 0x036f]],
  [[0x1f300, 0x1faff], [0x2600, 0x27bf], [0xfe0f, 0xfe0f], [0x200d, 0x200d], [0x1f3fb, 0x1f3ff]],
  [[0xff01, 0xff5e], [0x2014, 0x2014], [0x2026, 0x2026], [0x3000, 0x3002]],
  [[0x80, 0x2fff], [0xe000, 0xfffd], [0x10000, 0x10ffff]], // anything, mostly byte fallback
];
const words = ['<|im_end|>', '<s>', '</s>', '[UNUSED_TOKEN_141]', '    ', 'function', '=>', '::', 'self.', '——', '……', '\r\n', '  '];

function randomString(rand) {
  const parts = [];
  const n = 1 + Math.floor(rand() * 60);
  const favourite = alphabets[Math.floor(rand() * alphabets.length)];
  for (let i = 0; i < n; i++) {
    if (rand() < 0.06) {
      parts.push(words[Math.floor(rand() * words.length)]);
      continue;
    }
    const alphabet = rand() < 0.6 ? favourite : alphabets[Math.floor(rand() * alphabets.length)];
    const [lo, hi] = alphabet[Math.floor(rand() * alphabet.length)];
    const cp = lo + Math.floor(rand() * (hi - lo + 1));
    parts.push(String.fromCodePoint(cp >= 0xd800 && cp <= 0xdfff ? 0xfffd : cp));
  }
  return parts.join('');
}

const random = (() => {
  const rand = rng(20240611);
  return Array.from({ length: 3000 }, () => randomString(rand));
})();

const ours = loadTokenizer(modelPath);
const sp = await reference(modelPath);

function assertParity(tok, ref, texts, label) {
  let checked = 0;
  for (const text of texts) {
    const expected = ref.encodeIds(text);
    const got = tok.encode(text);
    if (got.length !== expected.length || got.some((id, i) => id !== expected[i])) {
      assert.deepEqual(got, expected, `${label}: ids differ for ${JSON.stringify(text.slice(0, 200))}`);
    }
    checked++;
  }
  return checked;
}

test('the real tokenizer.model loads with the InternLM2 vocabulary size', () => {
  assert.equal(ours.vocabSize, 92544);
});

test('ids match sentencepiece on a fixed corpus (code, CJK, emoji, marks, controls, specials as text)', () => {
  assert.equal(assertParity(ours, sp, fixed, 'fixed'), fixed.length);
});

test('ids match sentencepiece on long inputs', () => {
  assertParity(ours, sp, longInputs, 'long');
});

test('ids match sentencepiece on 3000 seeded random strings', () => {
  assert.equal(assertParity(ours, sp, random, 'random'), 3000);
});

test('known ids: no dummy prefix, spaces as U+2581, byte fallback, "\\x00" is piece 354', () => {
  assert.deepEqual(ours.encode('hello world'), [15115, 2028]);
  assert.deepEqual(ours.encode(' a\x00b'), [395, 354, 260]);
  assert.deepEqual(ours.encode('😀'), [0xf0, 0x9f, 0x98, 0x80].map(byteId));
  assert.deepEqual(ours.encode(''), []);
});

test('lone surrogates are encoded as U+FFFD', () => {
  // N-API converts lone surrogates to U+FFFD; sentencepiece-js's own UTF-16 conversion pairs a
  // lone surrogate with the next code unit instead, so it is given the well-formed string.
  const texts = ['\uD800', '\uDC00', 'a\uD800b', 'a\uDC00b', '\uD83D', '😀\uD83D', '\uDE00😀', '\uDBFF\uDBFF', 'x\uD800\uDC00\uDC00', '\uD800 \uDFFF '];
  for (const text of texts) {
    const wellFormed = text.toWellFormed();
    assert.deepEqual(ours.encode(text), ours.encode(wellFormed));
    assert.deepEqual(ours.encode(text), sp.encodeIds(wellFormed), JSON.stringify(text));
  }
  assert.deepEqual(ours.encode('\uD800'), [65746]); // the piece "\uFFFD"
});

test('decode(encode(s)) gives s back for valid strings', () => {
  const texts = [...fixed, ...longInputs, ...random].filter((t) => !t.includes('\u2581'));
  for (const text of texts) assert.equal(ours.decode(ours.encode(text)), text);
  // A literal U+2581 is SentencePiece's space symbol, so it comes back as a space.
  assert.equal(ours.decode(ours.encode('a\u2581b')), 'a b');
});

test('decode: control and unknown tokens are empty, byte tokens are raw bytes', () => {
  assert.equal(ours.decode([1, 15115, 2]), 'hello');
  assert.equal(ours.decode([0]), '');
  assert.equal(ours.decode([0xe4, 0xbd, 0xa0].map(byteId)), '你');
  assert.equal(ours.decode([0xe4, 0xbd].map(byteId)), '\uFFFD'); // incomplete UTF-8
  assert.equal(ours.decode([92538]), '[UNUSED_TOKEN_141]'); // user-defined in the raw model
});

test('decode rejects ids that are not token ids', () => {
  assert.throws(() => ours.decode([92544]), /token id 92544 is outside the vocabulary/);
  assert.throws(() => ours.decode([-1]), /token id -1 is outside the vocabulary/);
  assert.throws(() => ours.decode([1.5]), /not an integer token id/);
  assert.throws(() => ours.decode(['1']), /not an integer token id/);
});

test('streaming decode releases a character split across byte tokens once, whole', () => {
  const native = ours;
  const emoji = ours.encode('😀');
  assert.deepEqual(native.decodeStream(emoji), ['', '', '', '😀', '']);

  const text = 'Hi 😀 👨‍👩‍👧 你好 e\u0301 \u{20000}!';
  const chunks = native.decodeStream(ours.encode(text));
  assert.equal(chunks.join(''), text);
  for (const c of chunks) assert.ok(!c.includes('\uFFFD'), `chunk ${JSON.stringify(c)} holds a broken character`);

  // An impossible byte is replaced at once; a sequence cut off at the end only by the flush.
  assert.deepEqual(native.decodeStream([byteId(0xf0), byteId(0x9f), ...ours.encode('a')]), ['', '', '\uFFFDa', '']);
  assert.deepEqual(native.decodeStream([byteId(0xff), byteId(0xe4), byteId(0xbd)]), ['\uFFFD', '', '', '\uFFFD']);
});

test('special=true splits control-token text; special=false keeps it plain text (bare tokenizer.model)', () => {
  assert.deepEqual(ours.encode('<s>x', { special: true }), [1, 274]);
  assert.deepEqual(ours.encode('<s>x'), sp.encodeIds('<s>x'));
  assert.deepEqual(ours.encode('a</s>', { special: true }), [...ours.encode('a'), 2]);
  // The raw model has no chat tokens: <|im_start|> is text either way.
  assert.deepEqual(ours.encode('<|im_start|>', { special: true }), sp.encodeIds('<|im_start|>'));
});

test('HF directory: added chat tokens are split out only with special=true', () => {
  const dir = mkdtempSync(path.join(tmp, 'hf-'));
  symlinkSync(modelPath, path.join(dir, 'tokenizer.model'));
  symlinkSync(path.join(fixtures, 'tokenizer_config.json'), path.join(dir, 'tokenizer_config.json'));
  const hf = loadTokenizer(dir);
  assert.equal(hf.vocabSize, 92544);

  const turn = '<|im_start|>user\nhi<|im_end|>';
  assert.deepEqual(hf.encode(turn, { special: true }), [IM_START, ...sp.encodeIds('user\nhi'), IM_END]);
  assert.deepEqual(hf.encode('<|im_end|><|im_start|>', { special: true }), [IM_END, IM_START]);
  assert.deepEqual(hf.encode(' <|im_end|>\n', { special: true }), [...sp.encodeIds(' '), IM_END, ...sp.encodeIds('\n')]);
  assert.deepEqual(hf.encode('<|im_end', { special: true }), sp.encodeIds('<|im_end'));
  const chat = '<s><|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n写一个函数<|im_end|>\n<|im_start|>assistant\n';
  const ids = hf.encode(chat, { special: true });
  assert.deepEqual(ids.slice(0, 2), [1, IM_START]);
  assert.deepEqual(ids.slice(-4), [IM_START, ...sp.encodeIds('assistant\n')]);
  assert.equal(hf.decode(ids), chat.replace(/<s>|<\|im_start\|>|<\|im_end\|>/g, ''));

  // User text never becomes a control token, not even the raw model's [UNUSED_TOKEN_141], which
  // the HF config turned into <|plugin|>.
  const controls = new Set([0, 1, 2, 92538, 92539, 92540, 92541, 92542, 92543]);
  for (const text of [...fixed, ...random.slice(0, 500)]) {
    const plain = hf.encode(text);
    assert.ok(!plain.some((id) => controls.has(id)), `control id in ${JSON.stringify(text)}`);
    if (!text.includes('[UNUSED_TOKEN_14') && !text.includes('\u2581')) assert.equal(hf.decode(plain), text);
  }
  assert.deepEqual(hf.encode(turn), sp.encodeIds(turn));
});

// ---- Generated models, for what InternLM2's model does not exercise: UNUSED pieces (merged, then
// resegmented), no byte fallback (runs of unknown characters), the dummy prefix and whitespace
// squeezing, score ties.

function varint(value) {
  let v = BigInt.asUintN(64, BigInt(value));
  const out = [];
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? byte | 0x80 : byte);
  } while (v);
  return Buffer.from(out);
}
const tag = (field, wire) => varint((field << 3) | wire);
const pbInt = (field, v) => Buffer.concat([tag(field, 0), varint(v)]);
const pbBytes = (field, b) => Buffer.concat([tag(field, 2), varint(b.length), b]);
const pbString = (field, s) => pbBytes(field, Buffer.from(s, 'utf8'));
function pbFloat(field, x) {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x);
  return Buffer.concat([tag(field, 5), b]);
}

const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;

function modelProto({ pieces, byteFallback = false, bytePieces = byteFallback, modelType = 2, dummyPrefix = false, squeeze = false, escape = true, charsmap = null }) {
  const all = [
    { piece: '<unk>', score: 0, type: UNKNOWN },
    { piece: '<s>', score: 0, type: CONTROL },
    { piece: '</s>', score: 0, type: CONTROL },
    ...(bytePieces ? Array.from({ length: 256 }, (_, b) => ({ piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, score: 0, type: BYTE })) : []),
    ...pieces,
  ];
  const pieceMessages = all.map((p) => pbBytes(1, Buffer.concat([pbString(1, p.piece), pbFloat(2, p.score), ...(p.type === NORMAL ? [] : [pbInt(3, p.type)])])));
  const trainer = Buffer.concat([pbInt(3, modelType), pbInt(4, all.length), pbInt(35, byteFallback ? 1 : 0), pbInt(40, 0), pbInt(41, 1), pbInt(42, 2), pbInt(43, -1)]);
  const normalizer = Buffer.concat([
    pbString(1, charsmap ? 'nmt_nfkc' : 'identity'),
    ...(charsmap ? [pbBytes(2, charsmap)] : []),
    pbInt(3, dummyPrefix ? 1 : 0), pbInt(4, squeeze ? 1 : 0), pbInt(5, escape ? 1 : 0),
  ]);
  return Buffer.concat([...pieceMessages, pbBytes(2, trainer), pbBytes(3, normalizer)]);
}

// A random vocabulary over a small alphabet, so merges, ties, UNUSED and user-defined pieces
// interact often. 'é' and 'x' are left out (unknown).
function randomVocab(rand) {
  const alphabet = ['a', 'b', 'c', 'd', '\u2581', '中'];
  const pieces = alphabet.map((c, i) => ({ piece: c, score: -100 - i, type: NORMAL }));
  const seen = new Set(alphabet);
  while (pieces.length < 90) {
    const len = 2 + Math.floor(rand() * 4);
    let s = '';
    for (let i = 0; i < len; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
    if (seen.has(s)) continue;
    seen.add(s);
    const r = rand();
    const type = r < 0.65 ? NORMAL : r < 0.9 ? UNUSED : USER_DEFINED;
    pieces.push({ piece: s, score: -Math.floor(rand() * 12), type });
  }
  return pieces;
}

function randomSmallText(rand) {
  const chars = ['a', 'b', 'c', 'd', ' ', ' ', '  ', '中', 'é', 'x', 'ab', 'cd'];
  let s = '';
  const n = Math.floor(rand() * 30);
  for (let i = 0; i < n; i++) s += chars[Math.floor(rand() * chars.length)];
  return s;
}

test('generated BPE models: ids match sentencepiece across flags, UNUSED and user-defined pieces', async () => {
  const configs = [
    { byteFallback: true },
    { byteFallback: false },
    { byteFallback: false, dummyPrefix: true, squeeze: true },
    { byteFallback: true, dummyPrefix: true },
    { byteFallback: true, squeeze: true },
    { byteFallback: false, escape: false },
  ];
  let compared = 0;
  for (const [i, config] of configs.entries()) {
    for (let seed = 1; seed <= 4; seed++) {
      const rand = rng(1000 * i + seed);
      const file = path.join(tmp, `gen-${i}-${seed}.model`);
      writeFileSync(file, modelProto({ ...config, pieces: randomVocab(rand) }));
      const tok = loadTokenizer(file);
      const ref = await reference(file);
      const texts = ['', ' ', '   ', ' a ', 'abcd', 'xxx', 'éé x é', ...Array.from({ length: 250 }, () => randomSmallText(rand))];
      compared += assertParity(tok, ref, texts, `config ${JSON.stringify(config)} seed ${seed}`);
    }
  }
  assert.equal(compared, 6 * 4 * 257);
});

test('bad tokenizer files fail with a clear message', () => {
  const write = (name, bytes) => {
    const file = path.join(tmp, name);
    writeFileSync(file, bytes);
    return file;
  };
  const real = readFileSync(modelPath);
  assert.throws(() => loadTokenizer(write('empty.model', Buffer.alloc(0))), /empty/);
  assert.throws(() => loadTokenizer(write('trunc.model', real.subarray(0, 1000))), /not a valid SentencePiece model: .*(truncated|runs past the end)/);
  assert.throws(() => loadTokenizer(write('trunc2.model', real.subarray(0, real.length - 7))), /not a valid SentencePiece model/);
  assert.throws(() => loadTokenizer(write('text.model', Buffer.from('this is not a model\n'))), /not a valid SentencePiece model/);
  assert.throws(() => loadTokenizer(write('unigram.model', modelProto({ pieces: [{ piece: 'a', score: 0, type: NORMAL }], modelType: 1 }))), /Unigram model; only BPE/);
  assert.throws(() => loadTokenizer(write('nfkc.model', modelProto({ pieces: [], charsmap: Buffer.from([1, 2, 3, 4, 5]) }))), /normalizer 'nmt_nfkc'/);
  assert.throws(() => loadTokenizer(write('nobytes.model', modelProto({ pieces: [], byteFallback: true, bytePieces: false }))), /byte_fallback is on but it has 0 byte pieces/);
  // A length prefix claiming far more than the file holds must not allocate it.
  assert.throws(() => loadTokenizer(write('huge.model', Buffer.concat([tag(1, 2), varint(2 ** 40)]))), /runs past the end/);

  const rand = rng(7);
  for (let i = 0; i < 40; i++) {
    const bytes = Buffer.from(Array.from({ length: 64 + Math.floor(rand() * 4096) }, () => Math.floor(rand() * 256)));
    assert.throws(() => loadTokenizer(write(`random-${i}.model`, bytes)), /tokenizer\.model/);
  }
  // Corrupted copies of the real file (cut short, or whole) either load or throw; they never
  // crash the process.
  for (let i = 0; i < 30; i++) {
    const bytes = Buffer.from(i % 3 === 0 ? real : real.subarray(0, 4096 + Math.floor(rand() * 200000)));
    for (let k = 0; k < 8; k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
    try {
      loadTokenizer(write(`corrupt-${i}.model`, bytes)).encode('hello world 你好');
    } catch (e) {
      assert.match(e.message, /tokenizer\.model|SentencePiece/);
    }
  }
});
