#!/usr/bin/env node
// Needle-in-a-haystack benchmark (bench/needle/needle.mjs): accuracy by context length × needle depth.
//
//   npm run bench:needle -- --model PATH [--lengths 1k,4k,16k] [--depths 0,25,50,75,100]
//       [--samples N] [--seed N] [--source workspace|bundled|DIR] [--kv-type f32|f16|q8|q4]
//       [--context N] [--device auto|cpu|cuda|cuda:N] [--threads N] [--max-answer-tokens N]
//       [--out FILE.json] [--record] [--note TEXT]
//
// PATH is a GGUF file or a Hugging Face checkpoint directory of an InternLM2/2.5 chat model (e.g.
// internlm2_5-7b-chat-1m). Lengths are whole-prompt token counts, k = 1024, m = 1048576.
// --record appends a dated section with the table to bench/RESULTS.md (--results FILE elsewhere).
// Needs the built engine (npm run build).
import { appendFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  DEFAULT_DEPTHS, DEFAULT_LENGTHS, DEFAULT_MAX_ANSWER_TOKENS, formatLength, formatMarkdownTable, formatTextTable,
  parseDepths, parseLength, runNeedle,
} from './needle.mjs';

const USAGE = `usage: node bench/needle/run.mjs --model PATH [--lengths 1k,4k,16k] [--depths 0,25,50,75,100]
  [--samples N] [--seed N] [--source workspace|bundled|DIR] [--kv-type f32|f16|q8|q4] [--context N]
  [--device D] [--threads N] [--max-answer-tokens N] [--out FILE.json] [--record] [--results FILE] [--note TEXT]`;

function fail(message) {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      model: { type: 'string' },
      lengths: { type: 'string' },
      depths: { type: 'string' },
      samples: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' },
      source: { type: 'string', default: 'workspace' },
      'kv-type': { type: 'string' },
      context: { type: 'string' },
      device: { type: 'string' },
      threads: { type: 'string' },
      'max-answer-tokens': { type: 'string' },
      out: { type: 'string' },
      record: { type: 'boolean', default: false },
      results: { type: 'string' },
      note: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  }));
} catch (e) {
  fail(e.message);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (!args.model) fail('--model is required');

const positiveInt = (name) => {
  if (args[name] === undefined) return undefined;
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < 1) fail(`--${name} must be a positive integer`);
  return n;
};

let lengths;
let depths;
try {
  lengths = args.lengths ? args.lengths.split(',').map(parseLength) : DEFAULT_LENGTHS;
  depths = args.depths ? parseDepths(args.depths) : DEFAULT_DEPTHS;
} catch (e) {
  fail(e.message);
}
const KV = ['f32', 'f16', 'q8', 'q4'];
if (args['kv-type'] && !KV.includes(args['kv-type'])) fail(`--kv-type must be one of ${KV.join(', ')}`);

const controller = new AbortController();
process.once('SIGINT', () => {
  process.stderr.write('\ninterrupted: finishing with the cells done so far\n');
  controller.abort();
});

// Long prefills (minutes at 1M tokens) report progress: in place on a terminal, else every 30 s.
let lastProgress = 0;
let progressShown = false;
function prefillProgress(cell, done, total) {
  const now = performance.now();
  if (now - lastProgress < (process.stderr.isTTY ? 1000 : 30_000) || done === total) return;
  lastProgress = now;
  const text = `  ${formatLength(cell.length)} depth ${cell.depth}%: prefill ${done}/${total} (${Math.floor((100 * done) / total)}%)`;
  if (process.stderr.isTTY) {
    process.stderr.write(`\r${text}\x1b[K`);
    progressShown = true;
  } else {
    process.stderr.write(`${text}\n`);
  }
}
const clearProgress = () => {
  if (!progressShown) return '';
  progressShown = false;
  return '\r\x1b[K';
};

const report = await runNeedle({
  modelPath: path.resolve(args.model),
  lengths,
  depths,
  samples: positiveInt('samples'),
  seed: Number(args.seed),
  source: args.source,
  kvType: args['kv-type'],
  context: positiveInt('context'),
  device: args.device,
  threads: positiveInt('threads'),
  maxAnswerTokens: positiveInt('max-answer-tokens') ?? DEFAULT_MAX_ANSWER_TOKENS,
  signal: controller.signal,
  log: args.quiet ? undefined : (line) => process.stderr.write(`${clearProgress()}${line}\n`),
  onPrefillProgress: args.quiet ? undefined : prefillProgress,
}).catch((e) => {
  process.stderr.write(`bench:needle: ${e.message}\n`);
  process.exit(1);
});

const { model, settings, accuracy } = report;
const device = model.device.replace(/ \(.*$/, '');
process.stdout.write(`\nNeedle in a haystack — ${model.name} (${path.basename(model.path)}), ${device}, KV ${settings.kvType}\n`);
process.stdout.write(`accuracy % (rows: prompt length in tokens, columns: needle depth; ${settings.samples} needle(s) per cell)\n\n`);
process.stdout.write(`${formatTextTable(accuracy)}\n\n`);
process.stdout.write(`total ${(report.totalMs / 1000).toFixed(1)} s (model load ${(report.loadMs / 1000).toFixed(1)} s)${report.complete ? '' : ', INCOMPLETE'}\n`);

if (args.out) {
  writeFileSync(args.out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`wrote ${args.out}\n`);
}

if (args.record) {
  const file = args.results ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'RESULTS.md');
  const weights = Object.entries(model.weightTypes).map(([t, n]) => `${t} ×${n}`).join(', ');
  const src = settings.source.kind === 'bundled' ? 'bundled generated prose'
    : `${settings.source.kind === 'workspace' ? 'this repository' : settings.source.dir}: ${settings.source.files} text files, ${settings.source.chars} chars`;
  const maxPrompt = Math.max(0, ...report.cells.map((c) => c.promptTokens));
  const lines = [
    '',
    `## ${report.date.slice(0, 10)} — Needle in a haystack (bench:needle), ${device}`,
    '',
    `Model ${model.name} (\`${path.basename(model.path)}\`, ${model.format}, ${(model.parameterCount / 1e6).toFixed(1)}M parameters, ${weights}; `
      + `context length ${model.contextLength}, RoPE base ${model.ropeFreqBase}, scaling ${model.ropeScaling.type} ${model.ropeScaling.factor}). `
      + `KV cache ${settings.kvType}, session context ${settings.contextLength}, ${model.threads} threads, ${os.cpus().length} logical CPUs. `
      + `Haystack: ${src}. Lengths ${settings.lengths.map(formatLength).join(', ')} (whole prompt, longest ${maxPrompt} tokens), `
      + `${settings.samples} needle(s) per cell (seed ${settings.seed}), greedy answer ≤ ${settings.maxAnswerTokens} tokens, `
      + `scored by exact containment of the 6-digit number. Total ${(report.totalMs / 1000).toFixed(1)} s.`
      + (report.complete ? '' : ' **Interrupted: cells marked – were not run.**'),
    '',
    'Accuracy (%):',
    '',
    formatMarkdownTable(accuracy),
    '',
  ];
  if (args.note) lines.push(args.note, '');
  appendFileSync(file, lines.join('\n'));
  process.stdout.write(`appended to ${file}\n`);
}
process.exit(report.complete ? 0 : 130);
