// textDocument/inlineCompletion over a real LSP connection with a tiny random model: result shape,
// single-line cut, superseded and cancelled requests, and the latency of the next keystroke.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CancellationTokenSource } from 'vscode-jsonrpc/node.js';
import { settings, startServer, tinyModel, tmpDir } from './support.mjs';

const uri = 'file:///project/src/math.ts';
const text = [
  'export function add(a: number, b: number): number {',
  '  return a + b;',
  '}',
  '',
  'export function mul(a: number, b: number): number {',
  '  return a * ',
  '}',
  '',
].join('\n');
const cursor = { line: 5, character: 13 };

let client;
let modelPath;

before(async () => {
  modelPath = await tinyModel(tmpDir('completion-model'));
  client = await startServer({ initializationOptions: settings(modelPath, { completion: { maxTokens: 48 } }) });
  await client.waitForStatus((s) => s.state === 'ready');
  await client.open('file:///project/src/other.ts', 'typescript', 'export const PI = 3.14159;\n');
  await client.open(uri, 'typescript', text);
});

after(async () => {
  await client?.close();
});

function complete(position = cursor, token) {
  return client.request('textDocument/inlineCompletion', {
    textDocument: { uri }, position, context: { triggerKind: 2 },
  }, token);
}

test('a mid-line completion is one line inserted at the cursor', async () => {
  const result = await complete();
  assert.ok(Array.isArray(result.items));
  assert.ok(result.items.length <= 1);
  for (const item of result.items) {
    assert.equal(typeof item.insertText, 'string');
    assert.ok(item.insertText.trim().length > 0);
    assert.ok(!item.insertText.includes('\n'), 'mid-line suggestions stay on the line');
    assert.deepEqual(item.range, { start: cursor, end: cursor });
  }
});

test('with a suggestion selected in the completion widget, the ghost text extends it', async () => {
  // "return a * " + the widget's "b" (replacing nothing yet typed at the cursor).
  const range = { start: cursor, end: cursor };
  const result = await client.request('textDocument/inlineCompletion', {
    textDocument: { uri }, position: cursor, context: { triggerKind: 2, selectedCompletionInfo: { range, text: 'b' } },
  });
  assert.equal(result.items.length, 1, 'the tiny model continues the line');
  assert.ok(result.items[0].insertText.startsWith('b') && result.items[0].insertText.length > 1);
  assert.deepEqual(result.items[0].range, range);
});

test('the next keystroke is served from the cached prefix, quickly', async () => {
  const times = [];
  let version = 2;
  let doc = text;
  let position = cursor;
  for (const typed of ['b', ';']) {
    const lines = doc.split('\n');
    lines[position.line] = lines[position.line].slice(0, position.character) + typed + lines[position.line].slice(position.character);
    doc = lines.join('\n');
    position = { line: position.line, character: position.character + 1 };
    await client.change(uri, version++, doc);
    const started = performance.now();
    const result = await complete(position);
    times.push(performance.now() - started);
    assert.ok(Array.isArray(result.items));
  }
  console.log(`# inline completion round trips after a keystroke: ${times.map((t) => `${t.toFixed(1)} ms`).join(', ')}`);
  // 48 tokens at most on a tiny model: far below a second unless the prompt is recomputed from scratch.
  assert.ok(Math.max(...times) < 2000, `${times}`);
  await client.change(uri, version, text);
});

test('a newer request supersedes a running one, which returns no items', async () => {
  // Multi-line position: a longer generation, so the first one is surely still running.
  const blank = { line: 3, character: 0 };
  const first = complete(blank);
  const second = complete(cursor);
  const [a, b] = await Promise.all([first, second]);
  assert.deepEqual(a, { items: [] });
  assert.ok(Array.isArray(b.items));
});

test('a cancelled request returns no items', async () => {
  const source = new CancellationTokenSource();
  const pending = complete({ line: 3, character: 0 }, source.token);
  source.cancel();
  assert.deepEqual(await pending, { items: [] });
});

test('unknown documents and an unloaded model give no items (no error)', async () => {
  const unknown = await client.request('textDocument/inlineCompletion', {
    textDocument: { uri: 'file:///nowhere.ts' }, position: { line: 0, character: 0 }, context: { triggerKind: 1 },
  });
  assert.deepEqual(unknown, { items: [] });
  const error = client.nextStatus((s) => s.state === 'error');
  await client.configure(settings(''));
  await error;
  assert.deepEqual(await complete(), { items: [] });
  const ready = client.nextStatus((s) => s.state === 'ready');
  await client.configure(settings(modelPath));
  await ready;
});

test('completions do not flip the status to busy', async () => {
  const before = client.statuses.length;
  await complete();
  await complete({ line: 3, character: 0 });
  assert.deepEqual(client.statuses.slice(before).filter((s) => s.state === 'busy'), []);
});
