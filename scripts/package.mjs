// Packages the built extension (dist/, as npm run build left it) into a .vsix for this platform:
// dist/internlm.node is a native binary, so the package names its VS Code target (linux-x64, ...)
// and VS Code refuses it elsewhere instead of failing at load time. .vscodeignore picks the files.
//   node scripts/package.mjs [OUT]          (npm run package: build first, then internlm-vscode.vsix)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The VS Code target platform this machine's native addon is built for (vsce's names). */
export function vsixTarget() {
  const arch = process.arch === 'arm' ? 'armhf' : process.arch;
  if (process.platform !== 'linux') return `${process.platform}-${arch}`;
  // A Linux without glibc is taken for Alpine (musl), which VS Code targets separately.
  const glibc = /** @type {any} */ (process.report.getReport()).header.glibcVersionRuntime;
  return `${glibc ? 'linux' : 'alpine'}-${arch}`;
}

/** Packages dist/ into `vsix` (a path); throws with vsce's output when it fails. */
export function packageExtension(vsix) {
  const missing = ['dist/extension.js', 'dist/server.js', 'dist/internlm.node'].filter((f) => !existsSync(path.join(ROOT, f)));
  if (missing.length) throw new Error(`cannot package: ${missing.join(', ')} missing; run npm run build`);
  mkdirSync(path.dirname(vsix), { recursive: true });
  const vsce = path.join(ROOT, 'node_modules', '@vscode', 'vsce', 'vsce');
  const args = ['package', '--no-dependencies', '--allow-missing-repository', '--skip-license', '--target', vsixTarget(), '--out', vsix];
  const result = spawnSync(process.execPath, [vsce, ...args], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`vsce package failed:\n${result.stdout}\n${result.stderr}`);
  return vsix;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    const vsix = packageExtension(path.resolve(process.argv[2] ?? path.join(ROOT, 'internlm-vscode.vsix')));
    const shown = path.relative(process.cwd(), vsix);
    console.log(`packaged ${shown.startsWith('..') ? vsix : shown} (${vsixTarget()})`);
  } catch (error) {
    console.error(`package: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  }
}
