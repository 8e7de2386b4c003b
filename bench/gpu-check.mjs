// One run that checks and times the CUDA backend on the GPU of this machine (npm run gpu:check).
// Stages, in priority order, each with its own time limit inside one overall budget (--budget,
// default 560 s: the device tool's command limit is 600 s), results saved to --out after every
// stage (a hang or crash in one stage keeps the others' results):
//   1. build     with CUDA for this GPU's architecture                              (limit 300 s)
//   2. checks    cuda_bench check: every kernel against a CPU reference, per weight type and
//                KV type (f32/f16/q8/q4), fused norms, device top-k vs a host sort    (limit 90 s)
//   3. ceilings  cuda_bench bench: copy/read bandwidth, GEMM/GEMV rates, decode attention GB/s
//                per KV type at 128K keys, top-k time; cuBLAS bf16 through PyTorch    (limit 90 s)
//   4. parity    GPU vs CPU backend on random tiny and mid models: every weight type (CPU f32
//                cache vs GPU f16), then each KV type against the CPU's same type; and the KV
//                portability check (cuda_kv_bench parity: rows moved between the backends'
//                caches, decode compared; device top-k identical to a host sort)     (limit 150 s)
//   5. long      InternLM2.5-7B shape (random Q8_0 weights, dynamic NTK factor 2), q8 KV:
//                a real 128K prefill (time, memory), one-chunk probes up to 1M fitted into
//                predicted 512K / 1M prefill times, decode tok/s at 128K, 512K and 1M over a
//                cache filled with random entries (BENCH-ONLY fill) next to the roofline  (limit 150 s)
//   6. speed     7B shape F16, Q8_0 and Q4_K_M weights: prefill 512 / 8192, decode at 0 / 8K / 32K
//                (generate(), greedy: device argmax), decode at 0 without the norm fusion  (limit 200 s)
//   then a dated table in bench/RESULTS.md (between gpu-check markers), gpu-check.json and
//   gpu-results.md under --out. Without a GPU it prints "skipped: no GPU" and exits 0.
//
//   node bench/gpu-check.mjs [--out DIR] [--budget S] [--no-build] [--skip-speed] [--skip-parity]
//                            [--skip-long] [--long-real-1m] [--models DIR]
//   node bench/gpu-check.mjs --pack [--binaries-only]   (here: packs node and sm_90 binaries built
//        from these sources for a GPU machine into tmp/gpu-carry; there the build stage uses them
//        when native/ is unchanged and they run, else builds; --no-prebuilt always builds)
//   node bench/gpu-check.mjs --report FILE [--results PATH]   (here: bench/RESULTS.md from a run's
//        gpu-check.json, the table also printed)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BLOCK_LIMIT, BLOCK_MIXES, BLOCK_MODEL } from '../test/fixtures/gpu-parity.mjs';
import { unitRandom } from '../test/fixtures/make-model.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const buildDir = path.join(root, 'native', 'build');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const outDir = path.resolve(option('--out', path.join(os.tmpdir(), 'ilm-gpu-check')));
let modelDir = path.resolve(option('--models', path.join(os.tmpdir(), 'ilm-gpu-models')));  // see modelRoom()
const resultsFile = path.resolve(option('--results', path.join(root, 'bench', 'RESULTS.md')));
const started = Date.now();
const budgetMs = Number(option('--budget', '560')) * 1000;
const deadline = Number(option('--deadline', String(started + budgetMs)));  // phases inherit the parent's
const results = { date: new Date().toISOString(), checks: [], parity: [], kvPortability: [], speed: [], long: [], stages: [], ceilings: {} };
const log = (...a) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s]`, ...a);
const remainingMs = () => deadline - Date.now();

// Binaries built here for sm_90 by --pack (see usePrebuilt).
const PREBUILT = path.join(root, 'tmp', 'gpu-carry', 'prebuilt-sm90.tar.xz');
const PREBUILT_FILES = ['internlm.node', 'cuda_bench', 'cuda_kv_bench', 'make_random_gguf'];

// The 7B-shape speed models (random weights of InternLM2.5-7B's shape), kept in --models.
const SHAPE = { dim: 4096, layers: 32, heads: 32, kvHeads: 8, ffn: 14336, vocab: 92544 };
const SPEED_TYPES = ['f16', 'q8_0', 'q4_k_m'];  // q4_k_m: the official files' most used type, last (least budget)
const speedModel = (type) => path.join(modelDir, `internlm2_5-7b-shape-${type}.gguf`);
const writers = [];  // background make_random_gguf processes (writeSpeedModels)
process.on('exit', () => {
  for (const w of writers) if (w.exitCode === null && w.signalCode === null) w.kill();  // an early exit leaves no writer behind
});

// Limits of the parity checks (max |Δlogprob| over the CPU's top-20).
const LIMITS = {
  weights: 1e-2,  // CPU f32 cache vs GPU f16 cache, every weight type (GPU prefill GEMMs read fp16 activations)
  blocks: BLOCK_LIMIT,  // the low-bit GGUF types (test/fixtures/gpu-parity.mjs says why it is looser)
  // Same KV type on both backends, each computing its own cache. A q8/q4 code can land one step
  // apart when the two backends' K/V values differ by rounding (~1e-3 relative in prefill), so
  // these are looser than f16's; CPU q8 / q4 vs f32 measure 1e-2 / 0.25 (bench/RESULTS.md).
  kv: { f32: 1e-2, f16: 1e-2, q8: 5e-2, q4: 0.3 },
  portability: 1e-2,  // identical cache bytes on both backends: decode numerics only
};

if (flag('--pack')) {
  pack();
  process.exit(0);
}
if (option('--report', null)) {
  Object.assign(results, JSON.parse(readFileSync(option('--report', null), 'utf8')));
  const text = writeResults(results);
  console.log(`\n${text}`);
  process.exit(0);
}

// ---------------------------------------------------------------- 0. is there a GPU?

function gpuPresent() {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,compute_cap,driver_version,memory.total', '--format=csv,noheader'], {
    encoding: 'utf8',
  });
  if (r.status !== 0 || !r.stdout.trim()) return null;
  const [name, cap, driver, memory] = r.stdout.trim().split('\n')[0].split(',').map((s) => s.trim());
  return { name, cap, driver, memory };
}

const phase = option('--phase', null);  // internal: a child process running one part
const gpu = phase ? JSON.parse(option('--gpu', '{}')) : gpuPresent();
if (!gpu) {
  console.log('skipped: no GPU (nvidia-smi found no NVIDIA GPU on this machine)');
  process.exit(0);
}
mkdirSync(outDir, { recursive: true });
mkdirSync(modelDir, { recursive: true });
results.gpu = gpu;
const seed = Number(option('--seed', String(Date.now() % 1e9)));
results.seed = seed;

const tool = (name) => {
  const p = path.join(buildDir, name);
  if (!existsSync(p)) throw new Error(`${p} is missing: the build did not include CUDA (is nvcc on PATH?)`);
  return p;
};

// A native tool's JSON lines; its stderr passes through (progress). A timeout keeps what it printed.
function runTool(name, toolArgs, timeout = 240_000) {
  const limit = Math.max(5_000, Math.min(timeout, remainingMs()));
  const r = spawnSync(tool(name), toolArgs, { encoding: 'utf8', timeout: limit, maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  for (const l of (r.stdout ?? '').split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(l));
    } catch {
      lines.push({ kind: 'error', message: `unparsable line: ${l.slice(0, 200)}` });
    }
  }
  const timedOut = r.error?.code === 'ETIMEDOUT' || r.signal === 'SIGTERM';
  return { status: r.status, lines, stderr: r.stderr ?? '', timedOut, why: r.error ? String(r.error.message) : r.signal ? `killed by ${r.signal}` : null };
}

// Records a stage: its time and how it ended. Results so far are saved after each one.
function stageDone(name, t0, outcome) {
  results.stages.push({ name, seconds: (Date.now() - t0) / 1000, outcome });
  log(`stage ${name}: ${outcome} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  saveProgress();
}

