// What the request handlers share.
import type { ProposedFeatures } from 'vscode-languageserver';
import type { EngineHost } from '../engine-host';
import type { Scheduler } from '../scheduler';
import type { StatusReporter } from '../status';
import type { WorkspaceFolders } from '../workspace/folders';
import type { ExcludeSetting } from '../workspace/glob';
import type { WorkspacePrefixCache } from '../workspace/prefix-cache';
import type { OpenDocuments } from './documents';
import type { WorkDoneProgresses } from './prefill-progress';

export interface ServerContext {
  /** With the proposed (LSP 3.18) features: inline completions. */
  connection: ProposedFeatures.Connection;
  host: EngineHost;
  scheduler: Scheduler;
  status: StatusReporter;
  documents: OpenDocuments;
  folders: WorkspaceFolders;
  /** Work-done progress of long prefills. */
  progress: WorkDoneProgresses;
  /** The workspace session's prefix on disk. */
  prefixCache: WorkspacePrefixCache;
  /** The client's files.exclude for a folder (empty when the client cannot tell). */
  filesExclude(folderPath: string): Promise<ExcludeSetting>;
  log(message: string): void;
}
