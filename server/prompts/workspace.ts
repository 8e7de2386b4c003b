// The workspace-question prompt: every packed file in one user turn, the question last. The files
// come first and in a stable order, so asking another question (or the same one after editing one
// file) reuses the KV cache of everything up to the first changed file.
import type { SkippedFile } from '../protocol';
import type { PackedFile } from '../workspace/pack';
import type { ChatTemplate } from './template';

const WORKSPACE_SYSTEM_PROMPT =
  'You are InternLM, a coding assistant. The user\'s workspace is given in full: every file appears as ' +
  '<file path="..."> followed by its content and </file>. Answer questions about this code base from these ' +
  'files, name the files (and symbols) your answer relies on, and say so when the files do not contain the answer.';

const INTRO = 'These are the files of my workspace, least recently modified first.\n\n';
/** Left-out files named in the prompt, so the model knows what it has not seen. */
const MAX_NAMED_OMISSIONS = 50;

function tail(question: string, omitted: readonly SkippedFile[]): string {
  const over = omitted.filter((f) => f.reason === 'overBudget');
  let note = '';
  if (over.length > 0) {
    const names = over.slice(0, MAX_NAMED_OMISSIONS).map((f) => f.path).join(', ');
    const more = over.length > MAX_NAMED_OMISSIONS ? ` and ${over.length - MAX_NAMED_OMISSIONS} more` : '';
    note = `(${over.length} files did not fit into the context and are not shown: ${names}${more}.)\n\n`;
  }
  return `${note}Question: ${question}`;
}

export function workspacePrompt(template: ChatTemplate, files: readonly PackedFile[], question: string,
  omitted: readonly SkippedFile[]): number[] {
  return [
    template.bos,
    ...template.turn({ role: 'system', content: WORKSPACE_SYSTEM_PROMPT }),
    ...template.segmentedTurn('user', [INTRO, ...files.map((f) => f.ids), tail(question, omitted)]),
    ...template.generationPrompt(),
  ];
}

/**
 * How many tokens of workspacePrompt(template, files, …) come before the question: the files part,
 * the same for every question, and the part worth keeping on disk.
 */
export function workspacePrefixLength(template: ChatTemplate, files: readonly PackedFile[]): number {
  const head = 1 + template.turn({ role: 'system', content: WORKSPACE_SYSTEM_PROMPT }).length +
    template.turnStart('user').length + template.plain(INTRO).length;
  return files.reduce((n, f) => n + f.ids.length, head);
}
