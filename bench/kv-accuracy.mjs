// KV cache types at long lengths: f16 / q8 / q4 against the f32 cache on the same model and tokens.
//
//   npm run bench:kv [-- --shapes mid,hd128] [-- --model PATH] [-- --lengths 1k,4k,16k]
//       [-- --types f16,q8,q4] [-- --positions 32] [-- --continuation 32] [-- --text workspace|bundled|random]
//       [-- --threads N] [-- --out FILE.json] [-- --record] [-- --print-only]
//
// Per length L and KV type, on one session per type:
//   1. greedy generation of `continuation` tokens after the L-token prompt (one-pass prefill, so
//      past a model's trained context every type uses the same base'(L)), stop tokens ignored;
//   2. teacher forcing: the cache cut back to L and the f32 cache's greedy continuation evaluated;
//   3. sampled prompt positions p (evenly spaced, the last is L - 1), latest first: the cache cut
//      back to p and token p evaluated again, giving its full distribution over the one-pass cache.
// Reported against f32: max and mean |Δ log-probability| over the f32 top-20 ids at the sampled
// positions; top-1 agreement at the sampled and teacher-forced positions; and how many of the
// greedy tokens match f32's before the first difference.
//
// Models: generated random-weight shapes (test/fixtures/make-model.mjs; --shapes), or a real model
// file with --model (then the prompt is real text, which is what makes its numbers meaningful).
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeModel } from '../test/fixtures/make-model.mjs';
import { randomTokens } from '../test/reference/llamacpp.mjs';
import { formatLength, parseLength } from './needle/needle.mjs';
import { loadSource } from './needle/sources.mjs';

const { Model } = createRequire(import.meta.url)('../dist/engine.js');

// Generated shapes (random weights). mid: the fixtures' mid preset (head_dim 64, 4:1 GQA);
// hd128: InternLM2.5's head_dim 128 and 4:1 GQA at a width 2 cores can run to 16K.
const SHAPES = {
  mid: { preset: 'mid' },
  hd128: { preset: 'mid', dim: 512, nHeads: 4, nKvHeads: 1, nLayers: 4, ffnDim: 1408 },
};

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    shapes: { type: 'string', default: 'mid,hd128' },
    lengths: { type: 'string', default: '1k,4k,16k' },
    types: { type: 'string', default: 'f16,q8,q4' },
    positions: { type: 'string', default: '32' },
    continuation: { type: 'string', default: '32' },
    text: { type: 'string', default: 'workspace' },
    threads: { type: 'string' },
    out: { type: 'string' },
    record: { type: 'boolean', default: false },
    results: { type: 'string' },
    'print-only': { type: 'boolean', default: false },
  },
});
const LENGTHS = args.lengths.split(',').map(parseLength);
const TYPES = args.types.split(',');
const POSITIONS = Number(args.positions);
const CONTINUATION = Number(args.continuation);
const THREADS = args.threads ? Number(args.threads) : undefined;
const TOP = 20;
const RESULTS = args.results ?? path.join(path.dirname(fileURLToPath(import.meta.url)), 'RESULTS.md');
for (const t of TYPES) if (!['f16', 'q8', 'q4'].includes(t)) throw new Error(`--types: unknown KV type ${t}`);

const log = (line) => process.stderr.write(`${line}\n`);

/** The prompt: BOS and L - 1 tokens of text (or random ids). */
function promptTokens(model, length) {
  if (args.text === 'random') return [model.info.bosId, ...randomTokens(length - 1, model.info.vocabSize, 1)];
  const source = loadSource(args.text);
  const ids = [model.info.bosId];
  for (let i = 0; ids.length < length; i++) {
    const more = model.tokenize(source.text(i));
    for (let j = 0; j < more.length && ids.length < length; j++) ids.push(more[j]);
  }
  return ids;
}

const sampledPositions = (length) => Array.from({ length: POSITIONS }, (_, i) => Math.floor(((i + 1) * length) / POSITIONS) - 1);

/** Full distribution (Float64Array by id) from a top-K row that holds the whole vocabulary. */
function dense(row, vocab) {
  const out = new Float64Array(vocab).fill(-Infinity);
  for (const [id, lp] of row) out[id] = lp;
  return out;
}

