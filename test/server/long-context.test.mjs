// Long prompts over a real LSP connection with a tiny random model: work-done progress of a long
// workspace prefill (begin, increasing reports with token counts and ETA, end; also in
// internlm/status), cancelling it through window/workDoneProgress/cancel, and the sessions' context
// sized by the memory plan (automatic, explicit, and explicit but too big for this machine).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { settings, startServer, tinyModel, tmpDir } from './support.mjs';

let modelPath;
let client;
let dir;
let clock = Math.floor(Date.now() / 1000) - 7200;

/** About `lines` × 25 tokens of TypeScript, different for every name. */
function source(name, lines) {
  return Array.from({ length: lines }, (_, i) => `export function ${name}${i}(x: number): number { return x * ${i} + ${name.length}; }`).join('\n') + '\n';
}

/** Writes files newer than every earlier one, so they come last in the packed prompt. */
function addFiles(prefix, count, lines) {
  for (let i = 0; i < count; i++) {
    const file = path.join(dir, prefix, `part${i}.ts`);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, source(`${prefix}${i}`, lines));
    clock += 60;
    utimesSync(file, clock, clock);
  }
}

before(async () => {
  modelPath = await tinyModel(tmpDir('long-model'));
  dir = tmpDir('long-workspace');
  addFiles('base', 4, 20);
  client = await startServer({ initializationOptions: settings(modelPath), workspaceFolders: [dir], workDoneProgress: true });
  await client.waitForStatus((s) => s.state === 'ready');
  // Fill the cache with the base files, so each test prefills only the files it adds.
  await client.request('internlm/askWorkspace', { question: 'Hi', maxTokens: 1, temperature: 0 });
});

after(async () => {
  await client?.close();
});

const MESSAGE = /^Reading the workspace: [\d,]+ \/ [\d,]+ tokens( · [\d,]+ tok\/s · (about [\d ]+(s|min|h)[\d min]* left|a few seconds left))?$/;

