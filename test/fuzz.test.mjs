// Mutation fuzzing of the model loaders through native/tools/fuzz_model.cpp: thousands of seeded
// corruptions of GGUF headers, safetensors headers and the JSON side files must each load or fail
// with an ilm::Error; a crash, a foreign exception or a hang fails the test.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeModel } from './fixtures/make-model.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tool = process.env.INTERNLM_FUZZ_TOOL ?? path.join(root, 'native', 'build', 'fuzz_model');
const iterations = Number(process.env.INTERNLM_FUZZ_ITERATIONS ?? 2000);
// Thousands of small files are written: tmpfs keeps that fast where it exists.
const base = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const tmp = mkdtempSync(path.join(base, 'ilm-fuzz-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function fuzz(name, gguf, hf, seed) {
  const work = path.join(tmp, `work-${name}`);
  mkdirSync(work);
  const run = spawnSync(tool, ['--gguf', gguf, '--hf', hf, '--work', work, '--iterations', String(iterations), '--seed', String(seed)], {
    encoding: 'utf8',
    timeout: 240_000,
    killSignal: 'SIGKILL',
  });
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  assert.equal(run.error?.code, undefined, `fuzz_model did not finish (${run.error?.code}): a hang?\n${output}`);
  assert.equal(run.signal, null, `fuzz_model crashed with ${run.signal}\n${output}`);
  assert.equal(run.status, 0, `fuzz_model failed\n${output}`);
  const summary = output.match(/(\d+) iterations .*: (\d+) loaded, (\d+) ilm::Error/);
  assert.ok(summary, output);
  assert.equal(Number(summary[1]), iterations);
  assert.ok(Number(summary[3]) > iterations / 2, `most mutations should be rejected:\n${output}`);
}

test('fuzz_model is built', () => {
  assert.ok(existsSync(tool), `${tool} is missing: run node native/build.mjs`);
});

test('Q8_0 GGUF and a sharded BF16 checkpoint survive mutation', { skip: !existsSync(tool) }, async () => {
  const m = await makeModel({ dir: path.join(tmp, 'a'), formats: ['gguf-q8_0', 'hf-bf16'], hfShards: 2, seed: 5 });
  fuzz('a', m.paths['gguf-q8_0'], m.paths['hf-bf16'], 1);
});

test('F16 GGUF with our RoPE key and a single-file F32 checkpoint survive mutation', { skip: !existsSync(tool) }, async () => {
  const m = await makeModel({ dir: path.join(tmp, 'b'), formats: ['gguf-f16', 'hf-f32'], ropeScalingKey: 'ours', seed: 6 });
  fuzz('b', m.paths['gguf-f16'], m.paths['hf-f32'], 2);
});