function saveProgress() {
  writeFileSync(path.join(outDir, 'gpu-check.json.part'), JSON.stringify(results, null, 2));
  renameSync(path.join(outDir, 'gpu-check.json.part'), path.join(outDir, 'gpu-check.json'));
}

// Time left for a stage: its own limit, or what the overall budget leaves (minus a reserve for
// the report); null when too little is left to start it.
function stageLimit(limitMs, minimumMs = 20_000) {
  const left = remainingMs() - 10_000;
  return left < minimumMs ? null : Math.min(limitMs, left);
}

// Runs parity or speed in a child process (a GPU fault in one cannot take the other down) and
// returns what it recorded.
function runPhase(name, timeout) {
  const file = path.join(outDir, `phase-${name}.json`);
  rmSync(file, { force: true });
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--phase', name, '--gpu', JSON.stringify(gpu),
    '--ceilings', JSON.stringify(results.ceilings), '--seed', String(seed), '--out', outDir, '--models', modelDir,
    '--deadline', String(Date.now() + timeout)],
  { stdio: 'inherit', timeout });
  const recorded = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  if (r.status !== 0) {
    const why = r.error ? String(r.error.message) : r.signal ? `killed by ${r.signal}` : `exit status ${r.status}`;
    recorded.error = `${name} phase failed: ${why}${recorded.error ? `; ${recorded.error}` : ''}`;
    log(`ERROR ${recorded.error}`);
  }
  return recorded;
}

// ---------------------------------------------------------------- 1-3. build, kernel checks, ceilings

let failedChecks = [];
const errors = [];
const wantSpeed = !flag('--skip-speed'), wantLong = !flag('--skip-long');
const modelTypes = [...(wantSpeed ? SPEED_TYPES : []), ...(wantLong && !wantSpeed ? ['q8_0'] : [])];
let speedModels = null;
if (!phase) {
  log(`GPU: ${gpu.name} (compute ${gpu.cap}, driver ${gpu.driver}, ${gpu.memory}); budget ${(budgetMs / 1000).toFixed(0)} s`);
  const prebuiltWhy = flag('--no-build') || flag('--no-prebuilt') ? 'not wanted' : usePrebuilt();
  if (prebuiltWhy === null) {
    stageDone('build', started, 'prebuilt binaries (sources match, probes passed)');
  } else if (!flag('--no-build')) {
    if (prebuiltWhy !== 'not wanted') log(`prebuilt binaries not used: ${prebuiltWhy}`);
    const t0 = Date.now();
    // nvcc outside PATH (CUDA images often keep it in /usr/local/cuda/bin) would silently give a CPU-only build.
    const cudaBin = '/usr/local/cuda/bin';
    if (spawnSync('nvcc', ['--version']).status !== 0 && existsSync(path.join(cudaBin, 'nvcc')))
      process.env.PATH = `${cudaBin}${path.delimiter}${process.env.PATH}`;
    const archs = process.env.INTERNLM_CUDA_ARCHS ?? gpu.cap.replace('.', '');
    log(`building (INTERNLM_CUDA_ARCHS=${archs})`);
    const r = spawnSync(process.execPath, [path.join(root, 'native', 'build.mjs')], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, INTERNLM_CUDA: 'ON', INTERNLM_CUDA_ARCHS: archs },
      timeout: stageLimit(300_000) ?? 60_000,
    });
    if (r.status !== 0) {
      stageDone('build', t0, `FAILED (${r.error ? r.error.message : `exit ${r.status}`})`);
      console.log('FAIL: the build failed; nothing else can run');
      process.exit(1);
    }
    stageDone('build', t0, 'ok');
  }
  modelRoom();
  // The 7B-shape models are written by background processes (CPU and disk) while the GPU stages run.
  speedModels = modelTypes.length ? writeSpeedModels(modelTypes).catch((e) => e) : null;
  {
    const t0 = Date.now();
    // One process per group: a kernel fault (a sticky CUDA error) ends only its own group.
    const stageEnd = Date.now() + (stageLimit(90_000) ?? 30_000);
    for (const group of ['matmul', 'blocks', 'norm', 'topk', 'kv', 'attention']) {
      const kernelChecks = runTool('cuda_bench', ['check', group], Math.max(10_000, stageEnd - Date.now()));
      const mine = kernelChecks.lines.filter((l) => l.kind === 'check').map((c) => ({ ...c, group }));
      results.checks.push(...mine);
      const device = kernelChecks.lines.find((l) => l.kind === 'device');
      if (!device || device.error) {
        console.log(`CUDA is not usable here: ${device?.error ?? kernelChecks.stderr}`);
        stageDone('checks', t0, 'CUDA not usable');
        process.exit(1);
      }
      const failed = mine.filter((c) => !c.ok);
      failedChecks.push(...failed);
      log(`kernel checks ${group}: ${mine.length - failed.length}/${mine.length} passed`);
      for (const c of failed) log(`  FAILED ${c.what}: ${c.rel_err} > ${c.limit}`);
      for (const l of kernelChecks.lines.filter((l) => l.kind === 'error')) log(`  ERROR ${l.message}`);
      if (kernelChecks.status !== 0 && failed.length === 0) {
        failedChecks.push({ what: `cuda_bench check ${group} (${kernelChecks.why ?? `exit ${kernelChecks.status}`}) after "${mine.at(-1)?.what ?? 'nothing'}"`, rel_err: NaN, limit: 0 });
        log(`  cuda_bench check ${group} ended badly (${kernelChecks.why ?? kernelChecks.status}); last check: ` +
          `${mine.at(-1)?.what ?? 'none'}; stderr: ${kernelChecks.stderr.slice(-2000)}`);
      }
    }
    stageDone('checks', t0, failedChecks.length ? `${failedChecks.length} failed` : 'ok');
  }
  {
    const t0 = Date.now();
    const bench = runTool('cuda_bench', ['bench'], stageLimit(90_000) ?? 30_000);
    const benchValue = (what, unit) => bench.lines.find((l) => l.kind === 'bench' && l.what.startsWith(what))?.[unit];
    results.ceilings = {
      copyGBps: benchValue('copy', 'gbps'),
      readGBps: benchValue('read', 'gbps'),
      gemmF16: benchValue('gemm F16', 'tflops'),
      gemmBF16: benchValue('gemm BF16', 'tflops'),
      gemmQ8: benchValue('gemm Q8_0', 'tflops'),
      gemvF16GBps: benchValue('gemv F16', 'gbps'),
      gemvQ8GBps: benchValue('gemv Q8_0', 'gbps'),
      gemvQ4KGBps: benchValue('gemv Q4_K', 'gbps'),
      gemvQ6KGBps: benchValue('gemv Q6_K', 'gbps'),
      attention: bench.lines.filter((l) => l.kind === 'bench' && l.what.startsWith('attention decode')).map((l) => ({ what: l.what, gbps: l.gbps, ms: l.ms })),
      topK: bench.lines.filter((l) => l.kind === 'bench' && l.what.startsWith('top_k')).map((l) => ({ what: l.what, us: l.us })),
      cublasBF16: remainingMs() > 120_000 ? torchGemmRate() : null,
    };
    const C = results.ceilings;
    log(`copy ${fmt(C.copyGBps)} GB/s (read+write), read ${fmt(C.readGBps)} GB/s; GEMM ours F16 ${fmt(C.gemmF16)} / BF16 ${fmt(C.gemmBF16)} / Q8_0 ${fmt(C.gemmQ8)} TFLOP/s, cuBLAS bf16 ${C.cublasBF16 ? fmt(C.cublasBF16) : 'n/a'}; GEMV F16 ${fmt(C.gemvF16GBps)} GB/s, Q8_0 ${fmt(C.gemvQ8GBps)} GB/s, Q4_K ${fmt(C.gemvQ4KGBps)} GB/s, Q6_K ${fmt(C.gemvQ6KGBps)} GB/s`);
    for (const a of C.attention) log(`  ${a.what}: ${fmt(a.gbps)} GB/s (${fmt(a.ms * 1000)} us)`);
    for (const t of C.topK) log(`  ${t.what}: ${fmt(t.us)} us`);
    stageDone('ceilings', t0, bench.status === 0 ? 'ok' : `incomplete (${bench.why ?? `exit ${bench.status}`})`);
  }
} else {
  results.ceilings = JSON.parse(option('--ceilings', '{}'));
}
const C = results.ceilings;

