// The internlm CLI as users call it (node dist/cli.js): every subcommand's JSON shape and human
// output, the chat loop, Ctrl-C, and the error paths (exit codes and messages on stderr).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeModel } from './fixtures/make-model.mjs';
import { CLI, runCli, runCliJson } from './support/cli.mjs';

const dir = mkdtempSync(path.join(os.tmpdir(), 'internlm-cli-'));
let gguf;
let hf;
let imStartId;
let imEndId;
// For the Ctrl-C tests: with 32,000 tokens a sampled reply rarely hits a stop token before the
// interrupt arrives (2 stop ids out of 32,000).
let largeVocab;

before(async () => {
  const made = await makeModel({ dir, preset: 'tiny', formats: ['gguf-f32', 'hf-f32'] });
  ({ 'gguf-f32': gguf, 'hf-f32': hf } = made.paths);
  imEndId = made.imEndId;
  imStartId = imEndId + 1;
  const large = await makeModel({ dir: path.join(dir, 'large-vocab'), preset: 'tiny', vocabSize: 32000, formats: ['gguf-f32'] });
  largeVocab = large.paths['gguf-f32'];
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Starts the CLI with pipes, for tests that talk to it while it runs. */
function startCli(args) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d) => { out.stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d) => { out.stderr += d; });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, ...out })));
  const firstOutput = new Promise((resolve) => child.stdout.once('data', resolve));
  return { child, exited, firstOutput };
}

describe('info', () => {
  test('--json describes the model', async () => {
    for (const model of [gguf, hf]) {
      const info = await runCliJson(['info', '--model', model]);
      assert.equal(info.architecture, 'internlm2');
      assert.equal(info.format, model === gguf ? 'gguf' : 'hf');
      assert.equal(info.embeddingLength, 64);
      assert.equal(info.blockCount, 2);
      assert.equal(info.headCount, 4);
      assert.equal(info.headCountKv, 2);
      assert.equal(info.headDim, 16);
      assert.equal(info.feedForwardLength, 128);
      assert.equal(info.vocabSize, 1000);
      assert.equal(info.contextLength, 32768);
      assert.equal(info.ropeFreqBase, 1e6);
      assert.deepEqual(info.ropeScaling, { type: 'dynamic', factor: 2 });
      assert.equal(info.ropeLayout, model === gguf ? 'pairwise' : 'rotate-half');
      assert.deepEqual(Object.keys(info.weightTypes), ['F32']);
      assert.ok(info.backends.includes('cpu'));
      assert.ok(info.threads >= 1);
      assert.ok(info.stopTokens.includes(imEndId));
    }
  });

  test('without --json prints a readable summary', async () => {
    const { code, stdout } = await runCli(['info', '--model', gguf]);
    assert.equal(code, 0);
    assert.match(stdout, /^architecture\s+internlm2$/m);
    assert.match(stdout, /^backends\s+cpu/m);
    assert.match(stdout, /^rope\s+base 1000000, pairwise, scaling dynamic ×2$/m);
  });
});

describe('tokenize', () => {
  test('--json gives ids without BOS; control-token text stays plain without --special', async () => {
    const text = 'hello <|im_start|>user';
    const plain = await runCliJson(['tokenize', '--model', gguf, '--text', text]);
    const special = await runCliJson(['tokenize', '--model', gguf, '--text', text, '--special']);
    assert.deepEqual(Object.keys(plain), ['ids']);
    assert.notEqual(plain.ids[0], 1);
    assert.ok(!plain.ids.includes(imStartId));
    assert.ok(special.ids.includes(imStartId));
    assert.ok(special.ids.length < plain.ids.length);
  });

  test('--text-file reads the text from a file; HF and GGUF forms agree', async () => {
    const file = path.join(dir, 'text.txt');
    writeFileSync(file, 'def f(x):\n    return x\n');
    const fromFile = await runCliJson(['tokenize', '--model', gguf, '--text-file', file]);
    const fromText = await runCliJson(['tokenize', '--model', hf, '--text', 'def f(x):\n    return x\n']);
    assert.deepEqual(fromFile, fromText);
  });

  test('without --json lists ids with their text', async () => {
    const { code, stdout } = await runCli(['tokenize', '--model', gguf, '--text', 'ab']);
    assert.equal(code, 0);
    assert.match(stdout, /^\d+\t".*"$/m);
    assert.match(stdout, /\d+ tokens\n$/);
  });
});

