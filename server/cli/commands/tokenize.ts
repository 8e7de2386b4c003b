// internlm tokenize: token ids of a text, without BOS. --special lets control-token text
// ("<|im_start|>") become control tokens; without it, all text is plain.
import { loadTokenizer } from '../../../native/index';
import { parseOptions, requiredString, UsageError } from '../args';
import { textInput } from '../input';
import { checkModelPath } from '../model';
import { printJson, showPiece } from '../output';

export async function tokenizeCommand(args: string[]): Promise<void> {
  const options = parseOptions(args, {
    model: { type: 'string' },
    text: { type: 'string' },
    'text-file': { type: 'string' },
    special: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  const modelPath = requiredString(options, 'model');
  const text = textInput(options);
  if (text === undefined) throw new UsageError('--text or --text-file is required');
  checkModelPath(modelPath);
  const tokenizer = loadTokenizer(modelPath);
  const ids = tokenizer.encode(text, { special: options.special === true });
  if (options.json) {
    printJson({ ids });
    return;
  }
  for (const id of ids) process.stdout.write(`${id}\t${showPiece(tokenizer.decode([id]))}\n`);
  process.stdout.write(`${ids.length} tokens\n`);
}
