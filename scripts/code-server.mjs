// code-server as scripts/e2e-setup.sh installs it (into .cache/code-server, or
// $INTERNLM_CODE_SERVER_DIR): installing a .vsix into it and starting it on 127.0.0.1. Shared by
// npm start (scripts/start.mjs) and the end-to-end tests (test/e2e/workbench.mjs).
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT } from './package.mjs';

export const CODE_SERVER_DIR = path.resolve(process.env.INTERNLM_CODE_SERVER_DIR ?? path.join(ROOT, '.cache', 'code-server'));
export const CODE_SERVER = path.join(CODE_SERVER_DIR, 'node_modules', '.bin', 'code-server');

/**
 * Where one code-server instance keeps its state: user data (settings, logs), extensions, and a
 * config file of its own (otherwise it writes ~/.config/code-server/config.yaml), written here.
 */
export function codeServerDirs(home) {
  const dirs = {
    userData: path.join(home, 'user-data'),
    extensions: path.join(home, 'extensions'),
    config: path.join(home, 'code-server.yaml'),
  };
  mkdirSync(home, { recursive: true });
  writeFileSync(dirs.config, 'auth: none\ncert: false\n');
  return dirs;
}

function commonArgs(dirs) {
  return ['--config', dirs.config, '--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions];
}

/** Installs (or, with force, reinstalls the same version of) a .vsix; throws with the output when it fails. */
export function installExtension(dirs, vsix, { env = process.env, force = false } = {}) {
  const args = [...commonArgs(dirs), '--install-extension', vsix, ...(force ? ['--force'] : [])];
  const result = spawnSync(CODE_SERVER, args, { env, encoding: 'utf8' });
  if (result.status !== 0 || !/successfully installed/i.test(result.stdout)) {
    throw new Error(`code-server --install-extension failed (${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/** `preferred` when it is free on 127.0.0.1, otherwise any free port. */
export function freePort(preferred = 0) {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', (error) => (preferred ? freePort().then(resolve, reject) : reject(error)));
    server.listen(preferred, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts code-server on 127.0.0.1:port without authentication (only this machine can reach it) in
 * its own process group, so that stopCodeServer ends the extension host and our language server
 * with it. Resolves with {server, url} once it listens; its output goes to `log` (a stream).
 */
export async function startCodeServer(dirs, { port, log, env = process.env, open }) {
  const args = [
    ...commonArgs(dirs),
    '--bind-addr', `127.0.0.1:${port}`,
    '--auth', 'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--ignore-last-opened',
    ...(open ? [open] : []),
  ];
  const server = spawn(CODE_SERVER, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  server.stdout.pipe(log, { end: false });
  server.stderr.pipe(log, { end: false });
  const url = await new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk) => {
      seen += chunk;
      const match = /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(seen);
      if (!match) return;
      server.stdout.off('data', onData);
      server.off('exit', onExit);
      resolve(`${match[1]}/`);
    };
    const onExit = (code, signal) => reject(new Error(`code-server exited (${code ?? signal}) before listening`));
    server.stdout.on('data', onData);
    server.once('exit', onExit);
  });
  return { server, url };
}

/** Ends code-server's process group (SIGTERM, then SIGKILL after 10 s) and waits for code-server. */
export async function stopCodeServer(server) {
  if (server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  const signalGroup = (signal) => {
    try {
      process.kill(-server.pid, signal);
    } catch {
      // The group is gone already.
    }
  };
  signalGroup('SIGTERM');
  const timer = setTimeout(() => signalGroup('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
  // Children that outlive code-server (the extension host, the language server) go with the group.
  signalGroup('SIGKILL');
}
