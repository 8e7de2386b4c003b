// The workspace prefix on disk, over real LSP connections with tiny random models: a question after
// a restart restores the saved files part and prefills only the question (time to first token
// cold vs restored is printed); an edit of the newest file keeps everything before it; another KV
// type, another model or another RoPE base never reuses a file; internlm.workspaceCache.maxBytes
// caps the disk used; a corrupt file is logged, deleted and answered from a cold prefill.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { settings, startServer, tinyModel, tmpDir } from './support.mjs';

let modelA;
let modelB;
let modelShort;
let storage;
let dir;
const running = new Set();

const FILES = 12;
const T0 = Math.floor(Date.now() / 1000) - 7200;

function source(name, variant = 0) {
  return Array.from({ length: 40 }, (_, i) => `export function ${name}${i}(x: number): number { return x * ${i + variant} + ${name.length}; }`).join('\n') + '\n';
}

function write(workspace, i, variant = 0, mtime = T0 + 60 * i) {
  const file = path.join(workspace, 'src', `file${i}.ts`);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, source(`file${i}_`, variant));
  utimesSync(file, mtime, mtime);
}

const cacheDir = (root = storage) => path.join(root, 'workspace-kv');
const cacheFiles = (root = storage) => {
  try {
    return readdirSync(cacheDir(root)).sort();
  } catch {
    return [];
  }
};

before(async () => {
  modelA = await tinyModel(tmpDir('cache-model-a'));
  modelB = await tinyModel(tmpDir('cache-model-b'), { seed: 7 });
  // Trained for 4096 tokens with dynamic NTK: a longer prompt's RoPE base depends on its length.
  modelShort = await tinyModel(tmpDir('cache-model-short'), { contextLength: 4096 });
  storage = tmpDir('cache-storage');
  dir = tmpDir('cache-workspace');
  for (let i = 0; i < FILES; i++) write(dir, i);
});

after(async () => {
  for (const client of running) await client.close();
});

async function serve({ model = modelA, storagePath = storage, workspace = dir, ...extra } = {}) {
  const client = await startServer({
    initializationOptions: { ...settings(model, extra), ...(storagePath ? { storagePath } : {}) },
    workspaceFolders: [workspace],
  });
  running.add(client);
  await client.waitForStatus((s) => s.state === 'ready');
  return client;
}

async function stop(client) {
  running.delete(client);
  await client.close();
}

/** Asks and measures the time to the first streamed text (with the workspace scan and packing). */
async function ask(client, question, maxTokens = 6) {
  const started = performance.now();
  const stream = client.stream('internlm/askWorkspace', { question, maxTokens, temperature: 0 });
  await Promise.race([stream.firstDelta, stream.result]);
  const ttftMs = performance.now() - started;
  const result = await stream.result;
  return { result, ttftMs };
}

/** Resolves once the server logged a save (the save runs after the answer). */
async function saved(client, count = 1) {
  const deadline = Date.now() + 30000;
  while (client.logs.filter((l) => l.includes('workspace cache: saved')).length < count) {
    if (Date.now() > deadline) throw new Error(`no save logged: ${client.logs.join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const restoredLog = (client) => client.logs.find((l) => l.includes('workspace cache: restored'));

let reference;

test('a question after a restart restores the saved files part and prefills only the question', async () => {
  const first = await serve();
  const cold = await ask(first, 'What does file3_7 return?');
  await saved(first);
  assert.deepEqual(cacheFiles().map((f) => path.extname(f)), ['.json', '.kv']);
  // The same follow-up without a restart, for comparison (in-memory reuse).
  const warm = await ask(first, 'Which function adds 9?');
  await stop(first);

  const second = await serve();
  const restored = await ask(second, 'Which function adds 9?');
  const log = restoredLog(second);
  assert.ok(log, second.logs.join('\n'));
  const { usage, contextTokens } = restored.result;
  assert.ok(usage.cachedTokens > contextTokens, `${usage.cachedTokens} cached, ${contextTokens} tokens of files`);
  assert.ok(usage.promptTokens - usage.cachedTokens < 64, `only the question is prefilled: ${usage.promptTokens - usage.cachedTokens}`);
  assert.equal(restored.result.text, warm.result.text, 'the restored cache answers like the one computed in memory');
  reference = { question: 'Which function adds 9?', text: restored.result.text };
  console.log(`# time to first token, ${cold.result.usage.promptTokens}-token workspace prompt (tiny model, CPU): cold ${cold.ttftMs.toFixed(0)} ms, ` +
    `restored after a restart ${restored.ttftMs.toFixed(0)} ms (${usage.cachedTokens} tokens from disk; ${log.replace(/^.*restored/, 'restored')})`);
  await stop(second);
});

test('after an edit of the newest file, a restart reuses every file before it', async () => {
  write(dir, FILES - 1, 1, T0 + 60 * FILES);
  const client = await serve();
  const { result } = await ask(client, 'What changed?');
  assert.ok(restoredLog(client), client.logs.join('\n'));
  const perFile = result.contextTokens / FILES;
  assert.ok(result.usage.cachedTokens > result.contextTokens - 1.5 * perFile, `${result.usage.cachedTokens} of ${result.contextTokens}`);
  assert.ok(result.usage.cachedTokens < result.contextTokens, 'the edited file is read again');
  console.log(`# after editing the newest file and restarting: ${result.usage.cachedTokens} of ${result.usage.promptTokens} prompt tokens reused`);
  // The changed prefix replaces the saved one.
  await saved(client);
  await stop(client);
  const again = await serve();
  const next = await ask(again, 'What changed?');
  assert.ok(next.result.usage.cachedTokens > next.result.contextTokens);
  await stop(again);
});

