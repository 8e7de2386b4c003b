// The client's open documents (kept in sync incrementally) and the order the user last touched them,
// which decides what context an inline completion gets besides the current file.
import { TextDocuments, type Connection } from 'vscode-languageserver';
import { TextDocument } from 'vscode-languageserver-textdocument';
import type { ContextDocument } from '../prompts/completion';

/** Documents larger than this are not offered as completion context. */
const MAX_CONTEXT_DOCUMENT_CHARS = 64 * 1024;
const MAX_RELATED = 8;

export class OpenDocuments {
  private readonly docs = new TextDocuments(TextDocument);
  /** uri → last time it was opened, edited or completed in. */
  private readonly used = new Map<string, number>();
  private clock = 0;

  constructor(private readonly displayPath: (uri: string) => string) {
    this.docs.onDidOpen((e) => this.touch(e.document.uri));
    this.docs.onDidChangeContent((e) => this.touch(e.document.uri));
    this.docs.onDidClose((e) => this.used.delete(e.document.uri));
  }

  listen(connection: Connection): void {
    this.docs.listen(connection);
  }

  get(uri: string): TextDocument | undefined {
    return this.docs.get(uri);
  }

  touch(uri: string): void {
    this.used.set(uri, ++this.clock);
  }

  /** Other open documents, least recently used first, most recent MAX_RELATED at most. */
  relatedTo(uri: string): ContextDocument[] {
    return [...this.used.entries()]
      .filter(([other]) => other !== uri)
      .sort((a, b) => a[1] - b[1])
      .slice(-MAX_RELATED)
      .map(([other]) => this.docs.get(other))
      .filter((d): d is TextDocument => d !== undefined && d.getText().length <= MAX_CONTEXT_DOCUMENT_CHARS)
      .map((d) => ({ uri: d.uri, path: this.displayPath(d.uri), languageId: d.languageId, version: d.version, text: d.getText() }));
  }
}
