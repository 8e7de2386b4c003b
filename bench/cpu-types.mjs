// CPU speed per weight type against llama.cpp (node-llama-cpp's prebuilt CPU build) on the same
// files with the same thread counts: the `mid` test model as F16, and quantized by our
// `quantize` to Q4_K_M and Q8_0; prompt 256 tokens, greedy decode 64, threads 1 and 2.
//
// Both run in this process the way an application drives them: ours through the engine API's
// generate (prefill = the prompt up to its first token's logits, decode = 64 more tokens, stop
// tokens ignored), llama.cpp through node-llama-cpp's sequence.evaluate (test/reference).
//
// The machine is shared, so each (type, threads) cell runs REPS rounds that alternate ours and
// llama.cpp (who goes first alternates too) and reports medians; the spread column, (max - min) /
// median over the rounds, says how noisy the cell was. Appends a dated section to bench/RESULTS.md.
//
//   npm run bench:cpu [-- --reps N] [-- --types Q4_K_M,Q8_0,F16] [-- --threads 1,2] [-- --print-only]
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { makeModel } from '../test/fixtures/make-model.mjs';
import { randomTokens, referenceBench } from '../test/reference/llamacpp.mjs';

const { Model, quantizeModel } = createRequire(import.meta.url)('../dist/engine.js');

const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    types: { type: 'string', default: 'Q4_K_M,Q8_0,F16' },
    threads: { type: 'string', default: '1,2' },
    'print-only': { type: 'boolean', default: false },  // exploratory runs: nothing appended
  },
});
const REPS = Number(args.reps);
const TYPES = args.types.split(',');
const THREADS = args.threads.split(',').map(Number);
const PROMPT_TOKENS = 256;
const GEN_TOKENS = 64;
const RESULTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'RESULTS.md');

function cpuModel() {
  const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
  return line?.split(':')[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const spread = (xs) => (Math.max(...xs) - Math.min(...xs)) / median(xs);
const pct = (x) => `${Math.round(100 * x)}%`;

// The model is loaded (and its weights paged in) before timing, as llama.cpp's loadModel does.
async function ours(file, threads) {
  const model = await Model.load(file, { threads, device: 'cpu' });
  try {
    const session = model.createSession({ contextLength: PROMPT_TOKENS + GEN_TOKENS + 1 });
    try {
      const prompt = randomTokens(PROMPT_TOKENS, model.info.vocabSize, 1);
      // GEN_TOKENS + 1 sampled tokens: the first comes from the prompt's logits, each other one
      // costs a forward pass, as in llama.cpp's count.
      const r = await session.generate({ prompt, maxTokens: GEN_TOKENS + 1, temperature: 0, stopTokens: [] });
      if (r.tokens.length !== GEN_TOKENS + 1) throw new Error(`generated ${r.tokens.length} tokens, expected ${GEN_TOKENS + 1}`);
      return { prefill_tok_s: PROMPT_TOKENS / (r.promptMs / 1000), decode_tok_s: GEN_TOKENS / (r.generateMs / 1000) };
    } finally {
      session.dispose();
    }
  } finally {
    model.dispose();
  }
}

function theirs(file, threads) {
  return referenceBench(file, { promptTokens: PROMPT_TOKENS, genTokens: GEN_TOKENS, threads });
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'internlm-bench-types-'));
try {
  process.stderr.write('generating the mid model (F16) and quantizing it…\n');
  const { paths, config } = await makeModel({ dir, preset: 'mid', formats: ['gguf-f16'] });
  const files = { F16: paths['gguf-f16'] };
  for (const type of TYPES.filter((t) => t !== 'F16')) {
    files[type] = path.join(dir, `mid-${type}.gguf`);
    await quantizeModel(files.F16, files[type], type);
  }
  const loadBefore = os.loadavg()[0];
  const rows = [];
  for (const type of TYPES) {
    for (const threads of THREADS) {
      const runs = { ours: [], theirs: [] };
      for (let rep = 0; rep < REPS; rep++) {
        process.stderr.write(`${type}, ${threads} thread(s), round ${rep + 1}/${REPS}\n`);
        const order = rep % 2 ? ['theirs', 'ours'] : ['ours', 'theirs'];
        for (const who of order) runs[who].push(await (who === 'ours' ? ours : theirs)(files[type], threads));
      }
      const stat = (who, key) => runs[who].map((r) => r[key]);
      rows.push({
        type, threads,
        prefill: { ours: median(stat('ours', 'prefill_tok_s')), theirs: median(stat('theirs', 'prefill_tok_s')),
          spread: Math.max(spread(stat('ours', 'prefill_tok_s')), spread(stat('theirs', 'prefill_tok_s'))) },
        decode: { ours: median(stat('ours', 'decode_tok_s')), theirs: median(stat('theirs', 'decode_tok_s')),
          spread: Math.max(spread(stat('ours', 'decode_tok_s')), spread(stat('theirs', 'decode_tok_s'))) },
      });
    }
  }

  const f = (x) => x.toFixed(1);
  const r = (a, b) => `${(a / b).toFixed(2)}x`;
  const table = [
    '| type | threads | prefill ours | prefill llama.cpp | ratio | spread | decode ours | decode llama.cpp | ratio | spread |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(({ type, threads, prefill: p, decode: d }) =>
      `| ${type} | ${threads} | ${f(p.ours)} | ${f(p.theirs)} | ${r(p.ours, p.theirs)} | ${pct(p.spread)} ` +
      `| ${f(d.ours)} | ${f(d.theirs)} | ${r(d.ours, d.theirs)} | ${pct(d.spread)} |`),
  ].join('\n');
  const model = `mid test model (dim ${config.dim}, ${config.nLayers} layers, ${config.nHeads} heads / ${config.nKvHeads} KV, ` +
    `ffn ${config.ffnDim}, vocab ${config.vocabSize}); Q4_K_M and Q8_0 written by our quantize from the F16 file`;
  const section = [
    `## ${new Date().toISOString().slice(0, 10)} — CPU by weight type (bench:cpu), ${cpuModel()}`,
    '',
    `${model}; prompt ${PROMPT_TOKENS} tokens, greedy decode ${GEN_TOKENS} tokens, tok/s. Median of ${REPS} rounds per cell, ` +
    `ours and llama.cpp alternating; spread = (max - min) / median over the rounds, the larger of the two sides. ` +
    `${os.cpus().length} logical CPUs, load average ${loadBefore.toFixed(2)} before and ${os.loadavg()[0].toFixed(2)} after, ` +
    `Node ${process.version}, llama.cpp via node-llama-cpp 3.21.1 (prebuilt CPU build, its default context settings).`,
    '',
    table,
    '',
  ].join('\n');
  process.stdout.write(`${table}\n`);
  if (!args['print-only']) {
    appendFileSync(RESULTS, `\n${section}`);
    process.stderr.write(`appended to ${RESULTS}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
