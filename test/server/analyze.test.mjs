// internlm/analyzeFile over a real LSP connection. A scripted model (its greedy answer is fixed:
// "L2 warning, boom") shows findings turning into diagnostics that the next run clears; a random
// model's gibberish shows that a malformed answer gives a report without findings, not an error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { scriptedModel } from '../fixtures/scripted-model.mjs';
import { settings, startServer, tinyModel, tmpDir } from './support.mjs';

const uri = 'file:///project/app.py';
const text = 'import os\n\ndef main():\n    print(os.environ["HOME"])\n';

let scripted;
let random;
let scriptedPath;

before(async () => {
  let randomPath;
  [scriptedPath, randomPath] = await Promise.all([
    scriptedModel(tmpDir('analyze-scripted'), 'L2 warning, boom'),
    tinyModel(tmpDir('analyze-random')),
  ]);
  scripted = await startServer({ initializationOptions: settings(scriptedPath) });
  random = await startServer({ initializationOptions: settings(randomPath) });
  await Promise.all([scripted, random].map((c) => c.waitForStatus((s) => s.state === 'ready')));
  await scripted.open(uri, 'python', text);
  await random.open(uri, 'python', text);
});

after(async () => {
  await Promise.all([scripted?.close(), random?.close()]);
});

function diagnosticsFor(client, target) {
  return client.diagnostics.filter((d) => d.uri === target).map((d) => d.diagnostics);
}

test('findings come back as ranges and as diagnostics with source "InternLM"', async () => {
  const result = await scripted.request('internlm/analyzeFile', { uri });
  assert.deepEqual(result.findings, [
    { range: { start: { line: 1, character: 0 }, end: { line: 1, character: 0 } }, severity: 'warning', message: 'boom' },
  ]);
  assert.match(result.report, /L2 warning, boom/);
  assert.ok(result.usage.promptTokens > 50);
  assert.equal(result.usage.completionTokens, 5);
  const published = diagnosticsFor(scripted, uri);
  assert.deepEqual(published, [[], [{
    range: { start: { line: 1, character: 0 }, end: { line: 1, character: 0 } }, severity: 2, message: 'boom', source: 'InternLM',
  }]]);
});

test('the next run clears the previous diagnostics first, and reuses the cached file prompt', async () => {
  const before = diagnosticsFor(scripted, uri).length;
  const again = await scripted.request('internlm/analyzeFile', { uri });
  const published = diagnosticsFor(scripted, uri).slice(before);
  assert.equal(published.length, 2);
  assert.deepEqual(published[0], []);
  assert.equal(published[1].length, 1);
  assert.equal(again.usage.cachedTokens, again.usage.promptTokens - 1);
});

test('files not open in the editor are read from disk; unreadable ones are refused', async () => {
  const file = path.join(tmpDir('analyze-disk'), 'tool.py');
  writeFileSync(file, 'x = 1\ny = 2\nz = 3\n');
  const diskUri = pathToFileURL(file).href;
  const result = await scripted.request('internlm/analyzeFile', { uri: diskUri });
  assert.equal(result.findings.length, 1);
  assert.deepEqual(result.findings[0].range, { start: { line: 1, character: 0 }, end: { line: 1, character: 5 } });
  await assert.rejects(scripted.request('internlm/analyzeFile', { uri: 'file:///no/such/file.py' }), /Cannot read/);
  await assert.rejects(scripted.request('internlm/analyzeFile', {}), /needs \{uri\}/);
});

test('a file larger than the context is cut, and the report says how much was analyzed', async () => {
  const big = 'file:///project/big.py';
  const lines = Array.from({ length: 400 }, (_, i) => `value_${i} = compute(${i}, "some text to make the line longer")`);
  await scripted.open(big, 'python', lines.join('\n'));
  // Same model, smaller context: the sessions are renewed, the model stays loaded.
  await scripted.configure(settings(scriptedPath, { contextLength: 4096 }));
  const result = await scripted.request('internlm/analyzeFile', { uri: big });
  const m = /^> Only lines 1–(\d+) of 400 fit into the context/.exec(result.report);
  assert.ok(m, result.report);
  assert.ok(Number(m[1]) > 0 && Number(m[1]) < 400 && Number(m[1]) % 16 === 0);
  assert.ok(result.usage.promptTokens + 1024 <= 4096);
  await scripted.configure(settings(scriptedPath));
});

test('a malformed answer gives a report and no findings, and publishes empty diagnostics', async () => {
  const result = await random.request('internlm/analyzeFile', { uri });
  assert.deepEqual(result.findings, []);
  assert.ok(result.report.length > 0);
  assert.deepEqual(diagnosticsFor(random, uri).at(-1), []);
});