// cuBLAS's bf16 rate through PyTorch, as the matrix-unit ceiling (optional: the build never needs it).
function torchGemmRate() {
  const script = `
import torch
a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16)
for _ in range(3): a @ b
torch.cuda.synchronize()
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
times = []
for _ in range(10):
    s.record(); a @ b; e.record(); e.synchronize(); times.append(s.elapsed_time(e))
times.sort()
print(2 * 8192**3 / times[5] / 1e9)
`;
  const r = spawnSync('python3', ['-c', script], { encoding: 'utf8', timeout: 60_000 });
  const v = Number.parseFloat(r.stdout?.trim().split('\n').pop() ?? '');
  return r.status === 0 && Number.isFinite(v) ? v : null;
}

// ---------------------------------------------------------------- 4. parity with the CPU backend

const require = createRequire(import.meta.url);
const addon = phase ? require(path.join(buildDir, 'internlm.node')) : null;
const load = (file, options) => addon.loadModel(file, options, () => {});

const random = unitRandom(seed);
const randomTokens = (n, vocab) => Array.from({ length: n }, () => 3 + Math.floor(random() * (vocab - 3)));

// Max |Δlogprob| over the CPU's top-20 of each row (the GPU reports its top-40, which must contain them).
function maxDelta(cpuTop, gpuTop) {
  let worst = 0;
  for (let i = 0; i < cpuTop.length; i++) {
    const g = new Map(gpuTop[i]);
    for (const [id, lp] of cpuTop[i]) {
      const other = g.get(id);
      worst = Math.max(worst, other === undefined ? Infinity : Math.abs(lp - other));
    }
  }
  return worst;
}

// kvType undefined: each backend's default cache (CPU f32, GPU f16), the weight-type check.
async function parityCase(preset, format, file, contextLength, length, kvType) {
  const cpu = await load(file, { device: 'cpu' });
  const gpuModel = await load(file, { device: 'cuda' });
  const context = length + 64;
  const vocab = cpu.info().vocabSize;
  const tokens = [1, ...randomTokens(length - 1, vocab)];
  const pieces = [tokens.length - 20, 1, 1, 1, 5, 1, 8, 1, 1, 1];
  const session = (m, n) => (kvType ? m.createSession(n, kvType) : m.createSession(n));
  const sCpu = session(cpu, context), sGpu = session(gpuModel, context);
  let worst = 0, at = 0, worstPiece = '';
  const t0 = Date.now();
  for (const n of pieces) {
    const piece = tokens.slice(at, at + n);
    const [a, b] = [await sCpu.evaluate(piece, 20), await sGpu.evaluate(piece, 40)];
    const d = maxDelta(a.top, b.top);
    if (!(d <= worst)) [worst, worstPiece] = [d, `${n} token(s) at ${at}`];  // NaN (NaN logits) too: it must fail
    if (a.ropeBase !== b.ropeBase) throw new Error(`RoPE bases differ: ${a.ropeBase} vs ${b.ropeBase}`);
    at += n;
  }
  // Greedy continuations: the GPU's go through the device argmax (only the best id comes back).
  const prompt = tokens.slice(0, 24);
  const gen = { prompt, maxTokens: 32, temperature: 0, stopTokens: [] };
  const [ga, gb] = [await session(cpu, context).generate(gen, () => {}), await session(gpuModel, context).generate(gen, () => {})];
  const diverge = ga.tokens.findIndex((t, i) => t !== gb.tokens[i]);
  let note = '', nearTie = false;
  if (diverge >= 0) {
    // A divergence at a near-tie of the CPU's two best tokens is rounding, not a bug: say which.
    const s = session(cpu, context);
    const r = await s.evaluate([...prompt, ...ga.tokens.slice(0, diverge)], 2);
    const last = r.top[r.top.length - 1];
    const gap = last[0][1] - last[1][1];
    nearTie = gap < 2 * (kvType ? LIMITS.kv[kvType] : format.startsWith('quantized') ? LIMITS.blocks : LIMITS.weights);
    note = `diverges at step ${diverge} (CPU top-2 gap ${gap.toExponential(1)}${nearTie ? ', a near-tie' : ''})`;
  }
  for (const m of [cpu, gpuModel]) m.dispose();
  const limit = kvType ? LIMITS.kv[kvType] : format.startsWith('quantized') ? LIMITS.blocks : LIMITS.weights;
  const ok = worst <= limit && (diverge < 0 || nearTie);
  const row = { preset, format, kv: kvType ?? 'default', length, contextLength, maxDelta: worst, limit, worstPiece,
    greedyAgree: diverge < 0, note, ok, ms: Date.now() - t0 };
  results.parity.push(row);
  writeFileSync(path.join(outDir, 'phase-parity.json'), JSON.stringify(results));
  log(`${ok ? 'ok  ' : 'FAIL'} ${preset} ${format.padEnd(9)} kv ${(kvType ?? 'default').padEnd(7)} max|Δlogprob| ${worst.toExponential(2)} ` +
    `(limit ${limit}; ${worstPiece}); greedy ${diverge < 0 ? 'agrees' : note}`);
}

