// internlm info: the model's hyperparameters, weight types, RoPE settings and available backends.
import type { ModelInfo } from '../../../native/index';
import { parseOptions, requiredString } from '../args';
import { ENGINE_FLAGS, engineOptions, loadModel } from '../model';
import { printJson } from '../output';

export async function infoCommand(args: string[]): Promise<void> {
  const options = parseOptions(args, { model: { type: 'string' }, json: { type: 'boolean' }, ...ENGINE_FLAGS });
  const model = await loadModel(requiredString(options, 'model'), engineOptions(options));
  try {
    if (options.json) printJson(model.info);
    else process.stdout.write(describe(model.info));
  } finally {
    model.dispose();
  }
}

function describe(info: ModelInfo): string {
  const weights = Object.entries(info.weightTypes).map(([type, count]) => `${type} ×${count}`).join(', ');
  const rows: Array<[string, string | number]> = [
    ['path', info.path],
    ['format', info.format],
    ['name', info.name],
    ['architecture', info.architecture],
    ['parameters', info.parameterCount.toLocaleString('en-US')],
    ['file size', `${(info.fileBytes / 2 ** 20).toFixed(1)} MiB (${info.weights === 'ram' ? 'read into RAM' : 'mapped'})`],
    ['weights', weights],
    ['vocabulary', info.vocabSize],
    ['context length', info.contextLength],
    ['layers', info.blockCount],
    ['embedding', info.embeddingLength],
    ['feed-forward', info.feedForwardLength],
    ['heads', `${info.headCount} (kv ${info.headCountKv}, dim ${info.headDim})`],
    ['rms norm eps', info.rmsNormEps],
    ['rope', `base ${info.ropeFreqBase}, ${info.ropeLayout}, scaling ${info.ropeScaling.type} ×${info.ropeScaling.factor}`],
    ['bos / eos', `${info.bosId} / ${info.eosId}`],
    ['stop tokens', info.stopTokens.join(', ')],
    ['backends', info.backends.join(', ')],
    ['device', info.device],
    ['threads', info.threads],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}\n`).join('');
}
