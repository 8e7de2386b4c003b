// The aarch64 NEON kernels under emulation: cross-builds the engine core and kernel_check for
// aarch64 (native/cmake/aarch64-linux-gnu.cmake, into native/build-arm64, which later runs reuse)
// and runs kernel_check under qemu-user twice: on `-cpu max` (has dotprod: the generic, neon and
// neon-dotprod tables are checked) and on `-cpu cortex-a53` (ARMv8.0: no dotprod, so run-time
// dispatch must fall back to the baseline neon table). Every table must pass, the KV-cache kernels
// too. qemu says nothing about speed. Needs aarch64-linux-gnu-g++, qemu-aarch64 and cmake on PATH
// (Debian: g++-aarch64-linux-gnu qemu-user; scripts/e2e-setup.sh installs them); without them the
// tests are skipped with "skipped: no aarch64 cross toolchain".
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const nativeDir = path.join(root, 'native');
const buildDir = path.join(nativeDir, 'build-arm64');
const SKIP = 'skipped: no aarch64 cross toolchain';
const SYSROOT = process.env.QEMU_LD_PREFIX || '/usr/aarch64-linux-gnu';

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, name), constants.X_OK);
      return true;
    } catch {}
  }
  return false;
}

const toolchain = ['aarch64-linux-gnu-g++', 'qemu-aarch64', 'cmake'].every(onPath);

// Runs a command; resolves with its exit code and combined output (never rejects on failure).
function run(cmd, args, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => resolve({ code: -1, out: out + String(e) }));
    child.on('close', (code, signal) => resolve({ code: code ?? -1, signal, out }));
  });
}

// The cross build, once for all tests (an up-to-date build-arm64 makes it a few seconds).
let build;
before(async () => {
  if (!toolchain) return;
  mkdirSync(buildDir, { recursive: true });
  const ignore = path.join(buildDir, '.gitignore');
  if (!existsSync(ignore)) writeFileSync(ignore, '*\n');
  // INTERNLM_CUDA in the environment overrides the cache option: clear it for this build.
  const env = { ...process.env, INTERNLM_CUDA: 'OFF' };
  const started = Date.now();
  const configure = await run('cmake', [
    '-S', nativeDir, '-B', buildDir,
    `-DCMAKE_TOOLCHAIN_FILE=${path.join(nativeDir, 'cmake', 'aarch64-linux-gnu.cmake')}`,
    '-DCMAKE_BUILD_TYPE=Release', '-DINTERNLM_ADDON=OFF', '-DINTERNLM_CUDA=OFF',
  ], { env });
  if (configure.code !== 0) {
    build = { ok: false, out: configure.out };
    return;
  }
  const jobs = String(Math.max(1, os.availableParallelism?.() ?? os.cpus().length));
  const compile = await run('cmake', ['--build', buildDir, '--target', 'kernel_check', '-j', jobs], { env });
  build = { ok: compile.code === 0, out: compile.out, seconds: (Date.now() - started) / 1000 };
});

// kernel_check's verdicts: "ISA: ok|FAILED", "ISA: skipped (...)", "ISA: KV cache kernels (...): ok",
// "ISA: gemm, N types, worst error E of sum |w x|", "selected: ISA".
function parse(out) {
  const tables = {}, kv = {}, skipped = new Set(), worst = {};
  let selected;
  for (const line of out.split('\n')) {
    let m;
    if ((m = /^(\S+): (ok|FAILED)$/.exec(line))) tables[m[1]] = m[2];
    else if ((m = /^(\S+): KV cache kernels \([^)]*\): (ok|FAILED)$/.exec(line))) kv[m[1]] = m[2];
    else if ((m = /^(\S+): skipped/.exec(line))) skipped.add(m[1]);
    else if ((m = /^(\S+): gemm, \d+ types, worst error (\S+) of/.exec(line))) worst[m[1]] = Number(m[2]);
    else if ((m = /^selected: (\S+)$/.exec(line))) selected = m[1];
  }
  const failures = out.split('\n').filter((l) => l.startsWith('FAIL'));
  return { tables, kv, skipped, worst, selected, failures };
}

// Both emulated CPUs run at once (two processes); each test awaits its own.
let runs;
function kernelCheck(cpu) {
  runs ??= {};
  runs[cpu] ??= run('qemu-aarch64', ['-L', SYSROOT, '-cpu', cpu, path.join(buildDir, 'kernel_check')]);
  return runs[cpu];
}

function checkBuild(t) {
  if (!toolchain) {
    t.skip(SKIP);
    return false;
  }
  assert.ok(build?.ok, `aarch64 cross build failed:\n${build?.out.slice(-4000)}`);
  return true;
}

test('aarch64 cross build of the engine core and kernel_check', (t) => {
  if (!checkBuild(t)) return;
  t.diagnostic(`cross build took ${build.seconds.toFixed(0)} s`);
});

test('kernel_check under qemu -cpu max: generic, neon and neon-dotprod tables pass', async (t) => {
  if (!checkBuild(t)) return;
  const pending = [kernelCheck('max'), kernelCheck('cortex-a53')];
  const { code, out } = await pending[0];
  const r = parse(out);
  assert.equal(code, 0, `kernel_check failed under -cpu max:\n${out.slice(-4000)}`);
  assert.deepEqual(r.failures, []);
  for (const isa of ['generic', 'neon', 'neon-dotprod']) assert.equal(r.tables[isa], 'ok', `${isa} table\n${out}`);
  assert.equal(r.kv.generic, 'ok');
  assert.equal(r.kv.neon, 'ok');
  assert.equal(r.selected, 'neon-dotprod', 'run-time dispatch picks SDOT when the CPU has it');
  assert.ok(!r.skipped.has('neon') && !r.skipped.has('neon-dotprod'));
  // The x86 tables are not compiled into an aarch64 build.
  assert.ok(r.skipped.has('avx2') && r.skipped.has('avx512'));
  for (const isa of ['neon', 'neon-dotprod']) assert.ok(r.worst[isa] <= 2e-6, `${isa} worst error ${r.worst[isa]}`);
  t.diagnostic(`worst gemm error of sum |w x|: neon ${r.worst.neon}, neon-dotprod ${r.worst['neon-dotprod']}`);
});

test('kernel_check under qemu -cpu cortex-a53 (no dotprod): dispatch falls back to neon, which passes', async (t) => {
  if (!checkBuild(t)) return;
  const { code, out } = await kernelCheck('cortex-a53');
  const r = parse(out);
  assert.equal(code, 0, `kernel_check failed under -cpu cortex-a53:\n${out.slice(-4000)}`);
  assert.deepEqual(r.failures, []);
  assert.equal(r.tables.generic, 'ok');
  assert.equal(r.tables.neon, 'ok');
  assert.equal(r.kv.neon, 'ok');
  assert.ok(r.skipped.has('neon-dotprod'), 'the dotprod table must not run without HWCAP_ASIMDDP');
  assert.equal(r.tables['neon-dotprod'], undefined);
  assert.equal(r.selected, 'neon');
});
