// internlm generate: continues a prompt (or answers it as a chat turn with --chat), streaming the
// text to stdout. Ctrl-C stops generation; what was produced so far stays printed.
import { intOption, parseOptions, requiredString } from '../args';
import { abortOnInterrupt } from '../interrupt';
import { ENGINE_FLAGS, SESSION_FLAGS, engineOptions, loadModel, sessionOptions } from '../model';
import { SAMPLING_FLAGS, samplingOptions } from '../sampling';
import { chatPromptTokens } from '../../prompt/chatml';
import { reportGeneration } from '../report';

const DEFAULT_MAX_TOKENS = 256;

export async function generateCommand(args: string[]): Promise<number> {
  const options = parseOptions(args, {
    model: { type: 'string' },
    prompt: { type: 'string' },
    chat: { type: 'boolean' },
    'max-tokens': { type: 'string' },
    ...ENGINE_FLAGS,
    ...SESSION_FLAGS,
    ...SAMPLING_FLAGS,
  });
  const modelPath = requiredString(options, 'model');
  const prompt = requiredString(options, 'prompt');
  const maxTokens = intOption(options, 'max-tokens', { min: 1 }) ?? DEFAULT_MAX_TOKENS;
  const sampling = samplingOptions(options);

  const model = await loadModel(modelPath, engineOptions(options));
  try {
    const tokens = options.chat
      ? chatPromptTokens(model, [{ role: 'user', content: prompt }])
      : [model.info.bosId, ...model.tokenize(prompt)];
    const session = model.createSession(sessionOptions(options, tokens.length + maxTokens));
    const controller = new AbortController();
    const release = abortOnInterrupt(controller);
    try {
      const result = await session.generate({
        ...sampling,
        prompt: tokens,
        maxTokens,
        signal: controller.signal,
        onText: (text) => process.stdout.write(text),
      });
      process.stdout.write('\n');
      reportGeneration(result);
      return result.finishReason === 'cancelled' ? 130 : 0;
    } finally {
      release();
      session.dispose();
    }
  } finally {
    model.dispose();
  }
}
