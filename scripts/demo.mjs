// npm start: builds the engine and the CLI, then opens `internlm chat` on a model.
//   npm start                          a tiny random demo model (generated once into .cache/demo/)
//   npm start -- --model PATH          a GGUF file or a Hugging Face checkpoint directory
// Any other flags (e.g. --threads 4) go to `internlm chat` unchanged.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);

// The build is incremental: quick when nothing changed, and never stale.
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const build = spawnSync(npm, ['run', 'build'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
if (build.status !== 0) {
  console.error('npm start: the build failed (see above); it needs a C++17 compiler and CMake 3.20+');
  process.exit(build.status ?? 1);
}

if (!args.includes('--model')) {
  const demo = path.join(root, '.cache', 'demo', 'model-f32.gguf');
  if (!existsSync(demo)) {
    const { makeModel } = await import('../test/fixtures/make-model.mjs');
    await makeModel({ dir: path.dirname(demo), preset: 'tiny', formats: ['gguf-f32'], name: 'internlm2-demo (random weights)' });
  }
  console.error(`No --model given: chatting with a tiny random model (${path.relative(root, demo)}); its replies are noise.`);
  console.error('For real answers: npm start -- --model path/to/internlm2_5-7b-chat-q4_k_m.gguf (see README.md).');
  args.push('--model', demo);
}

// Ctrl-C belongs to the chat (it stops a reply); this launcher just waits for it to end.
process.on('SIGINT', () => {});
const chat = spawn(process.execPath, [path.join(root, 'dist', 'cli.js'), 'chat', ...args], { stdio: 'inherit' });
chat.on('close', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