// Rows moved between the backends' caches (what a saved cache file holds), then decode on both.
function portabilityCase(preset, file, kv, prompt) {
  const r = runTool('cuda_kv_bench', ['parity', file, '--kv', kv, '--prompt', String(prompt), '--steps', '6', '--seed', String(seed)], 90_000);
  const err = r.lines.find((l) => l.kind === 'error');
  if (err || r.status !== 0) {
    const message = err?.message ?? r.why ?? `exit ${r.status}: ${r.stderr.slice(-500)}`;
    results.kvPortability.push({ preset, kv, ok: false, error: message });
    log(`FAIL ${preset} kv ${kv} portability: ${message}`);
    return;
  }
  for (const l of r.lines.filter((l) => l.kind === 'parity')) {
    l.max_delta ??= Infinity;  // the tool writes a non-finite value as null
    const ok = l.max_delta <= LIMITS.portability && l.topk_id_mismatches === 0 && l.topk_max_logit_diff === 0;
    results.kvPortability.push({ preset, kv, direction: l.direction, maxDelta: l.max_delta, topkMismatches: l.topk_id_mismatches,
      topkLogitDiff: l.topk_max_logit_diff, ok });
    log(`${ok ? 'ok  ' : 'FAIL'} ${preset} kv ${kv.padEnd(3)} ${l.direction}: max|Δlogprob| ${l.max_delta.toExponential(2)} ` +
      `(limit ${LIMITS.portability}); device top-k vs host sort: ${l.topk_id_mismatches} id mismatches, max logit diff ${l.topk_max_logit_diff}`);
  }
  for (const l of r.lines.filter((l) => l.kind === 'growth')) {
    const ok = l.differing_bytes === 0 && l.capacity >= l.positions && (l.positions <= 64 || l.growths > 0);
    results.kvPortability.push({ preset, kv, direction: `grown ${l.growths} times to ${l.capacity}`, differing: l.differing_bytes, ok });
    log(`${ok ? 'ok  ' : 'FAIL'} ${preset} kv ${kv.padEnd(3)} cache grown ${l.growths} times to ${l.capacity} positions: ${l.differing_bytes} bytes differ from the rows written`);
  }
  for (const l of r.lines.filter((l) => l.kind === 'greedy')) {
    results.kvPortability.push({ preset, kv, direction: 'greedy sample_best vs sample', differing: l.differing, ok: l.differing === 0 });
    log(`${l.differing === 0 ? 'ok  ' : 'FAIL'} ${preset} kv ${kv.padEnd(3)} greedy through device top-1: ${l.differing} of ${l.steps} steps differ`);
  }
  writeFileSync(path.join(outDir, 'phase-parity.json'), JSON.stringify(results));
}

async function parity() {
  const { makeModel } = await import(path.join(root, 'test', 'fixtures', 'make-model.mjs'));
  const formats = ['gguf-f32', 'gguf-f16', 'gguf-bf16', 'gguf-q8_0', 'hf-bf16'];
  // tiny: context 64 and 100 tokens, so dynamic NTK scales the RoPE base; mid: 1100 tokens cross
  // the GPU's 1024-token chunk.
  const plan = [
    { preset: 'tiny', contextLength: 64, length: 100, kvTypes: ['f32', 'f16', 'q8', 'q4'], kvFormat: 'gguf-f16' },
    { preset: 'mid', contextLength: 32768, length: 1100, kvTypes: ['q8', 'q4'], kvFormat: 'gguf-q8_0' },
  ];
  for (const { preset, contextLength, length, kvTypes, kvFormat } of plan) {
    if (remainingMs() < 30_000) {
      log(`skipping the ${preset} parity checks: time budget`);
      results.parity.push({ preset, format: '-', ok: false, error: 'skipped: time budget' });
      continue;
    }
    const dir = path.join(modelDir, `parity-${preset}`);
    rmSync(dir, { recursive: true, force: true });
    const made = await makeModel({ dir, preset, formats, seed: 1 + Math.floor(random() * 1e6), contextLength });
    const cases = [...formats.map((format) => [format, undefined]), ...kvTypes.map((kv) => [kvFormat, kv])];
    for (const [format, kv] of cases) {
      try {
        await parityCase(preset, format, made.paths[format], contextLength, length, kv);
      } catch (e) {
        results.parity.push({ preset, format, kv: kv ?? 'default', ok: false, error: String(e.message ?? e) });
        log(`FAIL ${preset} ${format} kv ${kv ?? 'default'}: ${e.message ?? e}`);
      }
    }
    for (const kv of ['f32', 'f16', 'q8', 'q4']) {
      if (remainingMs() < 15_000) break;
      portabilityCase(preset, made.paths[kvFormat], kv, preset === 'tiny' ? 90 : length);
    }
    rmSync(dir, { recursive: true, force: true });
    if (preset === 'tiny') await blockParity(makeModel);  // before mid: newer code, quicker cases
  }
}

// The low-bit GGUF types (the GPU reads their blocks as the file has them): a model whose widths
// are whole 256-value super-blocks, quantized with llama.cpp's mixes by our quantizer.
async function blockParity(makeModel) {
  const dir = path.join(modelDir, 'parity-blocks');
  rmSync(dir, { recursive: true, force: true });
  const made = await makeModel({ dir, preset: 'tiny', formats: ['gguf-f16'], ...BLOCK_MODEL, seed: 1 + Math.floor(random() * 1e6),
    contextLength: 4096 });
  for (const mix of BLOCK_MIXES) {
    if (remainingMs() < 15_000) {
      results.parity.push({ preset: 'blocks', format: `quantized ${mix}`, ok: false, error: 'skipped: time budget' });
      continue;
    }
    const file = path.join(dir, `${mix}.gguf`);
    try {
      await addon.quantizeModel(made.paths['gguf-f16'], file, mix, {}, () => {});
      await parityCase('blocks', `quantized ${mix}`, file, 4096, 300);
    } catch (e) {
      results.parity.push({ preset: 'blocks', format: `quantized ${mix}`, kv: 'default', ok: false, error: String(e.message ?? e) });
      log(`FAIL blocks ${mix}: ${e.message ?? e}`);
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- 5-6. long context and speed on a 7B-shaped model

// Writes the 7B-shape models (once: they are kept in --models) in background processes that run
// while the parity phase does (its spawnSync blocks this process, not them); resolves when all exist.
function writeSpeedModels(types) {
  return Promise.all(types.filter((t) => !existsSync(speedModel(t))).map((type) => new Promise((resolve, reject) => {
    const file = speedModel(type);
    const child = spawn(tool('make_random_gguf'), ['--out', `${file}.part`, '--type', type, '--seed', String(seed)], { stdio: 'ignore' });
    writers.push(child);
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`make_random_gguf exited with ${code} for ${file}`));
      renameSync(`${file}.part`, file);
      resolve();
    });
  })));
}

