// Bundles the TypeScript entry points into dist/ and copies the native addon and webview media.
import * as esbuild from 'esbuild';
import { copyFileSync, cpSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';

const entries = [
  { in: 'server/cli.ts', out: 'cli', banner: '#!/usr/bin/env node' },
  { in: 'native/index.ts', out: 'engine' },
  { in: 'server/server.ts', out: 'server' },
  { in: 'extension/extension.ts', out: 'extension', external: ['vscode'] },
].filter((e) => existsSync(e.in));

mkdirSync('dist', { recursive: true });
await Promise.all(entries.map((e) => esbuild.build({
  entryPoints: [e.in],
  outfile: `dist/${e.out}.js`,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: true,
  external: e.external ?? [],
  banner: e.banner ? { js: e.banner } : undefined,
  logLevel: 'warning',
})));

const addon = path.join('native', 'build', 'internlm.node');
// Copy then rename: a process that has the old addon loaded keeps its (unlinked) file intact.
if (existsSync(addon)) {
  copyFileSync(addon, path.join('dist', 'internlm.node.tmp'));
  renameSync(path.join('dist', 'internlm.node.tmp'), path.join('dist', 'internlm.node'));
}
if (existsSync('media')) cpSync('media', path.join('dist', 'media'), { recursive: true });
