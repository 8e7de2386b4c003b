// The one-line summary after a generation, on stderr so stdout carries only the model's text.
import type { GenerateResult } from '../../native/index';

export function reportGeneration(result: GenerateResult): void {
  const rate = (tokens: number, ms: number) => (ms > 0 ? `${(tokens / (ms / 1000)).toFixed(1)} tok/s` : '-');
  const prompt = `prompt ${result.promptTokens} tokens (${result.cachedTokens} cached, ${rate(result.promptTokens - result.cachedTokens, result.promptMs)})`;
  const generated = `generated ${result.tokens.length} tokens (${rate(result.tokens.length, result.generateMs)})`;
  const finish = result.finishReason === 'cancelled' ? 'cancelled' : `finished: ${result.finishReason}`;
  process.stderr.write(`[${prompt}, ${generated}, ${finish}]\n`);
}
