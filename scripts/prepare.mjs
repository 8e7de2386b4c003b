// The first steps of npm start and npm run chat, so that each is one command on a fresh checkout:
// the dependencies (npm ci, when node_modules is missing) and the build (incremental: quick when
// nothing changed, and never stale).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './package.mjs';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(args, failure) {
  const result = spawnSync(npm, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) {
    console.error(failure);
    process.exit(result.status ?? 1);
  }
}

export function installAndBuild(who) {
  if (!existsSync(path.join(ROOT, 'node_modules', '.package-lock.json'))) {
    run(['ci', '--no-audit', '--no-fund'], `${who}: npm ci failed (see above)`);
  }
  run(['run', 'build'], `${who}: the build failed (see above); it needs a C++17 compiler and CMake 3.20+`);
}
