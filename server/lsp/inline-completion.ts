// textDocument/inlineCompletion (LSP 3.18): ghost text from prefix continuation. The newest request
// wins: an older one still running is aborted and one still waiting is dropped, and a request the
// client cancels returns no items. Generation stops as soon as the stop rules find a boundary.
import type { Position, Range, TextDocument } from 'vscode-languageserver-textdocument';
import type { InlineCompletionList, SelectedCompletionInfo } from 'vscode-languageserver';
import { cutCompletion, finishCompletion, type CursorContext } from '../completion/stop-rules';
import { promptsFor } from '../prompts/kit';
import { Superseded } from '../scheduler';
import type { ServerContext } from './context';
import { abortSignalOf } from './requests';

/** Prompt tokens for a completion: enough context to help, little enough to prefill fast. */
const MAX_COMPLETION_PROMPT = 4096;
const MAX_LINES = 12;

const NONE: InlineCompletionList = { items: [] };

/**
 * The text before and around the cursor as the user will have it. With a suggestion selected in the
 * completion widget, that suggestion counts as typed: it replaces `selected.range`, and the ghost
 * text must extend it.
 */
function cursorContext(doc: TextDocument, position: Position, selected: SelectedCompletionInfo | undefined):
  { prefix: string; cursor: CursorContext; replace: Range; typed: string } {
  const text = doc.getText();
  const replace = selected?.range ?? { start: position, end: position };
  const typed = selected?.text ?? '';
  const start = doc.offsetAt(replace.start);
  const end = doc.offsetAt(replace.end);
  const lineStart = doc.offsetAt({ line: replace.start.line, character: 0 });
  const newline = text.indexOf('\n', end);
  const lineEnd = newline < 0 ? text.length : newline;
  return {
    prefix: text.slice(0, start) + typed,
    cursor: {
      linePrefix: text.slice(lineStart, start) + typed,
      lineSuffix: text.slice(end, lineEnd).replace(/\r$/, ''),
      following: newline < 0 ? '' : text.slice(newline + 1),
      maxLines: MAX_LINES,
    },
    replace,
    typed,
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
        const { prefix, cursor, replace, typed } = cursorContext(doc, params.position, params.context?.selectedCompletionInfo);
        const prompt = promptsFor(engine.model).completion.build({
          related: ctx.documents.relatedTo(doc.uri),
          current: { path: ctx.folders.displayPath(doc.uri), languageId: doc.languageId, prefix },
          budget: Math.min(MAX_COMPLETION_PROMPT, engine.sessions.contextOf('completion') - ctx.host.settings.completion.maxTokens),
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
        return insertText === undefined ? NONE : { items: [{ insertText: typed + insertText, range: replace }] };
      });
    } catch (error) {
      if (error instanceof Superseded) return NONE;
      throw error;
    }
  });
}
