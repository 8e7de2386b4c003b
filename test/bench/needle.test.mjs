// bench/needle (needle in a haystack): the scorer, the prompt builder (exact lengths, the needle at
// the requested depth, chatml framing, shared prefixes) and a 2 lengths × 2 depths run of the
// command on a tiny random model (accuracy 0 there: it checks the plumbing, not the model).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeModel } from '../fixtures/make-model.mjs';
import { scriptedModel } from '../fixtures/scripted-model.mjs';
import {
  INTRO, accuracyTable, createPromptBuilder, formatLength, formatMarkdownTable, formatTextTable, makeNeedle,
  parseDepths, parseLength, question, scoreAnswer,
} from '../../bench/needle/needle.mjs';
import { loadSource } from '../../bench/needle/sources.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUN = path.join(root, 'bench', 'needle', 'run.mjs');
const { Model } = createRequire(import.meta.url)('../../dist/engine.js');

describe('scoring and options', () => {
  test('scoreAnswer: exact containment of the number', () => {
    assert.equal(scoreAnswer('482913', '482913'), true);
    assert.equal(scoreAnswer('The secret passphrase for project Heron is 482913.', '482913'), true);
    assert.equal(scoreAnswer('It is **482913**', '482913'), true);
    assert.equal(scoreAnswer('482,913', '482913'), true, 'thousands separator');
    assert.equal(scoreAnswer('482 913', '482913'), true, 'digit groups');
    assert.equal(scoreAnswer('48291', '482913'), false, 'a prefix of the number');
    assert.equal(scoreAnswer('1482913', '482913'), false, 'inside a longer number');
    assert.equal(scoreAnswer('4829130', '482913'), false, 'inside a longer number');
    assert.equal(scoreAnswer('482914', '482913'), false);
    assert.equal(scoreAnswer('', '482913'), false);
    assert.equal(scoreAnswer('I do not know.', '482913'), false);
  });

  test('needles are 6-digit numbers, deterministic per cell', () => {
    const a = makeNeedle(1, 4096, 50, 0);
    assert.match(a.number, /^[1-9]\d{5}$/);
    assert.equal(a.sentence, `The secret passphrase for project ${a.word} is ${a.number}.`);
    assert.deepEqual(makeNeedle(1, 4096, 50, 0), a);
    const numbers = new Set([0, 25, 50, 75, 100].map((d) => makeNeedle(1, 4096, d, 0).number));
    assert.ok(numbers.size >= 4, 'different cells get different numbers');
    assert.equal(scoreAnswer(a.sentence, a.number), true);
  });

  test('lengths, depths and the tables', () => {
    assert.deepEqual(['1k', '4K', '16k', '1m', '3000', '0.5k'].map(parseLength), [1024, 4096, 16384, 1048576, 3000, 512]);
    assert.throws(() => parseLength('4x'), /bad length/);
    assert.deepEqual([1024, 1048576, 3000].map(formatLength), ['1K', '1M', '3000']);
    assert.deepEqual(parseDepths('0,12.5,100'), [0, 12.5, 100]);
    assert.throws(() => parseDepths('0,101'), /bad depth/);
    const results = [
      { length: 1024, depth: 0, correct: true }, { length: 1024, depth: 100, correct: false },
      { length: 4096, depth: 0, correct: true }, { length: 4096, depth: 0, correct: false },
    ];
    const acc = accuracyTable(results, [1024, 4096], [0, 100]);
    assert.deepEqual(acc.table, [[100, 0], [50, null]]);
    assert.deepEqual(acc.byLength, [50, 50]);
    assert.deepEqual(acc.byDepth, [66.7, 0]);
    assert.equal(acc.overall, 50);
    assert.equal(formatTextTable(acc), ['length    0%  100%  avg', '1K       100     0   50', '4K        50     –   50', 'avg     66.7     0   50'].join('\n'));
    assert.match(formatMarkdownTable(acc), /^\| length \\ depth \| 0% \| 100% \| avg \|\n\|---\|---\|---\|---\|\n\| 1K \| 100 \| 0 \| 50 \|/);
  });
});