/** Runs steps 1–3 of the header on one KV type. topK: the row width kept (vocab for compared types). */
async function measure(model, tokens, kvType, topK, teacher) {
  const L = tokens.length;
  const session = model.createSession({ contextLength: L + CONTINUATION + 1, kvType });
  try {
    const gen = await session.generate({ prompt: tokens, maxTokens: CONTINUATION, temperature: 0, stopTokens: [] });
    const ropeBase = session.ropeBase;
    session.truncate(L);
    const forced = teacher ?? gen.tokens;
    const forcedRows = (await session.evaluate(forced.slice(0, -1), { topK })).top;
    const rows = new Map();
    for (const p of [...sampledPositions(L)].reverse()) {
      session.truncate(p);
      rows.set(p, (await session.evaluate([tokens[p]], { topK })).top[0]);
    }
    return { greedy: gen.tokens, forcedRows, rows, ropeBase, prefillTokS: L / (gen.promptMs / 1000) };
  } finally {
    session.dispose();
  }
}

function compare(reference, other, vocab) {
  let max = 0;
  let sum = 0;
  let n = 0;
  let agree = 0;
  let total = 0;
  for (const [p, refRow] of reference.rows) {
    const lp = dense(other.rows.get(p), vocab);
    for (const [id, ref] of refRow.slice(0, TOP)) {
      const d = Math.abs(lp[id] - ref);
      max = Math.max(max, d);
      sum += d;
      n++;
    }
    const best = other.rows.get(p)[0][0];
    agree += best === refRow[0][0] ? 1 : 0;
    total++;
  }
  // Teacher-forced continuation: f32's greedy tokens are its own argmax at each step.
  other.forcedRows.forEach((row, i) => {
    agree += row[0][0] === reference.greedy[i + 1] ? 1 : 0;
    total++;
  });
  let match = 0;
  while (match < reference.greedy.length && other.greedy[match] === reference.greedy[match]) match++;
  return { maxDelta: max, meanDelta: sum / n, top1Agree: agree / total, top1Positions: total, greedyMatch: match };
}

