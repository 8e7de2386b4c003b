// Text input shared by tokenize and eval: exactly one of --text or --text-file.
import { readFileSync } from 'node:fs';
import { stringOption, UsageError, type ParsedOptions } from './args';

export function textInput(options: ParsedOptions, alternatives = '--text or --text-file'): string | undefined {
  const text = stringOption(options, 'text');
  const file = stringOption(options, 'text-file');
  if (text !== undefined && file !== undefined) throw new UsageError(`pass only one of ${alternatives}`);
  if (file === undefined) return text;
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read --text-file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}