test('another KV type, another model or another RoPE base does not reuse the saved prefix', async () => {
  const q8 = await serve({ kvType: 'q8' });
  const a = await ask(q8, 'What changed?');
  assert.equal(a.result.usage.cachedTokens, 0);
  assert.equal(restoredLog(q8), undefined);
  await saved(q8);
  await stop(q8);

  const other = await serve({ model: modelB });
  const b = await ask(other, 'What changed?');
  assert.equal(b.result.usage.cachedTokens, 0);
  assert.equal(restoredLog(other), undefined);
  await saved(other);
  await stop(other);
  assert.equal(cacheFiles().filter((f) => f.endsWith('.kv')).length, 3, 'one per model and KV type');

  // Past the trained context the RoPE base is planned for a half-octave bucket that holds the
  // answer (server/prefill.ts): a question of another length after the same files keeps the base,
  // so the saved prefix serves it; an answer budget that reaches the next bucket needs another
  // base, and then the saved prefix is never used.
  const longStorage = tmpDir('cache-storage-rope');
  const short = await serve({ model: modelShort, storagePath: longStorage });
  const s1 = await ask(short, 'Why?');
  const prompt = s1.result.usage.promptTokens;
  let bucket = 4096;
  while (bucket < prompt + 6) bucket *= Math.SQRT2;
  assert.ok(prompt > 4096 && prompt + 2000 > bucket, `prompt ${prompt}: 2000 answer tokens must reach past the bucket of 6 (${Math.ceil(bucket)})`);
  await saved(short);
  await stop(short);
  const short2 = await serve({ model: modelShort, storagePath: longStorage });
  const s2 = await ask(short2, 'Why is that so, in more words?');
  assert.ok(restoredLog(short2), short2.logs.join('\n'));
  assert.ok(s2.result.usage.cachedTokens >= s1.result.contextTokens, `${s2.result.usage.cachedTokens} cached of ${s1.result.contextTokens} file tokens`);
  await stop(short2);
  const short3 = await serve({ model: modelShort, storagePath: longStorage });
  const s3 = await ask(short3, 'Why?', 2000);
  assert.equal(s3.result.usage.cachedTokens, 0);
  assert.ok(short3.logs.some((l) => /RoPE base .* not used/.test(l)), short3.logs.join('\n'));
  await stop(short3);
});

test('internlm.workspaceCache.maxBytes keeps the most recently used caches within the cap; 0 deletes them', async () => {
  const kv = cacheFiles().filter((f) => f.endsWith('.kv'));
  const sizes = Object.fromEntries(cacheFiles().map((f) => [f, statSync(path.join(cacheDir(), f)).size]));
  const groupBytes = (stem) => Object.entries(sizes).filter(([f]) => f.startsWith(stem)).reduce((n, [, b]) => n + b, 0);
  const client = await serve({ workspaceCache: { maxBytes: Math.max(...kv.map((f) => groupBytes(f.split('.')[0]))) + 1000 } });
  await ask(client, 'What changed?');
  assert.ok(restoredLog(client));
  const deadline = Date.now() + 10000;
  while (cacheFiles().length > 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const left = cacheFiles();
  assert.equal(left.length, 2, JSON.stringify(left));
  assert.ok(restoredLog(client).includes(left.find((f) => f.endsWith('.kv'))), 'the one just used stays');
  assert.ok(client.logs.some((l) => l.includes('over internlm.workspaceCache.maxBytes')));

  await client.configure(settings(modelA, { workspaceCache: { maxBytes: 0 } }));
  await client.waitForStatus((s) => s.state === 'ready');
  await ask(client, 'Anything else?');
  while (cacheFiles().length > 0 && Date.now() < deadline + 10000) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(cacheFiles(), []);
  await stop(client);
});

test('a corrupt cache file is logged and deleted; the answer comes from a cold prefill and is the same', async () => {
  // Restore the state of the first test: the original newest file, one saved prefix.
  write(dir, FILES - 1, 0, T0 + 60 * (FILES + 1));
  const writer = await serve();
  const fresh = await ask(writer, reference.question);
  // Saved now, or restored from a file that already holds this prefix.
  if (!restoredLog(writer)) await saved(writer);
  await stop(writer);
  const kv = cacheFiles().find((f) => f.endsWith('.kv'));
  const file = path.join(cacheDir(), kv);
  const size = statSync(file).size;
  writeFileSync(file, Buffer.alloc(size, 0x5a));

  const client = await serve();
  const { result } = await ask(client, reference.question);
  assert.ok(client.logs.some((l) => l.includes('could not be restored') && l.includes(kv)), client.logs.join('\n'));
  assert.equal(result.usage.cachedTokens, 0);
  assert.equal(result.text, fresh.result.text);
  console.log(`# corrupt cache: ${client.logs.find((l) => l.includes('could not be restored'))}`);
  // The cold prefill saved a good file again; now cut it short, as a full disk would.
  await saved(client);
  await stop(client);
  const whole = readFileSync(file);
  writeFileSync(file, whole.subarray(0, Math.floor(whole.length / 2)));
  const again = await serve();
  const second = await ask(again, reference.question);
  assert.ok(again.logs.some((l) => l.includes('could not be restored') && l.includes('truncated')), again.logs.join('\n'));
  assert.equal(second.result.usage.cachedTokens, 0);
  assert.equal(second.result.text, fresh.result.text);
  await stop(again);
});