describe('eval', () => {
  test('--json: tokens, ropeBase and sorted top-K log-probabilities per position', async () => {
    const result = await runCliJson(['eval', '--model', gguf, '--tokens', '1,300,301,302', '--top', '5', '--threads', '1']);
    assert.deepEqual(Object.keys(result).sort(), ['ropeBase', 'tokens', 'top']);
    assert.deepEqual(result.tokens, [1, 300, 301, 302]);
    assert.equal(result.ropeBase, 1e6);
    assert.equal(result.top.length, 4);
    for (const row of result.top) {
      assert.equal(row.length, 5);
      for (const [id, logprob] of row) {
        assert.ok(Number.isInteger(id) && id >= 0 && id < 1000);
        assert.ok(logprob <= 0);
      }
      for (let i = 1; i < row.length; i++) assert.ok(row[i - 1][1] >= row[i][1], 'best first');
    }
  });

  test('--text adds BOS; the default is the top 20', async () => {
    const { ids } = await runCliJson(['tokenize', '--model', gguf, '--text', 'hello there']);
    const result = await runCliJson(['eval', '--model', gguf, '--text', 'hello there']);
    assert.deepEqual(result.tokens, [1, ...ids]);
    assert.ok(result.top.every((row) => row.length === 20));
  });

  test('--rope-scaling and --rope-factor are accepted', async () => {
    const result = await runCliJson(['eval', '--model', gguf, '--tokens', '1,5', '--rope-scaling', 'none', '--rope-factor', '4']);
    assert.equal(result.ropeBase, 1e6);
  });

  test('without --json prints one line per position', async () => {
    const { code, stdout } = await runCli(['eval', '--model', gguf, '--tokens', '1,300,301']);
    assert.equal(code, 0);
    assert.match(stdout, /^3 tokens in [\d.]+ ms, RoPE base 1000000$/m);
    assert.equal(stdout.trim().split('\n').length, 4);
  });
});

describe('generate', () => {
  test('streams text to stdout and a summary to stderr', async () => {
    const { code, stdout, stderr } = await runCli(['generate', '--model', gguf, '--prompt', 'hello', '--max-tokens', '12', '--seed', '3']);
    assert.equal(code, 0, stderr);
    assert.ok(stdout.length > 1);
    assert.match(stderr, /generated \d+ tokens/);
    assert.match(stderr, /finished: (length|stop)/);
  });

  test('a seed makes sampling reproducible; --chat wraps the prompt in the template', async () => {
    const args = ['generate', '--model', gguf, '--prompt', 'hello', '--max-tokens', '16', '--seed', '7', '--temperature', '1', '--top-p', '0.9', '--top-k', '40'];
    const first = await runCli(args);
    const second = await runCli(args);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, second.stdout);
    const chat = await runCli([...args, '--chat']);
    assert.equal(chat.code, 0, chat.stderr);
    // The chat template is longer than BOS + "hello".
    const promptTokens = (stderr) => Number(/prompt (\d+) tokens/.exec(stderr)?.[1]);
    assert.ok(promptTokens(chat.stderr) > promptTokens(first.stderr) + 5);
  });

  test('Ctrl-C stops generation, keeps what was printed and exits 130', async () => {
    // Greedy decoding of a random model settles into a loop without stop tokens.
    const run = startCli(['generate', '--model', largeVocab, '--prompt', 'hello', '--max-tokens', '30000', '--temperature', '0']);
    await run.firstOutput;
    const interruptedAt = performance.now();
    run.child.kill('SIGINT');
    const result = await run.exited;
    assert.ok(performance.now() - interruptedAt < 5000, 'stops promptly');
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /cancelled/);
    assert.ok(result.stdout.length > 0);
  });
});

describe('chat', () => {
  test('answers each line, /reset clears, /exit quits', async () => {
    const { code, stdout, stderr } = await runCli(['chat', '--model', gguf], { input: 'hello\nhow are you\n/reset\nagain\n/exit\nnever read\n' });
    assert.equal(code, 0, stderr);
    assert.match(stderr, /conversation cleared/);
    assert.ok(stdout.length > 0);
  });

  test('Ctrl-C stops the reply, not the chat', async () => {
    const run = startCli(['chat', '--model', largeVocab]);
    run.child.stdin.write('tell me a long story\n');
    await run.firstOutput;
    run.child.kill('SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 300));
    run.child.stdin.end('/exit\n');
    const result = await run.exited;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /cancelled/);
  });
});