describe('needle harness on a tiny random model', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'internlm-needle-'));
  let file;
  let model;

  before(async () => {
    // The real InternLM2 vocabulary, so haystacks tokenize as they do for the real model.
    ({ paths: { 'gguf-f32': file } } = await makeModel({ dir, preset: 'tiny', vocab: 'internlm2', formats: ['gguf-f32'] }));
    model = await Model.load(file, { threads: 2 });
  });
  after(() => {
    model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('prompts have the exact length, chatml framing and the needle at the requested depth', async (t) => {
    const im = (text) => model.tokenize(text, { special: true });
    for (const source of ['workspace', 'bundled']) {
      const builder = await createPromptBuilder(model, loadSource(source));
      let worst = 0;
      for (const length of [512, 2048, 8192]) {
        const prompts = [0, 10, 25, 50, 75, 90, 100].map((depth) => {
          const needle = makeNeedle(3, length, depth, 0);
          return { depth, needle, built: builder.build(length, depth, needle) };
        });
        for (const { depth, needle, built } of prompts) {
          const { tokens, needleStart, needleEnd, haystackStart, haystackEnd, haystackTokens, depthActual } = built;
          const label = `${source} ${length} depth ${depth}`;
          assert.equal(tokens.length, length, `${label}: prompt length`);
          // <s><|im_start|>user\n{INTRO} ... {question}<|im_end|>\n<|im_start|>assistant\n
          assert.deepEqual(tokens.slice(0, 2), [model.info.bosId, ...im('<|im_start|>')], label);
          assert.equal(model.detokenize(tokens.slice(2, haystackStart)), `user\n${INTRO}`, label);
          assert.deepEqual(tokens.slice(haystackEnd), [...model.tokenize(question(needle.word)), ...im('<|im_end|>'), ...model.tokenize('\n'),
            ...im('<|im_start|>'), ...model.tokenize('assistant\n')], label);
          // The needle's own tokens, at the position reported.
          assert.equal(model.detokenize(tokens.slice(needleStart, needleEnd)), `\n${needle.sentence}\n`, label);
          assert.equal(haystackEnd - haystackStart - (needleEnd - needleStart), haystackTokens, label);
          assert.equal(depthActual, (needleStart - haystackStart) / haystackTokens, label);
          // Needles go at line starts or sentence ends: within a line's length of the target.
          const error = Math.abs(depthActual - depth / 100) * haystackTokens;
          worst = Math.max(worst, error);
          assert.ok(error <= 64, `${label}: needle at ${(100 * depthActual).toFixed(1)}%, ${error.toFixed(0)} tokens off`);
          assert.ok(Math.abs(depthActual - depth / 100) <= (length >= 2048 ? 0.03 : 0.12), `${label}: needle at ${(100 * depthActual).toFixed(2)}%`);
          if (depth === 0) assert.equal(needleStart, haystackStart, label);
          if (depth === 100) assert.equal(needleEnd, haystackEnd, label);
          // No other passphrase sentence in the haystack.
          assert.ok(!model.detokenize(tokens.slice(haystackStart, needleStart)).includes('passphrase'), label);
        }
        // Same haystack for every depth: each prompt agrees with the next up to the earlier needle.
        for (let i = 1; i < prompts.length; i++) {
          const [a, b] = [prompts[i - 1].built, prompts[i].built];
          assert.deepEqual(a.tokens.slice(0, a.needleStart), b.tokens.slice(0, a.needleStart), `${source} ${length}: shared prefix`);
        }
      }
      t.diagnostic(`${source}: worst needle placement ${worst.toFixed(0)} tokens from the target`);
    }
  });

  test('run.mjs: 2 lengths × 2 depths, table, JSON and --record', () => {
    const out = path.join(dir, 'needle.json');
    const results = path.join(dir, 'RESULTS.md');
    writeFileSync(results, '# Results\n');
    const r = spawnSync(process.execPath, [RUN, '--model', file, '--lengths', '512,1k', '--depths', '0,100', '--threads', '2',
      '--kv-type', 'q8', '--out', out, '--record', '--results', results, '--note', 'smoke test note'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    // The table: header, one row per length, the average row.
    const lines = r.stdout.split('\n');
    const head = lines.findIndex((l) => /^length\s+0%\s+100%\s+avg$/.test(l));
    assert.ok(head >= 0, r.stdout);
    assert.match(lines[head + 1], /^512\s+\d+(\.\d)?\s+\d+(\.\d)?\s+\d+(\.\d)?$/);
    assert.match(lines[head + 2], /^1K\s+\d+(\.\d)?\s+\d+(\.\d)?\s+\d+(\.\d)?$/);
    assert.match(lines[head + 3], /^avg\s/);
    assert.match(r.stdout, /KV q8/);
    // Progress on stderr, one line per cell.
    assert.equal(r.stderr.split('\n').filter((l) => /depth +\d+% \(at/.test(l)).length, 4, r.stderr);

    const report = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(report.complete, true);
    assert.deepEqual(report.settings.lengths, [512, 1024]);
    assert.deepEqual(report.settings.depths, [0, 100]);
    assert.equal(report.settings.kvType, 'q8');
    assert.equal(report.settings.source.kind, 'workspace');
    assert.equal(report.settings.contextLength, 1024 + 32);
    assert.equal(report.model.format, 'gguf');
    assert.deepEqual(report.accuracy.lengths, [512, 1024]);
    assert.equal(report.accuracy.table.length, 2);
    for (const row of report.accuracy.table) assert.equal(row.length, 2);
    assert.equal(report.cells.length, 4);
    for (const c of report.cells) {
      assert.equal(c.promptTokens, c.length);
      assert.match(c.expected, /^\d{6}$/);
      assert.equal(typeof c.answer, 'string');
      assert.equal(c.correct, scoreAnswer(c.answer, c.expected));
      assert.ok(c.answerTokens >= 1 && c.answerTokens <= 32);
      assert.ok(Math.abs(c.depthActual - c.depth) <= 12, `depth ${c.depth} placed at ${c.depthActual}%`);
    }
    // Per length the later needle runs first; the second prompt reuses the haystack before its needle.
    for (const length of [512, 1024]) {
      const [first, second] = report.cells.filter((c) => c.length === length);
      assert.equal(first.depth, 100);
      assert.equal(second.depth, 0);
      assert.equal(second.cachedTokens, second.needleStart, `${length}: the cached prefix ends at the needle`);
    }
    // A random model does not find needles; the table says what it measured.
    const expected = report.accuracy.table.flat().reduce((a, b) => a + b, 0);
    assert.equal(expected, report.cells.filter((c) => c.correct).length * 100);

    const md = readFileSync(results, 'utf8');
    assert.match(md, /\n## \d{4}-\d{2}-\d{2} — Needle in a haystack \(bench:needle\), cpu\n/);
    assert.match(md, /\| length \\ depth \| 0% \| 100% \| avg \|\n\|---\|---\|---\|---\|\n\| 512 \| [\d.]+ \| [\d.]+ \| [\d.]+ \|\n\| 1K \|/);
    assert.match(md, /KV cache q8/);
    assert.match(md, /smoke test note/);
  });

  test('a model that answers with the needle scores 100% in its cell only', async () => {
    // A scripted model (test/fixtures/scripted-model.mjs) answers every prompt with one fixed text.
    // Pick a seed whose needle at (512 tokens, depth 50) tokenizes to distinct tokens, and script it.
    let seed;
    let answer;
    for (let s = 1; s < 500 && !answer; s++) {
      const text = `The passphrase is ${makeNeedle(s, 512, 50, 0).number}.`;
      const ids = [...model.tokenize('assistant\n').slice(-1), ...model.tokenize(text), ...model.tokenize('<|im_end|>', { special: true })];
      if (new Set(ids).size === ids.length) [seed, answer] = [s, text];
    }
    assert.ok(answer, 'no seed gives a scriptable needle');
    const scripted = await scriptedModel(path.join(dir, 'scripted'), answer);
    const out = path.join(dir, 'scripted.json');
    const r = spawnSync(process.execPath, [RUN, '--model', scripted, '--lengths', '512', '--depths', '0,50', '--seed', String(seed),
      '--out', out, '--quiet'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    const byDepth = Object.fromEntries(report.cells.map((c) => [c.depth, c]));
    assert.equal(byDepth[50].answer, answer);
    assert.equal(byDepth[50].correct, true);
    assert.equal(byDepth[0].answer, answer);
    assert.equal(byDepth[0].correct, false, 'another cell has another number');
    assert.deepEqual(report.accuracy.table, [[0, 100]]);
    assert.equal(report.accuracy.overall, 50);
    assert.match(r.stdout, /\n512\s+0\s+100\s+50\n/);
  });

  test('run.mjs refuses bad options', () => {
    const run = (...args) => spawnSync(process.execPath, [RUN, ...args], { encoding: 'utf8', timeout: 60_000 });
    const missing = run();
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /--model is required/);
    assert.match(run('--model', file, '--lengths', '4x').stderr, /bad length/);
    assert.match(run('--model', file, '--kv-type', 'q3').stderr, /--kv-type must be one of/);
    const short = run('--model', file, '--lengths', '512', '--depths', '50', '--context', '100');
    assert.equal(short.status, 1);
    assert.match(short.stderr, /--context 100 is too short: the longest prompt needs 544 positions/);
    const tiny = run('--model', file, '--lengths', '20', '--depths', '50');
    assert.equal(tiny.status, 1);
    assert.match(tiny.stderr, /leaves no room for a haystack/);
  });
});
