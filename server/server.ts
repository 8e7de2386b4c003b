// The InternLM language server: `node dist/server.js --stdio` (or --node-ipc / --socket=N). It owns
// the model in its own process, so a native crash never takes the editor down. See
// docs/architecture.md for how the pieces fit and docs/protocol.md for the requests it serves.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createConnection, ProposedFeatures, TextDocumentSyncKind, type InitializeResult } from 'vscode-languageserver/node';
import { EngineHost } from './engine-host';
import { registerAnalyzeFile } from './lsp/analyze-file';
import { registerAskWorkspace } from './lsp/ask-workspace';
import { registerChat } from './lsp/chat';
import type { ServerContext } from './lsp/context';
import { OpenDocuments } from './lsp/documents';
import { registerInlineCompletion } from './lsp/inline-completion';
import { WorkDoneProgresses } from './lsp/prefill-progress';
import { StatusNotification, type ServerSettings } from './protocol';
import { Scheduler } from './scheduler';
import { carriesSettings, readSettings, readStoragePath } from './settings';
import { StatusReporter } from './status';
import { WorkspaceFolders } from './workspace/folders';
import type { ExcludeSetting } from './workspace/glob';
import { WorkspacePrefixCache } from './workspace/prefix-cache';

const connection = createConnection(ProposedFeatures.all);
const log = (message: string) => connection.console.log(message);
const status = new StatusReporter((params) => void connection.sendNotification(StatusNotification.method, params));
const host = new EngineHost(status, log);
// Completions are the interactive work: long prefills step aside for them (see scheduler.ts).
const scheduler = new Scheduler((active) => status.activity(active), new Set(['completion']));
const folders = new WorkspaceFolders();
const documents = new OpenDocuments((uri) => folders.displayPath(uri));
const progress = new WorkDoneProgresses(connection, status, log);
const prefixCache = new WorkspacePrefixCache(log);

let initialSettings: ServerSettings = readSettings(undefined);
let canPullConfiguration = false;
let foldersChange = false;

async function filesExclude(folderPath: string): Promise<ExcludeSetting> {
  if (!canPullConfiguration) return {};
  const value: unknown = await connection.workspace.getConfiguration({ scopeUri: pathToFileURL(folderPath).href, section: 'files.exclude' });
  return typeof value === 'object' && value !== null ? (value as ExcludeSetting) : {};
}

connection.onInitialize((params): InitializeResult => {
  const rootPath = params.rootUri ? [{ uri: params.rootUri, name: path.basename(params.rootUri) }] : [];
  folders.set(params.workspaceFolders ?? rootPath);
  canPullConfiguration = params.capabilities.workspace?.configuration === true;
  foldersChange = params.capabilities.workspace?.workspaceFolders === true;
  initialSettings = readSettings(params.initializationOptions);
  prefixCache.setStoragePath(readStoragePath(params.initializationOptions));
  progress.listen(params.capabilities.window?.workDoneProgress === true);
  return {
    capabilities: {
      textDocumentSync: TextDocumentSyncKind.Incremental,
      inlineCompletionProvider: true,
      workspace: { workspaceFolders: { supported: true, changeNotifications: true } },
    },
    serverInfo: { name: 'InternLM language server' },
  };
});

connection.onInitialized(() => {
  if (foldersChange) connection.workspace.onDidChangeWorkspaceFolders((e) => folders.change(e.added, e.removed));
  host.configure(initialSettings);
});

connection.onDidChangeConfiguration((change) => {
  if (carriesSettings(change.settings)) host.configure(readSettings(change.settings));
});
connection.onShutdown(() => host.dispose());

const ctx: ServerContext = { connection, host, scheduler, status, documents, folders, progress, prefixCache, filesExclude, log };
registerChat(ctx);
registerInlineCompletion(ctx);
registerAnalyzeFile(ctx);
registerAskWorkspace(ctx);

documents.listen(connection);
connection.listen();
