// The workspace session's prefix, the packed files, kept on disk so that a question after a restart
// prefills only what changed since the last answer. One pair of files per workspace, model and KV
// type (the name is a hash of them): `<hash>.kv`, the engine's saved KV cache (tokens included), and
// `<hash>.json`, its tokens and RoPE base for deciding before restoring whether it helps.
//
// Safety: a file is only restored into a session of the same model (fingerprint) and KV type (both
// in the name, both checked again by the engine) and only when its RoPE base is the one the new
// prompt needs (the session would discard it otherwise). A file that fails to restore is deleted
// and the question is answered from a cold prefill.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ModelInfo, Session } from '../../native/index';
import { formatBytes } from '../context-plan';
import { neededRopeBase, sameBase } from '../prefill';

const VERSION = 1;
/** Shorter prefixes prefill in about the time a restore takes: not worth a file. */
const MIN_SAVE_TOKENS = 1024;
/** Restore only when it spares at least this many tokens of prefill over what the session holds. */
const MIN_GAIN_TOKENS = 512;

/** What a saved prefix belongs to. */
export interface PrefixIdentity {
  /** The workspace folders' paths, in order. */
  folders: readonly string[];
  /** The model's fingerprint (model.info.fingerprint). */
  fingerprint: string;
  kvType: string;
}

interface Meta {
  version: number;
  folders: string[];
  fingerprint: string;
  kvType: string;
  ropeBase: number;
  /** The saved token ids, int32 little-endian, base64. */
  tokens: string;
  bytes: number;
}

export interface Restored {
  /** Tokens the restored cache holds. */
  tokens: number;
  /** Of those, the leading ones the new prompt shares (what its prefill reuses). */
  shared: number;
  ms: number;
}

function encodeTokens(ids: readonly number[]): string {
  return Buffer.from(Int32Array.from(ids).buffer).toString('base64');
}

function decodeTokens(text: string): Int32Array {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length % 4 !== 0) throw new Error('token list is not a whole number of int32s');
  const copy = new Uint8Array(bytes);
  return new Int32Array(copy.buffer);
}

function digest(ids: ArrayLike<number>): string {
  return createHash('sha256').update(Int32Array.from(ids as ArrayLike<number>)).digest('hex');
}

