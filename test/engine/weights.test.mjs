// Where the weights live (LoadOptions.weights, util/mapped_file.h): read into huge-page RAM or
// mapped. Both give bit-identical logits; auto picks RAM for the CPU; bad values and bad files
// are clear errors either way.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { makeModel } from '../fixtures/make-model.mjs';

const require = createRequire(import.meta.url);
const { Model } = require('../../dist/engine.js');

let dir, made;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ilm-weights-'));
  made = await makeModel({ dir, formats: ['gguf-q8_0', 'hf-bf16'] });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const tokens = Array.from({ length: 40 }, (_, i) => 3 + (i * 37) % 200);

async function logits(file, weights) {
  const model = await Model.load(file, { threads: 1, device: 'cpu', weights });
  try {
    const session = model.createSession({ contextLength: 64 });
    const { top } = await session.evaluate(tokens, { topK: 8 });
    session.dispose();
    return { where: model.info.weights, top };
  } finally {
    model.dispose();
  }
}

for (const format of ['gguf-q8_0', 'hf-bf16']) {
  test(`${format}: weights in RAM and mapped give identical logits`, async () => {
    const ram = await logits(made.paths[format], 'ram');
    const mapped = await logits(made.paths[format], 'mapped');
    assert.equal(ram.where, 'ram');
    assert.equal(mapped.where, 'mapped');
    assert.deepEqual(ram.top, mapped.top);
  });
}

test('auto reads the weights into RAM for the CPU when they fit', async () => {
  const { where } = await logits(made.paths['gguf-q8_0'], undefined);
  assert.equal(where, 'ram');
});

test('a bad weights option is a clear error', async () => {
  await assert.rejects(Model.load(made.paths['gguf-q8_0'], { weights: 'disk' }), /weights must be "auto", "mapped" or "ram", not "disk"/);
});

test('a truncated file is the same clear error in RAM as mapped', async () => {
  const bytes = readFileSync(made.paths['gguf-q8_0']);
  const cut = path.join(dir, 'cut.gguf');
  writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.7)));
  const errors = [];
  for (const weights of ['ram', 'mapped']) {
    await assert.rejects(Model.load(cut, { weights, device: 'cpu' }), (e) => (errors.push(e.message), true));
  }
  assert.match(errors[0], /truncat|extends past|beyond the end/i);
  assert.equal(errors[0], errors[1]);
});