test('a long workspace prefill reports work-done progress: begin, increasing reports with tokens and ETA, end', async () => {
  addFiles('progress', 8, 40);
  const before = client.workDone.size;
  const statusCount = client.statuses.length;
  const result = await client.request('internlm/askWorkspace', { question: 'What is here?', maxTokens: 2, temperature: 0 });
  assert.notEqual(result.finishReason, 'cancelled');
  const computed = result.usage.promptTokens - result.usage.cachedTokens;
  assert.ok(computed > 2048, `${computed} tokens computed`);

  const token = await client.waitForWorkDone((values) => values.at(-1)?.kind === 'end');
  assert.equal(client.workDone.size, before + 1, 'one progress for the request');
  const values = client.workDone.get(token);
  const [begin, ...rest] = values;
  assert.equal(begin.kind, 'begin');
  assert.equal(begin.title, 'InternLM');
  assert.equal(begin.cancellable, true);
  assert.match(begin.message, MESSAGE);
  assert.equal(rest.at(-1).kind, 'end');
  const reports = rest.slice(0, -1);
  assert.ok(reports.length >= 2, `${reports.length} reports`);
  assert.ok(reports.every((r) => r.kind === 'report' && MESSAGE.test(r.message)), JSON.stringify(reports));
  const percentages = [begin, ...reports].map((r) => r.percentage);
  assert.deepEqual(percentages, [...percentages].sort((a, b) => a - b), 'percentages never go back');
  const done = [begin, ...reports].map((r) => Number(r.message.match(/: ([\d,]+) \//)[1].replace(/,/g, '')));
  assert.deepEqual(done, [...done].sort((a, b) => a - b), 'token counts never go back');
  const total = Number(begin.message.match(/\/ ([\d,]+) tokens/)[1].replace(/,/g, ''));
  assert.ok(Math.abs(total - computed) <= 1, `progress total ${total}, computed ${computed}`);
  assert.ok(reports.some((r) => / tok\/s · /.test(r.message) && /left$/.test(r.message)), 'speed and time left once measured');
  console.log(`# progress: ${reports.length} reports over ${(rest.at(-1).at - begin.at).toFixed(0)} ms for ${total} tokens; last: ${reports.at(-1).message}`);

  // The same numbers travel in internlm/status for the status bar, and go away at the end.
  const statuses = client.statuses.slice(statusCount);
  const withPrefill = statuses.filter((s) => s.prefill);
  assert.ok(withPrefill.length >= 2, JSON.stringify(statuses));
  assert.ok(withPrefill.every((s) => s.prefill.token === token && s.prefill.title === 'Reading the workspace' && s.prefill.total === total));
  assert.ok(withPrefill.some((s) => s.prefill.tokensPerSecond > 0 && s.prefill.secondsLeft >= 0));
  assert.equal(client.statuses.at(-1).prefill, undefined);
});

test('window/workDoneProgress/cancel stops the request within a chunk or two', async () => {
  addFiles('cancel', 16, 40);
  const known = new Set(client.workDone.keys());
  const stream = client.stream('internlm/askWorkspace', { question: 'Explain.', maxTokens: 8, temperature: 0 });
  const token = await client.waitForWorkDone((values, t) => !known.has(t) && values.some((v) => v.kind === 'report'), 60000);
  const sent = performance.now();
  await client.connection.sendNotification('window/workDoneProgress/cancel', { token });
  const result = await stream.result;
  const ms = performance.now() - sent;
  console.log(`# cancel through work-done progress: answered ${ms.toFixed(0)} ms after the cancel`);
  assert.equal(result.finishReason, 'cancelled');
  assert.equal(result.text, '');
  assert.ok(ms < 3000, `${ms} ms`);
  await client.waitForWorkDone((values, t) => t === token && values.at(-1)?.kind === 'end', 5000);
  // The session still works: the next question reuses what was prefilled before the cancel.
  const next = await client.request('internlm/askWorkspace', { question: 'Explain.', maxTokens: 1, temperature: 0 });
  assert.notEqual(next.finishReason, 'cancelled');
});

test('the automatic context is the longest that fits, capped at what the model can use', async () => {
  const ready = await client.waitForStatus((s) => s.state === 'ready' && s.context);
  // The tiny model scales RoPE dynamically: a million tokens, which its small KV cache fits easily.
  assert.deepEqual(ready.context, { tokens: 1 << 20, kvType: 'f32' });
});

test('an explicit context that does not fit is an outOfMemory error naming the numbers; fixing the setting recovers', async () => {
  const huge = 1_000_000_000;
  const errored = client.nextStatus((s) => s.state === 'error');
  await client.configure(settings(modelPath, { contextLength: huge }));
  const status = await errored;
  assert.equal(status.errorKind, 'outOfMemory');
  assert.match(status.message, /^A 1000M-token context needs [\d.]+ GiB of KV cache in f32; this machine has [\d.]+ (GiB|MiB) free for it/);
  assert.match(status.message, /set internlm\.contextLength to [\d.]+[KM]? tokens or less/);
  assert.match(status.message, /set internlm\.contextLength to 0 \(automatic\)/);
  console.log(`# too big: ${status.message}`);
  await assert.rejects(client.request('internlm/askWorkspace', { question: 'Hi', maxTokens: 1 }), (error) => {
    assert.equal(error.data?.errorKind, 'outOfMemory');
    assert.match(error.message, /1000M-token context/);
    return true;
  });

  // Half again the longest f32 context this machine holds: f16 (half the bytes) holds it.
  const [, most, unit] = status.message.match(/contextLength to ([\d.]+)([KM]?) tokens or less/);
  const longest = Number(most) * (unit === 'M' ? 1e6 : unit === 'K' ? 1e3 : 1);
  const errored2 = client.nextStatus((s) => s.state === 'error');
  await client.configure(settings(modelPath, { contextLength: Math.floor(longest * 1.5) }));
  assert.match((await errored2).message, /set internlm\.kvType to f16, or set internlm\.contextLength to/);

  const q8 = client.nextStatus((s) => s.state === 'ready');
  await client.configure(settings(modelPath, { contextLength: 8192, kvType: 'q8' }));
  assert.deepEqual((await q8).context, { tokens: 8192, kvType: 'q8' });
  const answer = await client.request('internlm/chat', { messages: [{ role: 'user', content: 'Hi' }], maxTokens: 2, temperature: 0 });
  assert.equal(answer.usage.completionTokens, 2);

  const auto = client.nextStatus((s) => s.state === 'ready');
  await client.configure(settings(modelPath));
  assert.equal((await auto).context.tokens, 1 << 20);
});
