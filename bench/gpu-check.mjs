// One run that checks and times the CUDA backend on the GPU of this machine (npm run gpu:check):
//   1. build with CUDA; GPU name; the ceilings: device-to-device copy bandwidth and bf16 GEMM rate
//      (ours, plus cuBLAS through PyTorch when python3 has it); kernel checks against CPU references
//   2. correctness: GPU vs CPU backend on random tiny and mid models in every weight type (fresh
//      weights and tokens each run): max |Δlogprob| over the CPU's top-20 <= 1e-2 for prefill,
//      chunked and single-token steps; greedy continuations must agree
//   3. speed on random models of InternLM2.5-7B's shape (F16, Q8_0): prefill tok/s at 512 and 8192
//      tokens, decode tok/s at context 0, 8K and 32K, each next to its roofline
//   4. a dated table in bench/RESULTS.md (between gpu-check markers), full JSON under --out
// Without a GPU it prints "skipped: no GPU" and exits 0.
//
//   node bench/gpu-check.mjs [--out DIR] [--no-build] [--skip-speed] [--skip-parity] [--models DIR]
//   node bench/gpu-check.mjs --pack   (here: packs node for a GPU machine into tmp/gpu-carry)
//   node bench/gpu-check.mjs --report FILE   (here: bench/RESULTS.md from a run's gpu-check.json)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
const modelDir = path.resolve(option('--models', path.join(os.tmpdir(), 'ilm-gpu-models')));
const started = Date.now();
const results = { date: new Date().toISOString(), checks: [], parity: [], speed: [], ceilings: {} };
const log = (...a) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s]`, ...a);

if (flag('--pack')) {
  pack();
  process.exit(0);
}
if (option('--report', null)) {
  Object.assign(results, JSON.parse(readFileSync(option('--report', null), 'utf8')));
  writeResults(results);
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

const tool = (name) => {
  const p = path.join(buildDir, name);
  if (!existsSync(p)) throw new Error(`${p} is missing: the build did not include CUDA (is nvcc on PATH?)`);
  return p;
};

function runTool(name, toolArgs, timeout = 240_000) {
  const r = spawnSync(tool(name), toolArgs, { encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  const lines = (r.stdout ?? '').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  if (r.error) throw r.error;
  return { status: r.status, lines, stderr: r.stderr };
}

// Runs parity or speed in a child process (a GPU fault in one cannot take the other down) and
// returns what it recorded.
function runPhase(name, timeout) {
  const file = path.join(outDir, `phase-${name}.json`);
  rmSync(file, { force: true });
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--phase', name, '--gpu', JSON.stringify(gpu),
    '--ceilings', JSON.stringify(results.ceilings), '--seed', String(seed), '--out', outDir, '--models', modelDir],
  { stdio: 'inherit', timeout });
  const recorded = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  if (r.status !== 0) {
    const why = r.error ? String(r.error.message) : r.signal ? `killed by ${r.signal}` : `exit status ${r.status}`;
    recorded.error = `${name} phase failed: ${why}${recorded.error ? `; ${recorded.error}` : ''}`;
    log(`ERROR ${recorded.error}`);
  }
  return recorded;
}

// ---------------------------------------------------------------- 1. build, kernel checks, ceilings

let failedChecks = [];
if (!phase) {
  log(`GPU: ${gpu.name} (compute ${gpu.cap}, driver ${gpu.driver}, ${gpu.memory})`);
  if (!flag('--no-build')) {
    // nvcc outside PATH (CUDA images often keep it in /usr/local/cuda/bin) would silently give a CPU-only build.
    const cudaBin = '/usr/local/cuda/bin';
    if (spawnSync('nvcc', ['--version']).status !== 0 && existsSync(path.join(cudaBin, 'nvcc')))
      process.env.PATH = `${cudaBin}${path.delimiter}${process.env.PATH}`;
    const archs = process.env.INTERNLM_CUDA_ARCHS ?? gpu.cap.replace('.', '');
    log(`building (INTERNLM_CUDA_ARCHS=${archs})`);
    execFileSync(process.execPath, [path.join(root, 'native', 'build.mjs')], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, INTERNLM_CUDA: 'ON', INTERNLM_CUDA_ARCHS: archs },
    });
  }
  const kernelChecks = runTool('cuda_bench', ['check']);
  results.checks = kernelChecks.lines.filter((l) => l.kind === 'check');
  const device = kernelChecks.lines.find((l) => l.kind === 'device');
  if (!device || device.error) {
    console.log(`CUDA is not usable here: ${device?.error ?? kernelChecks.stderr}`);
    process.exit(1);
  }
  failedChecks = results.checks.filter((c) => !c.ok);
  log(`kernel checks: ${results.checks.length - failedChecks.length}/${results.checks.length} passed`);
  for (const c of failedChecks) log(`  FAILED ${c.what}: rel_err ${c.rel_err} > ${c.limit}`);
  for (const l of kernelChecks.lines.filter((l) => l.kind === 'error')) log(`  ERROR ${l.message}`);
  if (kernelChecks.status !== 0 && failedChecks.length === 0) {
    failedChecks.push({ what: 'cuda_bench check', rel_err: NaN, limit: 0 });
    log(`  cuda_bench check exited with ${kernelChecks.status}: ${kernelChecks.stderr.slice(-2000)}`);
  }

  const bench = runTool('cuda_bench', ['bench']);
  const benchValue = (what, unit) => bench.lines.find((l) => l.kind === 'bench' && l.what.startsWith(what))?.[unit];
  results.ceilings = {
    copyGBps: benchValue('copy', 'gbps'),
    readGBps: benchValue('read', 'gbps'),
    gemmF16: benchValue('gemm F16', 'tflops'),
    gemmBF16: benchValue('gemm BF16', 'tflops'),
    gemmQ8: benchValue('gemm Q8_0', 'tflops'),
    gemvF16GBps: benchValue('gemv F16', 'gbps'),
    gemvQ8GBps: benchValue('gemv Q8_0', 'gbps'),
    cublasBF16: torchGemmRate(),
  };
} else {
  results.ceilings = JSON.parse(option('--ceilings', '{}'));
}
const C = results.ceilings;
if (!phase) {
  log(`copy ${fmt(C.copyGBps)} GB/s (read+write), read ${fmt(C.readGBps)} GB/s; GEMM ours F16 ${fmt(C.gemmF16)} / BF16 ${fmt(C.gemmBF16)} / Q8_0 ${fmt(C.gemmQ8)} TFLOP/s, cuBLAS bf16 ${C.cublasBF16 ? fmt(C.cublasBF16) : 'n/a'}; GEMV F16 ${fmt(C.gemvF16GBps)} GB/s, Q8_0 ${fmt(C.gemvQ8GBps)} GB/s`);
}

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
  const r = spawnSync('python3', ['-c', script], { encoding: 'utf8', timeout: 90_000 });
  const v = Number.parseFloat(r.stdout?.trim().split('\n').pop() ?? '');
  return r.status === 0 && Number.isFinite(v) ? v : null;
}

// ---------------------------------------------------------------- 2. parity with the CPU backend

const require = createRequire(import.meta.url);
const addon = require(path.join(buildDir, 'internlm.node'));
const load = (file, options) => addon.loadModel(file, options, () => {});

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(seed);
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

async function parityCase(preset, format, file, contextLength, length) {
  const cpu = await load(file, { device: 'cpu' });
  const gpuModel = await load(file, { device: 'cuda' });
  const context = length + 64;
  const vocab = cpu.info().vocabSize;
  const tokens = [1, ...randomTokens(length - 1, vocab)];
  const pieces = [tokens.length - 20, 1, 1, 1, 5, 1, 8, 1, 1, 1];
  const sCpu = cpu.createSession(context), sGpu = gpuModel.createSession(context);
  let worst = 0, at = 0, worstPiece = '';
  const t0 = Date.now();
  for (const n of pieces) {
    const piece = tokens.slice(at, at + n);
    const [a, b] = [await sCpu.evaluate(piece, 20), await sGpu.evaluate(piece, 40)];
    const d = maxDelta(a.top, b.top);
    if (d > worst) [worst, worstPiece] = [d, `${n} token(s) at ${at}`];
    if (a.ropeBase !== b.ropeBase) throw new Error(`RoPE bases differ: ${a.ropeBase} vs ${b.ropeBase}`);
    at += n;
  }
  const prompt = tokens.slice(0, 24);
  const gen = { prompt, maxTokens: 32, temperature: 0, stopTokens: [] };
  const [ga, gb] = [await cpu.createSession(context).generate(gen, () => {}), await gpuModel.createSession(context).generate(gen, () => {})];
  let diverge = ga.tokens.findIndex((t, i) => t !== gb.tokens[i]);
  let note = '';
  if (diverge >= 0) {
    // A divergence at a near-tie of the CPU's two best tokens is rounding, not a bug: say which.
    const s = cpu.createSession(context);
    const r = await s.evaluate([...prompt, ...ga.tokens.slice(0, diverge)], 2);
    const last = r.top[r.top.length - 1];
    note = `diverges at step ${diverge} (CPU top-2 gap ${(last[0][1] - last[1][1]).toExponential(1)})`;
  }
  for (const m of [cpu, gpuModel]) m.dispose();
  const ok = worst <= 1e-2 && diverge < 0;
  const row = { preset, format, length, contextLength, maxDelta: worst, worstPiece, greedyAgree: diverge < 0, note, ok,
    ms: Date.now() - t0 };
  results.parity.push(row);
  writeFileSync(path.join(outDir, 'phase-parity.json'), JSON.stringify(results));
  log(`${ok ? 'ok  ' : 'FAIL'} ${preset} ${format.padEnd(9)} max|Δlogprob| ${worst.toExponential(2)} (${worstPiece}); greedy ${diverge < 0 ? 'agrees' : note}`);
}

async function parity() {
  const { makeModel } = await import(path.join(root, 'test', 'fixtures', 'make-model.mjs'));
  const formats = ['gguf-f32', 'gguf-f16', 'gguf-bf16', 'gguf-q8_0', 'hf-bf16'];
  // tiny: context 64 and 100 tokens, so dynamic NTK scales the RoPE base; mid: 1100 tokens cross
  // the GPU's 1024-token chunk.
  for (const [preset, contextLength, length] of [['tiny', 64, 100], ['mid', 32768, 1100]]) {
    const dir = path.join(modelDir, `parity-${preset}`);
    rmSync(dir, { recursive: true, force: true });
    const made = await makeModel({ dir, preset, formats, seed: 1 + Math.floor(random() * 1e6), contextLength });
    for (const format of formats) {
      try {
        await parityCase(preset, format, made.paths[format], contextLength, length);
      } catch (e) {
        results.parity.push({ preset, format, ok: false, error: String(e.message ?? e) });
        log(`FAIL ${preset} ${format}: ${e.message ?? e}`);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- 3. speed on a 7B-shaped model

const SHAPE = { dim: 4096, layers: 32, heads: 32, kvHeads: 8, ffn: 14336, vocab: 92544 };
const SPEED_TYPES = ['f16', 'q8_0'];
const speedModel = (type) => path.join(modelDir, `internlm2_5-7b-shape-${type}.gguf`);

// Writes the speed models (once: they are kept in --models) in background processes that run
// while the parity phase does (its spawnSync blocks this process, not them); resolves when both exist.
function writeSpeedModels() {
  return Promise.all(SPEED_TYPES.filter((t) => !existsSync(speedModel(t))).map((type) => new Promise((resolve, reject) => {
    const file = speedModel(type);
    const child = spawn(tool('make_random_gguf'), ['--out', `${file}.part`, '--type', type, '--seed', String(seed)], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`make_random_gguf exited with ${code} for ${file}`));
      renameSync(`${file}.part`, file);
      resolve();
    });
  })));
}

function typeBytes(type, rows, cols) {
  const n = rows * cols;
  return type === 'q8_0' ? (n / 32) * 34 : n * ({ f16: 2, bf16: 2, f32: 4 }[type]);
}

// Bytes a decode step must read: every matrix but the embedding table (one row of it), plus the KV cache.
function decodeBytes(type, context) {
  const s = SHAPE, hd = s.dim / s.heads, qkv = (s.heads + 2 * s.kvHeads) * hd;
  const perLayer = typeBytes(type, qkv, s.dim) + typeBytes(type, s.dim, s.heads * hd) + 3 * typeBytes(type, s.ffn, s.dim);
  const kv = 2 * s.layers * context * s.kvHeads * hd * 2;
  return s.layers * perLayer + typeBytes(type, s.vocab, s.dim) + kv;
}

// FLOPs of a T-token prefill from an empty cache: 2 per weight per token, plus causal attention.
function prefillFlops(T) {
  const s = SHAPE, hd = s.dim / s.heads;
  const weights = s.layers * ((s.heads + 2 * s.kvHeads) * hd * s.dim + s.dim * s.heads * hd + 3 * s.ffn * s.dim);
  return 2 * weights * T + 4 * s.layers * s.heads * hd * (T * T) / 2;
}

async function speed() {
  const gemmCeiling = C.cublasBF16 ?? C.gemmBF16;
  for (const type of SPEED_TYPES) {
    const file = speedModel(type);
    if (!existsSync(file)) {
      log(`writing ${file}`);
      execFileSync(tool('make_random_gguf'), ['--out', `${file}.part`, '--type', type, '--seed', String(seed)], { stdio: 'inherit' });
      renameSync(`${file}.part`, file);
    }
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
    const s = model.createSession(32768 + 128);
    await s.evaluate(tokens.slice(0, 32768), 0);
    for (const context of [32768, 8192, 1]) {
      const n = 64;
      const r = await s.generate({ prompt: tokens.slice(0, context), maxTokens: n, temperature: 0, stopTokens: [] }, () => {});
      // generate() runs one forward per token after the first (which the prompt's logits give).
      const perSecond = (r.tokens.length - 1) / (r.generateMs / 1000);
      add(`decode @${context === 1 ? 0 : context / 1024 + 'K'}`, perSecond, (C.copyGBps * 1e9) / decodeBytes(type, context + n / 2), 'tok/s');
    }
    s.dispose();
    model.dispose();
  }
}

// ---------------------------------------------------------------- 4. report

function fmt(v) {
  if (v === undefined || v === null || !Number.isFinite(v)) return 'n/a';
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

// The dated section of bench/RESULTS.md; also written to --out (the device machine's copy of
// the repository does not come back, its $OUT does: merge it here with --report gpu-check.json).
function writeResults(results) {
  const { gpu, seed } = results;
  const C = results.ceilings;
  const file = path.join(root, 'bench', 'RESULTS.md');
  const lines = [
    '<!-- gpu-check:begin (written by bench/gpu-check.mjs; the rest of this file is left alone) -->',
    `## CUDA backend on ${gpu.name} (${results.date.slice(0, 10)})`,
    '',
    `Driver ${gpu.driver}, compute ${gpu.cap}. Ceilings measured in the same run: device-to-device copy ` +
      `${fmt(C.copyGBps)} GB/s (read + write), streaming read ${fmt(C.readGBps)} GB/s; bf16 GEMM 8192³: ` +
      `${C.cublasBF16 ? `cuBLAS ${fmt(C.cublasBF16)} TFLOP/s, ` : ''}ours ${fmt(C.gemmBF16)} (F16 ${fmt(C.gemmF16)}, Q8_0 ${fmt(C.gemmQ8)}). ` +
      `Decode GEMV alone: F16 ${fmt(C.gemvF16GBps)} GB/s, Q8_0 ${fmt(C.gemvQ8GBps)} GB/s.`,
    '',
    `Random models of InternLM2.5-7B's shape. Roofline: decode = copy bandwidth / bytes read per token ` +
      `(weights + KV cache); prefill = ${C.cublasBF16 ? 'cuBLAS' : 'our'} bf16 GEMM rate / FLOPs per token. ` +
      'Decode is measured through generate() (host-side sampling included; sampling on the device is not built yet).',
    '',
    '| weights | metric | measured | roofline | fraction |',
    '|---|---|---:|---:|---:|',
    ...results.speed.map((r) => `| ${r.type.toUpperCase()} | ${r.metric} | ${fmt(r.value)} ${r.unit} | ${fmt(r.roofline)} ${r.unit} | ${(100 * r.fraction).toFixed(0)}% |`),
    '',
    `Correctness (GPU vs CPU backend, seed ${seed}): ` +
      `${results.parity.filter((p) => p.ok).length}/${results.parity.length} model checks passed ` +
      `(max |Δlogprob| over top-20 ≤ 1e-2, greedy agreement); kernel checks ` +
      `${results.checks.filter((c) => c.ok).length}/${results.checks.length}.`,
    '',
    '| model | format | max \\|Δlogprob\\| | greedy |',
    '|---|---|---:|---|',
    ...results.parity.map((p) => `| ${p.preset} | ${p.format} | ${p.error ? 'error' : p.maxDelta.toExponential(1)} | ${p.error ?? (p.greedyAgree ? 'agrees' : p.note)} |`),
    '<!-- gpu-check:end -->',
  ].join('\n');
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n';
  const begin = text.indexOf('<!-- gpu-check:begin');
  const end = text.indexOf('<!-- gpu-check:end -->');
  if (begin >= 0 && end > begin) text = text.slice(0, begin) + lines + text.slice(end + '<!-- gpu-check:end -->'.length);
  else text = `${text.trimEnd()}\n\n${lines}\n`;
  writeFileSync(file, text);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'gpu-results.md'), `${lines}\n`);
  writeFileSync(path.join(outDir, 'gpu-check.json'), JSON.stringify(results, null, 2));
  log(`wrote bench/RESULTS.md, ${path.join(outDir, 'gpu-results.md')} and gpu-check.json`);
}

