// The chat format (chatml, via server/prompt/chatml.ts) as token-id pieces the prompt builders
// combine. Long content (files, workspace) is tokenized in separately cached segments, so a change
// in one file re-tokenizes that file only and the ids of everything before it stay identical,
// which is what lets the engine reuse their KV cache.
import {
  chatTurnTokens, generationPromptTokens, IM_START, turnEndTokens, type ChatMessage, type ChatTokenizer,
} from '../prompt/chatml';

/** Pieces of one turn's content: text (tokenized here, as plain text) or ids tokenized earlier. */
export type Segment = string | readonly number[];

/** Appends ids one by one: `push(...ids)` overflows the call stack for a long file's ids. */
export function appendIds(target: number[], ids: readonly number[]): void {
  for (const id of ids) target.push(id);
}

export class ChatTemplate {
  readonly bos: number;
  /** `<|im_end|>\n` */
  readonly turnEnd: readonly number[];
  private readonly imStart: number;
  private readonly generation: readonly number[];

  constructor(private readonly tokenizer: ChatTokenizer) {
    this.bos = tokenizer.info.bosId;
    this.turnEnd = turnEndTokens(tokenizer);
    this.generation = generationPromptTokens(tokenizer);
    this.imStart = tokenizer.tokenize(IM_START, { special: true })[0];
  }

  /** Untrusted text: control-token lookalikes stay text. */
  plain(text: string): number[] {
    return this.tokenizer.tokenize(text, { special: false });
  }

  /** One whole turn, `<|im_start|>role\ncontent<|im_end|>\n`, exactly as chatml writes it. */
  turn(message: ChatMessage): number[] {
    return chatTurnTokens(this.tokenizer, message);
  }

  /** `<|im_start|>role\n`: what a segmented turn starts with. */
  turnStart(role: ChatMessage['role']): number[] {
    return [this.imStart, ...this.plain(`${role}\n`)];
  }

  /** One turn whose content is given in segments. */
  segmentedTurn(role: ChatMessage['role'], segments: readonly Segment[]): number[] {
    const ids = this.turnStart(role);
    for (const segment of segments) appendIds(ids, typeof segment === 'string' ? this.plain(segment) : segment);
    appendIds(ids, this.turnEnd);
    return ids;
  }

  /** `<|im_start|>assistant\n`: the model writes the reply next. */
  generationPrompt(): number[] {
    return [...this.generation];
  }
}
