// Runs the built CLI (dist/cli.js) the way a user does, for the CLI and parity tests.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli.js');

/** Resolves with {code, signal, stdout, stderr}; `input` is written to stdin, which is then closed. */
export function runCli(args, { input = '', timeoutMs = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** Runs a --json command and parses its stdout; fails with the CLI's stderr when it exits non-zero. */
export async function runCliJson(args, options) {
  const result = await runCli([...args, '--json'], options);
  if (result.code !== 0) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited ${result.code}`;
    throw new Error(`internlm ${args.join(' ')} ${how}: ${result.stderr}`);
  }
  return JSON.parse(result.stdout);
}
