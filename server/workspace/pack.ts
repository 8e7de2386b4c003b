// Packs workspace files into one context. Each file becomes a segment with a path header, tokenized
// once and cached by (path, mtime, size), so asking again re-reads and re-tokenizes only changed
// files. Files are ordered least recently modified first: an edit moves its file to the end, so the
// cached prefix before it survives. When everything does not fit, the most recently modified files
// win (they are what the user is working on) and the rest are reported as over budget.
import { promises as fs } from 'node:fs';
import type { SkipReason } from '../protocol';
import { classifyByContent } from './classify';
import type { ScannedFile } from './scan';

export interface PackedFile {
  relPath: string;
  mtimeMs: number;
  /** Header, content and footer as token ids. */
  ids: readonly number[];
}

export function fileSegment(relPath: string, text: string): string {
  return `<file path="${relPath}">\n${text}${text.endsWith('\n') || text === '' ? '' : '\n'}</file>\n\n`;
}

/** Oldest first; ties by path, so the order is the same on every run. */
function byAge(a: { mtimeMs: number; relPath: string }, b: { mtimeMs: number; relPath: string }): number {
  return a.mtimeMs - b.mtimeMs || (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0);
}

export interface Selection {
  /** In prompt order: least recently modified first. */
  included: PackedFile[];
  overBudget: PackedFile[];
  tokens: number;
}

export function selectFiles(files: readonly PackedFile[], budget: number): Selection {
  const newestFirst = [...files].sort((a, b) => byAge(b, a));
  const included: PackedFile[] = [];
  const overBudget: PackedFile[] = [];
  let tokens = 0;
  for (const file of newestFirst) {
    if (tokens + file.ids.length <= budget) {
      included.push(file);
      tokens += file.ids.length;
    } else {
      overBudget.push(file);
    }
  }
  return { included: included.sort(byAge), overBudget: overBudget.sort(byAge), tokens };
}

type Loaded = { ids: number[] } | { skip: SkipReason };

export class WorkspaceTokens {
  private readonly cache = new Map<string, { mtimeMs: number; size: number; loaded: Loaded }>();

  constructor(private readonly tokenize: (text: string) => number[]) {}

  /** The file's segment ids, why it is left out, or undefined when it can no longer be read. */
  async load(file: ScannedFile): Promise<PackedFile | SkipReason | undefined> {
    const hit = this.cache.get(file.fsPath);
    let loaded: Loaded | undefined;
    if (hit && hit.mtimeMs === file.mtimeMs && hit.size === file.size) {
      loaded = hit.loaded;
    } else {
      loaded = await this.read(file);
      if (!loaded) return undefined;
      this.cache.set(file.fsPath, { mtimeMs: file.mtimeMs, size: file.size, loaded });
    }
    return 'skip' in loaded ? loaded.skip : { relPath: file.relPath, mtimeMs: file.mtimeMs, ids: loaded.ids };
  }

  /** Drops cached files that the last scan no longer lists. */
  retain(files: readonly ScannedFile[]): void {
    const live = new Set(files.map((f) => f.fsPath));
    for (const key of this.cache.keys()) if (!live.has(key)) this.cache.delete(key);
  }

  private async read(file: ScannedFile): Promise<Loaded | undefined> {
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(file.fsPath);
    } catch {
      return undefined;
    }
    const skip = classifyByContent(bytes);
    if (skip) return { skip };
    return { ids: this.tokenize(fileSegment(file.relPath, bytes.toString('utf8'))) };
  }
}
