// The InternLM commands (titles in package.json's contributes.commands).
import * as vscode from 'vscode';
import { selectionAttachment, targetEditor } from './attachments';
import type { ChatController } from './chatController';
import type { ChatViewProvider } from './chatView';
import type { LanguageServer } from './languageServer';
import { selectModelFile } from './modelSetup';
import { completionSettings, setCompletionsEnabled } from './settings';

export interface CommandContext {
  server: LanguageServer;
  controller: ChatController;
  chatView: ChatViewProvider;
  output: vscode.OutputChannel;
}

export function registerCommands({ server, controller, chatView, output }: CommandContext): vscode.Disposable[] {
  const commands: Record<string, (...args: unknown[]) => unknown> = {
    'internlm.askWorkspace': async () => {
      if (!vscode.workspace.workspaceFolders?.length) {
        void vscode.window.showInformationMessage('Open a folder first: Ask about Workspace answers from the files of the open workspace.');
        return;
      }
      const question = await vscode.window.showInputBox({
        title: 'InternLM: Ask about Workspace',
        prompt: 'The whole workspace goes into the model\'s context (as much as fits).',
        placeHolder: 'e.g. Where are the settings read, and who uses them?',
        ignoreFocusOut: true,
      });
      if (!question?.trim()) return;
      await chatView.reveal();
      await controller.askWorkspace(question.trim());
    },
    'internlm.analyzeFile': async () => {
      const editor = targetEditor();
      if (!editor) {
        void vscode.window.showInformationMessage('Open the file to analyze in an editor first.');
        return;
      }
      await chatView.reveal();
      await controller.analyzeFile(editor.document);
    },
    'internlm.explainSelection': async () => {
      const editor = targetEditor();
      const attachment = editor ? selectionAttachment(editor) : 'Open a file and select some code first.';
      if (typeof attachment === 'string') {
        void vscode.window.showInformationMessage(attachment);
        return;
      }
      await chatView.reveal();
      await controller.send('Explain this code.', [attachment]);
    },
    'internlm.newChat': async () => {
      controller.newChat();
      await chatView.reveal();
    },
    'internlm.selectModel': selectModelFile,
    'internlm.toggleCompletions': () => setCompletionsEnabled(!completionSettings().enabled),
    'internlm.restartServer': () => server.restart(),
    // The status bar's click while a long prompt is read: cancels that request (through the
    // server's work-done progress, so requests not started from the chat view stop too).
    'internlm.cancelPrefill': (token: unknown) => {
      if (typeof token === 'string' || typeof token === 'number') return server.cancelProgress(token);
      controller.stop();
      return undefined;
    },
    'internlm.showLog': () => output.show(true),
  };
  return Object.entries(commands).map(([id, run]) => vscode.commands.registerCommand(id, run));
}
