// Walks the workspace folders and lists the files a workspace question may include: .gitignore files
// (nested ones too, with negations) and files.exclude hide files entirely; version-control metadata
// and build-output directories are not entered; symbolic links are not followed (no cycles).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import ignore, { type Ignore } from 'ignore';
import type { SkippedFile } from '../protocol';
import { classifyByName, GENERATED_DIRS, VCS_DIRS } from './classify';
import { ExcludeMatcher, type ExcludeSetting } from './glob';

export interface WorkspaceRoot {
  /** The folder on disk. */
  fsPath: string;
  /** Prefix for relative paths when there are several roots ("" for a single root). */
  prefix: string;
  exclude: ExcludeSetting;
}

export interface ScannedFile {
  fsPath: string;
  /** Workspace-relative, forward slashes. */
  relPath: string;
  size: number;
  mtimeMs: number;
}

export interface ScanResult {
  files: ScannedFile[];
  /** Files and directories left out for a reason the user should hear (binary, generated, too large). */
  skipped: SkippedFile[];
  /** Files not entered because the walk reached maxFiles. */
  truncated: boolean;
}

interface IgnoreScope {
  /** The directory holding the .gitignore, relative to the root ("" for the root). */
  dir: string;
  rules: Ignore;
}

async function readIgnoreFile(file: string): Promise<Ignore | undefined> {
  try {
    return ignore().add(await fs.readFile(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Later scopes (deeper directories) override earlier ones, as git does. */
function isIgnored(scopes: readonly IgnoreScope[], rel: string, isDir: boolean): boolean {
  let ignored = false;
  for (const scope of scopes) {
    const local = scope.dir ? rel.slice(scope.dir.length + 1) : rel;
    const result = scope.rules.test(isDir ? `${local}/` : local);
    if (result.ignored) ignored = true;
    else if (result.unignored) ignored = false;
  }
  return ignored;
}

export async function scanWorkspace(roots: readonly WorkspaceRoot[], maxFiles: number): Promise<ScanResult> {
  const files: ScannedFile[] = [];
  const skipped: SkippedFile[] = [];
  let truncated = false;

  for (const root of roots) {
    const exclude = new ExcludeMatcher(root.exclude);
    const rootScopes: IgnoreScope[] = [];
    for (const file of [path.join(root.fsPath, '.git', 'info', 'exclude'), path.join(root.fsPath, '.gitignore')]) {
      const rules = await readIgnoreFile(file);
      if (rules) rootScopes.push({ dir: '', rules });
    }
    const shown = (rel: string) => (root.prefix ? `${root.prefix}/${rel}` : rel);

    const walk = async (dirRel: string, scopes: IgnoreScope[]): Promise<void> => {
      const dirAbs = path.join(root.fsPath, dirRel);
      let entries;
      try {
        entries = await fs.readdir(dirAbs, { withFileTypes: true });
      } catch {
        return;
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const names = new Set(entries.map((e) => e.name));
      const nested = dirRel ? await readIgnoreFile(path.join(dirAbs, '.gitignore')) : undefined;
      const here = nested ? [...scopes, { dir: dirRel, rules: nested }] : scopes;

      for (const entry of entries) {
        if (truncated) return;
        const rel = dirRel ? `${dirRel}/${entry.name}` : entry.name;
        if (entry.isSymbolicLink()) continue;
        const isDir = entry.isDirectory();
        if (!isDir && !entry.isFile()) continue;
        if (isDir && VCS_DIRS.has(entry.name)) continue;
        if (isIgnored(here, rel, isDir) || exclude.excludes(rel, (n) => names.has(n))) continue;
        if (isDir) {
          if (GENERATED_DIRS.has(entry.name)) skipped.push({ path: `${shown(rel)}/`, reason: 'generated' });
          else await walk(rel, here);
          continue;
        }
        let stat;
        try {
          stat = await fs.stat(path.join(dirAbs, entry.name));
        } catch {
          continue;
        }
        const reason = classifyByName(entry.name, stat.size);
        if (reason) {
          skipped.push({ path: shown(rel), reason });
          continue;
        }
        if (files.length >= maxFiles) {
          truncated = true;
          return;
        }
        files.push({ fsPath: path.join(dirAbs, entry.name), relPath: shown(rel), size: stat.size, mtimeMs: stat.mtimeMs });
      }
    };
    await walk('', rootScopes);
  }
  return { files, skipped, truncated };
}
