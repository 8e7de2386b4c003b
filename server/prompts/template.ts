// The chat format (chatml, via server/prompt/chatml.ts) as token-id pieces the prompt builders
// combine. Long content (files, workspace) is tokenized in separately cached segments, so a change
// in one file re-tokenizes that file only and the ids of everything before it stay identical,
// which is what lets the engine reuse their KV cache.
import { chatPromptTokens, IM_END, IM_START, type ChatMessage, type ChatTokenizer } from '../prompt/chatml';

/** Pieces of one turn's content: text (tokenized here, as plain text) or ids tokenized earlier. */
export type Segment = string | readonly number[];

export class ChatTemplate {
  readonly bos: number;
  readonly imEnd: number;
  private readonly imStart: number;

  constructor(private readonly tokenizer: ChatTokenizer) {
    this.bos = tokenizer.info.bosId;
    this.imStart = this.control(IM_START);
    this.imEnd = this.control(IM_END);
  }

  /** Untrusted text: control-token lookalikes stay text. */
  plain(text: string): number[] {
    return this.tokenizer.tokenize(text, { special: false });
  }

  /** One whole turn, `<|im_start|>role\ncontent<|im_end|>\n`, exactly as chatml writes it. */
  turn(message: ChatMessage): number[] {
    return chatPromptTokens(this.tokenizer, [message], { addGenerationPrompt: false }).slice(1);
  }

  /** One turn whose content is given in segments. */
  segmentedTurn(role: ChatMessage['role'], segments: readonly Segment[]): number[] {
    const ids = [this.imStart, ...this.plain(`${role}\n`)];
    for (const segment of segments) ids.push(...(typeof segment === 'string' ? this.plain(segment) : segment));
    ids.push(this.imEnd, ...this.plain('\n'));
    return ids;
  }

  /** `<|im_start|>assistant\n`: the model writes the reply next. */
  generationPrompt(): number[] {
    return chatPromptTokens(this.tokenizer, [], { addGenerationPrompt: true }).slice(1);
  }

  private control(text: string): number {
    const ids = this.tokenizer.tokenize(text, { special: true });
    if (ids.length !== 1) throw new Error(`the model's vocabulary has no ${text} control token; it is not an InternLM2 chat model`);
    return ids[0];
  }
}