describe('bench', () => {
  test('--json reports prefill and decode speed', async () => {
    const result = await runCliJson(['bench', '--model', gguf, '--prompt-tokens', '16', '--gen-tokens', '4', '--threads', '1']);
    assert.deepEqual(Object.keys(result).sort(), ['decode_tok_s', 'gen_tokens', 'model', 'model_type', 'prefill_tok_s', 'prompt_tokens', 'threads']);
    assert.ok(result.prefill_tok_s > 0 && result.decode_tok_s > 0);
    assert.equal(result.prompt_tokens, 16);
    assert.equal(result.gen_tokens, 4);
    assert.equal(result.threads, 1);
    assert.equal(result.model, gguf);
    assert.equal(result.model_type, 'F32');
  });
});

describe('errors', () => {
  const usageError = async (args, message) => {
    const { code, stdout, stderr } = await runCli(args);
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    assert.equal(stdout, '');
    assert.match(stderr, message);
    assert.match(stderr, /Usage:/);
  };

  test('--help prints the usage to stdout and succeeds', async () => {
    for (const args of [['--help'], ['help'], ['eval', '--help']]) {
      const { code, stdout } = await runCli(args);
      assert.equal(code, 0);
      assert.match(stdout, /^Usage:\n  internlm info/);
    }
  });

  test('no command, unknown command', async () => {
    await usageError([], /missing command/);
    await usageError(['frobnicate'], /unknown command 'frobnicate'/);
  });

  test('missing --model', async () => {
    for (const command of ['info', 'tokenize', 'eval', 'generate', 'chat', 'bench']) await usageError([command], /--model is required/);
  });

  test('unknown flag, bad values, conflicting inputs', async () => {
    await usageError(['info', '--model', gguf, '--bogus'], /Unknown option '--bogus'/);
    await usageError(['eval', '--model', gguf, '--tokens', '1,x'], /--tokens must be comma-separated token ids/);
    await usageError(['eval', '--model', gguf, '--tokens', '1', '--top', 'many'], /--top must be an integer/);
    await usageError(['eval', '--model', gguf, '--tokens', '1', '--text', 'a'], /exactly one of --tokens, --text or --text-file/);
    await usageError(['eval', '--model', gguf, '--tokens', '1', '--rope-scaling', 'yarn'], /--rope-scaling must be one of none, dynamic/);
    await usageError(['generate', '--model', gguf], /--prompt is required/);
    await usageError(['generate', '--model', gguf, '--prompt', 'x', '--top-p', '2'], /--top-p must be in \[0, 1\]/);
    await usageError(['tokenize', '--model', gguf], /--text or --text-file is required/);
  });

  test('missing model file or text file: exit 1 with the cause on stderr', async () => {
    const missing = path.join(dir, 'nope.gguf');
    for (const command of ['info', 'eval', 'bench']) {
      const { code, stderr } = await runCli([command, '--model', missing, ...(command === 'eval' ? ['--tokens', '1'] : [])]);
      assert.equal(code, 1);
      assert.match(stderr, /model not found: .*nope\.gguf/);
    }
    const { code, stderr } = await runCli(['tokenize', '--model', gguf, '--text-file', path.join(dir, 'nope.txt')]);
    assert.equal(code, 1);
    assert.match(stderr, /cannot read --text-file .*nope\.txt: ENOENT/);
  });

  test('a file that is not a model, and ids outside the vocabulary: exit 1, no crash', async () => {
    const junk = path.join(dir, 'junk.gguf');
    writeFileSync(junk, 'this is not a GGUF file');
    const bad = await runCli(['info', '--model', junk]);
    assert.equal(bad.code, 1);
    assert.equal(bad.signal, null);
    assert.match(bad.stderr, /^internlm: .+/);
    const outOfRange = await runCli(['eval', '--model', gguf, '--tokens', '1,5000']);
    assert.equal(outOfRange.code, 1);
    assert.match(outOfRange.stderr, /token id 5000 is outside the vocabulary/);
  });
});
