// Decides which files are worth the model's context: text that people wrote. Binary files, huge
// files and generated output (lock files, minified bundles, files marked as generated) are left out.
import type { SkipReason } from '../protocol';

/** Larger files are skipped as too large: one such file would crowd out many source files. */
const MAX_FILE_BYTES = 512 * 1024;

/** Directories of build output and dependencies, skipped as a whole even without a .gitignore. */
export const GENERATED_DIRS = new Set([
  'node_modules', 'bower_components', 'dist', 'out', 'build', 'target', 'coverage', '.next', '.nuxt',
  '.svelte-kit', '.turbo', '.cache', '.parcel-cache', '__pycache__', '.pytest_cache', '.mypy_cache', '.tox',
  '.venv', 'venv', '.gradle', '.idea', '.vs', 'Pods', 'DerivedData',
]);

/** Directories of version control metadata, never content and never reported. */
export const VCS_DIRS = new Set(['.git', '.hg', '.svn']);

const BINARY_EXTENSIONS = new Set([
  'png', 'jpg', 'jpeg', 'gif', 'bmp', 'ico', 'webp', 'tif', 'tiff', 'psd', 'mp3', 'mp4', 'wav', 'ogg', 'flac', 'mov',
  'avi', 'webm', 'mkv', 'zip', 'gz', 'tgz', 'bz2', 'xz', 'zst', '7z', 'rar', 'tar', 'jar', 'war', 'pdf', 'doc', 'docx',
  'xls', 'xlsx', 'ppt', 'pptx', 'exe', 'dll', 'so', 'dylib', 'a', 'o', 'obj', 'lib', 'node', 'wasm', 'class', 'pyc',
  'pyo', 'bin', 'dat', 'db', 'sqlite', 'gguf', 'safetensors', 'pt', 'pth', 'onnx', 'npy', 'npz', 'ttf', 'otf', 'woff',
  'woff2', 'eot', 'vsix', 'dmg', 'iso',
]);

const GENERATED_NAMES = new Set([
  'package-lock.json', 'npm-shrinkwrap.json', 'yarn.lock', 'pnpm-lock.yaml', 'bun.lockb', 'Cargo.lock', 'poetry.lock',
  'Pipfile.lock', 'composer.lock', 'Gemfile.lock', 'go.sum', 'flake.lock', 'packages.lock.json', 'uv.lock',
]);

const GENERATED_SUFFIXES = ['.min.js', '.min.css', '.min.mjs', '.map', '.pb.go', '_pb2.py', '_pb2_grpc.py', '.g.dart',
  '.freezed.dart', '.designer.cs', '.generated.ts', '.d.ts.map', '.snap'];

const GENERATED_MARKER = /@generated\b|\bDO NOT EDIT\b|\bauto-?generated\b|\bThis file (?:was|is) generated\b/i;

function extension(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot + 1).toLowerCase();
}

/** A verdict from the file's name and size alone, before reading it. */
export function classifyByName(name: string, size: number): SkipReason | undefined {
  if (BINARY_EXTENSIONS.has(extension(name))) return 'binary';
  if (GENERATED_NAMES.has(name) || GENERATED_SUFFIXES.some((s) => name.endsWith(s))) return 'generated';
  if (size > MAX_FILE_BYTES) return 'tooLarge';
  return undefined;
}

/** A verdict from the content: NUL bytes or invalid UTF-8 mean binary; markers or minified lines mean generated. */
export function classifyByContent(bytes: Uint8Array): SkipReason | undefined {
  const head = bytes.subarray(0, 8192);
  if (head.includes(0)) return 'binary';
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return 'binary';
  }
  if (GENERATED_MARKER.test(text.slice(0, 1024))) return 'generated';
  const sample = text.slice(0, 8192);
  const lines = sample.split('\n');
  // Minified code: very long lines, little whitespace structure.
  if (sample.length > 2000 && sample.length / lines.length > 300) return 'generated';
  return undefined;
}