// The 7B-shape models take ~28 GB (F16 15.5, Q8_0 8.2, Q4_K_M 4.7). os.tmpdir() may be a small or memory-backed
// file system: without --models, when it lacks the room, they go to tmp/ in the repository instead.
function modelRoom() {
  const free = (dir) => {
    try {
      const s = statfsSync(dir);
      return s.bavail * s.bsize;
    } catch {
      return Infinity;
    }
  };
  const need = modelTypes.filter((t) => !existsSync(speedModel(t)))
    .reduce((n, t) => n + decodeBytes(t, 0) + typeBytes(t, SHAPE.vocab, SHAPE.dim), 0);
  log(`models: ${modelDir}, ${(free(modelDir) / 1e9).toFixed(0)} GB free, ${(need / 1e9).toFixed(1)} GB to write`);
  if (need === 0 || free(modelDir) > need + 2e9 || option('--models', null)) return;
  const fallback = path.join(root, 'tmp', 'ilm-gpu-models');
  mkdirSync(fallback, { recursive: true });
  if (free(fallback) > free(modelDir)) {
    modelDir = fallback;
    log(`too little room there: writing them to ${modelDir} (${(free(fallback) / 1e9).toFixed(0)} GB free)`);
  }
}

// q4_k_m: as if all Q4_K (its Q6_K tensors add ~10%); decodeBytes reads the real file's size.
function typeBytes(type, rows, cols) {
  const n = rows * cols;
  if (type === 'q4_k_m') return (n / 256) * 144;
  return type === 'q8_0' ? (n / 32) * 34 : n * ({ f16: 2, bf16: 2, f32: 4 }[type]);
}

// Bytes a decode step must read: every matrix but the embedding table (one row of it), plus the KV cache.
function decodeBytes(type, context, kvBytesPerToken = 2 * SHAPE.layers * SHAPE.kvHeads * (SHAPE.dim / SHAPE.heads) * 2) {
  const s = SHAPE, hd = s.dim / s.heads, qkv = (s.heads + 2 * s.kvHeads) * hd;
  if (type === 'q4_k_m' && existsSync(speedModel(type)))  // a mix: every weight but the embedding table, from the file
    return statSync(speedModel(type)).size - typeBytes(type, s.vocab, s.dim) + kvBytesPerToken * context;
  const perLayer = typeBytes(type, qkv, s.dim) + typeBytes(type, s.dim, s.heads * hd) + 3 * typeBytes(type, s.ffn, s.dim);
  return s.layers * perLayer + typeBytes(type, s.vocab, s.dim) + kvBytesPerToken * context;
}

// FLOPs of a T-token prefill from an empty cache: 2 per weight per token, plus causal attention.
function prefillFlops(T) {
  const s = SHAPE, hd = s.dim / s.heads;
  const weights = s.layers * ((s.heads + 2 * s.kvHeads) * hd * s.dim + s.dim * s.heads * hd + 3 * s.ffn * s.dim);
  return 2 * weights * T + 4 * s.layers * s.heads * hd * (T * T) / 2;
}

function ensureModel(type) {
  const file = speedModel(type);
  if (!existsSync(file)) {
    log(`writing ${file}`);
    execFileSync(tool('make_random_gguf'), ['--out', `${file}.part`, '--type', type, '--seed', String(seed)], { stdio: 'inherit' });
    renameSync(`${file}.part`, file);
  }
  return file;
}

// Long context (issue #6): q8 KV on the Q8_0 7B-shape model, through cuda_kv_bench long.
function longContext(limitMs) {
  const file = ensureModel('q8_0');
  const real1m = flag('--long-real-1m');
  const toolBudget = Math.max(30, Math.floor(limitMs / 1000) - 15);
  const r = runTool('cuda_kv_bench', ['long', file, '--kv', 'q8', '--rope-factor', '2.0',
    '--prefill', real1m ? '1048576' : '131072', '--probes', '0,131072,262144,524288,1047552',
    '--contexts', '131072,524288,1048576', '--steps', '32', '--budget-s', String(toolBudget)], real1m ? Math.max(limitMs, 600_000) : limitMs);
  const setup = r.lines.find((l) => l.kind === 'setup');
  const gemmCeiling = C.cublasBF16 ?? C.gemmQ8 ?? C.gemmBF16;
  for (const l of r.lines) {
    if (l.kind === 'prefill') {
      const roof = gemmCeiling ? (gemmCeiling * 1e12) / prefillFlops(l.tokens) * l.tokens : null;
      results.long.push({ metric: `prefill ${l.tokens / 1024}K${l.complete ? '' : ` of ${l.target / 1024}K (stopped: time)`}`, value: l.tok_per_s,
        unit: 'tok/s', roofline: roof, seconds: l.seconds, gpuGiB: l.gpu_used_gib, note: `real; RoPE base ${l.rope_base.toPrecision(3)}; logits ${l.logits_finite ? 'finite' : 'NOT finite'}` });
    } else if (l.kind === 'prefill_chunk') {
      results.long.push({ metric: `prefill chunk @${Math.round(l.position / 1024)}K`, value: l.tokens / l.seconds, unit: 'tok/s', seconds: l.seconds,
        note: 'one 1024-token chunk over a filled cache (bench-only fill)' });
    } else if (l.kind === 'prefill_model') {
      results.long.push({ metric: `prefill ${l.tokens / 1024}K (predicted)`, value: l.tokens / l.predicted_s, unit: 'tok/s', seconds: l.predicted_s,
        gpuGiB: setup ? setup.gpu_used_gib + l.kv_gib : null, note: `sum of chunks, t = ${l.chunk_a_s.toPrecision(3)} s + ${l.chunk_b_s_per_pos.toExponential(2)} s x position; memory = weights + buffers + KV` });
    } else if (l.kind === 'decode') {
      const roof = C.copyGBps ? (C.copyGBps * 1e9) / l.bytes_per_token : null;
      results.long.push({ metric: `decode @${Math.round(l.context / 1024)}K`, value: l.tok_per_s, unit: 'tok/s', roofline: roof, gpuGiB: l.gpu_used_gib,
        note: `filled cache (bench-only); ${(l.bytes_per_token / 1e9).toFixed(1)} GB read per token; device argmax${l.finite ? '' : '; NaN logits'}` });
    } else if (l.kind === 'skipped' || l.kind === 'error') {
      results.long.push({ metric: l.what ?? 'long', error: l.kind === 'error' ? l.message : `skipped (${l.why})` });
    }
  }
  for (const row of results.long)
    log(`long ${row.metric.padEnd(34)} ${row.error ?? `${fmt(row.value).padStart(8)} ${row.unit}${row.roofline ? `  roofline ${fmt(row.roofline)} (${((100 * row.value) / row.roofline).toFixed(0)}%)` : ''}` +
      `${row.seconds ? `  ${fmt(row.seconds)} s` : ''}${row.gpuGiB ? `  GPU ${fmt(row.gpuGiB)} GiB` : ''}`}`);
  if (r.status !== 0) return `long-context tool ended badly (${r.why ?? `exit ${r.status}`}): ${r.stderr.slice(-1000)}`;
  return null;
}

