// @ts-check
// A small Markdown parser for chat replies. It returns a tree of plain objects, never HTML: the
// chat view builds DOM nodes from it with textContent and a fixed set of tags, so model output can
// never inject markup or script. Links keep only http(s) and mailto targets. Covers what chat
// models write: fenced code (also unclosed, while streaming), headings, lists, quotes, tables,
// rules, emphasis, inline code, links. Single newlines inside a paragraph become line breaks.
(function (root) {
  'use strict';

  /**
   * @typedef {string | Element | CodeBlock} MdNode
   * @typedef {{ tag: string, children?: MdNode[], href?: string, start?: number, align?: string }} Element
   * @typedef {{ tag: 'codeblock', lang: string, code: string, open: boolean }} CodeBlock
   */

  const SAFE_URL = /^(?:https?:|mailto:)/i;
  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$/;
  const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
  const QUOTE = /^ {0,3}> ?/;
  const ITEM = /^( *)([-*+]|\d{1,9}[.)])(?:\s+(.*))?$/;
  const TABLE_DIVIDER = /^ {0,3}\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$/;
  const BLANK = /^\s*$/;

  /** @param {string} markdown @returns {MdNode[]} */
  function parse(markdown) {
    return blocks(markdown.replace(/\r\n?/g, '\n').split('\n'));
  }

  /** @param {string} line */
  function indentOf(line) {
    return /^ */.exec(line)?.[0].length ?? 0;
  }

  /** @param {string[]} lines @param {number} i */
  function isTableStart(lines, i) {
    return lines[i].includes('|') && i + 1 < lines.length && lines[i + 1].includes('-') && TABLE_DIVIDER.test(lines[i + 1]);
  }

  /** @param {string[]} lines @param {number} i */
  function startsBlock(lines, i) {
    const line = lines[i];
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line) || isTableStart(lines, i);
  }

  /** @param {string[]} lines @returns {MdNode[]} */
  function blocks(lines) {
    /** @type {MdNode[]} */
    const out = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      /** @type {RegExpExecArray | null} */
      let m;
      if (BLANK.test(line)) {
        i++;
      } else if ((m = FENCE.exec(line))) {
        const fence = m[1];
        const close = new RegExp(`^ {0,3}${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`);
        const body = [];
        let closed = false;
        for (i++; i < lines.length; i++) {
          if (close.test(lines[i])) {
            closed = true;
            i++;
            break;
          }
          body.push(lines[i]);
        }
        out.push({ tag: 'codeblock', lang: m[2], code: body.join('\n'), open: !closed });
      } else if ((m = HEADING.exec(line))) {
        out.push({ tag: `h${m[1].length}`, children: inline(m[2] ?? '') });
        i++;
      } else if (RULE.test(line)) {
        out.push({ tag: 'hr' });
        i++;
      } else if (QUOTE.test(line)) {
        const body = [];
        while (i < lines.length && QUOTE.test(lines[i])) body.push(lines[i++].replace(QUOTE, ''));
        out.push({ tag: 'blockquote', children: blocks(body) });
      } else if ((m = ITEM.exec(line))) {
        i = list(lines, i, out);
      } else if (isTableStart(lines, i)) {
        i = table(lines, i, out);
      } else {
        const body = [line];
        for (i++; i < lines.length && !BLANK.test(lines[i]) && !startsBlock(lines, i); i++) body.push(lines[i]);
        out.push({ tag: 'p', children: inline(body.map((l) => l.trim()).join('\n')) });
      }
    }
    return out;
  }

  /** @param {string[]} lines @param {number} i @param {MdNode[]} out @returns {number} */
  function list(lines, i, out) {
    const first = /** @type {RegExpExecArray} */ (ITEM.exec(lines[i]));
    const indent = first[1].length;
    const ordered = /\d/.test(first[2]);
    /** @param {RegExpExecArray | null} m */
    const sibling = (m) => !!m && m[1].length === indent && /\d/.test(m[2]) === ordered;
    /** @type {Element[]} */
    const items = [];
    while (i < lines.length) {
      const m = ITEM.exec(lines[i]);
      if (!m || !sibling(m)) break;
      const contentIndent = indent + m[2].length + 1;
      const body = [m[3] ?? ''];
      for (i++; i < lines.length; i++) {
        const line = lines[i];
        if (BLANK.test(line)) {
          let next = i + 1;
          while (next < lines.length && BLANK.test(lines[next])) next++;
          if (next < lines.length && indentOf(lines[next]) > indent) {
            body.push('');
            continue;
          }
          // A blank line between two items keeps one list.
          if (next < lines.length && sibling(ITEM.exec(lines[next]))) i = next;
          break;
        }
        const nested = ITEM.exec(line);
        if (nested && nested[1].length <= indent) break;
        if (indentOf(line) > indent) body.push(line.slice(Math.min(indentOf(line), contentIndent)));
        else if (startsBlock(lines, i)) break;
        else body.push(line);
      }
      const content = blocks(body);
      // A one-paragraph item shows its text directly.
      const only = content.length === 1 ? content[0] : undefined;
      const children = only && typeof only === 'object' && only.tag === 'p' && 'children' in only ? only.children : content;
      items.push({ tag: 'li', children });
    }
    /** @type {Element} */
    const node = { tag: ordered ? 'ol' : 'ul', children: items };
    const start = Number.parseInt(first[2], 10);
    if (ordered && start !== 1) node.start = start;
    out.push(node);
    return i;
  }

  /** @param {string} line @returns {string[]} */
  function cells(line) {
    let s = line.trim();
    if (s.startsWith('|')) s = s.slice(1);
    if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
    return s.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
  }

  /** @param {string[]} lines @param {number} i @param {MdNode[]} out @returns {number} */
  function table(lines, i, out) {
    const header = cells(lines[i]);
    const aligns = cells(lines[i + 1]).map((c) => (c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : c.startsWith(':') ? 'left' : ''));
    /** @param {string[]} row @param {string} tag @returns {Element} */
    const row = (row, tag) => ({
      tag: 'tr',
      children: header.map((_, k) => {
        /** @type {Element} */
        const cell = { tag, children: inline(row[k] ?? '') };
        if (aligns[k]) cell.align = aligns[k];
        return cell;
      }),
    });
    const body = [];
    for (i += 2; i < lines.length && !BLANK.test(lines[i]) && lines[i].includes('|'); i++) body.push(row(cells(lines[i]), 'td'));
    out.push({
      tag: 'table',
      children: [
        { tag: 'thead', children: [row(header, 'th')] },
        { tag: 'tbody', children: body },
      ],
    });
    return i;
  }

  const INLINE = new RegExp(
    [
      /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/.source, // 1, 2: code span
      /\[([^\]\n]*)\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/.source, // 3, 4: link
      /\*\*(?=\S)([\s\S]*?\S)\*\*/.source, // 5: strong
      /__(?=\S)([\s\S]*?\S)__(?!\w)/.source, // 6: strong
      /~~(?=\S)([\s\S]*?\S)~~/.source, // 7: strikethrough
      /\*(?=[^\s*])([\s\S]*?[^\s*])\*/.source, // 8: emphasis
      /(?<![\w])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\w])/.source, // 9: emphasis, not inside snake_case
      /<((?:https?|mailto):[^>\s]+)>/.source, // 10: autolink
      /\\([!-/:-@[-`{-~])/.source, // 11: escaped punctuation
    ].join('|'),
    'g',
  );

  /** @param {string} text @returns {MdNode[]} */
  function inline(text) {
    /** @type {MdNode[]} */
    const out = [];
    let last = 0;
    for (const m of text.matchAll(INLINE)) {
      const at = /** @type {number} */ (m.index);
      pushText(out, text.slice(last, at));
      last = at + m[0].length;
      if (m[2] !== undefined) {
        const code = m[2];
        out.push({ tag: 'code', children: [/^ .*[^ ].* $/.test(code) ? code.slice(1, -1) : code] });
      } else if (m[3] !== undefined) {
        const children = inline(m[3]);
        if (SAFE_URL.test(m[4])) out.push({ tag: 'a', href: m[4], children });
        else out.push(...children);
      } else if (m[5] !== undefined || m[6] !== undefined) {
        out.push({ tag: 'strong', children: inline(m[5] ?? m[6]) });
      } else if (m[7] !== undefined) {
        out.push({ tag: 'del', children: inline(m[7]) });
      } else if (m[8] !== undefined || m[9] !== undefined) {
        out.push({ tag: 'em', children: inline(m[8] ?? m[9]) });
      } else if (m[10] !== undefined) {
        out.push({ tag: 'a', href: m[10], children: [m[10]] });
      } else {
        pushText(out, m[11]);
      }
    }
    pushText(out, text.slice(last));
    return out;
  }

  /** Text, with newlines as line breaks; merges with a preceding text node. @param {MdNode[]} out @param {string} text */
  function pushText(out, text) {
    text.split('\n').forEach((part, k) => {
      if (k > 0) out.push({ tag: 'br' });
      if (!part) return;
      const prev = out[out.length - 1];
      if (typeof prev === 'string') out[out.length - 1] = prev + part;
      else out.push(part);
    });
  }

  const api = { parse, SAFE_URL };
  if (typeof module === 'object' && module.exports) module.exports = api;
  else root.InternlmMarkdown = api;
})(/** @type {any} */ (globalThis));
