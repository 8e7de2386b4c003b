// Inline-completion prompts: plain continuation (no chat turn, no FIM tokens), stable content first.
//   <s> [recently used files, least recent first, each under a path comment]
//       [path comment of the current file] [the current file up to the cursor]
// Between keystrokes only the tail changes, so the engine prefills just the last few tokens. The
// current file is tokenized in fixed blocks of lines with their ids cached, and when it is too long
// its start moves forward a whole block at a time, so the prefix stays identical from one keystroke
// to the next.

export interface PromptTokenizer {
  tokenize(text: string, options: { special: boolean }): number[];
  readonly info: { readonly bosId: number };
}

export interface ContextDocument {
  uri: string;
  /** As shown to the model: workspace-relative when possible. */
  path: string;
  languageId: string;
  version: number;
  text: string;
}

export interface CompletionPromptInput {
  /** Other documents the user worked on, least recently used first. */
  related: readonly ContextDocument[];
  current: { path: string; languageId: string; prefix: string };
  /** Most prompt tokens. */
  budget: number;
}

const BLOCK_LINES = 32;
/** Share of the budget that recently used files may take; the current file gets the rest. */
const RELATED_SHARE = 0.4;
const MAX_CACHED_BLOCKS = 4096;

const LINE_COMMENT: Record<string, string> = {
  python: '#', shellscript: '#', ruby: '#', perl: '#', r: '#', yaml: '#', toml: '#', dockerfile: '#', makefile: '#',
  powershell: '#', elixir: '#', julia: '#', coffeescript: '#', nix: '#', cmake: '#', properties: '#',
  sql: '--', lua: '--', haskell: '--', ada: '--', elm: '--',
  latex: '%', tex: '%', erlang: '%', matlab: '%', clojure: ';', lisp: ';', scheme: ';', ini: ';', vb: "'",
};

/** A comment line naming the file, in the file's own comment syntax. */
export function pathHeader(languageId: string, path: string): string {
  if (['html', 'xml', 'markdown', 'vue', 'svelte'].includes(languageId)) return `<!-- ${path} -->\n`;
  if (['css', 'scss', 'less', 'c'].includes(languageId)) return `/* ${path} */\n`;
  if (languageId === 'json' || languageId === 'jsonc') return `// ${path}\n`;
  return `${LINE_COMMENT[languageId] ?? '//'} ${path}\n`;
}

export class CompletionPrompts {
  private readonly blocks = new Map<string, number[]>();
  private readonly documents = new Map<string, { version: number; ids: number[] }>();

  constructor(private readonly tokenizer: PromptTokenizer) {}

  build(input: CompletionPromptInput): number[] {
    const header = this.plain(pathHeader(input.current.languageId, input.current.path));
    const related = this.relatedIds(input.related, Math.floor(input.budget * RELATED_SHARE));
    const prefixBudget = input.budget - 1 - header.length - related.length;
    return [this.tokenizer.info.bosId, ...related, ...header, ...this.prefixIds(input.current.prefix, prefixBudget)];
  }

  /** The most recently used documents that fit the budget, kept in least-recent-first order. */
  private relatedIds(documents: readonly ContextDocument[], budget: number): number[] {
    const uris = new Set(documents.map((d) => d.uri));
    for (const uri of this.documents.keys()) if (!uris.has(uri)) this.documents.delete(uri);
    const chosen: number[][] = [];
    let used = 0;
    for (let i = documents.length - 1; i >= 0; i--) {
      const ids = this.documentIds(documents[i]);
      if (used + ids.length > budget) continue;
      chosen.unshift(ids);
      used += ids.length;
    }
    return chosen.flat();
  }

  private documentIds(doc: ContextDocument): number[] {
    const cached = this.documents.get(doc.uri);
    if (cached?.version === doc.version) return cached.ids;
    const text = doc.text.endsWith('\n') ? doc.text : `${doc.text}\n`;
    const ids = this.plain(`${pathHeader(doc.languageId, doc.path)}${text}\n`);
    this.documents.set(doc.uri, { version: doc.version, ids });
    return ids;
  }

  /** The end of the prefix that fits `budget`, starting at a block boundary. */
  private prefixIds(prefix: string, budget: number): number[] {
    const lines = prefix.split('\n');
    const blocks: number[][] = [];
    for (let start = 0; start < lines.length; start += BLOCK_LINES) {
      const last = start + BLOCK_LINES >= lines.length;
      const text = lines.slice(start, start + BLOCK_LINES).join('\n') + (last ? '' : '\n');
      // The block holding the cursor changes on every keystroke: not worth caching.
      blocks.push(last ? this.plain(text) : this.cachedBlock(text));
    }
    let total = blocks.reduce((n, b) => n + b.length, 0);
    let first = 0;
    while (total > budget && first < blocks.length - 1) total -= blocks[first++].length;
    const ids = blocks.slice(first).flat();
    // A single block larger than the budget keeps its end (the text next to the cursor).
    return ids.length > budget ? ids.slice(ids.length - Math.max(0, budget)) : ids;
  }

  private cachedBlock(text: string): number[] {
    let ids = this.blocks.get(text);
    if (!ids) {
      if (this.blocks.size >= MAX_CACHED_BLOCKS) this.blocks.delete(this.blocks.keys().next().value as string);
      ids = this.plain(text);
      this.blocks.set(text, ids);
    }
    return ids;
  }

  private plain(text: string): number[] {
    return this.tokenizer.tokenize(text, { special: false });
  }
}
