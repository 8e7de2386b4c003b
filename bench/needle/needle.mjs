// Needle in a haystack (after OpenCompass's NIAH): a haystack of real text of a given token length,
// one needle sentence placed at a given depth, the chat model asked for it, the greedy answer scored
// by exact containment of the needle's number. bench/needle/run.mjs is the command line; the pieces
// are exported for test/bench/needle.test.mjs.
//
// Prompt (InternLM2 chat template from server/prompt/chatml.ts, one user turn):
//   <s><|im_start|>user\n{INTRO}{haystack with the needle}{QUESTION}<|im_end|>\n<|im_start|>assistant\n
// "length" is the token count of that whole prompt (the haystack fills what the rest leaves).
// "depth" is where the needle starts, as a percentage of the haystack tokens before it: 0 = first
// sentence, 100 = right after the last one.
import { createRequire } from 'node:module';
import path from 'node:path';
import { REPO_ROOT, loadSource } from './sources.mjs';

export const INTRO = 'Below is a long document. Read it carefully; a question about it follows.\n\n<document>\n';
export const question = (word) =>
  `\n</document>\n\nQuestion: What is the secret passphrase for project ${word}? Answer with the passphrase only.`;
export const needleSentence = (word, number) => `The secret passphrase for project ${word} is ${number}.`;

const WORDS = ['Heron', 'Basalt', 'Juniper', 'Lantern', 'Marigold', 'Quarry', 'Saffron', 'Tundra', 'Walnut', 'Zephyr',
  'Cobalt', 'Falcon', 'Garnet', 'Harbor', 'Indigo', 'Kestrel', 'Meadow', 'Nimbus', 'Orchid', 'Pebble', 'Rowan',
  'Sparrow', 'Thistle', 'Umber', 'Velvet', 'Willow', 'Amber', 'Bramble', 'Cinder', 'Drift', 'Ember', 'Fjord'];

export const DEFAULT_DEPTHS = [0, 25, 50, 75, 100];
export const DEFAULT_LENGTHS = [1024, 4096, 16384];
export const DEFAULT_MAX_ANSWER_TOKENS = 32;

// ---------------------------------------------------------------- small helpers

/** "4k" → 4096, "1m" → 1048576 (binary multiples), "3000" → 3000. */
export function parseLength(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$/.exec(text);
  if (!m) throw new Error(`bad length '${text}' (use e.g. 1k, 4k, 16k, 1m or a token count)`);
  const n = Math.round(Number(m[1]) * ({ '': 1, k: 1024, m: 1024 * 1024 }[m[2].toLowerCase()]));
  if (!(n > 0)) throw new Error(`bad length '${text}'`);
  return n;
}

export function formatLength(n) {
  if (n % (1024 * 1024) === 0) return `${n / (1024 * 1024)}M`;
  if (n % 1024 === 0) return `${n / 1024}K`;
  return String(n);
}

export function parseDepths(text) {
  return text.split(',').map((s) => {
    const d = Number(s.trim());
    if (!Number.isFinite(d) || d < 0 || d > 100) throw new Error(`bad depth '${s}' (percentages 0–100)`);
    return d;
  });
}

function prng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

/** A deterministic needle for one cell: {word, number (6 digits, as a string), sentence}. */
export function makeNeedle(seed, length, depth, sample) {
  const next = prng((seed * 2654435761) ^ (length * 40503) ^ (Math.round(depth * 100) * 9973) ^ (sample * 7919) ^ 0x9e3779b9);
  for (let i = 0; i < 4; i++) next();
  const word = WORDS[next() % WORDS.length];
  const number = String(100000 + (next() % 900000));
  return { word, number, sentence: needleSentence(word, number) };
}

/**
 * True when the answer states the expected number: the same digits, not part of a longer number.
 * Digit groups split by commas, spaces or thin spaces ("482,913", "482 913") count as written.
 */
export function scoreAnswer(answer, expected) {
  const joined = String(answer).replace(/(?<=\d)[,\s\u2009\u202f](?=\d)/g, '');
  return new RegExp(`(?<!\\d)${expected}(?!\\d)`).test(joined);
}

// ---------------------------------------------------------------- the chat template

