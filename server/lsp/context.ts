// What the request handlers share.
import type { ProposedFeatures } from 'vscode-languageserver';
import type { EngineHost } from '../engine-host';
import type { Scheduler } from '../scheduler';
import type { StatusReporter } from '../status';
import type { WorkspaceFolders } from '../workspace/folders';
import type { ExcludeSetting } from '../workspace/glob';
import type { OpenDocuments } from './documents';

export interface ServerContext {
  /** With the proposed (LSP 3.18) features: inline completions. */
  connection: ProposedFeatures.Connection;
  host: EngineHost;
  scheduler: Scheduler;
  status: StatusReporter;
  documents: OpenDocuments;
  folders: WorkspaceFolders;
  /** The client's files.exclude for a folder (empty when the client cannot tell). */
  filesExclude(folderPath: string): Promise<ExcludeSetting>;
  log(message: string): void;
}
