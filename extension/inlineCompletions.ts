// Inline (ghost text) completions: vscode-languageclient's provider for textDocument/inlineCompletion
// (LSP 3.18), gated here by the settings and debounced. VS Code cancels a pending request's token on
// the next keystroke, which ends the wait below or sends $/cancelRequest for a request in flight.
import * as vscode from 'vscode';
import type { Middleware } from 'vscode-languageclient/node';
import { completionEnabledFor, completionSettings } from './settings';

export function inlineCompletionMiddleware(): Middleware {
  return {
    provideInlineCompletionItems: async (document, position, context, token, next) => {
      const settings = completionSettings();
      if (!completionEnabledFor(settings, document.languageId)) return null;
      const typing = context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic;
      if (typing && !(await pause(settings.debounceMs, token))) return null;
      return next(document, position, context, token);
    },
  };
}

/** Resolves true after ms, or false as soon as the token is cancelled. */
function pause(ms: number, token: vscode.CancellationToken): Promise<boolean> {
  if (token.isCancellationRequested) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const subscription = token.onCancellationRequested(() => {
      clearTimeout(timer);
      subscription.dispose();
      resolve(false);
    });
    const timer = setTimeout(() => {
      subscription.dispose();
      resolve(true);
    }, ms);
  });
}
