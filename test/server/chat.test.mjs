// The language server over a real LSP connection (spawned `node dist/server.js --stdio`) with a tiny
// random model: status notifications, internlm/chat streaming, cancellation, prefix reuse, errors
// and model reloads. Random weights write gibberish; the tests check protocol and engine effects.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { settings, startServer, tinyModel, tmpDir } from './support.mjs';

let modelPath;
let client;

before(async () => {
  modelPath = await tinyModel(tmpDir('chat-model'));
  client = await startServer({ initializationOptions: settings(modelPath) });
});

after(async () => {
  await client?.close();
});

test('initialize announces inline completions; loading reports progress, then ready with model and device', async () => {
  assert.equal(client.initializeResult.capabilities.inlineCompletionProvider, true);
  const ready = await client.waitForStatus((s) => s.state === 'ready');
  assert.equal(ready.model, 'internlm2-test-64x2');
  assert.match(ready.device, /^CPU, \d+ threads$/);
  assert.ok(ready.memory.used > 0);
  const loading = client.statuses.filter((s) => s.state === 'loading');
  assert.ok(loading.length >= 2, 'loading is reported with progress');
  assert.equal(loading[0].progress, 0);
  assert.match(loading[0].message, /model-f32\.gguf/);
  const fractions = loading.map((s) => s.progress);
  assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b), 'progress only grows');
});

test('chat streams deltas that add up to the final text; usage and timings are reported', async () => {
  await client.waitForStatus((s) => s.state === 'ready');
  const busy = client.nextStatus((s) => s.state === 'busy');
  const ready = client.nextStatus((s) => s.state === 'ready');
  const stream = client.stream('internlm/chat', { messages: [{ role: 'user', content: 'Write a haiku about caches.' }], maxTokens: 24, temperature: 0 });
  const result = await stream.result;
  assert.equal(result.finishReason, 'length');
  assert.ok(result.text.length > 0);
  assert.equal(stream.deltas.join(''), result.text);
  assert.ok(stream.deltas.length > 1, 'the text arrives in pieces');
  assert.equal(result.usage.completionTokens, 24);
  assert.ok(result.usage.promptTokens > 10);
  assert.ok(result.timings.promptMs > 0 && result.timings.generateMs > 0);
  await busy;
  assert.ok((await ready).tokensPerSecond > 0, 'ready reports the last decoding speed');
});

test('a follow-up turn reuses the cached conversation (cachedTokens)', async () => {
  const first = await client.request('internlm/chat', {
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is a KV cache?' }], maxTokens: 16, temperature: 0,
  });
  const second = await client.request('internlm/chat', {
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'What is a KV cache?' },
      { role: 'assistant', content: first.text },
      { role: 'user', content: 'And prefix reuse?' },
    ],
    maxTokens: 4,
    temperature: 0,
  });
  // Everything up to the new user message is reused: the first prompt and the reply's tokens (the
  // reply's last token was sampled but never fed back, so it is computed now).
  assert.equal(second.usage.cachedTokens, first.usage.promptTokens + first.usage.completionTokens - 1);
  assert.ok(second.usage.promptTokens > second.usage.cachedTokens);
  // The same conversation again: everything but the last prompt token comes from the cache.
  const third = await client.request('internlm/chat', {
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is a KV cache?' }], maxTokens: 2, temperature: 0,
  });
  assert.equal(third.usage.cachedTokens, first.usage.promptTokens - 1);
});

test('$/cancelRequest ends a generation quickly and returns the text so far', async () => {
  const stream = client.stream('internlm/chat', { messages: [{ role: 'user', content: 'Count to a million.' }], maxTokens: 20000, temperature: 0.8 });
  await stream.firstDelta;
  await new Promise((r) => setTimeout(r, 50));
  const cancelledAt = Date.now();
  stream.cancel();
  const result = await stream.result;
  const latency = Date.now() - cancelledAt;
  assert.equal(result.finishReason, 'cancelled');
  assert.ok(result.text.length > 0);
  assert.ok(result.text.startsWith(stream.deltas.join('')), 'the result holds at least the streamed text');
  assert.ok(result.usage.completionTokens < 20000);
  assert.ok(latency < 1000, `cancelled within ${latency} ms`);
  console.log(`# chat cancellation answered in ${latency} ms after ${result.usage.completionTokens} tokens`);
});

