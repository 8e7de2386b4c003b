// One model file, our engine against llama.cpp (node-llama-cpp 3.21.1), alternating runs so both
// see the same page-cache and machine state: `node bench/file-vs-llamacpp.mjs --model FILE
// [--threads 1,2] [--repeats 3] [--prompt-tokens 64] [--gen-tokens 16]`. Reads the file once first
// (warm page cache), then per thread count prints every run and the medians with ours/llama.cpp.
// For full-size models (the 7B shape) where the mid-model bench (cpu-vs-llamacpp.mjs) says nothing
// about bandwidth-bound decode. Prints a Markdown table; paste it into bench/RESULTS.md.
import { createReadStream, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { referenceBench } from '../test/reference/llamacpp.mjs';
import { runCliJson } from '../test/support/cli.mjs';

const { values } = parseArgs({
  options: {
    model: { type: 'string' }, threads: { type: 'string', default: '1,2' }, repeats: { type: 'string', default: '3' },
    'prompt-tokens': { type: 'string', default: '64' }, 'gen-tokens': { type: 'string', default: '16' },
  },
});
if (!values.model) throw new Error('--model FILE is required');
const threadCounts = values.threads.split(',').map(Number);
const repeats = Number(values.repeats);
const promptTokens = Number(values['prompt-tokens']);
const genTokens = Number(values['gen-tokens']);

async function warm(file) {
  const started = performance.now();
  for await (const _chunk of createReadStream(file, { highWaterMark: 16 << 20 }));
  const s = (performance.now() - started) / 1000;
  process.stderr.write(`read ${(statSync(file).size / 1e9).toFixed(2)} GB in ${s.toFixed(1)} s (page cache warm)\n`);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => x.toFixed(2);

await warm(values.model);
const rows = [];
for (const threads of threadCounts) {
  const ours = [];
  const theirs = [];
  for (let i = 0; i < repeats; i++) {
    // Alternate who goes first, so neither always inherits the other's cache state.
    const order = i % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours'];
    for (const who of order) {
      if (who === 'ours') {
        ours.push(await runCliJson(['bench', '--model', values.model, '--prompt-tokens', String(promptTokens),
          '--gen-tokens', String(genTokens), '--threads', String(threads)], { timeoutMs: 1_800_000 }));
      } else {
        theirs.push(await referenceBench(values.model, { promptTokens, genTokens, threads }));
      }
      const r = (who === 'ours' ? ours : theirs).at(-1);
      process.stderr.write(`${threads} thread(s) ${who}: prefill ${fmt(r.prefill_tok_s)} tok/s, decode ${fmt(r.decode_tok_s)} tok/s\n`);
    }
  }
  rows.push({ threads, ours, theirs });
}

console.log(`prompt ${promptTokens} tokens, greedy decode ${genTokens}, ${repeats} alternating runs each, medians (all runs)\n`);
console.log('| threads | prefill ours | prefill llama.cpp | ratio | decode ours | decode llama.cpp | ratio |');
console.log('|---|---|---|---|---|---|---|');
for (const { threads, ours, theirs } of rows) {
  const cell = (runs, key) => `${fmt(median(runs.map((r) => r[key])))} (${runs.map((r) => fmt(r[key])).join(' / ')})`;
  const ratio = (key) => `${(median(ours.map((r) => r[key])) / median(theirs.map((r) => r[key]))).toFixed(2)}x`;
  console.log(`| ${threads} | ${cell(ours, 'prefill_tok_s')} | ${cell(theirs, 'prefill_tok_s')} | ${ratio('prefill_tok_s')} ` +
    `| ${cell(ours, 'decode_tok_s')} | ${cell(theirs, 'decode_tok_s')} | ${ratio('decode_tok_s')} |`);
}
