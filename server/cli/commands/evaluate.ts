// internlm eval: one forward pass over a token sequence, printing for every position the top-K
// log-probabilities of the next token. Our debugging tool and the parity tests' view of the engine.
import type { Model, RopeScalingType } from '../../../native/index';
import { choiceOption, floatOption, intOption, parseOptions, requiredString, tokenListOption, UsageError } from '../args';
import { textInput } from '../input';
import { abortOnInterrupt } from '../interrupt';
import { ENGINE_FLAGS, SESSION_FLAGS, engineOptions, loadModel, sessionOptions } from '../model';
import { printJson, showPiece } from '../output';

const DEFAULT_TOP = 20;

export async function evalCommand(args: string[]): Promise<void> {
  const options = parseOptions(args, {
    model: { type: 'string' },
    tokens: { type: 'string' },
    text: { type: 'string' },
    'text-file': { type: 'string' },
    top: { type: 'string' },
    ...ENGINE_FLAGS,
    ...SESSION_FLAGS,
    'rope-scaling': { type: 'string' },
    'rope-factor': { type: 'string' },
    json: { type: 'boolean' },
  });
  const modelPath = requiredString(options, 'model');
  const ids = tokenListOption(options, 'tokens');
  const text = textInput(options, '--tokens, --text or --text-file');
  if ((ids === undefined) === (text === undefined)) throw new UsageError('pass exactly one of --tokens, --text or --text-file');
  const topK = intOption(options, 'top', { min: 1 }) ?? DEFAULT_TOP;
  const ropeScaling = choiceOption<RopeScalingType>(options, 'rope-scaling', ['none', 'dynamic']);
  const ropeFactor = floatOption(options, 'rope-factor', { min: 1 });

  const model = await loadModel(modelPath, { ...engineOptions(options), ropeScaling, ropeFactor });
  try {
    // Text gets BOS like every prompt the model sees; explicit --tokens are taken as given.
    const tokens = ids ?? [model.info.bosId, ...model.tokenize(text ?? '')];
    if (tokens.length === 0) throw new UsageError('no tokens to evaluate');
    const outOfRange = tokens.find((id) => id >= model.info.vocabSize);
    if (outOfRange !== undefined) throw new Error(`token id ${outOfRange} is outside the vocabulary (size ${model.info.vocabSize})`);

    const session = model.createSession(sessionOptions(options, tokens.length));
    const controller = new AbortController();
    const release = abortOnInterrupt(controller);
    try {
      // Ctrl-C makes the engine reject with "cancelled": nothing partial is worth printing.
      const result = await session.evaluate(tokens, { topK, signal: controller.signal });
      if (options.json) printJson({ tokens, ropeBase: result.ropeBase, top: result.top });
      else printTable(model, tokens, result.top, result.ropeBase, result.ms);
    } finally {
      release();
      session.dispose();
    }
  } finally {
    model.dispose();
  }
}

function printTable(model: Model, tokens: number[], top: Array<Array<[number, number]>>, ropeBase: number, ms: number): void {
  const shown = 5;
  process.stdout.write(`${tokens.length} tokens in ${ms.toFixed(1)} ms, RoPE base ${ropeBase}\n`);
  tokens.forEach((id, i) => {
    const next = top[i].slice(0, shown).map(([t, lp]) => `${showPiece(model.detokenize([t]))}(${t}) ${lp.toFixed(3)}`);
    process.stdout.write(`${String(i).padStart(5)}  ${showPiece(model.detokenize([id]))}(${id})  →  ${next.join('  ')}\n`);
  });
}
