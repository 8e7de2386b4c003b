// Sampling for generate and chat. Defaults are InternLM's own for model.chat (REFERENCE.md):
// temperature 0.8, top_p 0.8.
import type { SamplingOptions } from '../../native/index';
import { floatOption, intOption, type OptionSpecs, type ParsedOptions } from './args';

export const DEFAULT_SAMPLING = { temperature: 0.8, topP: 0.8 } as const;

export const SAMPLING_FLAGS: OptionSpecs = {
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  seed: { type: 'string' },
};

export function samplingOptions(options: ParsedOptions): SamplingOptions {
  return {
    temperature: floatOption(options, 'temperature', { min: 0 }) ?? DEFAULT_SAMPLING.temperature,
    topP: floatOption(options, 'top-p', { min: 0, max: 1 }) ?? DEFAULT_SAMPLING.topP,
    topK: intOption(options, 'top-k', { min: 0 }),
    seed: intOption(options, 'seed', { min: 0 }),
  };
}
