// Attaching code to a chat message: the active editor's selection or its whole file, and how an
// attachment is written into the user message the server receives.
import * as vscode from 'vscode';
import type { Attachment } from './chatTypes';

/** Bigger files would crowd the conversation out of the context; the user is told so. */
const MAX_ATTACHMENT_CHARS = 200_000;

/** The editor the user last worked in; the chat view itself is no text editor. */
export function targetEditor(): vscode.TextEditor | undefined {
  return vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
}

export function selectionAttachment(editor: vscode.TextEditor): Attachment | string {
  const selection = editor.selection;
  if (selection.isEmpty) return 'Select some code first.';
  const start = selection.start.line + 1;
  // A selection ending at column 0 does not include that line.
  const end = selection.end.character === 0 && selection.end.line > selection.start.line ? selection.end.line : selection.end.line + 1;
  const label = `${relativePath(editor.document)}:${start === end ? start : `${start}-${end}`}`;
  return limited({ label, languageId: editor.document.languageId, text: editor.document.getText(selection) });
}

export function fileAttachment(editor: vscode.TextEditor): Attachment | string {
  const document = editor.document;
  return limited({ label: relativePath(document), languageId: document.languageId, text: document.getText() });
}

function limited(attachment: Attachment): Attachment | string {
  if (attachment.text.length <= MAX_ATTACHMENT_CHARS) return attachment;
  return `${attachment.label} is too large to attach (${Math.round(attachment.text.length / 1000)} k characters; the limit is ${MAX_ATTACHMENT_CHARS / 1000} k). Attach a selection instead, or use "InternLM: Ask about Workspace".`;
}

function relativePath(document: vscode.TextDocument): string {
  return document.isUntitled ? document.uri.path : vscode.workspace.asRelativePath(document.uri, false);
}

/** The user message as the model sees it: the text, then each attachment as a fenced block. */
export function messageWithAttachments(text: string, attachments: readonly Attachment[] | undefined): string {
  if (!attachments?.length) return text;
  const blocks = attachments.map((a) => {
    const fence = '`'.repeat(Math.max(3, longestBacktickRun(a.text) + 1));
    return `${a.label}:\n${fence}${a.languageId}\n${a.text}${a.text.endsWith('\n') ? '' : '\n'}${fence}`;
  });
  return [text, ...blocks].join('\n\n');
}

function longestBacktickRun(text: string): number {
  let longest = 0;
  for (const run of text.match(/`+/g) ?? []) longest = Math.max(longest, run.length);
  return longest;
}