let chatmlPromise;
/**
 * server/prompt/chatml.ts, the template the CLI and the server use, bundled on the fly (it is
 * TypeScript inside dist/cli.js and dist/server.js and not exported from dist/engine.js).
 */
export function loadChatml() {
  chatmlPromise ??= (async () => {
    const esbuild = await import('esbuild');
    const { outputFiles } = await esbuild.build({
      entryPoints: [path.join(REPO_ROOT, 'server', 'prompt', 'chatml.ts')],
      bundle: true, format: 'esm', platform: 'node', write: false, logLevel: 'silent',
    });
    return import(`data:text/javascript;base64,${Buffer.from(outputFiles[0].text).toString('base64')}`);
  })();
  return chatmlPromise;
}

// ---------------------------------------------------------------- haystacks

/**
 * A builder of prompts for one model and one text source. tokenizer: {tokenize(text, {special}),
 * detokenize(ids), info: {bosId}} (a Model works).
 *
 * The prompt is put together from token ids so that every prompt of one length has exactly that
 * many tokens (the RoPE base past the trained context depends on the length, and a cached prefix is
 * only reused under the same base) and the needle sits at a known token position:
 *   header   chatml's user turn up to and including INTRO (chatPromptTokens of INTRO, minus the
 *            turn end)
 *   haystack the source's texts, each tokenized whole, one after another (cycling), cut at the
 *            token that makes the length come out exact
 *   needle   "\n{sentence}\n", tokenized alone, at the line start or sentence end nearest the depth
 *   footer   the question, then chatml's turn end and generation prompt
 * Tokenizing the pieces separately can differ from tokenizing the joined text only where they meet;
 * the ids always decode to exactly the intended text.
 */
export async function createPromptBuilder(tokenizer, source) {
  const chatml = await loadChatml();
  const turnEnd = chatml.turnEndTokens(tokenizer);
  const header = chatml.chatPromptTokens(tokenizer, [{ role: 'user', content: INTRO }], { addGenerationPrompt: false })
    .slice(0, -turnEnd.length);
  const generation = chatml.generationPromptTokens(tokenizer);
  const plain = (text) => tokenizer.tokenize(text, { special: false });

  // The haystack token stream, grown on demand, with the positions a needle may go: 0, after a
  // token ending a line, and after a token ending a sentence when the next one starts a word.
  const stream = [];
  const boundaries = [0];
  const pieces = new Map();
  const piece = (id) => {
    let p = pieces.get(id);
    if (p === undefined) {
      p = tokenizer.detokenize([id]);
      pieces.set(id, p);
    }
    return p;
  };
  let nextText = 0;
  function grow(n) {
    while (stream.length < n) {
      const ids = plain(source.text(nextText++));
      if (nextText > 10000 && stream.length === 0) throw new Error('the haystack source has no tokens');
      for (const id of ids) {
        stream.push(id);
        const before = piece(id);
        if (before.endsWith('\n')) boundaries.push(stream.length);
      }
    }
    // Sentence ends need the following token; checked lazily in nearestBoundary.
  }
  const isSentenceEnd = (i) => i > 0 && i < stream.length && /[.!?]$/.test(piece(stream[i - 1])) && piece(stream[i]).startsWith(' ');

  /** The needle position in [0, limit] nearest target: a line start, a sentence end or limit itself. */
  function nearestBoundary(target, limit) {
    let best = limit;
    const consider = (p) => { if (p <= limit && Math.abs(p - target) < Math.abs(best - target)) best = p; };
    for (const b of boundaries) {
      if (b > limit) break;
      consider(b);
    }
    // Sentence ends near the target (within the distance of the best line start).
    const reach = Math.abs(best - target);
    for (let i = Math.max(1, Math.floor(target - reach)); i <= Math.min(limit - 1, Math.ceil(target + reach)); i++) if (isSentenceEnd(i)) consider(i);
    return best;
  }

  /**
   * One prompt of exactly `length` tokens: the haystack with `needle` at `depth` (percent).
   * Returns {tokens, needleStart, needleEnd, haystackStart, haystackEnd, haystackTokens, depthActual}:
   * token indices into `tokens` (needle [start, end), haystack [start, end) including the needle),
   * haystackTokens the haystack's tokens without the needle and depthActual the share of them
   * before the needle (0–1).
   */
  function build(length, depth, needle) {
    const needleIds = plain(`\n${needle.sentence}\n`);
    const footer = [...plain(question(needle.word)), ...turnEnd, ...generation];
    const hayTokens = length - header.length - needleIds.length - footer.length;
    if (hayTokens < 1) throw new Error(`length ${length} leaves no room for a haystack (the prompt alone is ${length - hayTokens} tokens)`);
    grow(hayTokens + 1);
    const at = nearestBoundary((depth / 100) * hayTokens, hayTokens);
    const tokens = [...header, ...stream.slice(0, at), ...needleIds, ...stream.slice(at, hayTokens), ...footer];
    const needleStart = header.length + at;
    return {
      tokens,
      needleStart,
      needleEnd: needleStart + needleIds.length,
      haystackStart: header.length,
      haystackEnd: header.length + hayTokens + needleIds.length,
      haystackTokens: hayTokens,
      depthActual: at / hayTokens,
    };
  }

  return { build };
}

