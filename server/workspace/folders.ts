// The client's workspace folders, as file-system paths, and how the model sees a document's path:
// workspace-relative (prefixed with the folder's name when there are several folders).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Folder {
  fsPath: string;
  name: string;
}

export function uriToPath(uri: string): string | undefined {
  try {
    return uri.startsWith('file:') ? fileURLToPath(uri) : undefined;
  } catch {
    return undefined;
  }
}

export class WorkspaceFolders {
  private list: Folder[] = [];

  set(folders: ReadonlyArray<{ uri: string; name: string }>): void {
    this.list = folders.flatMap((f) => {
      const fsPath = uriToPath(f.uri);
      return fsPath ? [{ fsPath, name: f.name }] : [];
    });
  }

  change(added: ReadonlyArray<{ uri: string; name: string }>, removed: ReadonlyArray<{ uri: string }>): void {
    const gone = new Set(removed.map((f) => uriToPath(f.uri)));
    this.list = this.list.filter((f) => !gone.has(f.fsPath));
    for (const f of added) {
      const fsPath = uriToPath(f.uri);
      if (fsPath && !this.list.some((k) => k.fsPath === fsPath)) this.list.push({ fsPath, name: f.name });
    }
  }

  get folders(): readonly Folder[] {
    return this.list;
  }

  /** The prefix a folder's files get in relative paths: none with a single folder. */
  prefixOf(folder: Folder): string {
    return this.list.length > 1 ? folder.name : '';
  }

  displayPath(uri: string): string {
    const fsPath = uriToPath(uri);
    if (!fsPath) return uri;
    for (const folder of this.list) {
      const rel = path.relative(folder.fsPath, fsPath);
      if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) {
        const posix = rel.split(path.sep).join('/');
        return this.list.length > 1 ? `${folder.name}/${posix}` : posix;
      }
    }
    return path.basename(fsPath);
  }
}
