// Configures and builds the native engine with CMake, then leaves the addon at
// native/build/internlm.node (esbuild.mjs copies it next to the bundles in dist/).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
// INTERNLM_BUILD_DIR builds elsewhere (bench/gpu-check.mjs --pack prebuilds the GPU machine's binaries).
const buildDir = process.env.INTERNLM_BUILD_DIR ? path.resolve(process.env.INTERNLM_BUILD_DIR) : path.join(here, 'build');

function nodeIncludeDir() {
  const candidates = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean);
  const found = candidates.find((dir) => existsSync(path.join(dir, 'node_api.h')));
  if (!found) throw new Error(`Node headers (node_api.h) not found in: ${candidates.join(', ')}`);
  return found;
}

const addonApiDir = require('node-addon-api').include.replace(/"/g, '');
const jobs = String(Math.max(1, os.availableParallelism?.() ?? os.cpus().length));
const buildType = process.env.INTERNLM_BUILD_TYPE ?? 'Release';

execFileSync('cmake', [
  '-S', here, '-B', buildDir,
  `-DCMAKE_BUILD_TYPE=${buildType}`,
  `-DNODE_INCLUDE_DIR=${nodeIncludeDir()}`,
  `-DNODE_ADDON_API_DIR=${path.resolve(addonApiDir)}`,
], { stdio: 'inherit' });
execFileSync('cmake', ['--build', buildDir, '-j', jobs], { stdio: 'inherit' });
