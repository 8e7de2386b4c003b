// Haystack text for the needle-in-a-haystack benchmark.
//
//   workspace  the text files of this repository (docs, README, sources), the default
//   DIR        the text files of any directory
//   bundled    prose written on the spot by a small seeded generator (below); nothing copied
//
// A source is a sequence of texts, text(0), text(1), …: the files in path order, cycled when a
// haystack needs more; or fresh chunks of generated prose (no repeats).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const TEXT_EXTENSIONS = new Set([
  '.md', '.txt', '.rst', '.ts', '.tsx', '.js', '.mjs', '.cjs', '.cpp', '.cc', '.c', '.h', '.hpp', '.cu', '.cuh',
  '.py', '.go', '.rs', '.java', '.sh', '.cmake',
]);
// Build outputs, dependencies, caches and anything hidden.
const SKIP_DIRS = new Set(['node_modules', 'dist', 'build', 'out', 'tmp', 'test-artifacts', 'coverage', '__pycache__']);
const MAX_FILE_BYTES = 256 * 1024;
// Files that talk about the needle itself (this harness, its test) would hand the model
// passphrase-like sentences: leave them out of every haystack.
const NEEDLE_MARKER = /secret passphrase/i;

/** Text files under dir, sorted by relative path (deterministic haystacks). */
export function listTextFiles(dir) {
  const found = [];
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) {
        if (!SKIP_DIRS.has(entry.name)) walk(p);
      } else if (entry.isFile() && TEXT_EXTENSIONS.has(path.extname(entry.name).toLowerCase())) {
        if (statSync(p).size <= MAX_FILE_BYTES) found.push(p);
      }
    }
  };
  walk(dir);
  return found.sort((a, b) => (path.relative(dir, a) < path.relative(dir, b) ? -1 : 1));
}

function directorySource(dir, kind) {
  const files = listTextFiles(dir);
  const texts = [];
  let chars = 0;
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    if (NEEDLE_MARKER.test(text) || text.includes('\u0000')) continue;
    // Files follow each other separated by a blank line.
    const body = `${text.endsWith('\n') ? text : `${text}\n`}\n`;
    texts.push(body);
    chars += body.length;
  }
  if (!texts.length) throw new Error(`no text files under ${dir}`);
  return { kind, dir, files: texts.length, chars, text: (i) => texts[i % texts.length] };
}

// ---------------------------------------------------------------- bundled prose

// A seeded generator of plain, unremarkable paragraphs about an invented coastal region. Every word
// list and sentence frame below was written for this harness.
const PLACES = ['Harrowmere', 'Quillby', 'Saltmarsh Cross', 'Duneholt', 'Fennick Bay', 'Lowbrook', 'Orrin Point',
  'Cadder Hill', 'Wexley', 'Marrowgate', 'Tidewell', 'Brackenford'];
const TRADES = ['net menders', 'rope makers', 'bakers', 'clockmakers', 'ferry pilots', 'glassblowers', 'beekeepers',
  'stonemasons', 'lamp tenders', 'weavers', 'coopers', 'cartographers'];
const THINGS = ['the harbour wall', 'the old granary', 'the tide mill', 'the market square', 'the signal tower',
  'the stone bridge', 'the salt pans', 'the boathouse', 'the chapel bell', 'the orchard terraces', 'the footpath',
  'the lighthouse'];
const WEATHER = ['a grey drizzle', 'a steady westerly wind', 'a thin sea fog', 'bright, cold sunshine',
  'a short hailstorm', 'warm, still air', 'low cloud', 'a gusty squall'];
const SEASONS = ['spring', 'early summer', 'late summer', 'autumn', 'the first weeks of winter', 'midwinter'];
const VERBS = ['repaired', 'repainted', 'measured', 'widened', 'rebuilt', 'surveyed', 'cleaned', 'extended'];
const ADJECTIVES = ['patient', 'careful', 'cheerful', 'quiet', 'stubborn', 'thrifty', 'practical', 'talkative'];
const FRAMES = [
  (r) => `In ${r(SEASONS)} the ${r(TRADES)} of ${r(PLACES)} ${r(VERBS)} ${r(THINGS)}, a task that took ${r(['two', 'three', 'four', 'five', 'six'])} weeks.`,
  (r) => `Visitors to ${r(PLACES)} usually arrive in ${r(WEATHER)} and leave talking about ${r(THINGS)}.`,
  (r) => `The ${r(ADJECTIVES)} ${r(TRADES)} keep a ledger of every repair to ${r(THINGS)}, although nobody reads it.`,
  (r) => `A road runs from ${r(PLACES)} to ${r(PLACES)}, passing ${r(THINGS)} and a row of ${r(['elm', 'ash', 'alder', 'willow', 'hawthorn'])} trees.`,
  (r) => `Most evenings bring ${r(WEATHER)}, so the ${r(TRADES)} finish early and gather near ${r(THINGS)}.`,
  (r) => `Records kept since ${r(SEASONS)} show that ${r(THINGS)} was ${r(VERBS)} more often than anything else in ${r(PLACES)}.`,
  (r) => `Children in ${r(PLACES)} learn the names of the ${r(['winds', 'tides', 'stars', 'birds', 'boats'])} before they learn to write.`,
  (r) => `The ${r(ADJECTIVES)} keeper of ${r(THINGS)} says that ${r(WEATHER)} is the best weather for ${r(TRADES)}.`,
];

function prng(seed) {
  let s = (Math.imul(seed, 2654435761) ^ 0x5bd1e995) >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

/** Paragraphs of 4–7 generated sentences, about `chars` characters in all. */
export function bundledParagraphs(chars, seed) {
  const rand = prng(seed);
  for (let i = 0; i < 8; i++) rand();
  const r = (list) => list[Math.floor(rand() * list.length)];
  const paragraphs = [];
  let total = 0;
  while (total < chars) {
    const n = 4 + Math.floor(rand() * 4);
    const p = Array.from({ length: n }, () => r(FRAMES)(r)).join(' ');
    paragraphs.push(`${p}\n\n`);
    total += p.length + 2;
  }
  return paragraphs;
}

/**
 * source: 'workspace' (this repository), 'bundled', or a directory path.
 * Returns {kind, dir?, files?, chars, text(i)}.
 */
export function loadSource(source = 'workspace') {
  if (source === 'workspace') return directorySource(REPO_ROOT, 'workspace');
  if (source === 'bundled') {
    // Chunks of ~8 KB (about 2K tokens), each from its own seed: as long as any haystack needs.
    return { kind: 'bundled', chars: Infinity, text: (i) => bundledParagraphs(8000, 7 + i).join('') };
  }
  const dir = path.resolve(source);
  let stat;
  try {
    stat = statSync(dir);
  } catch {
    throw new Error(`--source: no such directory: ${dir} (use workspace, bundled or a directory)`);
  }
  if (!stat.isDirectory()) throw new Error(`--source: not a directory: ${dir}`);
  return directorySource(dir, 'directory');
}