/** Leading positions of `a` and `b` that agree, at most `limit`. */
function commonPrefix(a: ArrayLike<number>, b: ArrayLike<number>, limit: number): number {
  const n = Math.min(a.length, b.length, limit);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function parseMeta(text: string): Meta {
  const m = JSON.parse(text) as Partial<Meta>;
  if (m.version !== VERSION || typeof m.fingerprint !== 'string' || typeof m.kvType !== 'string' ||
    typeof m.ropeBase !== 'number' || typeof m.tokens !== 'string') {
    throw new Error('not a workspace cache description of this version');
  }
  return m as Meta;
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

export class WorkspacePrefixCache {
  private dir: string | undefined;
  /** Digest of the tokens each .kv file holds now, so an unchanged prefix is not written again. */
  private readonly held = new Map<string, string>();

  constructor(private readonly log: (message: string) => void) {}

  /** The extension's storage folder; undefined: nothing is saved or restored. */
  setStoragePath(storagePath: string | undefined): void {
    this.dir = storagePath ? path.join(storagePath, 'workspace-kv') : undefined;
  }

  /**
   * Before a workspace prompt runs on `session`: restores the saved prefix when the prompt shares
   * more of it than the session already holds. `context`: the session's context length.
   */
  async restoreInto(session: Session, info: ModelInfo, id: PrefixIdentity, prompt: readonly number[], context: number,
    maxTokens: number): Promise<Restored | undefined> {
    const files = this.files(id);
    if (!files) return undefined;
    let meta: Meta;
    let tokens: Int32Array;
    try {
      meta = parseMeta(await fs.readFile(files.meta, 'utf8'));
      tokens = decodeTokens(meta.tokens);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.log(`workspace cache ${files.meta} is unreadable (${message(error)}); deleting it`);
      await this.remove(files);
      return undefined;
    }
    if (meta.fingerprint !== id.fingerprint || meta.kvType !== id.kvType) {
      this.log(`workspace cache ${files.kv} belongs to another model or KV type; not used`);
      return undefined;
    }
    if (tokens.length > context) {
      this.log(`workspace cache ${files.kv} holds ${tokens.length} tokens, more than the session's context of ${context}; not used`);
      return undefined;
    }
    const needed = neededRopeBase(info, prompt.length, Math.min(maxTokens, context - prompt.length), context);
    if (!sameBase(meta.ropeBase, needed)) {
      this.log(`workspace cache ${files.kv} was built with RoPE base ${meta.ropeBase}; this prompt needs ${needed}; not used`);
      return undefined;
    }
    const limit = prompt.length - 1;
    const shared = commonPrefix(tokens, prompt, limit);
    const current = session.length > 0 && sameBase(session.ropeBase, needed) ? commonPrefix(session.tokens, prompt, limit) : 0;
    if (shared < current + MIN_GAIN_TOKENS) return undefined;
    try {
      const restored = await session.restore(files.kv);
      this.held.set(files.kv, digest(session.tokens));
      // Used now: the size cap deletes the least recently used caches first.
      const now = new Date();
      await Promise.all([files.kv, files.meta].map((f) => fs.utimes(f, now, now).catch(() => undefined)));
      this.log(`workspace cache: restored ${restored.tokens} tokens from ${files.kv} in ${Math.round(restored.ms)} ms; the prompt shares ${shared}`);
      return { tokens: restored.tokens, shared, ms: restored.ms };
    } catch (error) {
      this.log(`workspace cache ${files.kv} could not be restored (${message(error)}); deleting it and reading the workspace from scratch`);
      session.truncate(0);
      await this.remove(files);
      return undefined;
    }
  }

  /**
   * Saves the session's first prefix.length positions when they hold `prefix` and differ from what
   * is on disk, then deletes the least recently used files beyond maxBytes. Run it while no request
   * uses the session. bytesPerToken (when known) skips a prefix that could never fit under maxBytes.
   */
  async save(session: Session, id: PrefixIdentity, prefix: readonly number[], maxBytes: number, bytesPerToken: number | undefined): Promise<void> {
    try {
      await this.write(session, id, prefix, maxBytes, bytesPerToken);
    } finally {
      await this.trim(maxBytes);
    }
  }

  private async write(session: Session, id: PrefixIdentity, prefix: readonly number[], maxBytes: number, bytesPerToken: number | undefined): Promise<void> {
    const files = this.files(id);
    if (!files || maxBytes <= 0 || prefix.length < MIN_SAVE_TOKENS) return;
    if (commonPrefix(session.tokens, prefix, prefix.length) < prefix.length) return;
    const sum = digest(prefix);
    if (this.held.get(files.kv) === sum) return;
    if (bytesPerToken !== undefined && prefix.length * bytesPerToken > maxBytes) {
      this.log(`workspace cache: ${prefix.length} tokens need about ${formatBytes(prefix.length * bytesPerToken)}, more than internlm.workspaceCache.maxBytes; not saved`);
      return;
    }
    await fs.mkdir(path.dirname(files.kv), { recursive: true });
    const saved = await session.save(files.kv, { length: prefix.length });
    const meta: Meta = {
      version: VERSION, folders: [...id.folders], fingerprint: id.fingerprint, kvType: id.kvType,
      ropeBase: session.ropeBase, tokens: encodeTokens(prefix), bytes: saved.bytes,
    };
    const partial = `${files.meta}.partial`;
    await fs.writeFile(partial, JSON.stringify(meta));
    await fs.rename(partial, files.meta);
    this.held.set(files.kv, sum);
    this.log(`workspace cache: saved ${saved.tokens} tokens (${formatBytes(saved.bytes)}) to ${files.kv} in ${Math.round(saved.ms)} ms`);
  }

  /** Deletes the least recently used caches (saved or restored) until all together take at most maxBytes. */
  async trim(maxBytes: number): Promise<void> {
    const dir = this.dir;
    if (!dir) return;
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      return;
    }
    const groups = new Map<string, { bytes: number; mtimeMs: number; paths: string[] }>();
    for (const name of names) {
      const file = path.join(dir, name);
      const stat = await fs.stat(file).catch(() => undefined);
      if (!stat?.isFile()) continue;
      const stem = name.split('.')[0];
      const group = groups.get(stem) ?? { bytes: 0, mtimeMs: 0, paths: [] };
      group.bytes += stat.size;
      group.mtimeMs = Math.max(group.mtimeMs, stat.mtimeMs);
      group.paths.push(file);
      groups.set(stem, group);
    }
    let total = [...groups.values()].reduce((n, g) => n + g.bytes, 0);
    for (const group of [...groups.values()].sort((a, b) => a.mtimeMs - b.mtimeMs)) {
      if (total <= maxBytes) break;
      for (const file of group.paths) {
        await fs.rm(file, { force: true });
        this.held.delete(file);
      }
      total -= group.bytes;
      this.log(`workspace cache: deleted ${group.paths.map((p) => path.basename(p)).join(', ')} (over internlm.workspaceCache.maxBytes)`);
    }
  }

  private files(id: PrefixIdentity): { kv: string; meta: string } | undefined {
    if (!this.dir) return undefined;
    const stem = createHash('sha256').update(JSON.stringify([id.folders, id.fingerprint, id.kvType])).digest('hex').slice(0, 24);
    return { kv: path.join(this.dir, `${stem}.kv`), meta: path.join(this.dir, `${stem}.json`) };
  }

  private async remove(files: { kv: string; meta: string }): Promise<void> {
    this.held.delete(files.kv);
    await Promise.all([fs.rm(files.kv, { force: true }), fs.rm(files.meta, { force: true })]);
  }
}
