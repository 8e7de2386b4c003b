// The engine host (server/engine-host.ts) on a real tiny model: after settings changes, the
// sessions are sized only once every disposed session's running call has ended, since a running
// call holds its KV cache until then (on a GPU a workspace cache can be most of its memory, and a
// plan made too early would give far too short contexts or a lasting out-of-memory error).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { importTs, root, tinyModel, tmpDir } from './support.mjs';

let EngineHost, DEFAULT_SETTINGS, modelPath;

before(async () => {
  process.env.INTERNLM_NATIVE = path.join(root, 'native', 'build', 'internlm.node');
  ({ EngineHost } = await importTs('server/engine-host.ts'));
  ({ DEFAULT_SETTINGS } = await importTs('server/settings.ts'));
  modelPath = await tinyModel(tmpDir('host'), { contextLength: 8192 });
});

const status = { loading() {}, ready() {}, error() {} };

test('sessions are sized after the old sessions\' running calls end, also after quick successive changes', async () => {
  let oldCallStarted = false, oldCallEnded = false;
  const sizedWhileOldCallRan = [];  // one entry per sizing after the old call started
  const host = new EngineHost(status, (line) => {
    if (line.startsWith('contexts') && oldCallStarted) sizedWhileOldCallRan.push(!oldCallEnded);
  });
  const settings = { ...DEFAULT_SETTINGS, modelPath, device: 'cpu', kvType: 'f32', contextLength: 8192 };
  host.configure(settings);
  const engine = await host.engine();
  const workspace = engine.sessions.get('workspace');
  oldCallStarted = true;
  const running = workspace.evaluate(Array.from({ length: 6000 }, (_, i) => 3 + ((i * 7) % 90)));
  running.then(() => (oldCallEnded = true), () => (oldCallEnded = true));

  // Two changes in a row (typing a number in the settings editor): the second must wait too.
  host.configure({ ...settings, contextLength: 4096 });
  host.configure({ ...settings, contextLength: 2048 });
  const resized = await host.engine();
  assert.ok(oldCallEnded, 'the engine was handed out while the old call still held its cache');
  assert.notEqual(resized, engine);
  // Only the latest change sizes the sessions, and only after the old call ended.
  assert.deepEqual(sizedWhileOldCallRan, [false], `sizings (true: while the old call ran): ${JSON.stringify(sizedWhileOldCallRan)}`);
  host.dispose();
});
