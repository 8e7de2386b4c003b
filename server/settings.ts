// Reads ServerSettings from what the client sends (initializationOptions, didChangeConfiguration),
// tolerating missing or mistyped fields so that an old or hand-written client still gets defaults.
import type { Device, KVTypeSetting, RopeScaling, ServerSettings } from './protocol';

export const DEFAULT_SETTINGS: ServerSettings = {
  modelPath: '',
  device: 'auto',
  threads: 0,
  contextLength: 0,
  kvType: 'auto',
  ropeScaling: 'auto',
  completion: { maxTokens: 64 },
  workspaceCache: { maxBytes: 4 * 2 ** 30 },
};

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], fallback: T): T {
  return allowed.includes(value as T) ? (value as T) : fallback;
}

function count(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.floor(value) : fallback;
}

/**
 * Settings from a client payload. Accepts the ServerSettings object itself or one nested under
 * `internlm` (what a generic client's configuration sync sends).
 */
export function readSettings(payload: unknown): ServerSettings {
  const outer = record(payload);
  const s = 'internlm' in outer ? record(outer.internlm) : outer;
  const completion = record(s.completion);
  const workspaceCache = record(s.workspaceCache);
  return {
    modelPath: typeof s.modelPath === 'string' ? s.modelPath.trim() : DEFAULT_SETTINGS.modelPath,
    device: oneOf<Device>(s.device, ['auto', 'cpu', 'cuda'], DEFAULT_SETTINGS.device),
    threads: count(s.threads, DEFAULT_SETTINGS.threads),
    contextLength: count(s.contextLength, DEFAULT_SETTINGS.contextLength),
    kvType: oneOf<KVTypeSetting>(s.kvType, ['auto', 'f32', 'f16', 'q8', 'q4'], DEFAULT_SETTINGS.kvType),
    ropeScaling: oneOf<RopeScaling>(s.ropeScaling, ['auto', 'none', 'dynamic'], DEFAULT_SETTINGS.ropeScaling),
    completion: { maxTokens: Math.max(1, count(completion.maxTokens, DEFAULT_SETTINGS.completion.maxTokens)) },
    workspaceCache: { maxBytes: count(workspaceCache.maxBytes, DEFAULT_SETTINGS.workspaceCache.maxBytes) },
  };
}

/** The storage folder from `initializationOptions` (absent, empty or mistyped: none). */
export function readStoragePath(payload: unknown): string | undefined {
  const value = record(payload).storagePath;
  return typeof value === 'string' && value.trim() ? value.trim() : undefined;
}

/**
 * Whether a didChangeConfiguration payload carries our settings. Generic clients also send
 * `{settings: null}` or other sections; those must not reset the model to "none".
 */
export function carriesSettings(payload: unknown): boolean {
  const outer = record(payload);
  return 'modelPath' in outer || 'modelPath' in record(outer.internlm);
}

/** The settings that need the model file loaded again when they change. */
export function modelKey(s: ServerSettings): string {
  return JSON.stringify([s.modelPath, s.device, s.threads, s.ropeScaling]);
}