async function speed() {
  const gemmCeiling = C.cublasBF16 ?? C.gemmBF16;
  for (const type of SPEED_TYPES) {
    if (remainingMs() < 40_000) {
      results.speed.push({ type, metric: 'all', error: 'skipped: time budget' });
      continue;
    }
    const file = ensureModel(type);
    const t0 = Date.now();
    const model = await load(file, { device: 'cuda', ropeScaling: 'none' });
    log(`${type}: loaded on ${model.info().device} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const tokens = [1, ...randomTokens(32768 + 64, SHAPE.vocab)];
    const add = (metric, value, roofline, unit) => {
      results.speed.push({ type, metric, value, roofline, fraction: value / roofline, unit });
      writeFileSync(path.join(outDir, 'phase-speed.json'), JSON.stringify(results));  // kept if a later step times out
      log(`${type} ${metric.padEnd(20)} ${fmt(value).padStart(8)} ${unit}  roofline ${fmt(roofline).padStart(8)}  (${((100 * value) / roofline).toFixed(0)}%)`);
    };
    for (const T of [512, 8192]) {
      let ms = Infinity;
      for (let rep = 0; rep < (T === 512 ? 3 : 2); rep++) {
        const s = model.createSession(T + 16);
        ms = Math.min(ms, (await s.evaluate(tokens.slice(0, T), 0)).ms);
        s.dispose();
      }
      add(`prefill ${T}`, T / (ms / 1000), gemmCeiling * 1e12 / prefillFlops(T) * T, 'tok/s');
    }
    const decodeAt = async (m, s, context, n = 64) => {
      // A few steps first: the first decode step of a cache captures its graph (and loads kernels),
      // which would otherwise land inside generateMs. The timed call reuses the prompt's cache.
      await s.generate({ prompt: tokens.slice(0, context), maxTokens: 3, temperature: 0, stopTokens: [] }, () => {});
      const r = await s.generate({ prompt: tokens.slice(0, context), maxTokens: n, temperature: 0, stopTokens: [] }, () => {});
      // generate() runs one forward per token after the first (which the prompt's logits give).
      return (r.tokens.length - 1) / (r.generateMs / 1000);
    };
    const s = model.createSession(32768 + 128);
    await s.evaluate(tokens.slice(0, 32768), 0);
    for (const context of [32768, 8192, 1]) {
      add(`decode @${context === 1 ? 0 : context / 1024 + 'K'}`, await decodeAt(model, s, context), (C.copyGBps * 1e9) / decodeBytes(type, context + 32), 'tok/s');
    }
    s.dispose();
    model.dispose();
    // The same short-context decode with separate RMSNorm kernels (INTERNLM_CUDA_FUSE=0 is read
    // when a backend is created): what the norm fusion saves per token (F16 and Q8_0: the two
    // fusions; a second load of each).
    if (type !== 'q4_k_m' && remainingMs() > 40_000) {
      process.env.INTERNLM_CUDA_FUSE = '0';  // read by the backend's constructor, on the loading thread
      let plain;
      try {
        plain = await load(file, { device: 'cuda', ropeScaling: 'none' });
      } finally {
        delete process.env.INTERNLM_CUDA_FUSE;
      }
      const s2 = plain.createSession(256);
      await s2.evaluate(tokens.slice(0, 1), 0);
      add('decode @0 unfused', await decodeAt(plain, s2, 1), (C.copyGBps * 1e9) / decodeBytes(type, 33), 'tok/s');
      s2.dispose();
      plain.dispose();
    }
  }
}

// ---------------------------------------------------------------- report

function fmt(v) {
  if (v === undefined || v === null || !Number.isFinite(v)) return 'n/a';
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}
// max |Δlogprob| etc.: Infinity (a token missing from the other's top-k) is null after a JSON round trip.
function exp1(v) {
  if (typeof v === 'number') return Number.isFinite(v) ? v.toExponential(1) : String(v);
  return v === null ? 'not finite' : String(v);
}
// Text inside a Markdown table cell: no line breaks, no column separators.
function cell(v) {
  return String(v ?? '').replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
}
function pct(v, roof) {
  return Number.isFinite(v) && Number.isFinite(roof) && roof > 0 ? `${((100 * v) / roof).toFixed(0)}%` : '';
}

// The dated section of bench/RESULTS.md; also written to --out (the device machine's copy of
// the repository does not come back, its $OUT does: merge it here with --report gpu-check.json).
// Returns the section's text.
function writeResults(results) {
  const { gpu, seed } = results;
  const C = results.ceilings ?? {};
  const parity = results.parity ?? [], kvp = results.kvPortability ?? [], speed = results.speed ?? [], long = results.long ?? [];
  const checks = results.checks ?? [];
  const lines = [
    '<!-- gpu-check:begin (written by bench/gpu-check.mjs; the rest of this file is left alone) -->',
    `## CUDA backend on ${gpu.name} (${results.date.slice(0, 10)})`,
    '',
    `Driver ${gpu.driver}, compute ${gpu.cap}. Ceilings measured in the same run: device-to-device copy ` +
      `${fmt(C.copyGBps)} GB/s (read + write), streaming read ${fmt(C.readGBps)} GB/s; bf16 GEMM 8192³: ` +
      `${C.cublasBF16 ? `cuBLAS ${fmt(C.cublasBF16)} TFLOP/s, ` : ''}ours ${fmt(C.gemmBF16)} (F16 ${fmt(C.gemmF16)}, Q8_0 ${fmt(C.gemmQ8)}). ` +
      `Decode GEMV alone: F16 ${fmt(C.gemvF16GBps)} GB/s, Q8_0 ${fmt(C.gemvQ8GBps)} GB/s, Q4_K ${fmt(C.gemvQ4KGBps)} GB/s, Q6_K ${fmt(C.gemvQ6KGBps)} GB/s. ` +
      `Decode attention alone, 7B shape at 128K keys: ${(C.attention ?? []).map((a) => `${a.what.split(' ')[2]} ${fmt(a.gbps)} GB/s`).join(', ') || 'n/a'}. ` +
      `Device top-k of 92544 logits: ${(C.topK ?? []).map((t) => `${t.what.split(' ').pop()} ${fmt(t.us)} µs`).join(', ') || 'n/a'}.`,
    '',
    `Stages: ${(results.stages ?? []).map((s) => `${s.name} ${s.outcome} (${s.seconds.toFixed(0)} s)`).join('; ') || 'n/a'}.`,
    '',
    `Random models of InternLM2.5-7B's shape. Roofline: decode = copy bandwidth / bytes read per token ` +
      `(weights + KV cache); prefill = ${C.cublasBF16 ? 'cuBLAS' : 'our'} bf16 GEMM rate / FLOPs per token. ` +
      'Decode is measured through generate() (greedy: only the device argmax comes back).',
    '',
    '| weights | metric | measured | roofline | fraction |',
    '|---|---|---:|---:|---:|',
    ...speed.map((r) => (r.error ? `| ${r.type.toUpperCase()} | ${r.metric} | ${cell(r.error)} | | |`
      : `| ${r.type.toUpperCase()} | ${r.metric} | ${fmt(r.value)} ${r.unit} | ${fmt(r.roofline)} ${r.unit} | ${pct(r.value, r.roofline)} |`)),
    '',
    'Long context (issue #6): Q8_0 weights of the 7B shape, q8 KV cache, dynamic NTK (factor 2). "filled": the ' +
      'cache was filled with random entries by a bench-only path instead of a prefill (a step costs the same whatever ' +
      'the values); "predicted": one-chunk probes at positions up to 1M fitted as a + b·position and summed.',
    '',
    '| metric | measured | roofline | fraction | time | GPU memory | note |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...long.map((r) => (r.error ? `| ${cell(r.metric)} | ${cell(r.error)} | | | | | |`
      : `| ${r.metric} | ${fmt(r.value)} ${r.unit} | ${r.roofline ? `${fmt(r.roofline)} ${r.unit}` : ''} | ${pct(r.value, r.roofline)} | ` +
        `${r.seconds ? `${fmt(r.seconds)} s` : ''} | ${r.gpuGiB ? `${fmt(r.gpuGiB)} GiB` : ''} | ${cell(r.note)} |`)),
    '',
    `Correctness (GPU vs CPU backend, seed ${seed}): ` +
      `${parity.filter((p) => p.ok).length}/${parity.length} model checks passed ` +
      `(max |Δlogprob| over top-20 within the limit, greedy agreement); KV portability ` +
      `${kvp.filter((p) => p.ok).length}/${kvp.length}; kernel checks ${checks.filter((c) => c.ok).length}/${checks.length}.`,
    '',
    '| model | format | KV cache | max \\|Δlogprob\\| | limit | greedy |',
    '|---|---|---|---:|---:|---|',
    ...parity.map((p) => `| ${p.preset} | ${p.format} | ${p.kv ?? 'default'} | ${p.error ? 'error' : exp1(p.maxDelta)} | ${p.limit ?? ''} | ${cell(p.error ?? (p.greedyAgree ? 'agrees' : p.note))} |`),
    '',
    'KV cache portability: a cache computed on one backend, its rows moved into the other\'s cache (the bytes a ' +
      'saved cache holds), then the same tokens decoded on both; the device top-k (k = 1, 64) of each GPU step ' +
      'against a host sort of the same row.',
    '',
    '| model | KV cache | direction | max \\|Δlogprob\\| | top-k id mismatches | ok |',
    '|---|---|---|---:|---:|---|',
    ...kvp.map((p) => `| ${p.preset} | ${p.kv} | ${p.error ? 'error' : p.direction} | ${p.error ? cell(p.error) : 'maxDelta' in p ? exp1(p.maxDelta) : `${p.differing} differing`} | ${p.topkMismatches ?? ''} | ${p.ok ? 'yes' : 'NO'} |`),
    ...(results.error ? ['', `Errors: ${results.error.split('\n').join('; ')}`] : []),
    '<!-- gpu-check:end -->',
  ].join('\n');
  let text = existsSync(resultsFile) ? readFileSync(resultsFile, 'utf8') : '# Benchmark results\n';
  const begin = text.indexOf('<!-- gpu-check:begin');
  const end = text.indexOf('<!-- gpu-check:end -->');
  if (begin >= 0 && end > begin) text = text.slice(0, begin) + lines + text.slice(end + '<!-- gpu-check:end -->'.length);
  else text = `${text.trimEnd()}\n\n${lines}\n`;
  writeFileSync(resultsFile, text);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'gpu-results.md'), `${lines}\n`);
  writeFileSync(path.join(outDir, 'gpu-check.json'), JSON.stringify(results, null, 2));
  log(`wrote ${resultsFile}, ${path.join(outDir, 'gpu-results.md')} and gpu-check.json`);
  return lines;
}

