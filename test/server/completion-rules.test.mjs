// Where inline suggestions end (server/completion/stop-rules.ts) and how completion prompts keep
// their prefix stable (server/prompts/completion.ts): pure functions, no model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importTs } from './support.mjs';

const rules = await importTs('server/completion/stop-rules.ts');
const prompts = await importTs('server/prompts/completion.ts');

function at(before, after = '', maxLines = 12) {
  const lineStart = before.lastIndexOf('\n') + 1;
  const newline = after.indexOf('\n');
  return {
    linePrefix: before.slice(lineStart),
    lineSuffix: newline < 0 ? after : after.slice(0, newline),
    following: newline < 0 ? '' : after.slice(newline + 1),
    maxLines,
  };
}

test('mid-line completions end at the end of the line', () => {
  const ctx = at('const total = items.', '');
  assert.equal(rules.allowsMultiline(ctx), false);
  assert.deepEqual(rules.cutCompletion('reduce((a, b) => a + b, 0);\nconsole.log(total);', ctx),
    { text: 'reduce((a, b) => a + b, 0);', done: true });
  assert.deepEqual(rules.cutCompletion('reduce((a, b)', ctx), { text: 'reduce((a, b)', done: false });
});

test('a closer the line already has after the cursor is not repeated', () => {
  const ctx = at('print(len(', '))');
  assert.deepEqual(rules.cutCompletion('items))\n', ctx), { text: 'items', done: true });
  assert.equal(rules.finishCompletion('items))', ctx), 'items');
});

test('a block body ends where indentation drops, keeping its closing bracket once', () => {
  const ctx = at('function add(a, b) {', '');
  assert.equal(rules.allowsMultiline(ctx), true);
  const text = '\n  const sum = a + b;\n  return sum;\n}\n\nfunction sub(a, b) {\n';
  assert.deepEqual(rules.cutCompletion(text, ctx), { text: '\n  const sum = a + b;\n  return sum;\n}', done: true });
});

test('the closing bracket is dropped when the editor already inserted it', () => {
  const ctx = at('function add(a, b) {', '\n}\n');
  assert.equal(rules.finishCompletion('\n  return a + b;\n}\n', ctx), '\n  return a + b;');
});

test('python blocks end at the dedent', () => {
  const ctx = at('def f(x):', '');
  assert.equal(rules.finishCompletion('\n    y = x * 2\n    return y\nprint(f(2))\n', ctx), '\n    y = x * 2\n    return y');
});

test('on an empty line, lines indented less than the cursor end the suggestion', () => {
  const ctx = at('def f(x):\n    ', '');
  assert.equal(rules.finishCompletion('y = x * 2\n    return y\n\nclass A:\n', ctx), 'y = x * 2\n    return y');
});

test('two blank lines and the line budget end a suggestion', () => {
  const ctx = at('', '', 3);
  assert.deepEqual(rules.cutCompletion('a = 1\n\n\nb = 2\n', ctx), { text: 'a = 1\n', done: true });
  assert.deepEqual(rules.cutCompletion('a = 1\nb = 2\nc = 3\nd = 4\n', ctx), { text: 'a = 1\nb = 2\nc = 3', done: true });
});

test('suggestions stop before a line the document already has after the cursor', () => {
  const ctx = at('int main() {\n  ', '\n  return 0;\n}');
  assert.equal(rules.finishCompletion('puts("hi");\n  return 0;\n}\n', ctx), 'puts("hi");');
});

test('a suggestion that only repeats the text after the cursor, or is blank, is dropped', () => {
  assert.equal(rules.finishCompletion('  \n', at('x = ')), undefined);
  const ctx = at('if (ok) {\n', '  done();\n}\n');
  assert.equal(rules.finishCompletion('  done();\n}', ctx), undefined);
});

test('brackets inside strings do not count', () => {
  const ctx = at('log(', ')');
  assert.deepEqual(rules.cutCompletion('"(x)" + y)', ctx), { text: '"(x)" + y', done: true });
});

test('completion prompts: stable content first, unchanged ids between keystrokes', () => {
  // A fake tokenizer: one id per character, so lengths are easy to reason about.
  const tokenizer = { info: { bosId: 1 }, tokenize: (text) => [...text].map((c) => c.charCodeAt(0)) };
  const builder = new prompts.CompletionPrompts(tokenizer);
  const related = [
    { uri: 'file:///old.py', path: 'old.py', languageId: 'python', version: 1, text: 'OLD' },
    { uri: 'file:///new.py', path: 'new.py', languageId: 'python', version: 1, text: 'NEW' },
  ];
  const lines = Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n');
  const decode = (ids) => String.fromCharCode(...ids.slice(1));
  const a = builder.build({ related, current: { path: 'cur.py', languageId: 'python', prefix: `${lines}\nx` }, budget: 100000 });
  assert.equal(a[0], 1);
  const text = decode(a);
  assert.ok(text.startsWith('# old.py\nOLD\n\n# new.py\nNEW\n\n# cur.py\nline 0\n'), text.slice(0, 60));
  const b = builder.build({ related, current: { path: 'cur.py', languageId: 'python', prefix: `${lines}\nxy` }, budget: 100000 });
  assert.deepEqual(b.slice(0, a.length), a, 'typing one character only appends');

  // Too long: the start moves by whole 32-line blocks, and stays put while typing continues.
  const small = (prefix) => builder.build({ related: [], current: { path: 'cur.py', languageId: 'python', prefix }, budget: 500 });
  const c = decode(small(`${lines}\nx`));
  assert.ok(c.length <= 500);
  assert.match(c, /^# cur\.py\nline (32|64|96)\n/);
  const d = decode(small(`${lines}\nxyz`));
  assert.equal(d.slice(0, c.length), c);
});

test('path headers use the language comment syntax', () => {
  assert.equal(prompts.pathHeader('python', 'a.py'), '# a.py\n');
  assert.equal(prompts.pathHeader('typescript', 'a.ts'), '// a.ts\n');
  assert.equal(prompts.pathHeader('html', 'a.html'), '<!-- a.html -->\n');
  assert.equal(prompts.pathHeader('sql', 'q.sql'), '-- q.sql\n');
});
