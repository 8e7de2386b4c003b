// The CUDA backend's weight decoders, checked on any machine. The CUDA kernels read GGUF's
// low-bit weights (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) straight from the file's
// bytes through native/src/cuda/quant_blocks.h, 32 weights at a time; that header is plain C++ on
// the host too, so native/tools/block_check.cpp runs its decoders on the CPU and holds every group
// of 32 to the CPU's dequantization (quant/reference.cpp), float for float, on rows our quantizer
// writes from many kinds of data and on arbitrary bytes (fp16 NaN, infinite and subnormal scales
// included). A decoder bug would otherwise only show as slightly wrong text on a GPU machine.
// The second test proves the check can fail: `--break Q4_K` flips one bit of a code in every
// Q4_K group, and block_check must report Q4_K (and only Q4_K) and exit 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tool = process.env.INTERNLM_BLOCK_CHECK_TOOL ?? path.join(root, 'native', 'build', 'block_check');
const TYPES = ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'];

// Runs block_check; returns its exit status, output and one parsed JSON report per type.
function blockCheck(args = []) {
  const run = spawnSync(tool, args, { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  assert.equal(run.error?.code, undefined, `block_check did not finish (${run.error?.code})\n${output}`);
  assert.equal(run.signal, null, `block_check crashed with ${run.signal}\n${output}`);
  const reports = new Map();
  for (const line of (run.stdout ?? '').split('\n')) {
    if (!line.startsWith('{')) continue;
    const r = JSON.parse(line);
    assert.ok(!reports.has(r.type), `${r.type} reported twice\n${output}`);
    reports.set(r.type, r);
  }
  assert.deepEqual([...reports.keys()], TYPES, `one report per decoded type\n${output}`);
  return { status: run.status, output, reports };
}

test('block_check is built', () => {
  assert.ok(existsSync(tool), `${tool} is missing: run node native/build.mjs`);
});

test('every GPU block decoder matches the CPU dequantization exactly', { skip: !existsSync(tool) }, () => {
  const { status, output, reports } = blockCheck();
  for (const type of TYPES) {
    const r = reports.get(type);
    assert.ok(r.groups > 1000, `${type}: only ${r.groups} groups checked\n${output}`);
    assert.ok(r.quantized_groups > 0 && r.raw_groups > 0, `${type}: both quantized rows and raw bytes\n${output}`);
    assert.equal(r.mismatches, 0, `${type}: ${r.mismatches} weights differ; first: ${r.first}`);
    assert.equal(r.first, null);
  }
  assert.equal(status, 0, output);
});

test('a one-bit decoder error is caught, and only where it was made (--break Q4_K)', { skip: !existsSync(tool) }, () => {
  const { status, output, reports } = blockCheck(['--break', 'Q4_K']);
  assert.equal(status, 1, `block_check must fail when a decoder is broken\n${output}`);
  const broken = reports.get('Q4_K');
  assert.ok(broken.mismatches > 0, `Q4_K: the flipped bit went unnoticed\n${output}`);
  assert.equal(broken.broken, true);
  assert.match(broken.first, /expected .* got /);
  for (const type of TYPES.filter((t) => t !== 'Q4_K')) assert.equal(reports.get(type).mismatches, 0, `${type}\n${output}`);
});