// ---------------------------------------------------------------- prebuilt binaries

// The build is the slowest stage on the GPU machine (minutes of its budget), so --pack also builds
// the binaries here for sm_90 and gpu-check uses them there when they were built from the same
// native/ sources and they run (this machine's libraries may differ from the GPU image's).

// One hash of every file under native/ except build folders: equal hashes, equal binaries.
function nativeSourceHash() {
  const hash = createHash('sha256');
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('build')) walk(full);
      } else if (entry.isFile() && !entry.name.endsWith('.md')) {  // notes do not change the binaries
        hash.update(path.relative(root, full)).update('\0').update(readFileSync(full)).update('\0');
      }
    }
  };
  walk(path.join(root, 'native'));
  return hash.digest('hex');
}

// null when the prebuilt binaries are in native/build and work on this machine, else why not.
function usePrebuilt() {
  if (!existsSync(PREBUILT)) return 'none carried (bench/gpu-check.mjs --pack makes them)';
  if (gpu.cap !== '9.0') return `built for sm_90, this GPU is compute ${gpu.cap}`;
  const unpacked = path.join(os.tmpdir(), 'ilm-prebuilt');
  rmSync(unpacked, { recursive: true, force: true });
  mkdirSync(unpacked, { recursive: true });
  const untar = spawnSync('tar', ['-xJf', PREBUILT, '-C', unpacked], { encoding: 'utf8' });
  if (untar.status !== 0) return `cannot unpack: ${untar.stderr.trim()}`;
  const manifest = JSON.parse(readFileSync(path.join(unpacked, 'manifest.json'), 'utf8'));
  if (manifest.sources !== nativeSourceHash()) return 'native/ changed since they were built';
  mkdirSync(buildDir, { recursive: true });
  for (const f of PREBUILT_FILES) execFileSync('cp', [path.join(unpacked, f), path.join(buildDir, f)]);
  const why = probePrebuilt();
  if (why) for (const f of PREBUILT_FILES) rmSync(path.join(buildDir, f), { force: true });  // the build must not take them for up to date
  else log(`using prebuilt binaries (${manifest.nvcc}; built ${manifest.date})`);
  return why;
}

function probePrebuilt() {
  const probe = spawnSync(path.join(buildDir, 'cuda_bench'), ['devices'], { encoding: 'utf8', timeout: 60_000 });
  if (probe.status !== 0) return `cuda_bench does not run here: ${(probe.stderr || probe.stdout || String(probe.error)).trim().slice(0, 300)}`;
  const addonProbe = spawnSync(process.execPath, ['-e',
    `if (typeof require(${JSON.stringify(path.join(buildDir, 'internlm.node'))}).loadModel !== 'function') process.exit(3)`,
  ], { encoding: 'utf8', timeout: 60_000 });
  if (addonProbe.status !== 0) return `the addon does not load here: ${(addonProbe.stderr || String(addonProbe.error)).trim().slice(0, 300)}`;
  return null;
}