// Packs this machine's node (binary + headers) for a GPU machine that has none: carry
// tmp/gpu-carry and node_modules/node-addon-api, unpack with tar -xJf tmp/gpu-carry/node.tar.xz -C /tmp.
function pack() {
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
const errors = [];
const speedModels = flag('--skip-speed') ? null : writeSpeedModels().catch((e) => e);
if (!flag('--skip-parity')) {
  const r = runPhase('parity', 240_000);
  results.parity = r.parity ?? [];
  if (r.error) errors.push(r.error);
}
if (speedModels) {
  const written = await speedModels;
  if (written instanceof Error) log(`ERROR ${written.message} (the speed phase writes them itself)`);
  const r = runPhase('speed', 300_000);
  results.speed = r.speed ?? [];
  if (r.error) errors.push(r.error);
}
if (errors.length) results.error = errors.join('\n');
results.seed = seed;
writeResults(results);
const failed = failedChecks.length + results.parity.filter((p) => !p.ok).length + errors.length;
console.log(`\n${failed === 0 ? 'PASS' : `FAIL (${failed})`}: kernels ${results.checks.length - failedChecks.length}/${results.checks.length}, ` +
  `parity ${results.parity.filter((p) => p.ok).length}/${results.parity.length}, speed rows ${results.speed.length}; ` +
  `${((Date.now() - started) / 1000).toFixed(0)} s`);
for (const c of failedChecks) console.log(`  kernel FAILED ${c.what}: ${c.rel_err} > ${c.limit}`);
for (const p of results.parity.filter((p) => !p.ok)) console.log(`  parity FAILED ${p.preset} ${p.format}: ${p.error ?? `${p.maxDelta} ${p.note}`}`);
for (const e of errors) console.log(`  ${e.split('\n')[0]}`);
for (const r of results.speed) console.log(`  ${r.type} ${r.metric.padEnd(14)} ${fmt(r.value).padStart(8)} ${r.unit} / ${fmt(r.roofline).padStart(8)} = ${(100 * r.fraction).toFixed(0)}%`);
process.exit(failed === 0 ? 0 : 1);