test('a request cancelled while it waits for the chat session returns cancelled without running', async () => {
  const running = client.stream('internlm/chat', { messages: [{ role: 'user', content: 'one' }], maxTokens: 20000 });
  const waiting = client.stream('internlm/chat', { messages: [{ role: 'user', content: 'two' }], maxTokens: 20000 });
  await running.firstDelta;
  waiting.cancel();
  running.cancel();
  const [r1, r2] = await Promise.all([running.result, waiting.result]);
  assert.equal(r1.finishReason, 'cancelled');
  assert.deepEqual(r2, {
    text: '', finishReason: 'cancelled',
    usage: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 }, timings: { promptMs: 0, generateMs: 0 },
  });
  assert.equal(waiting.deltas.length, 0);
});

test('bad requests are refused with a message', async () => {
  // About 200k tokens: longer than the context, and too many for push(...ids) to handle.
  const huge = 'lorem ipsum dolor sit amet '.repeat(40000);
  await assert.rejects(client.request('internlm/chat', { messages: [{ role: 'user', content: huge }] }), (e) => {
    assert.match(e.message, /too long for the context/);
    assert.equal(e.code, -32803);
    return true;
  });
  await assert.rejects(client.request('internlm/chat', { messages: [] }), /needs messages/);
  await assert.rejects(client.request('internlm/chat', { messages: [{ role: 'robot', content: 'x' }] }), /needs messages/);
});

test('a model change reloads; a missing model is an error state and requests say why', async () => {
  const missing = path.join(path.dirname(modelPath), 'nope.gguf');
  const error = client.nextStatus((s) => s.state === 'error');
  await client.configure(settings(missing));
  const status = await error;
  assert.equal(status.errorKind, 'modelNotFound');
  assert.match(status.message, /nope\.gguf/);
  await assert.rejects(client.request('internlm/chat', { messages: [{ role: 'user', content: 'hi' }] }), (e) => {
    assert.match(e.message, /Model file not found/);
    assert.deepEqual(e.data, { errorKind: 'modelNotFound' });
    return true;
  });
  const none = client.nextStatus((s) => s.state === 'error');
  await client.configure(settings(''));
  assert.equal((await none).errorKind, 'noModel');

  const loading = client.nextStatus((s) => s.state === 'loading');
  const ready = client.nextStatus((s) => s.state === 'ready');
  await client.configure(settings(modelPath));
  await loading;
  await ready;
  const result = await client.request('internlm/chat', { messages: [{ role: 'user', content: 'hi' }], maxTokens: 3 });
  assert.equal(result.usage.completionTokens, 3);
});

test('a request sent while the model loads waits for it', async () => {
  const ready = client.nextStatus((s) => s.state === 'ready');
  await client.configure(settings(modelPath, { threads: 1 }));
  const result = await client.request('internlm/chat', { messages: [{ role: 'user', content: 'hi' }], maxTokens: 2 });
  assert.equal(result.usage.completionTokens, 2);
  assert.equal((await ready).device, 'CPU, 1 threads');
});

test('a broken model file is a badModel error', async () => {
  const broken = path.join(tmpDir('broken'), 'broken.gguf');
  (await import('node:fs')).writeFileSync(broken, 'GGUF but not really');
  const error = client.nextStatus((s) => s.state === 'error');
  await client.configure(settings(broken));
  const status = await error;
  assert.equal(status.errorKind, 'badModel');
  assert.match(status.message, /could not be loaded/);
});
