// Shared by the server tests: tiny generated models, a JSON-RPC client speaking LSP to a spawned
// `node dist/server.js --stdio`, and loading TypeScript modules (bundled with esbuild) for unit
// tests of pure functions. The "scripted" model (a chosen greedy answer) is in test/fixtures/.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { createMessageConnection, ProgressType, StreamMessageReader, StreamMessageWriter, CancellationTokenSource } from 'vscode-jsonrpc/node.js';
import { makeModel } from '../fixtures/make-model.mjs';

const require = createRequire(import.meta.url);
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const serverJs = path.join(root, 'dist', 'server.js');

export function tmpDir(prefix) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `ilm-${prefix}-`));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A tiny random InternLM2 (real vocabulary, so text tokenizes like the real model's). */
export async function tinyModel(dir, options = {}) {
  const made = await makeModel({ dir, vocab: 'internlm2', formats: ['gguf-f32'], ...options });
  return made.paths['gguf-f32'];
}

/** Bundles a TypeScript module of the server and loads it (for unit tests of pure functions). */
export async function importTs(relPath) {
  const out = path.join(tmpDir('bundle'), `${path.basename(relPath, '.ts')}.cjs`);
  await esbuild.build({
    entryPoints: [path.join(root, relPath)], outfile: out, bundle: true, platform: 'node', format: 'cjs',
    target: 'node20', logLevel: 'warning',
  });
  return require(out);
}

const textDelta = new ProgressType();
const workDoneType = new ProgressType();

/** An LSP client over the stdio of a spawned server process. */
export class LspClient {
  statuses = [];
  diagnostics = [];
  logs = [];
  subscriptions = [];
  /** Server-initiated work-done progress: token → the $/progress values received, in order. */
  workDone = new Map();
  #waiters = [];
  #tokens = 0;

  constructor(child, connection) {
    this.child = child;
    this.connection = connection;
  }

  /** Resolves with the first status (past or future) that satisfies `predicate`. */
  waitForStatus(predicate, timeoutMs = 30000) {
    const past = this.statuses.find(predicate);
    if (past) return Promise.resolve(past);
    return this.#wait(predicate, timeoutMs, () => `no matching status; got ${JSON.stringify(this.statuses)}`);
  }

  /** Resolves with the first status after now that satisfies `predicate`. */
  nextStatus(predicate, timeoutMs = 30000) {
    return this.#wait(predicate, timeoutMs, () => `no new matching status; got ${JSON.stringify(this.statuses)}`);
  }

  #wait(predicate, timeoutMs, describe) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(describe())), timeoutMs);
      this.#waiters.push((s) => {
        if (!predicate(s)) return false;
        clearTimeout(timer);
        resolve(s);
        return true;
      });
    });
  }

  /** Resolves with the token of the first work-done progress (past or future) that satisfies `predicate(values, token)`. */
  async waitForWorkDone(predicate, timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const [token, values] of this.workDone) if (predicate(values, token)) return token;
      if (Date.now() > deadline) throw new Error(`no matching work-done progress; got ${JSON.stringify([...this.workDone])}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  onWorkDoneCreate(token) {
    const values = [];
    this.workDone.set(token, values);
    this.subscriptions.push(this.connection.onProgress(workDoneType, token, (value) => values.push({ ...value, at: performance.now() })));
  }

  onStatus(status) {
    this.statuses.push(status);
    this.#waiters = this.#waiters.filter((w) => !w(status));
  }

  request(method, params, token) {
    // An explicit undefined would be sent as a second positional parameter.
    return token ? this.connection.sendRequest(method, params, token) : this.connection.sendRequest(method, params);
  }

  /**
   * Sends a streaming request (a partialResultToken is added). Returns {deltas, result, cancel}:
   * deltas fill in as $/progress arrives; cancel() sends $/cancelRequest.
   */
  stream(method, params) {
    const partialResultToken = `partial-${++this.#tokens}`;
    const deltas = [];
    const firstDelta = new Promise((resolve) => {
      const sub = this.connection.onProgress(textDelta, partialResultToken, (value) => {
        deltas.push(value.delta);
        resolve();
      });
      this.subscriptions.push(sub);
    });
    const cancellation = new CancellationTokenSource();
    const result = this.connection.sendRequest(method, { ...params, partialResultToken }, cancellation.token);
    return { deltas, firstDelta, result, cancel: () => cancellation.cancel() };
  }

  open(uri, languageId, text, version = 1) {
    return this.connection.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId, version, text } });
  }

  change(uri, version, text) {
    return this.connection.sendNotification('textDocument/didChange', { textDocument: { uri, version }, contentChanges: [{ text }] });
  }

  configure(settings) {
    return this.connection.sendNotification('workspace/didChangeConfiguration', { settings });
  }

  async close() {
    try {
      await Promise.race([this.connection.sendRequest('shutdown'), new Promise((r) => setTimeout(r, 2000))]);
      await this.connection.sendNotification('exit');
    } catch {
      // The process may already be gone.
    }
    await new Promise((resolve) => {
      if (this.child.exitCode !== null) return resolve();
      const timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve();
      }, 3000);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.connection.dispose();
  }
}

export function settings(modelPath, extra = {}) {
  return { modelPath, device: 'auto', threads: 0, contextLength: 0, ropeScaling: 'auto', completion: { maxTokens: 32 }, ...extra };
}

/**
 * Spawns the server and initializes it. `filesExclude` answers workspace/configuration requests
 * for "files.exclude"; `workDoneProgress` is the client's window.workDoneProgress capability (the
 * progress it then receives is recorded in client.workDone).
 */
export async function startServer({ initializationOptions, workspaceFolders = [], filesExclude = {}, workDoneProgress = false } = {}) {
  if (!existsSync(serverJs)) throw new Error(`${serverJs} is missing: run npm run build first`);
  const child = spawn(process.execPath, [serverJs, '--stdio'], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  const client = new LspClient(child, connection);
  child.on('exit', (code) => {
    if (code && code !== 0) process.stderr.write(`server exited with ${code}\n${stderr}`);
  });
  connection.onNotification('internlm/status', (s) => client.onStatus(s));
  connection.onNotification('textDocument/publishDiagnostics', (p) => client.diagnostics.push(p));
  connection.onNotification('window/logMessage', (m) => client.logs.push(m.message));
  connection.onRequest('workspace/configuration', ({ items }) =>
    items.map((item) => (item.section === 'files.exclude' ? filesExclude : null)));
  connection.onRequest('client/registerCapability', () => null);
  connection.onRequest('window/workDoneProgress/create', ({ token }) => {
    client.onWorkDoneCreate(token);
    return null;
  });
  connection.listen();
  const folders = workspaceFolders.map((dir) => ({ uri: pathToFileURL(dir).href, name: path.basename(dir) }));
  const init = await connection.sendRequest('initialize', {
    processId: process.pid,
    rootUri: folders[0]?.uri ?? null,
    workspaceFolders: folders,
    initializationOptions,
    capabilities: {
      window: { workDoneProgress },
      workspace: { configuration: true, workspaceFolders: true, didChangeConfiguration: { dynamicRegistration: false } },
      textDocument: { inlineCompletion: { dynamicRegistration: false }, publishDiagnostics: {}, synchronization: {} },
    },
  });
  client.initializeResult = init;
  await connection.sendNotification('initialized', {});
  return client;
}
