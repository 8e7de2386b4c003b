// Choosing the model file, and the first-run message when none is chosen.
import * as vscode from 'vscode';
import { MODEL_SOURCE_URL, NO_MODEL_MESSAGE } from './notices';
import { setModelPath } from './settings';

export async function selectModelFile(): Promise<void> {
  const picked = await vscode.window.showOpenDialog({
    title: 'Select an InternLM2.5 model (GGUF file)',
    openLabel: 'Use This Model',
    canSelectFiles: true,
    canSelectFolders: false,
    canSelectMany: false,
    filters: { 'GGUF model': ['gguf'], 'All files': ['*'] },
  });
  const file = picked?.[0];
  if (!file) return;
  await setModelPath(file.fsPath);
  void vscode.window.showInformationMessage(`InternLM will use ${file.fsPath}.`);
}

export async function showFirstRunMessage(): Promise<void> {
  const select = 'Select Model File…';
  const download = 'Where to Download';
  const choice = await vscode.window.showInformationMessage(NO_MODEL_MESSAGE, select, download);
  if (choice === select) await selectModelFile();
  else if (choice === download) await vscode.env.openExternal(vscode.Uri.parse(MODEL_SOURCE_URL));
}
