// npm start: the product itself, the extension in a VS Code workbench on a folder.
//   npm start                              the tiny random demo model (its replies are noise), or the
//                                          model chosen with Select Model File… the last time
//   npm start -- --model PATH              a GGUF file or a Hugging Face checkpoint directory
//   npm start -- --folder DIR --port N     the folder to open (default: this checkout); code-server's port
// Installs the dependencies if needed, builds, packages the .vsix, then: with desktop VS Code
// (`code` on PATH) installs the .vsix there and opens the folder; otherwise starts code-server
// (scripts/e2e-setup.sh installs it when missing) on 127.0.0.1, prints its URL and runs until Ctrl-C.
// The model setting lives in a workspace file (.cache/start/InternLM.code-workspace), so the
// user's own settings stay untouched.
import { spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CODE_SERVER, codeServerDirs, freePort, installExtension, startCodeServer, stopCodeServer } from './code-server.mjs';
import { DEMO_MODEL, demoModel } from './demo-model.mjs';
import { ROOT, packageExtension } from './package.mjs';
import { installAndBuild } from './prepare.mjs';

// Where npm start keeps its files; the tests point it elsewhere.
const STATE = path.resolve(process.env.INTERNLM_START_DIR ?? path.join(ROOT, '.cache', 'start'));
const WORKSPACE_FILE = path.join(STATE, 'InternLM.code-workspace');

function fail(message) {
  console.error(`npm start: ${message}`);
  process.exit(1);
}

/** A path as the user best reads it: relative inside this checkout, absolute outside. */
function shown(file) {
  const relative = path.relative(ROOT, file);
  return relative.startsWith('..') ? file : relative;
}

function options() {
  try {
    const { values } = parseArgs({ options: { model: { type: 'string' }, folder: { type: 'string' }, port: { type: 'string' } } });
    const port = values.port === undefined ? 8080 : Number(values.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port ${values.port}: not a port number`);
    // npm runs scripts in the package folder; paths are meant from where npm start was typed.
    const from = process.env.INIT_CWD ?? process.cwd();
    const model = values.model && path.resolve(from, values.model);
    if (model && !existsSync(model)) throw new Error(`--model ${values.model}: no such file or folder`);
    return { model, folder: values.folder ? path.resolve(from, values.folder) : ROOT, port };
  } catch (error) {
    fail(`${error instanceof Error ? error.message : error}\nusage: npm start [-- --model PATH] [--folder DIR] [--port N]`);
  }
}

/** The model in the workspace file from the last run (a user may have picked one in the workbench). */
function previousModel() {
  try {
    const chosen = JSON.parse(readFileSync(WORKSPACE_FILE, 'utf8')).settings?.['internlm.modelPath'];
    return typeof chosen === 'string' && chosen !== DEMO_MODEL && existsSync(chosen) ? chosen : undefined;
  } catch {
    return undefined;
  }
}

async function chooseModel(given) {
  if (given) return given;
  const previous = previousModel();
  if (previous) {
    console.log(`Model: ${previous} (chosen last time; npm start -- --model PATH picks another)`);
    return previous;
  }
  const demo = await demoModel();
  console.log(`Model: the tiny demo model with random weights (${shown(demo)}): it talks nonsense, but proves`);
  console.log('the whole path works. For real answers: npm start -- --model path/to/internlm2_5-7b-chat-q4_k_m.gguf (README.md).');
  return demo;
}

function writeWorkspace(folder, model) {
  const workspace = { folders: [{ path: folder }], settings: { 'internlm.modelPath': model } };
  writeFileSync(WORKSPACE_FILE, `${JSON.stringify(workspace, null, 2)}\n`);
}

function hasDesktopCode() {
  return spawnSync('code', ['--version'], { stdio: 'ignore' }).status === 0;
}

function openInDesktopCode(vsix) {
  const install = spawnSync('code', ['--install-extension', vsix, '--force'], { stdio: 'inherit' });
  if (install.status !== 0) fail(`code --install-extension ${vsix} failed (see above)`);
  const open = spawnSync('code', ['--new-window', WORKSPACE_FILE], { stdio: 'inherit' });
  if (open.status !== 0) fail('code could not open the workspace (see above)');
  console.log(`Opened ${WORKSPACE_FILE} in VS Code; the InternLM view is in the activity bar.`);
}

async function runCodeServer(vsix, port) {
  if (!existsSync(CODE_SERVER)) {
    console.log('No desktop VS Code (`code`) and no code-server: installing code-server (scripts/e2e-setup.sh; a few minutes, once).');
    const setup = spawnSync('bash', [path.join(ROOT, 'scripts', 'e2e-setup.sh')], { stdio: 'inherit' });
    if (setup.status !== 0) fail('installing code-server failed (see above)');
  }
  const dirs = codeServerDirs(path.join(STATE, 'code-server'));
  // This code-server's profile is npm start's own: no telemetry (the product's promise), and no
  // walkthrough in front of the workbench on the first start. Later changes are the user's.
  const userSettings = path.join(dirs.userData, 'User', 'settings.json');
  if (!existsSync(userSettings)) {
    mkdirSync(path.dirname(userSettings), { recursive: true });
    writeFileSync(userSettings, `${JSON.stringify({ 'telemetry.telemetryLevel': 'off', 'workbench.startupEditor': 'none' }, null, 2)}\n`);
  }
  installExtension(dirs, vsix, { force: true });
  const logFile = path.join(STATE, 'code-server.log');
  const log = createWriteStream(logFile);
  const { server, url } = await startCodeServer(dirs, { port: await freePort(port), log, open: WORKSPACE_FILE }).catch((error) => {
    throw new Error(`${error.message}; see ${shown(logFile)}`);
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log('\nStopping code-server…');
    await stopCodeServer(server);
    log.end();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  server.once('exit', (code, signal) => {
    if (!stopping) fail(`code-server stopped (${code ?? signal}); see ${shown(logFile)}`);
  });
  console.log(`\nInternLM for VS Code is running in code-server (log: ${shown(logFile)}). Open in a browser:\n`);
  console.log(`    ${url}?workspace=${encodeURIComponent(WORKSPACE_FILE)}\n`);
  console.log('The InternLM view is in the activity bar. Ctrl-C stops code-server.');
}

async function main() {
  const opts = options();
  installAndBuild('npm start');
  mkdirSync(STATE, { recursive: true });
  writeWorkspace(opts.folder, await chooseModel(opts.model));
  const vsix = packageExtension(path.join(STATE, 'internlm-vscode.vsix'));
  if (hasDesktopCode()) openInDesktopCode(vsix);
  else await runCodeServer(vsix, opts.port);
}

await main().catch((error) => fail(error instanceof Error ? error.message : String(error)));
