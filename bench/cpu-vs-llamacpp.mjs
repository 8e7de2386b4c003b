// CPU speed against llama.cpp (node-llama-cpp's prebuilt CPU build) on the same files with the same
// thread counts: the `mid` test model in F16 and Q8_0, prompt 256 tokens, greedy decode 64.
// Each configuration runs REPEATS times, alternating the engines, and keeps each engine's best
// (a busy machine only ever slows a run down). Prints a table of tok/s and the ratio
// ours / llama.cpp and appends a dated section to bench/RESULTS.md. Run with `npm run bench`
// after `npm run build`.
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeModel } from '../test/fixtures/make-model.mjs';
import { referenceBench } from '../test/reference/llamacpp.mjs';
import { runCliJson } from '../test/support/cli.mjs';

const PROMPT_TOKENS = 256;
const GEN_TOKENS = 64;
const THREADS = [1, 2];
const TYPES = ['f16', 'q8_0'];
const REPEATS = 3;
const RESULTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'RESULTS.md');

function cpuModel() {
  const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
  return line?.split(':')[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
}

const fmt = (x) => x.toFixed(1);
const best = (runs) => ({
  prefill_tok_s: Math.max(...runs.map((r) => r.prefill_tok_s)),
  decode_tok_s: Math.max(...runs.map((r) => r.decode_tok_s)),
});
const ratio = (ours, theirs) => `${(ours / theirs).toFixed(2)}x`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'internlm-bench-'));
try {
  process.stderr.write('generating the mid model (F16, Q8_0)…\n');
  const { paths, config } = await makeModel({ dir, preset: 'mid', formats: TYPES.map((t) => `gguf-${t}`) });
  const rows = [];
  for (const type of TYPES) {
    const file = paths[`gguf-${type}`];
    for (const threads of THREADS) {
      process.stderr.write(`${type.toUpperCase()}, ${threads} thread(s)…\n`);
      const ours = [];
      const theirs = [];
      for (let i = 0; i < REPEATS; i++) {
        ours.push(await runCliJson(['bench', '--model', file, '--prompt-tokens', String(PROMPT_TOKENS),
          '--gen-tokens', String(GEN_TOKENS), '--threads', String(threads)], { timeoutMs: 600_000 }));
        theirs.push(await referenceBench(file, { promptTokens: PROMPT_TOKENS, genTokens: GEN_TOKENS, threads }));
      }
      rows.push({ type: type.toUpperCase(), threads, ours: best(ours), theirs: best(theirs) });
    }
  }

  const header = '| type | threads | prefill ours | prefill llama.cpp | ratio | decode ours | decode llama.cpp | ratio |';
  const table = [
    header,
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(({ type, threads, ours, theirs }) =>
      `| ${type} | ${threads} | ${fmt(ours.prefill_tok_s)} | ${fmt(theirs.prefill_tok_s)} | ${ratio(ours.prefill_tok_s, theirs.prefill_tok_s)} ` +
      `| ${fmt(ours.decode_tok_s)} | ${fmt(theirs.decode_tok_s)} | ${ratio(ours.decode_tok_s, theirs.decode_tok_s)} |`),
  ].join('\n');
  const model = `mid test model: dim ${config.dim}, ${config.nLayers} layers, ${config.nHeads} heads (${config.nKvHeads} KV), ` +
    `ffn ${config.ffnDim}, vocab ${config.vocabSize}`;
  const section = [
    `## ${new Date().toISOString().slice(0, 10)} — CPU, ${cpuModel()}`,
    '',
    `${model}; prompt ${PROMPT_TOKENS} tokens, greedy decode ${GEN_TOKENS} tokens (tok/s, best of ${REPEATS}). ` +
    `${os.cpus().length} logical CPUs, load average ${os.loadavg()[0].toFixed(2)} at the end, Node ${process.version}, ` +
    'llama.cpp via node-llama-cpp 3.21.1 (prebuilt CPU build, its default context settings).',
    '',
    table,
    '',
  ].join('\n');
  process.stdout.write(`${table}\n`);
  appendFileSync(RESULTS, `\n${section}`);
  process.stderr.write(`appended to ${path.relative(process.cwd(), RESULTS)}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