async function runModel(file, label) {
  const model = await Model.load(file, { ...(THREADS && { threads: THREADS }) });
  const info = model.info;
  const rows = [];
  try {
    for (const length of LENGTHS) {
      const tokens = promptTokens(model, length);
      const started = performance.now();
      const reference = await measure(model, tokens, 'f32', TOP);
      log(`${label} ${formatLength(length)} f32: prefill ${reference.prefillTokS.toFixed(0)} tok/s, ${((performance.now() - started) / 1000).toFixed(1)} s`);
      for (const kvType of TYPES) {
        const t0 = performance.now();
        const other = await measure(model, tokens, kvType, info.vocabSize, reference.greedy);
        if (other.ropeBase !== reference.ropeBase) throw new Error(`RoPE base differs between f32 and ${kvType}`);
        const row = { model: label, length, kvType, ropeBase: other.ropeBase, ...compare(reference, other, info.vocabSize),
          prefillTokS: other.prefillTokS, f32PrefillTokS: reference.prefillTokS };
        rows.push(row);
        log(`${label} ${formatLength(length)} ${kvType}: max ${row.maxDelta.toExponential(2)}, mean ${row.meanDelta.toExponential(2)},`
          + ` top-1 ${(100 * row.top1Agree).toFixed(1)}%, greedy ${row.greedyMatch}/${CONTINUATION},`
          + ` prefill ${row.prefillTokS.toFixed(0)} tok/s, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
    }
  } finally {
    model.dispose();
  }
  const shape = `dim ${info.embeddingLength}, ${info.blockCount} layers, ${info.headCount} heads / ${info.headCountKv} KV (head_dim ${info.headDim}), ffn ${info.feedForwardLength}, vocab ${info.vocabSize}`;
  return { label, shape, weights: Object.keys(info.weightTypes).join('/'), threads: info.threads, contextLength: info.contextLength, rows };
}

const started = performance.now();
const models = [];
const tmp = args.model ? undefined : mkdtempSync(path.join(os.tmpdir(), 'internlm-kv-accuracy-'));
try {
  if (args.model) {
    models.push(await runModel(args.model, path.basename(args.model)));
  } else {
    for (const name of args.shapes.split(',')) {
      if (!SHAPES[name]) throw new Error(`--shapes: unknown shape ${name} (${Object.keys(SHAPES).join(', ')})`);
      log(`generating the ${name} model…`);
      const { paths } = await makeModel({ dir: path.join(tmp, name), formats: ['gguf-f16'], ropeScaling: null, ...SHAPES[name] });
      models.push(await runModel(paths['gguf-f16'], name));
    }
  }
} finally {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}
const totalS = (performance.now() - started) / 1000;

const fmt = (x) => (x === 0 ? '0' : x < 1e-2 ? x.toExponential(1) : x.toFixed(3));
const table = [
  '| model | length | KV | max \\|Δlogprob\\| | mean \\|Δlogprob\\| | top-1 agreement | greedy match | prefill tok/s (f32) |',
  '|---|---|---|---|---|---|---|---|',
  ...models.flatMap((m) => m.rows.map((r) => `| ${m.label} | ${formatLength(r.length)} | ${r.kvType} | ${fmt(r.maxDelta)} | ${fmt(r.meanDelta)} | `
    + `${(100 * r.top1Agree).toFixed(1)}% | ${r.greedyMatch}/${CONTINUATION} | ${r.prefillTokS.toFixed(0)} (${r.f32PrefillTokS.toFixed(0)}) |`)),
].join('\n');
process.stdout.write(`${table}\n`);

if (args.out) writeFileSync(args.out, `${JSON.stringify({ date: new Date().toISOString(), settings: args, models, totalS }, null, 2)}\n`);

if (args.record && !args['print-only']) {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'))?.split(':')[1]?.trim() ?? os.cpus()[0]?.model;
  const text = args.text === 'random' ? 'random token ids' : args.text === 'workspace' ? "this repository's text" : `text from ${args.text}`;
  const lines = [
    '',
    `## ${new Date().toISOString().slice(0, 10)} — KV cache types at long lengths (bench:kv), CPU`,
    '',
    `\`npm run bench:kv\` (bench/kv-accuracy.mjs): each KV type against the f32 cache on the same model and prompt (${text}, `
      + `BOS first). max / mean |Δ log-probability| over the f32 cache's top-20 ids at ${POSITIONS} evenly spaced prompt positions `
      + `(the last is L − 1; each re-evaluated as one decode step over the one-pass cache); top-1 agreement at those positions and at `
      + `${CONTINUATION - 1} teacher-forced steps of f32's greedy continuation; greedy match: tokens of the type's own greedy `
      + `continuation (${CONTINUATION}, stop tokens ignored) equal to f32's before the first difference. Prefill tok/s: the one-pass `
      + `prompt of that session (f32's in brackets).`,
    '',
    ...models.map((m) => `- ${m.label}: ${m.shape}, ${m.weights} weights, RoPE scaling off${args.model ? '' : ', random weights'}.`),
    '',
    `${cpu}, ${os.cpus().length} logical CPUs shared with other work (load average ${os.loadavg()[0].toFixed(2)} at the end), `
      + `${models[0]?.threads} threads, total ${(totalS / 60).toFixed(1)} min.`,
    '',
    table,
    '',
  ];
  if (!args.model) {
    lines.push('Random weights make these numbers a plumbing check of the quantized caches at length, not a quality measure: '
      + 'a random model has none of a trained one\'s structure (peaked attention, outlier channels in K), so they do not '
      + 'predict real-weight errors in either direction, and its flat next-token distributions (small top-1 margins) make '
      + 'greedy runs part at the first small perturbation. On real InternLM2.5 weights REFERENCE.md expects int8 KV to be '
      + 'close to lossless and int4 to cost up to ~3 GSM8K points; `npm run bench:kv -- --model internlm2_5-7b-chat.gguf` '
      + 'measures that model the same way. Prefill tok/s is only indicative: the machine is shared.', '');
  }
  appendFileSync(RESULTS, lines.join('\n'));
  log(`appended to ${RESULTS}`);
}
