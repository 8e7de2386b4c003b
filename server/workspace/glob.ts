// VS Code's `files.exclude` patterns: glob syntax (`**`, `*`, `?`, `{a,b}`, `[a-z]`) matched against
// workspace-relative paths, plus the `{"when": "$(basename).ts"}` form that excludes a file only when
// a sibling exists. Only what files.exclude needs; gitignore rules go through the `ignore` package.

export type ExcludeSetting = Record<string, boolean | { when: string }>;

function escapeChar(c: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c;
}

/** Converts one glob to a regular expression source (no anchors). */
function globSource(glob: string): string {
  let out = '';
  let i = 0;
  let braces = 0;
  while (i < glob.length) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      // "**/" matches zero or more directories; a trailing "**" matches everything below.
      i += 2;
      if (glob[i] === '/') {
        i++;
        out += '(?:[^/]*/)*';
      } else {
        out += '.*';
      }
      continue;
    }
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '{') {
      braces++;
      out += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      out += ')';
    } else if (c === ',' && braces > 0) out += '|';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) out += '\\[';
      else {
        const body = glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\');
        out += `[${body}]`;
        i = end;
      }
    } else out += escapeChar(c);
    i++;
  }
  return out + ')'.repeat(braces);
}

interface Rule {
  pattern: RegExp;
  /** For `when` rules: the sibling that must exist, as a template over the file's basename. */
  whenSibling?: string;
}

export class ExcludeMatcher {
  private readonly rules: Rule[];

  constructor(setting: ExcludeSetting | undefined) {
    this.rules = Object.entries(setting ?? {})
      .filter(([, value]) => value !== false)
      .map(([glob, value]) => ({
        pattern: new RegExp(`^${globSource(glob.replace(/^\.?\//, '').replace(/\/$/, ''))}$`),
        whenSibling: typeof value === 'object' ? value.when : undefined,
      }));
  }

  /**
   * Whether `relPath` (forward slashes) is excluded. `siblingExists` answers for the directory
   * holding relPath, for conditional rules.
   */
  excludes(relPath: string, siblingExists: (name: string) => boolean): boolean {
    const base = relPath.slice(relPath.lastIndexOf('/') + 1);
    const stem = base.includes('.') ? base.slice(0, base.lastIndexOf('.')) : base;
    return this.rules.some((rule) => {
      if (!rule.pattern.test(relPath)) return false;
      if (!rule.whenSibling) return true;
      return siblingExists(rule.whenSibling.replace(/\$\(basename\)/g, stem));
    });
  }
}
