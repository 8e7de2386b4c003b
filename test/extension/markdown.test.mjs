// The chat view's markdown parser (media/markdown.js): the structures chat replies use, and that
// nothing in model output can become markup, script or an unsafe link.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';

const { parse } = createRequire(import.meta.url)('../../media/markdown.js');

/** Every tag and href in a parsed tree. */
function collect(nodes, out = { tags: new Set(), hrefs: [], text: '' }) {
  for (const node of nodes) {
    if (typeof node === 'string') {
      out.text += node;
      continue;
    }
    out.tags.add(node.tag);
    if (node.href !== undefined) out.hrefs.push(node.href);
    if (node.tag === 'codeblock') out.text += node.code;
    if (node.children) collect(node.children, out);
  }
  return out;
}

describe('chat markdown', () => {
  it('parses code blocks, keeping their text exactly', () => {
    const [block] = parse('```ts\nconst a = "<b>" && b;\n  indented\n```');
    assert.deepEqual(block, { tag: 'codeblock', lang: 'ts', code: 'const a = "<b>" && b;\n  indented', open: false });
  });

  it('shows an unclosed fence (a reply still streaming) as code', () => {
    const [, block] = parse('Here:\n\n```py\ndef f():');
    assert.deepEqual(block, { tag: 'codeblock', lang: 'py', code: 'def f():', open: true });
  });

  it('parses headings, nested lists, quotes, tables and inline styles', () => {
    const tree = parse('# T\n\n- a **b**\n  - c `d`\n1. x\n2. y\n\n> q *e*\n\n| h | i |\n|---|--:|\n| 1 | 2 |\n\n---\n~~s~~');
    const { tags } = collect(tree);
    for (const tag of ['h1', 'ul', 'li', 'strong', 'code', 'ol', 'blockquote', 'em', 'table', 'th', 'td', 'hr', 'del']) {
      assert.ok(tags.has(tag), `has ${tag}`);
    }
    const table = tree.find((n) => n.tag === 'table');
    assert.equal(table.children[1].children[0].children[1].align, 'right');
  });

  it('keeps a numbered list whole across blank lines, and its start', () => {
    const [list] = parse('3. a\n\n4. b');
    assert.equal(list.tag, 'ol');
    assert.equal(list.start, 3);
    assert.equal(list.children.length, 2);
  });

  it('leaves snake_case alone and turns single newlines into line breaks', () => {
    const [p] = parse('call snake_case_name\nnext');
    assert.deepEqual(p.children, ['call snake_case_name', { tag: 'br' }, 'next']);
  });

  it('never produces markup from HTML in the text', () => {
    const { tags, text } = collect(parse('<script>alert(1)</script> <img src=x onerror=alert(1)>\n\n<b>bold</b>'));
    assert.deepEqual([...tags], ['p']);
    assert.match(text, /<script>alert\(1\)<\/script>/);
  });

  it('links only to http(s) and mailto targets', () => {
    const { hrefs, text } = collect(parse('[a](https://x.org) [b](javascript:alert(1)) [c](data:text/html,hi) <mailto:m@x.org> [d](vscode:cmd)'));
    assert.deepEqual(hrefs, ['https://x.org', 'mailto:m@x.org']);
    assert.match(text, /b/);
  });
});