// ---------------------------------------------------------------- the run

/**
 * Runs every (length, depth, sample) cell on one model.
 * options: modelPath, lengths, depths, samples (1), seed (1), source ('workspace' | 'bundled' | dir),
 * kvType, context, device, threads, maxAnswerTokens, signal, log (a line per cell),
 * onPrefillProgress(cell, done, total) (during each prompt's uncached part).
 * Returns the JSON report (see run.mjs).
 */
export async function runNeedle(options) {
  const { Model } = createRequire(import.meta.url)('../../dist/engine.js');
  const lengths = options.lengths ?? DEFAULT_LENGTHS;
  const depths = options.depths ?? DEFAULT_DEPTHS;
  const samples = options.samples ?? 1;
  const seed = options.seed ?? 1;
  const maxAnswerTokens = options.maxAnswerTokens ?? DEFAULT_MAX_ANSWER_TOKENS;
  const log = options.log ?? (() => {});
  const started = performance.now();

  const source = loadSource(options.source ?? 'workspace');
  log(`source: ${source.kind === 'bundled' ? 'bundled generated prose' : `${source.dir} (${source.files} files, ${source.chars} chars)`}`);
  const loadStarted = performance.now();
  const model = await Model.load(options.modelPath, {
    ...(options.device && { device: options.device }),
    ...(options.threads && { threads: options.threads }),
  });
  const loadMs = performance.now() - loadStarted;
  try {
    const builder = await createPromptBuilder(model, source);
    const cells = [];
    for (const length of lengths) {
      for (const depth of depths) {
        for (let sample = 0; sample < samples; sample++) {
          const needle = makeNeedle(seed, length, depth, sample);
          cells.push({ length, depth, sample, needle, built: builder.build(length, depth, needle) });
        }
      }
    }
    const needed = Math.max(...cells.map((c) => c.built.tokens.length)) + maxAnswerTokens;
    if (options.context !== undefined && options.context < needed) {
      throw new Error(`--context ${options.context} is too short: the longest prompt needs ${needed} positions (prompt + ${maxAnswerTokens} answer tokens)`);
    }
    const contextLength = options.context ?? needed;
    const session = model.createSession({ contextLength, kvType: options.kvType, checkMemory: true });
    const results = [];
    try {
      // Lengths in order; within one, later needles first, so that each prompt reuses the cached
      // haystack up to its own needle (the previous prompt had the same text up to there).
      const order = [...cells].sort((a, b) => a.length - b.length || b.built.needleStart - a.built.needleStart || a.sample - b.sample);
      for (const cell of order) {
        if (options.signal?.aborted) break;
        const r = await session.generate({
          prompt: cell.built.tokens, maxTokens: maxAnswerTokens, temperature: 0, signal: options.signal,
          onPrefillProgress: options.onPrefillProgress && ((done, total) => options.onPrefillProgress(cell, done, total)),
        });
        if (r.finishReason === 'cancelled') break;
        const answer = r.text.trim();
        const result = {
          length: cell.length,
          depth: cell.depth,
          sample: cell.sample,
          promptTokens: cell.built.tokens.length,
          haystackTokens: cell.built.haystackTokens,
          needleStart: cell.built.needleStart,
          needleEnd: cell.built.needleEnd,
          depthActual: Number((100 * cell.built.depthActual).toFixed(2)),
          word: cell.needle.word,
          expected: cell.needle.number,
          answer,
          correct: scoreAnswer(answer, cell.needle.number),
          ropeBase: session.ropeBase,
          cachedTokens: r.cachedTokens,
          promptMs: Math.round(r.promptMs),
          generateMs: Math.round(r.generateMs),
          answerTokens: r.tokens.length,
        };
        results.push(result);
        log(`${formatLength(cell.length).padStart(6)} depth ${String(cell.depth).padStart(3)}% (at ${result.depthActual}%)`
          + ` prompt ${result.promptTokens} (${result.cachedTokens} cached) ${(r.promptMs / 1000).toFixed(1)} s`
          + ` → ${result.correct ? 'OK ' : 'MISS'} ${JSON.stringify(answer.slice(0, 60))}`);
      }
    } finally {
      session.dispose();
    }
    const info = model.info;
    return {
      date: new Date().toISOString(),
      model: {
        path: options.modelPath,
        name: info.name,
        format: info.format,
        weightTypes: info.weightTypes,
        parameterCount: info.parameterCount,
        contextLength: info.contextLength,
        ropeFreqBase: info.ropeFreqBase,
        ropeScaling: info.ropeScaling,
        device: info.device,
        threads: info.threads,
      },
      settings: {
        lengths, depths, samples, seed, maxAnswerTokens, contextLength,
        // The engine's default when none is given: f32 on the CPU, f16 on CUDA (native/index.ts).
        kvType: options.kvType ?? `${info.device.startsWith('cuda') ? 'f16' : 'f32'} (default)`,
        source: { kind: source.kind, dir: source.dir, files: source.files, chars: Number.isFinite(source.chars) ? source.chars : undefined },
      },
      complete: results.length === cells.length,
      accuracy: accuracyTable(results, lengths, depths),
      cells: results,
      loadMs: Math.round(loadMs),
      totalMs: Math.round(performance.now() - started),
    };
  } finally {
    model.dispose();
  }
}

