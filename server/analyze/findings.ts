// Turns the model's analysis answer into a markdown report plus line-anchored findings. The prompt
// asks for a fenced JSON array, but models drift: the parser also accepts a bare JSON array, a JSON
// object holding one, and "LINE: severity: message" lines. Anything it cannot read stays in the
// report; a malformed answer never throws.

import type { Finding, FindingSeverity } from '../protocol';

/** A finding anchored to 1-based file lines, before it is mapped onto the document. */
export interface RawFinding {
  line: number;
  endLine: number;
  severity: FindingSeverity;
  message: string;
}

export interface ParsedAnalysis {
  /** The answer without the machine-readable findings block. */
  report: string;
  findings: RawFinding[];
}

const SEVERITY_WORDS: Record<string, FindingSeverity> = {
  error: 'error', err: 'error', bug: 'error', critical: 'error', high: 'error',
  warning: 'warning', warn: 'warning', medium: 'warning',
  info: 'information', information: 'information', note: 'information', low: 'information',
  suggestion: 'hint', hint: 'hint', style: 'hint',
};

function severityOf(word: unknown): FindingSeverity {
  return (typeof word === 'string' && SEVERITY_WORDS[word.trim().toLowerCase()]) || 'warning';
}

function lineNumber(value: unknown): number | undefined {
  const n = typeof value === 'string' ? Number.parseInt(value.replace(/^L/i, ''), 10) : value;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 ? n : undefined;
}

function findingFromObject(value: unknown): RawFinding | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  const line = lineNumber(o.line ?? o.startLine ?? o.start_line ?? o.lineNumber);
  const message = o.message ?? o.description ?? o.text ?? o.issue;
  if (line === undefined || typeof message !== 'string' || !message.trim()) return undefined;
  const endLine = Math.max(line, lineNumber(o.endLine ?? o.end_line) ?? line);
  return { line, endLine, severity: severityOf(o.severity ?? o.level ?? o.type), message: message.trim() };
}

/** Findings from parsed JSON: an array of findings, or an object with a `findings`/`issues` array. */
function findingsFromJson(value: unknown): RawFinding[] | undefined {
  const list = Array.isArray(value) ? value
    : typeof value === 'object' && value !== null
      ? (value as Record<string, unknown>).findings ?? (value as Record<string, unknown>).issues
      : undefined;
  if (!Array.isArray(list)) return undefined;
  return list.map(findingFromObject).filter((f): f is RawFinding => f !== undefined);
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // Models often leave a trailing comma before a closing bracket.
    try {
      return JSON.parse(text.replace(/,\s*([\]}])/g, '$1'));
    } catch {
      return undefined;
    }
  }
}

const FENCE = /```[ \t]*([\w-]*)[^\n]*\n([\s\S]*?)(?:```|$)/g;

/** The last fenced block that holds findings JSON, with its position in the answer. */
function fencedFindings(answer: string): { findings: RawFinding[]; start: number; end: number } | undefined {
  let found: { findings: RawFinding[]; start: number; end: number } | undefined;
  for (const m of answer.matchAll(FENCE)) {
    const lang = m[1].toLowerCase();
    if (lang && lang !== 'json' && lang !== 'jsonc' && lang !== 'json5') continue;
    const findings = findingsFromJson(tryJson(m[2].trim()));
    if (findings) found = { findings, start: m.index, end: m.index + m[0].length };
  }
  return found;
}

/** A bare top-level JSON array (no fence) such as `[{"line": 3, ...}]`. */
function bareJsonFindings(answer: string): { findings: RawFinding[]; start: number; end: number } | undefined {
  const start = answer.search(/\[\s*(\{|\])/);
  if (start < 0) return undefined;
  const end = answer.lastIndexOf(']');
  if (end < start) return undefined;
  const findings = findingsFromJson(tryJson(answer.slice(start, end + 1)));
  return findings ? { findings, start, end: end + 1 } : undefined;
}

// "12: warning: msg", "L12 - error - msg", "- line 12-14: info: msg", "**Line 7** (hint): msg"
const FINDING_LINE = /^\s*(?:[-*•]\s*)?(?:\*\*)?(?:L|line\s*)?(\d+)(?:\s*[-–]\s*L?(\d+))?(?:\*\*)?\s*[:|,-]?\s*[([]?\s*(error|err|bug|critical|warning|warn|info|information|note|hint|suggestion|style)\s*[)\]]?\s*[:|,-]\s*(.+?)\s*$/i;

function lineFindings(answer: string): RawFinding[] {
  const findings: RawFinding[] = [];
  for (const text of answer.split('\n')) {
    const m = FINDING_LINE.exec(text);
    if (!m || Number(m[1]) < 1) continue;
    const line = Number(m[1]);
    findings.push({ line, endLine: Math.max(line, m[2] ? Number(m[2]) : line), severity: severityOf(m[3]), message: m[4] });
  }
  return findings;
}

export function parseAnalysis(answer: string): ParsedAnalysis {
  const block = fencedFindings(answer) ?? bareJsonFindings(answer);
  if (block) {
    const report = (answer.slice(0, block.start) + answer.slice(block.end)).replace(/\n{3,}/g, '\n\n').trim();
    return { report, findings: block.findings };
  }
  // Readable "LINE: severity: message" lines stay in the report as they are.
  return { report: answer.trim(), findings: lineFindings(answer) };
}

/**
 * Findings as document ranges: from the first non-blank character of the start line to the end of
 * the end line. Findings that point past `lines` (what the model was shown) are dropped.
 */
export function anchorFindings(raw: readonly RawFinding[], lines: readonly string[]): Finding[] {
  return raw.filter((f) => f.line <= lines.length).map((f) => {
    const end = Math.min(f.endLine, lines.length);
    const indent = lines[f.line - 1].search(/\S/);
    return {
      range: { start: { line: f.line - 1, character: Math.max(0, indent) }, end: { line: end - 1, character: lines[end - 1].length } },
      severity: f.severity,
      message: f.message,
    };
  });
}
