// internlm quantize: a Hugging Face checkpoint directory or an F16/F32 GGUF to a GGUF of one of
// llama.cpp's file types, loadable by this engine and by llama.cpp.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { QUANTIZE_TYPES, quantizeModel, type QuantizeType } from '../../../native/index';
import { UsageError, intOption, parseOptions, requiredString } from '../args';
import { checkModelPath } from '../model';
import { printJson } from '../output';

export async function quantizeCommand(args: string[]): Promise<void> {
  const options = parseOptions(args, {
    in: { type: 'string' },
    out: { type: 'string' },
    type: { type: 'string' },
    threads: { type: 'string' },
    'leave-output-tensor': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  const input = requiredString(options, 'in');
  const output = requiredString(options, 'out');
  const type = quantizeType(requiredString(options, 'type'));
  const threads = intOption(options, 'threads', { min: 1 });
  checkModelPath(input);
  const dir = path.dirname(path.resolve(output));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`cannot write ${output}: directory ${dir} does not exist`);

  const started = performance.now();
  let shown = -1;
  const onProgress = (fraction: number) => {
    const percent = Math.floor(fraction * 100);
    if (options.json || !process.stderr.isTTY || percent === shown) return;
    shown = percent;
    process.stderr.write(`\rquantizing to ${type}: ${percent}%`);
  };
  const leaveOutputTensor = options['leave-output-tensor'] === true;
  const result = await quantizeModel(input, output, type, { threads, leaveOutputTensor, onProgress });
  if (!options.json && process.stderr.isTTY) process.stderr.write('\n');
  const seconds = (performance.now() - started) / 1000;
  if (options.json) {
    printJson({ ...result, path: path.resolve(output), seconds });
    return;
  }
  const types = Object.entries(result.types).map(([t, n]) => `${t} ×${n}`).join(', ');
  process.stdout.write(`${path.resolve(output)}: ${result.type}, ${(result.bytes / 2 ** 20).toFixed(1)} MiB, ` +
    `${result.tensors} tensors (${types}) in ${seconds.toFixed(1)} s\n`);
}

function quantizeType(name: string): QuantizeType {
  const upper = name.toUpperCase();
  const found = QUANTIZE_TYPES.find((t) => t === upper);
  if (!found) throw new UsageError(`--type must be one of ${QUANTIZE_TYPES.join(', ')}, got '${name}'`);
  return found;
}
