// Loading a model for a CLI command, with the checks that turn the common mistakes into messages
// that name the cause and the fix before the engine is involved.
import { existsSync, statSync } from 'node:fs';
import { Model, type LoadOptions } from '../../native/index';
import { intOption, stringOption, type OptionSpecs, type ParsedOptions } from './args';

/** Flags every model-loading command takes. */
export const ENGINE_FLAGS: OptionSpecs = {
  threads: { type: 'string' },
  device: { type: 'string' },
};

export function engineOptions(options: ParsedOptions): Pick<LoadOptions, 'threads' | 'device'> {
  return { threads: intOption(options, 'threads', { min: 1 }), device: stringOption(options, 'device') };
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
