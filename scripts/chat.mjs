// npm run chat: builds the engine and the CLI, then opens `internlm chat` in this terminal.
//   npm run chat                          the tiny random demo model (its replies are noise)
//   npm run chat -- --model PATH          a GGUF file or a Hugging Face checkpoint directory
// Any other flags (e.g. --threads 4) go to `internlm chat` unchanged.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { demoModel } from './demo-model.mjs';
import { ROOT } from './package.mjs';
import { installAndBuild } from './prepare.mjs';

const args = process.argv.slice(2);
installAndBuild('npm run chat');

if (!args.includes('--model')) {
  const demo = await demoModel();
  console.error(`No --model given: chatting with a tiny random model (${path.relative(ROOT, demo)}); its replies are noise.`);
  console.error('For real answers: npm run chat -- --model path/to/internlm2_5-7b-chat-q4_k_m.gguf (see README.md).');
  args.push('--model', demo);
}

// Ctrl-C belongs to the chat (it stops a reply); this launcher just waits for it to end.
process.on('SIGINT', () => {});
const chat = spawn(process.execPath, [path.join(ROOT, 'dist', 'cli.js'), 'chat', ...args], { stdio: 'inherit' });
chat.on('close', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
