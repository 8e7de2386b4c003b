// Command-line parsing for the internlm CLI: node:util parseArgs in strict mode (unknown flags are
// errors) plus typed readers for numeric values.
import { parseArgs } from 'node:util';

/** A mistake in how the CLI was called: reported with the usage text and exit code 2. */
export class UsageError extends Error {}

export const USAGE = `Usage:
  internlm info       --model PATH [--device D] [--json]
  internlm tokenize   --model PATH (--text S | --text-file F) [--special] [--json]
  internlm eval       --model PATH (--tokens 1,2,3 | --text S | --text-file F) [--top K] [--threads N]
                      [--device D] [--rope-scaling none|dynamic] [--rope-factor F] [--json]
  internlm generate   --model PATH --prompt S [--chat] [--max-tokens N] [--temperature T] [--top-p P]
                      [--top-k K] [--seed S] [--threads N] [--device D]
  internlm chat       --model PATH [--threads N] [--device D]
  internlm bench      --model PATH [--prompt-tokens N] [--gen-tokens N] [--threads N] [--device D] [--json]
  internlm plan       --model PATH [--device D] [--json]
  internlm quantize   --in PATH --out FILE --type Q8_0|Q4_0|Q5_0|Q2_K|Q3_K_M|Q4_K_M|Q5_K_M|Q6_K|Q4_1|Q5_1
                      [--leave-output-tensor] [--threads N] [--json]

eval, generate, chat and bench also take [--kv-type f32|f16|q8|q4] (the KV cache type; default f32
on the CPU) and [--context N] (the session's context length, checked against free RAM).
PATH is a GGUF file or a Hugging Face checkpoint directory. D is auto (default: the GPU when one
is present and the model fits, else the CPU), cpu, cuda or cuda:N. Every model-loading command
also takes [--weights auto|mapped|ram]: ram reads the weights into huge-page memory (default on the
CPU when they fit: multi-GB mappings decode several times slower), mapped pages them in on demand.`;

type OptionSpec = { type: 'string' } | { type: 'boolean' };
export type OptionSpecs = Record<string, OptionSpec>;
export type ParsedOptions = Record<string, string | boolean | undefined>;

export function parseOptions(args: string[], specs: OptionSpecs): ParsedOptions {
  try {
    return parseArgs({ args, options: specs, strict: true, allowPositionals: false }).values as ParsedOptions;
  } catch (error) {
    // parseArgs' messages name the flag ("Unknown option '--foo'"); keep them, drop its error code.
    throw new UsageError((error as Error).message);
  }
}

export function stringOption(options: ParsedOptions, name: string): string | undefined {
  const value = options[name];
  return typeof value === 'string' ? value : undefined;
}

export function requiredString(options: ParsedOptions, name: string): string {
  const value = stringOption(options, name);
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

function numberOption(options: ParsedOptions, name: string, integer: boolean): number | undefined {
  const text = stringOption(options, name);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'}, got '${text}'`);
  }
  return value;
}

export function intOption(options: ParsedOptions, name: string, { min = 0 } = {}): number | undefined {
  const value = numberOption(options, name, true);
  if (value !== undefined && value < min) throw new UsageError(`--${name} must be at least ${min}, got ${value}`);
  return value;
}

export function floatOption(options: ParsedOptions, name: string, { min = -Infinity, max = Infinity } = {}): number | undefined {
  const value = numberOption(options, name, false);
  if (value !== undefined && (value < min || value > max)) {
    throw new UsageError(`--${name} must be in [${min}, ${max}], got ${value}`);
  }
  return value;
}

export function choiceOption<T extends string>(options: ParsedOptions, name: string, choices: readonly T[]): T | undefined {
  const value = stringOption(options, name);
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${value}'`);
  }
  return value as T;
}

/** "1,2,3" → [1, 2, 3]; every entry must be a non-negative integer. */
export function tokenListOption(options: ParsedOptions, name: string): number[] | undefined {
  const text = stringOption(options, name);
  if (text === undefined) return undefined;
  const ids = text.split(',').map((part) => part.trim());
  if (ids.some((id) => !/^\d+$/.test(id))) throw new UsageError(`--${name} must be comma-separated token ids, got '${text}'`);
  return ids.map(Number);
}
