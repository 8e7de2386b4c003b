// The extension in desktop VS Code through @vscode/test-electron, for machines that have VS Code:
//   VSCODE_PATH=/path/to/code node test/e2e/electron.mjs      (npm run test:electron)
// Without VSCODE_PATH, test-electron downloads VS Code (needs access to its download site). Runs
// electron-suite.cjs inside the extension host, against this checkout's dist/ (npm run build first),
// with INTERNLM_E2E_MODEL or a generated model, and the scripted model for the file analysis.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTests } from '@vscode/test-electron';
import { scriptedModel } from '../fixtures/scripted-model.mjs';
import { ANALYSIS, E2E_SETTINGS, e2eModel, makeWorkspace } from './fixtures.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const temp = mkdtempSync(path.join(os.tmpdir(), 'internlm-electron-'));
try {
  const workspace = path.join(temp, 'workspace');
  makeWorkspace(workspace);
  const model = await e2eModel(path.join(temp, 'model'));
  const analyst = await scriptedModel(path.join(temp, 'analyst'), ANALYSIS.answer);
  const userData = path.join(temp, 'user-data');
  mkdirSync(path.join(userData, 'User'), { recursive: true });
  writeFileSync(
    path.join(userData, 'User', 'settings.json'),
    JSON.stringify({ 'workbench.startupEditor': 'none', 'security.workspace.trust.enabled': false, ...E2E_SETTINGS, 'internlm.modelPath': model }),
  );
  await runTests({
    vscodeExecutablePath: process.env.VSCODE_PATH,
    extensionDevelopmentPath: root,
    extensionTestsPath: path.join(here, 'electron-suite.cjs'),
    extensionTestsEnv: { INTERNLM_E2E_ANALYST: analyst, INTERNLM_E2E_ANALYSIS: JSON.stringify(ANALYSIS) },
    launchArgs: [workspace, `--user-data-dir=${userData}`, `--extensions-dir=${path.join(temp, 'extensions')}`, '--disable-workspace-trust'],
  });
  console.log('electron: passed');
} catch (error) {
  console.error(`electron: failed: ${error instanceof Error ? error.message : error}`);
  process.exitCode = 1;
} finally {
  rmSync(temp, { recursive: true, force: true });
}