/** {lengths, depths, table: percent [length][depth] (null = not run), byLength, byDepth, overall}. */
export function accuracyTable(results, lengths, depths) {
  const pct = (rs) => (rs.length ? Math.round((1000 * rs.filter((r) => r.correct).length) / rs.length) / 10 : null);
  const table = lengths.map((l) => depths.map((d) => pct(results.filter((r) => r.length === l && r.depth === d))));
  return {
    lengths,
    depths,
    table,
    byLength: lengths.map((l) => pct(results.filter((r) => r.length === l))),
    byDepth: depths.map((d) => pct(results.filter((r) => r.depth === d))),
    overall: pct(results),
  };
}

const cell = (v) => (v === null ? '–' : String(v));

/** The accuracy table as aligned text: rows = lengths, columns = depths, then the row average. */
export function formatTextTable(accuracy) {
  const head = ['length', ...accuracy.depths.map((d) => `${d}%`), 'avg'];
  const rows = accuracy.lengths.map((l, i) => [formatLength(l), ...accuracy.table[i].map(cell), cell(accuracy.byLength[i])]);
  rows.push(['avg', ...accuracy.byDepth.map(cell), cell(accuracy.overall)]);
  const widths = head.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j].length)));
  const line = (r) => r.map((v, j) => (j === 0 ? v.padEnd(widths[j]) : v.padStart(widths[j]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

/** The same table in Markdown. */
export function formatMarkdownTable(accuracy) {
  const head = ['length \\ depth', ...accuracy.depths.map((d) => `${d}%`), 'avg'];
  const rows = accuracy.lengths.map((l, i) => [formatLength(l), ...accuracy.table[i].map(cell), cell(accuracy.byLength[i])]);
  rows.push(['**avg**', ...accuracy.byDepth.map(cell), `**${cell(accuracy.overall)}**`]);
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}
