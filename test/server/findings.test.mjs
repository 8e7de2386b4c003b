// Reading the model's analysis answer (server/analyze/findings.ts): fenced JSON, bare JSON, line
// formats, and malformed answers that must still give a report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importTs } from './support.mjs';

const { parseAnalysis, anchorFindings } = await importTs('server/analyze/findings.ts');

test('a fenced JSON block becomes findings and leaves the report', () => {
  const answer = [
    '## Report', 'The loop reads past the end.', '',
    '```json',
    '[{"line": 3, "endLine": 4, "severity": "error", "message": "off by one"},',
    ' {"line": "L7", "severity": "Suggestion", "message": "name this constant"},]',
    '```', 'Done.',
  ].join('\n');
  const parsed = parseAnalysis(answer);
  assert.deepEqual(parsed.findings, [
    { line: 3, endLine: 4, severity: 'error', message: 'off by one' },
    { line: 7, endLine: 7, severity: 'hint', message: 'name this constant' },
  ]);
  assert.equal(parsed.report, '## Report\nThe loop reads past the end.\n\nDone.');
});

test('an object holding findings, a bare array and an unterminated fence are read too', () => {
  assert.deepEqual(parseAnalysis('```json\n{"findings": [{"line": 2, "severity": "warn", "message": "m"}]}\n```').findings,
    [{ line: 2, endLine: 2, severity: 'warning', message: 'm' }]);
  assert.deepEqual(parseAnalysis('Report.\n[{"line": 5, "level": "info", "description": "d"}]').findings,
    [{ line: 5, endLine: 5, severity: 'information', message: 'd' }]);
  assert.deepEqual(parseAnalysis('Text\n```json\n[{"line": 1, "severity": "error", "message": "x"}]').findings,
    [{ line: 1, endLine: 1, severity: 'error', message: 'x' }]);
});

test('"LINE: severity: message" lines are findings and stay in the report', () => {
  const answer = 'Some problems:\n- 12: warning: unused variable\nL3-5 error - null dereference\n**Line 9** (hint): simplify\n';
  const parsed = parseAnalysis(answer);
  assert.deepEqual(parsed.findings, [
    { line: 12, endLine: 12, severity: 'warning', message: 'unused variable' },
    { line: 3, endLine: 5, severity: 'error', message: 'null dereference' },
    { line: 9, endLine: 9, severity: 'hint', message: 'simplify' },
  ]);
  assert.equal(parsed.report, answer.trim());
});

test('malformed answers give a report without findings, never an error', () => {
  for (const answer of ['', 'garbage ```json\n[{"line": }', '```json\nnot json\n```', '[1, 2, 3]', '{"line": 0}',
    '```json\n[{"line": -3, "message": "neg"}, {"message": "no line"}, {"line": 2}]\n```', '\u0000\u{1F409}']) {
    const parsed = parseAnalysis(answer);
    assert.deepEqual(parsed.findings, [], answer);
    assert.equal(typeof parsed.report, 'string');
  }
});

test('findings are anchored to the shown lines: first non-blank character to the end of the last line', () => {
  const lines = ['import x', '    return y', 'end'];
  const findings = anchorFindings([
    { line: 2, endLine: 2, severity: 'error', message: 'a' },
    { line: 1, endLine: 9, severity: 'warning', message: 'b' },
    { line: 4, endLine: 4, severity: 'hint', message: 'past the end' },
  ], lines);
  assert.deepEqual(findings, [
    { range: { start: { line: 1, character: 4 }, end: { line: 1, character: 12 } }, severity: 'error', message: 'a' },
    { range: { start: { line: 0, character: 0 }, end: { line: 2, character: 3 } }, severity: 'warning', message: 'b' },
  ]);
});
