// npm start (scripts/start.mjs), run as a user runs it: with desktop VS Code (a stand-in `code`
// that records its calls) it installs the .vsix there and opens the workspace; without, it serves
// the workbench from code-server on 127.0.0.1, with the model configured, until Ctrl-C. Its files
// go to a temp folder (INTERNLM_START_DIR) instead of .cache/start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { codeServerDirs } from '../../scripts/code-server.mjs';
import { DEMO_MODEL } from '../../scripts/demo-model.mjs';
import { makeModel } from '../fixtures/make-model.mjs';
import { makeWorkspace } from './fixtures.mjs';
import { EXTENSION_ID, ROOT, missingPrerequisites, openWorkbench } from './workbench.mjs';

const missing = missingPrerequisites();
const noWorkbench = missing.length && !process.env.INTERNLM_E2E_REQUIRED ? `skipped: ${missing.join('; ')}` : false;
let temp;

before(() => {
  temp = mkdtempSync(path.join(os.tmpdir(), 'internlm-start-test-'));
});

after(() => {
  rmSync(temp, { recursive: true, force: true });
});

/** A `code` on PATH that appends its arguments to calls.log and exits with `status` (0: VS Code is there). */
function fakeCode(dir, status) {
  mkdirSync(dir, { recursive: true });
  const script = path.join(dir, 'code');
  writeFileSync(script, `#!/bin/sh\necho "$*" >> "${path.join(dir, 'calls.log')}"\nexit ${status}\n`);
  chmodSync(script, 0o755);
  return { PATH: `${dir}${path.delimiter}${process.env.PATH}`, calls: () => readFileSync(path.join(dir, 'calls.log'), 'utf8').trim().split('\n') };
}

/** Spawns npm start's script; `output()` is what it printed so far, `printed(re)` waits for a match. */
function start(args, env) {
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts', 'start.mjs'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const waiters = new Set();
  const collect = (d) => {
    output += d;
    for (const check of waiters) check();
  };
  child.stdout.setEncoding('utf8').on('data', collect);
  child.stderr.setEncoding('utf8').on('data', collect);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const printed = (re) => new Promise((resolve, reject) => {
    const check = () => {
      const match = re.exec(output);
      if (!match) return;
      waiters.delete(check);
      resolve(match);
    };
    waiters.add(check);
    check();
    exited.then(({ code }) => waiters.has(check) && reject(new Error(`npm start exited (${code}) before printing ${re}:\n${output}`)));
  });
  return { child, exited, printed, output: () => output };
}

/** Processes (other than this one) whose command line mentions `text`. */
function processesMentioning(text) {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
    } catch {
      return false;
    }
  });
}

describe('npm start', () => {
  it('installs the .vsix into desktop VS Code and opens the folder with the demo model', async () => {
    const state = path.join(temp, 'desktop');
    const code = fakeCode(path.join(temp, 'desktop-bin'), 0);
    const run = start(['--folder', path.join(temp, 'desktop-folder')], { PATH: code.PATH, INTERNLM_START_DIR: state });
    const { code: status } = await run.exited;
    assert.equal(status, 0, run.output());
    const workspaceFile = path.join(state, 'InternLM.code-workspace');
    assert.deepEqual(code.calls(), ['--version', `--install-extension ${path.join(state, 'internlm-vscode.vsix')} --force`, `--new-window ${workspaceFile}`]);
    assert.deepEqual(JSON.parse(readFileSync(workspaceFile, 'utf8')), {
      folders: [{ path: path.join(temp, 'desktop-folder') }],
      settings: { 'internlm.modelPath': DEMO_MODEL },
    });
    assert.match(run.output(), /tiny demo model with random weights .* it talks nonsense/s);
  });

  it('serves the workbench from code-server on 127.0.0.1 with the model, until Ctrl-C', { skip: noWorkbench }, async () => {
    const state = path.join(temp, 'code-server');
    const folder = path.join(temp, 'project');
    makeWorkspace(folder);
    const model = (await makeModel({ dir: path.join(temp, 'model'), preset: 'tiny', formats: ['gguf-f32'] })).paths['gguf-f32'];
    // A `code` that fails stands for "no desktop VS Code", whatever this machine has.
    const code = fakeCode(path.join(temp, 'no-code-bin'), 1);
    const run = start(['--model', model, '--folder', folder], { PATH: code.PATH, INTERNLM_START_DIR: state });
    let workbench;
    try {
      const [, url] = await run.printed(/^\s*(http:\/\/127\.0\.0\.1:\d+\/\?workspace=\S+)$/m);
      const dirs = codeServerDirs(path.join(state, 'code-server'));
      assert.ok(readdirSync(dirs.extensions).some((d) => d.startsWith(`${EXTENSION_ID}-`)), 'the .vsix is installed');
      workbench = await openWorkbench(url, { name: 'npm-start', dirs });
      // The model comes from the workspace file npm start wrote; the folder is open in the explorer.
      await workbench.statusLabel(/InternLM: ready/, 120_000);
      await workbench.page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'README.md' }).waitFor();
      const chat = await workbench.openChat();
      await chat.locator('#input').waitFor();
      await workbench.screenshot('npm-start');
    } finally {
      await workbench?.close();
      run.child.kill('SIGINT');
    }
    const { code: status } = await run.exited;
    assert.equal(status, 0, run.output());
    assert.match(run.output(), /Stopping code-server/);
    assert.deepEqual(processesMentioning(state), [], 'code-server and its children have ended');
    assert.ok(existsSync(path.join(state, 'code-server.log')));
  });
});
