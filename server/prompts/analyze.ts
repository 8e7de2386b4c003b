// The file-analysis prompt: the whole file with line numbers (so findings can point at lines) in one
// long prompt, followed by the requested answer format. Lines are tokenized in blocks; when the file
// does not fit, it is cut at a block boundary and the prompt says so.
import type { ChatTemplate, Segment } from './template';

const ANALYZE_SYSTEM_PROMPT =
  'You are an expert code reviewer. You read whole files carefully and report real problems: bugs, ' +
  'security issues, missing error handling, performance traps and confusing code. You never invent line numbers.';

const BLOCK_LINES = 16;

export interface AnalyzeInput {
  path: string;
  languageId: string;
  text: string;
  /** Most prompt tokens. */
  budget: number;
}

export interface AnalyzePrompt {
  ids: number[];
  /** Lines of the file the prompt holds (all of them unless the file did not fit). */
  linesIncluded: number;
  totalLines: number;
}

function instructions(shownLines: number, totalLines: number): string {
  const partial = shownLines < totalLines ? `(Only lines 1-${shownLines} of ${totalLines} fit; review those.)\n` : '';
  return `\n${partial}
First write a short Markdown report of the most important problems. Then list every finding in one fenced JSON block:
\`\`\`json
[{"line": 12, "endLine": 14, "severity": "error", "message": "what is wrong and how to fix it"}]
\`\`\`
"line" and "endLine" are the numbers before "|". "severity" is "error", "warning", "information" or "hint". Write [] when there is nothing to report.`;
}

export function analyzePrompt(template: ChatTemplate, input: AnalyzeInput): AnalyzePrompt {
  const lines = input.text.split(/\r?\n/);
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  const width = String(lines.length).length;
  const intro = `Review the file ${input.path} (${input.languageId}). Every line starts with its line number and "|".\n\n`;
  const system = template.turn({ role: 'system', content: ANALYZE_SYSTEM_PROMPT });
  // What surrounds the file, measured with the longest possible instructions.
  const overhead = 1 + system.length + template.segmentedTurn('user', [intro, instructions(1, lines.length)]).length +
    template.generationPrompt().length;

  const blocks: Segment[] = [];
  let used = overhead;
  let shown = 0;
  for (let start = 0; start < lines.length; start += BLOCK_LINES) {
    const text = lines.slice(start, start + BLOCK_LINES)
      .map((line, i) => `${String(start + i + 1).padStart(width)}| ${line}\n`).join('');
    const ids = template.plain(text);
    if (used + ids.length > input.budget) break;
    blocks.push(ids);
    used += ids.length;
    shown = Math.min(lines.length, start + BLOCK_LINES);
  }
  const ids = [template.bos, ...system, ...template.segmentedTurn('user', [intro, ...blocks, instructions(shown, lines.length)]),
    ...template.generationPrompt()];
  return { ids, linesIncluded: shown, totalLines: lines.length };
}
