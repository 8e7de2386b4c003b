// textDocument/inlineCompletion (LSP 3.18): ghost text from prefix continuation. The newest request
// wins: an older one still running is aborted and one still waiting is dropped, and a request the
// client cancels returns no items. Generation stops as soon as the stop rules find a boundary.
import type { Position, TextDocument } from 'vscode-languageserver-textdocument';
import type { InlineCompletionList } from 'vscode-languageserver';
import { cutCompletion, finishCompletion, type CursorContext } from '../completion/stop-rules';
import { promptsFor } from '../prompts/kit';
import { Superseded } from '../scheduler';
import type { ServerContext } from './context';
import { abortSignalOf } from './requests';

/** Prompt tokens for a completion: enough context to help, little enough to prefill fast. */
const MAX_COMPLETION_PROMPT = 4096;
const MAX_LINES = 12;

const NONE: InlineCompletionList = { items: [] };

export function cursorContext(doc: TextDocument, position: Position): { prefix: string; cursor: CursorContext } {
  const text = doc.getText();
  const offset = doc.offsetAt(position);
  const lineStart = doc.offsetAt({ line: position.line, character: 0 });
  const newline = text.indexOf('\n', offset);
  const lineEnd = newline < 0 ? text.length : newline;
  return {
    prefix: text.slice(0, offset),
    cursor: {
      linePrefix: text.slice(lineStart, offset),
      lineSuffix: text.slice(offset, lineEnd).replace(/\r$/, ''),
      following: newline < 0 ? '' : text.slice(newline + 1),
      maxLines: MAX_LINES,
    },
  };
}

export function registerInlineCompletion(ctx: ServerContext): void {
  ctx.connection.languages.inlineCompletion.on(async (params, token) => {
    const doc = ctx.documents.get(params.textDocument.uri);
    // No ghost text while the model loads or when it failed: the status bar says why.
    if (!doc || !ctx.host.readyEngine()) return NONE;
    const signal = abortSignalOf(token);
    try {
      return await ctx.scheduler.runLatest('completion', signal, async (signal) => {
        const engine = ctx.host.readyEngine();
        if (!engine) return NONE;
        const { prefix, cursor } = cursorContext(doc, params.position);
        const prompt = promptsFor(engine.model).completion.build({
          related: ctx.documents.relatedTo(doc.uri),
          current: { path: ctx.folders.displayPath(doc.uri), languageId: doc.languageId, prefix },
          budget: Math.min(MAX_COMPLETION_PROMPT, engine.sessions.contextLength - ctx.host.settings.completion.maxTokens),
        });
        const boundary = new AbortController();
        let streamed = '';
        const result = await engine.sessions.get('completion').generate({
          prompt,
          maxTokens: ctx.host.settings.completion.maxTokens,
          temperature: 0,
          signal: AbortSignal.any([signal, boundary.signal]),
          onText: (delta) => {
            streamed += delta;
            if (cutCompletion(streamed, cursor).done) boundary.abort();
          },
        });
        if (signal.aborted) return NONE;
        const insertText = finishCompletion(result.text, cursor);
        return insertText === undefined ? NONE : { items: [{ insertText, range: { start: params.position, end: params.position } }] };
      });
    } catch (error) {
      if (error instanceof Superseded) return NONE;
      throw error;
    }
  });
}