function prebuild() {
  const dir = path.join(root, 'tmp', 'gpu-prebuilt-build');
  console.log(`building the sm_90 binaries in ${dir}`);
  execFileSync(process.execPath, [path.join(root, 'native', 'build.mjs')], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, INTERNLM_BUILD_DIR: dir, INTERNLM_CUDA: 'ON', INTERNLM_CUDA_ARCHS: '90' },
  });
  for (const f of PREBUILT_FILES) if (!existsSync(path.join(dir, f))) throw new Error(`${f} was not built (is nvcc on PATH?)`);
  const nvcc = execFileSync('nvcc', ['--version'], { encoding: 'utf8' }).trim().split('\n').at(-1);
  const manifest = { sources: nativeSourceHash(), archs: '90', nvcc, date: new Date().toISOString() };
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  execFileSync('tar', ['-cJf', PREBUILT, '-C', dir, 'manifest.json', ...PREBUILT_FILES], { env: { ...process.env, XZ_OPT: '-6 -T0' } });
  console.log(`${PREBUILT}: ${(statSync(PREBUILT).size / 1e6).toFixed(1)} MB`);
}

// Packs this machine's node (binary + headers) for a GPU machine that has none, and the sm_90
// binaries: carry tmp/gpu-carry and node_modules/node-addon-api, unpack node with
// tar -xJf tmp/gpu-carry/node.tar.xz -C /tmp. --pack --binaries-only refreshes just the binaries.
function pack() {
  mkdirSync(path.join(root, 'tmp', 'gpu-carry'), { recursive: true });
  prebuild();
  if (flag('--binaries-only')) return;
  const dest = path.join(root, 'tmp', 'gpu-carry');
  const stage = path.join(os.tmpdir(), 'ilm-node-pack', 'node');
  rmSync(path.dirname(stage), { recursive: true, force: true });
  mkdirSync(path.join(stage, 'bin'), { recursive: true });
  mkdirSync(path.join(stage, 'include'), { recursive: true });
  execFileSync('cp', [process.execPath, path.join(stage, 'bin', 'node')]);
  const include = path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node');
  execFileSync('cp', ['-r', existsSync(include) ? include : '/usr/include/node', path.join(stage, 'include', 'node')]);
  mkdirSync(dest, { recursive: true });
  execFileSync('tar', ['-cJf', path.join(dest, 'node.tar.xz'), '-C', path.dirname(stage), 'node'], { env: { ...process.env, XZ_OPT: '-6 -T0' } });
  rmSync(path.dirname(stage), { recursive: true, force: true });
  console.log(`${path.join(dest, 'node.tar.xz')}: ${(statSync(path.join(dest, 'node.tar.xz')).size / 1e6).toFixed(1)} MB`);
}

// ---------------------------------------------------------------- main

if (phase) {
  try {
    if (phase === 'parity') await parity();
    if (phase === 'speed') await speed();
  } catch (e) {
    results.error = String(e.stack ?? e);
    log(`ERROR ${results.error}`);
  }
  writeFileSync(path.join(outDir, `phase-${phase}.json`), JSON.stringify(results));
  process.exit(results.error ? 1 : 0);
}
if (!flag('--skip-parity')) {
  const t0 = Date.now();
  const limit = stageLimit(150_000);
  if (limit === null) {
    stageDone('parity', t0, 'skipped: time budget');
  } else {
    const r = runPhase('parity', limit);
    results.parity = r.parity ?? [];
    results.kvPortability = r.kvPortability ?? [];
    if (r.error) errors.push(r.error);
    stageDone('parity', t0, r.error ? 'error' : `${[...results.parity, ...results.kvPortability].filter((p) => !p.ok).length} failed`);
  }
}
if (speedModels) {
  const written = await speedModels;
  if (written instanceof Error) log(`ERROR ${written.message} (the stages write them themselves)`);
}
if (wantLong) {
  const t0 = Date.now();
  // A real 1M prefill takes minutes: then the stage gets what the budget leaves, not 150 s.
  const limit = stageLimit(flag('--long-real-1m') ? 600_000 : 150_000, 60_000);
  if (limit === null) {
    stageDone('long', t0, 'skipped: time budget');
  } else {
    try {
      const e = longContext(limit);
      if (e) errors.push(e);
      stageDone('long', t0, e ? 'error' : 'ok');
    } catch (e) {
      errors.push(`long: ${e.message ?? e}`);
      stageDone('long', t0, `error: ${e.message ?? e}`);
    }
  }
}
if (wantSpeed) {
  const t0 = Date.now();
  const limit = stageLimit(200_000, 60_000);
  if (limit === null) {
    stageDone('speed', t0, 'skipped: time budget');
  } else {
    const r = runPhase('speed', limit);
    results.speed = r.speed ?? [];
    if (r.error) errors.push(r.error);
    stageDone('speed', t0, r.error ? 'error' : 'ok');
  }
}
if (errors.length) results.error = errors.join('\n');
writeResults(results);
const failedKv = results.kvPortability.filter((p) => !p.ok).length;
const failed = failedChecks.length + results.parity.filter((p) => !p.ok).length + failedKv + errors.length;
console.log(`\n${failed === 0 ? 'PASS' : `FAIL (${failed})`}: kernels ${results.checks.length - failedChecks.length}/${results.checks.length}, ` +
  `parity ${results.parity.filter((p) => p.ok).length}/${results.parity.length}, KV portability ${results.kvPortability.length - failedKv}/${results.kvPortability.length}, ` +
  `long rows ${results.long.length}, speed rows ${results.speed.length}; ${((Date.now() - started) / 1000).toFixed(0)} s`);
for (const c of failedChecks) console.log(`  kernel FAILED ${c.what}: ${c.rel_err} > ${c.limit}`);
for (const p of results.parity.filter((p) => !p.ok)) console.log(`  parity FAILED ${p.preset} ${p.format} kv ${p.kv}: ${p.error ?? `${p.maxDelta} > ${p.limit} ${p.note}`}`);
for (const p of results.kvPortability.filter((p) => !p.ok)) console.log(`  KV portability FAILED ${p.preset} ${p.kv} ${p.direction ?? ''}: ${p.error ?? JSON.stringify(p)}`);
for (const e of errors) console.log(`  ${e.split('\n')[0]}`);
for (const r of results.long) console.log(`  long ${r.metric.padEnd(30)} ${r.error ?? `${fmt(r.value).padStart(8)} ${r.unit}${r.roofline ? ` / ${fmt(r.roofline).padStart(8)} = ${pct(r.value, r.roofline)}` : ''}${r.gpuGiB ? `, GPU ${fmt(r.gpuGiB)} GiB` : ''}`}`);
for (const r of results.speed) console.log(`  ${r.type} ${r.metric.padEnd(18)} ${r.error ?? `${fmt(r.value).padStart(8)} ${r.unit} / ${fmt(r.roofline).padStart(8)} = ${pct(r.value, r.roofline)}`}`);
process.exit(failed === 0 ? 0 : 1);
