// Tokenizer throughput: our native encoder vs Google's sentencepiece (WebAssembly build in
// @agnai/sentencepiece-js) on 1 MB of mixed text with the real InternLM2 tokenizer.model.
// Run after `npm run build`: node bench/tokenize.mjs [path/to/tokenizer.model]
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { loadTokenizer } = require(path.join(root, 'dist', 'engine.js'));
const { SentencePieceProcessor } = require('@agnai/sentencepiece-js');

const modelPath = path.resolve(process.argv[2] ?? path.join(root, '..', 'shared', 'fixtures', 'internlm2', 'tokenizer.model'));

// Mixed text: code, prose, CJK, emoji and symbols, in the proportions of a typical workspace prompt.
const samples = [
  'export function debounce(fn, ms) {\n  let t;\n  return (...args) => {\n    clearTimeout(t);\n    t = setTimeout(() => fn(...args), ms);\n  };\n}\n',
  'def load(path: str) -> dict:\n    with open(path, encoding="utf-8") as f:\n        return json.load(f)  # may raise ValueError\n',
  'for (size_t i = 0; i < n; ++i) {\n\tacc += a[i] * b[i];\n}\nstd::printf("%.3f\\n", acc);\n',
  'The quick brown fox jumps over the lazy dog. Tokenizers split text into pieces the model was trained on, ',
  '大语言模型的分词器把文本切分为子词单元。书生·浦语支持百万字的上下文。',
  'Emoji 😀👍🏽🇨🇳 and symbols ∑∫√≠ — “quotes” … ',
  '    if (!ok) { return Err(anyhow!("bad input: {}", s)); }\n',
];

function mixedText(bytes, seed) {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const parts = [];
  let size = 0;
  while (size < bytes) {
    const s = samples[Math.floor(rand() * samples.length)];
    parts.push(s);
    size += Buffer.byteLength(s);
  }
  return parts.join('');
}

function time(fn, runs) {
  fn(); // warm-up
  let best = Infinity;
  let out;
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    out = fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return { seconds: best, out };
}

const text = mixedText(1 << 20, 42);
const mb = Buffer.byteLength(text) / (1 << 20);

const ours = loadTokenizer(modelPath);
const sp = new SentencePieceProcessor();
await sp.load(modelPath);

const a = time(() => ours.encode(text), 5);
const b = time(() => sp.encodeIds(text), 3);
const same = a.out.length === b.out.length && a.out.every((id, i) => id === b.out[i]);

console.log(`input: ${mb.toFixed(2)} MB, ${a.out.length} tokens, ids identical: ${same}`);
console.log(`internlm native:   ${(mb / a.seconds).toFixed(2)} MB/s (${(a.seconds * 1000).toFixed(1)} ms)`);
console.log(`sentencepiece-js:  ${(mb / b.seconds).toFixed(2)} MB/s (${(b.seconds * 1000).toFixed(1)} ms)`);
console.log(`ratio (native / sentencepiece-js): ${(b.seconds / a.seconds).toFixed(2)}x`);
