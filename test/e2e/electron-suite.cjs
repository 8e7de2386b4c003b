// Runs inside desktop VS Code's extension host (started by electron.mjs): the extension activates,
// its commands and views exist, the server loads the model, chat view and commands work through the
// real API, and Analyze Current File on the scripted model publishes a diagnostic. A rejection of
// run() fails the run.
const assert = require('node:assert/strict');
const path = require('node:path');
const vscode = require('vscode');

const COMMANDS = [
  'internlm.askWorkspace',
  'internlm.analyzeFile',
  'internlm.explainSelection',
  'internlm.newChat',
  'internlm.selectModel',
  'internlm.toggleCompletions',
  'internlm.restartServer',
  'internlm.showLog',
];

/** Resolves once the document has a diagnostic from InternLM (or rejects after timeoutMs). */
function internlmDiagnostic(uri, timeoutMs = 120_000) {
  const found = () => vscode.languages.getDiagnostics(uri).some((d) => d.source === 'InternLM');
  return new Promise((resolve, reject) => {
    if (found()) return resolve();
    const timer = setTimeout(() => {
      subscription.dispose();
      reject(new Error('no InternLM diagnostic appeared'));
    }, timeoutMs);
    const subscription = vscode.languages.onDidChangeDiagnostics(() => {
      if (!found()) return;
      clearTimeout(timer);
      subscription.dispose();
      resolve();
    });
  });
}

async function step(name, body) {
  await body();
  console.log(`ok - ${name}`);
}

exports.run = async function run() {
  const extension = vscode.extensions.getExtension('internlm-local.internlm-vscode');
  assert.ok(extension, 'the extension is installed');

  await step('activates and registers its commands', async () => {
    await extension.activate();
    const commands = await vscode.commands.getCommands(true);
    for (const id of COMMANDS) assert.ok(commands.includes(id), `${id} is registered`);
  });

  await step('opens the chat view', async () => {
    await vscode.commands.executeCommand('internlm.chat.focus');
  });

  await step('toggles inline completions', async () => {
    const enabled = () => vscode.workspace.getConfiguration('internlm').get('completion.enabled');
    const before = enabled();
    await vscode.commands.executeCommand('internlm.toggleCompletions');
    assert.equal(enabled(), !before);
    await vscode.commands.executeCommand('internlm.toggleCompletions');
    assert.equal(enabled(), before);
  });

  await step('analyzes the current file: a diagnostic appears', async () => {
    // The scripted model (electron.mjs) answers with one finding on line 5.
    const analysis = JSON.parse(process.env.INTERNLM_E2E_ANALYSIS);
    await vscode.workspace.getConfiguration('internlm').update('modelPath', process.env.INTERNLM_E2E_ANALYST, vscode.ConfigurationTarget.Global);
    const folder = vscode.workspace.workspaceFolders[0].uri.fsPath;
    const document = await vscode.workspace.openTextDocument(path.join(folder, 'src', 'inventory.ts'));
    await vscode.window.showTextDocument(document);
    // The command resolves when the analysis is done (its report is in the chat view).
    await vscode.commands.executeCommand('internlm.analyzeFile');
    await internlmDiagnostic(document.uri);
    const [diagnostic] = vscode.languages.getDiagnostics(document.uri).filter((d) => d.source === 'InternLM');
    assert.equal(diagnostic.message, analysis.message);
    assert.equal(diagnostic.range.start.line, 4);
    assert.equal(diagnostic.severity, vscode.DiagnosticSeverity.Error);
  });
};
