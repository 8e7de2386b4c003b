// Activation: wires the language server connection to the status bar, the chat view, inline
// completions and the commands. The extension never builds prompts and never loads the engine:
// everything model-related happens in the server process (dist/server.js).
import * as vscode from 'vscode';
import type { StatusParams } from '../server/protocol';
import { ChatController } from './chatController';
import { CHAT_VIEW_ID, ChatViewProvider } from './chatView';
import { registerCommands } from './commands';
import { inlineCompletionMiddleware } from './inlineCompletions';
import { type Connection, LanguageServer } from './languageServer';
import { showFirstRunMessage } from './modelSetup';
import { noticeFor } from './notices';
import { affectsServer, serverSettings } from './settings';
import { StatusBar } from './statusBar';

let server: LanguageServer | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('InternLM');
  // The server keeps the workspace's KV cache here between sessions (per workspace when there is one).
  const storage = (context.storageUri ?? context.globalStorageUri).fsPath;
  server = new LanguageServer(context.asAbsolutePath('dist/server.js'), output, inlineCompletionMiddleware(), storage);
  const languageServer = server;
  const statusBar = new StatusBar();
  const controller = new ChatController(languageServer, context.workspaceState);
  const chatView = new ChatViewProvider(context.extensionUri, controller);

  let status: StatusParams | undefined;
  const refreshNotice = () => chatView.setNotice(noticeFor(serverSettings().modelPath, languageServer.state, status));

  context.subscriptions.push(
    output,
    statusBar,
    controller,
    vscode.window.registerWebviewViewProvider(CHAT_VIEW_ID, chatView),
    languageServer.onDidChangeConnection((connection) => {
      if (connection.kind !== 'running') status = undefined;
      statusBar.setConnection(connection);
      refreshNotice();
      warnOfCrash(connection);
    }),
    languageServer.onStatus((next) => {
      status = next;
      statusBar.setStatus(next);
      refreshNotice();
      if (next.state === 'busy' && next.tokensPerSecond) controller.showSpeed(next.tokensPerSecond);
      controller.showReading(next.prefill);
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (affectsServer(e)) void languageServer.pushSettings();
      if (e.affectsConfiguration('internlm.completion')) statusBar.renderCompletions();
      if (e.affectsConfiguration('internlm.modelPath')) refreshNotice();
    }),
    vscode.window.onDidChangeActiveTextEditor(() => statusBar.renderCompletions()),
    ...registerCommands({ server: languageServer, controller, chatView, output }),
  );

  refreshNotice();
  if (!serverSettings().modelPath) void showFirstRunMessage();
  // Not awaited: activation must not wait for the server process.
  void languageServer.start();

  function warnOfCrash(connection: Connection): void {
    if (connection.kind !== 'restarting' || connection.attempt !== 1) return;
    const seconds = Math.max(1, Math.round(connection.delayMs / 1000));
    void vscode.window
      .showWarningMessage(`The InternLM server stopped unexpectedly (${connection.reason}); restarting in ${seconds} s.`, 'Show Server Log')
      .then((choice) => choice && output.show(true));
  }
}

export async function deactivate(): Promise<void> {
  await server?.dispose();
  server = undefined;
}
