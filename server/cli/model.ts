// Loading a model for a CLI command, with the checks that turn the common mistakes into messages
// that name the cause and the fix before the engine is involved.
import { existsSync, statSync } from 'node:fs';
import { KV_TYPES, Model, type LoadOptions, type SessionOptions } from '../../native/index';
import { choiceOption, intOption, stringOption, type OptionSpecs, type ParsedOptions } from './args';

/** Flags every model-loading command takes. */
export const ENGINE_FLAGS: OptionSpecs = {
  threads: { type: 'string' },
  device: { type: 'string' },
  weights: { type: 'string' },
};

const WEIGHTS = ['auto', 'mapped', 'ram'] as const;

export function engineOptions(options: ParsedOptions): Pick<LoadOptions, 'threads' | 'device' | 'weights'> {
  return { threads: intOption(options, 'threads', { min: 1 }), device: stringOption(options, 'device'), weights: choiceOption(options, 'weights', WEIGHTS) };
}

/** Flags of commands that run a session: its KV cache type and context length. */
export const SESSION_FLAGS: OptionSpecs = {
  'kv-type': { type: 'string' },
  context: { type: 'string' },
};

/**
 * needed: the positions the command will use, the context when --context is absent. An explicit
 * --context is checked against free RAM up front, so a too-long one fails with the numbers.
 */
export function sessionOptions(options: ParsedOptions, needed?: number): SessionOptions {
  const context = intOption(options, 'context', { min: 1 });
  return { contextLength: context ?? needed, kvType: choiceOption(options, 'kv-type', KV_TYPES), checkMemory: context !== undefined };
}

export function checkModelPath(modelPath: string): void {
  if (!existsSync(modelPath)) {
    throw new Error(`model not found: ${modelPath} (pass a GGUF file or a Hugging Face checkpoint directory with --model)`);
  }
  const stat = statSync(modelPath);
  if (!stat.isFile() && !stat.isDirectory()) throw new Error(`not a model file or directory: ${modelPath}`);
}

export async function loadModel(modelPath: string, options: Omit<LoadOptions, 'onProgress'> = {}): Promise<Model> {
  checkModelPath(modelPath);
  return Model.load(modelPath, options);
}
