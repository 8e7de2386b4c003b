// The sessions' context budget (server/context-plan.ts) on memory plans shaped like the engine's,
// for the cases a test machine cannot produce: a 7B model in 20 GiB, little memory, a GPU without
// a plan. The real plan on a real model is covered over LSP in long-context.test.mjs.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { importTs } from './support.mjs';

let plan;

before(async () => {
  plan = await importTs('server/context-plan.ts');
});

const GiB = 2 ** 30;
/** InternLM2.5-7B: 32 layers, 8 KV heads of 128; row bytes as the engine stores them. */
const PER_TOKEN = { f32: 2 * 32 * 8 * 512, f16: 2 * 32 * 8 * 256, q8: 2 * 32 * 8 * 136, q4: 2 * 32 * 8 * 72 };

function info(extra = {}) {
  return { contextLength: 32768, ropeScaling: { type: 'dynamic', factor: 2 }, device: 'cpu', headDim: 128, ...extra };
}

function memoryPlan(freeForKv, device = 'cpu') {
  const kvTypes = Object.fromEntries(Object.entries(PER_TOKEN).map(([t, b]) => [t, { bytesPerToken: b, maxContext: Math.floor(freeForKv / b) }]));
  return { device, memoryBytes: freeForKv + 5 * GiB, weightsBytes: 4.5 * GiB, workspaceBytes: 0.5 * GiB, kvTypes };
}

test('automatic: the small sessions first, the workspace session gets the rest, capped at a million tokens', () => {
  const p = plan.planContexts(info(), memoryPlan(20 * GiB), 0, 'q8');
  assert.equal(p.kvType, 'q8');
  assert.deepEqual({ ...p.contexts, workspace: undefined }, { completion: 8192, chat: 32768, analyze: 32768, workspace: undefined });
  const expected = Math.floor((20 * GiB) / PER_TOKEN.q8) - (8192 + 32768 * 2);
  assert.equal(p.contexts.workspace, expected);
  assert.equal(p.bytesPerToken, PER_TOKEN.q8);
  const big = plan.planContexts(info(), memoryPlan(200 * GiB), 0, 'q4');
  assert.equal(big.contexts.workspace, 1 << 20);
  const unscaled = plan.planContexts(info({ ropeScaling: { type: 'none', factor: 1 } }), memoryPlan(200 * GiB), 0, 'q4');
  assert.equal(unscaled.contexts.workspace, 32768, 'without RoPE scaling the trained context is the limit');
  assert.equal(plan.planContexts(info(), memoryPlan(20 * GiB), 0, 'auto').kvType, 'f32', 'auto is f32 on the CPU');
});

test('an explicit context that does not fit names the numbers and the ways out', () => {
  assert.throws(() => plan.planContexts(info(), memoryPlan(20 * GiB), 1 << 20, 'q8'), (error) => {
    assert.ok(error instanceof plan.ContextDoesNotFit);
    assert.match(error.message, /^A 1M-token context needs 68\.0 GiB of KV cache in q8; this machine has 15\.2 GiB free for it \(after the model's weights and the other sessions\): /);
    assert.match(error.message, /set internlm\.contextLength to 234K tokens or less, or set internlm\.contextLength to 0 \(automatic\)\.$/);
    assert.doesNotMatch(error.message, /kvType/, 'q4 would not fit either');
    return true;
  });
  assert.throws(() => plan.planContexts(info(), memoryPlan(20 * GiB), 200_000, 'f32'), /set internlm\.kvType to q8, or set internlm\.contextLength to/);
  const fits = plan.planContexts(info(), memoryPlan(20 * GiB), 100_000, 'q8');
  assert.deepEqual(fits.contexts, { completion: 8192, chat: 32768, analyze: 32768, workspace: 100_000 });
  const small = plan.planContexts(info(), memoryPlan(20 * GiB), 4096, 'q8');
  assert.deepEqual(small.contexts, { completion: 4096, chat: 4096, analyze: 4096, workspace: 4096 }, 'an explicit context caps them all');
});

test('little memory: the sessions share it evenly; too little is an error', () => {
  // 75,000 tokens: after 8K + 2 × 32K for the others, too little would be left for the workspace.
  const tight = plan.planContexts(info(), memoryPlan(75_000 * PER_TOKEN.q8), 0, 'q8');
  assert.deepEqual(tight.contexts, { completion: 8192, chat: 18750, analyze: 18750, workspace: 18750 });
  assert.throws(() => plan.planContexts(info(), memoryPlan(2000 * PER_TOKEN.f32), 0, 'f32'), /Not enough free memory for the KV caches: .* set internlm\.kvType to f16 or q8 or q4/);
});

test('without a plan for the device (a GPU), automatic is the trained context and explicit values are taken as they are', () => {
  const gpu = info({ device: 'cuda:0 (NVIDIA H200, 139 GiB)' });
  assert.equal(plan.planContexts(gpu, memoryPlan(20 * GiB), 0, 'auto').contexts.workspace, 32768);
  assert.equal(plan.planContexts(gpu, memoryPlan(20 * GiB), 0, 'auto').kvType, 'f16');
  assert.equal(plan.planContexts(gpu, undefined, 1 << 20, 'f16').contexts.workspace, 1 << 20);
  assert.equal(plan.planContexts(gpu, memoryPlan(20 * GiB, 'cuda:0'), 0, 'f16').contexts.workspace,
    Math.floor((20 * GiB) / PER_TOKEN.f16) - (8192 + 32768 * 2), 'a plan for the GPU is used');
});
