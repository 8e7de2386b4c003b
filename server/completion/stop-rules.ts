// Where an inline suggestion ends. Prefix continuation (InternLM2.5 has no FIM tokens) keeps writing
// past the point a human would stop, so the streamed text is cut on code boundaries: the end of the
// line for mid-line completions; for block completions a drop in indentation, a bracket that closes
// something opened before the cursor, two blank lines, a line budget, or a line that the code after
// the cursor already has. Pure functions, applied to the accumulated text after every streamed piece.

export interface CursorContext {
  /** The cursor line's text before the cursor. */
  linePrefix: string;
  /** The cursor line's text after the cursor. */
  lineSuffix: string;
  /** The document after the cursor line (without its leading newline). */
  following: string;
  /** Most lines one suggestion may span. */
  maxLines: number;
}

export interface Cut {
  /** The suggestion so far, cut at the boundary when one was found. */
  text: string;
  /** A boundary was found: further tokens cannot change the suggestion. */
  done: boolean;
}

const OPENERS = '([{';
const CLOSERS = ')]}';
const BLOCK_OPENER = /(?:[{([:]|=>|\b(?:do|then|begin))\s*$/;

function indentOf(line: string): number {
  const ws = /^[ \t]*/.exec(line)![0];
  // A tab counts as one indentation step of 4 columns, which is enough to compare levels.
  return ws.replace(/\t/g, '    ').length;
}

function firstNonBlankLine(text: string): string | undefined {
  return text.split('\n').find((l) => l.trim() !== '');
}

/** Multi-line suggestions are offered only where a block or statement can start. */
export function allowsMultiline(ctx: Pick<CursorContext, 'linePrefix' | 'lineSuffix'>): boolean {
  return ctx.lineSuffix.trim() === '' && (ctx.linePrefix.trim() === '' || BLOCK_OPENER.test(ctx.linePrefix));
}

/**
 * Finds the character offset where a closer balances something opened before the cursor, tracking
 * brackets outside simple string literals. Returns -1 when no closer goes below depth 0.
 */
function unbalancedCloser(text: string): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote || (c === '\n' && quote !== '`')) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if (OPENERS.includes(c)) depth++;
    else if (CLOSERS.includes(c) && --depth < 0) return i;
  }
  return -1;
}

/** Single-line mode: up to the end of the line, and before a closer the line already has after the cursor. */
function cutSingleLine(text: string, ctx: CursorContext): Cut {
  const newline = text.indexOf('\n');
  let line = newline < 0 ? text : text.slice(0, newline);
  let done = newline >= 0;
  const closer = unbalancedCloser(line);
  if (closer >= 0 && ctx.lineSuffix.trimStart().startsWith(line[closer])) {
    line = line.slice(0, closer);
    done = true;
  }
  return { text: line, done };
}

function cutMultiline(text: string, ctx: CursorContext): Cut {
  const lines = text.split('\n');
  const cursorLine = ctx.linePrefix + lines[0];
  const blockBody = BLOCK_OPENER.test(ctx.linePrefix.trimEnd());
  const base = blockBody ? indentOf(ctx.linePrefix) : indentOf(cursorLine);
  const nextExisting = firstNonBlankLine(ctx.lineSuffix + '\n' + ctx.following)?.trim();
  // The last line may still be growing; it is judged once it is complete.
  const complete = lines.length - 1;
  let blankRun = 0;
  for (let i = 1; i < complete; i++) {
    const line = lines[i];
    const cutBefore = (): Cut => ({ text: lines.slice(0, i).join('\n'), done: true });
    if (i >= ctx.maxLines) return cutBefore();
    if (line.trim() === '') {
      if (++blankRun >= 2) return cutBefore();
      continue;
    }
    blankRun = 0;
    if (nextExisting !== undefined && line.trim() === nextExisting) return cutBefore();
    const indent = indentOf(line);
    if (blockBody ? indent <= base : indent < base) {
      // A closer at the block's own level ends the block: keep it once, unless it is already there.
      const closes = blockBody && indent === base && CLOSERS.includes(line.trim()[0]);
      return closes && nextExisting?.[0] !== line.trim()[0]
        ? { text: lines.slice(0, i + 1).join('\n'), done: true }
        : cutBefore();
    }
  }
  return { text, done: false };
}

/** The suggestion cut at the first boundary found in `text` (the model's output so far). */
export function cutCompletion(text: string, ctx: CursorContext): Cut {
  return allowsMultiline(ctx) ? cutMultiline(text, ctx) : cutSingleLine(text, ctx);
}

function squash(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * The text to offer once generation has ended, or undefined when there is nothing worth showing:
 * blank text, or text the document already has right after the cursor.
 */
export function finishCompletion(text: string, ctx: CursorContext): string | undefined {
  // A final newline makes the last line complete, so the line rules judge it too.
  const cut = cutCompletion(text + '\n', ctx).text.replace(/\s+$/, '');
  if (squash(cut) === '') return undefined;
  const existing = squash(ctx.lineSuffix + '\n' + ctx.following);
  if (existing.startsWith(squash(cut))) return undefined;
  return cut;
}
