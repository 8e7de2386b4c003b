// Chat prompts. A follow-up turn repeats the whole conversation; to let the engine reuse the KV
// cache up to the new user message, the previous reply goes back in as the very tokens the model
// generated (re-tokenizing its text could split it differently and end the reuse there).
import { PromptTooLong } from '../generation';
import type { ChatMessage } from '../protocol';
import { appendIds, type ChatTemplate } from './template';

const DEFAULT_SYSTEM_PROMPT =
  'You are InternLM, a coding assistant running locally inside VS Code. Answer precisely and concisely. ' +
  'Use Markdown; put code in fenced blocks that name their language.';

interface LastReply {
  /** The prompt the reply was generated for, ending with the generation prompt. */
  promptIds: number[];
  text: string;
  tokens: number[];
}

function startsWith(ids: readonly number[], prefix: readonly number[]): boolean {
  return prefix.length <= ids.length && prefix.every((id, i) => ids[i] === id);
}

export class ChatPrompts {
  private last: LastReply | undefined;

  constructor(private readonly template: ChatTemplate) {}

  /**
   * The prompt for `messages` (a default system message is added when there is none). When it
   * exceeds `budget` tokens, the oldest turns after the system message are left out.
   */
  build(messages: readonly ChatMessage[], budget: number): { ids: number[]; droppedMessages: number } {
    const system = messages[0]?.role === 'system' ? messages[0] : { role: 'system' as const, content: DEFAULT_SYSTEM_PROMPT };
    const rest = messages[0]?.role === 'system' ? messages.slice(1) : messages.slice();
    for (let dropped = 0; dropped < rest.length; dropped++) {
      const ids = this.idsFor([system, ...rest.slice(dropped)]);
      if (ids.length <= budget) return { ids, droppedMessages: dropped };
    }
    throw new PromptTooLong(`The message is too long for the context: it needs more than ${budget} tokens. Shorten it or raise internlm.contextLength.`);
  }

  /** Records a reply so the next turn can reuse its tokens. */
  remember(promptIds: number[], text: string, tokens: number[], detokenize: (ids: number[]) => string): void {
    // Only tokens that spell the text exactly stand in for it (a cut stop string would not).
    this.last = detokenize(tokens) === text ? { promptIds, text, tokens } : undefined;
  }

  private idsFor(messages: readonly ChatMessage[]): number[] {
    const generation = this.template.generationPrompt();
    let ids = [this.template.bos];
    for (const message of messages) {
      const last = this.last;
      if (message.role === 'assistant' && last && message.content === last.text && startsWith(last.promptIds, ids) &&
          last.promptIds.length === ids.length + generation.length && startsWith(last.promptIds.slice(ids.length), generation)) {
        ids = [...last.promptIds, ...last.tokens, ...this.template.turnEnd];
      } else {
        appendIds(ids, this.template.turn(message));
      }
    }
    appendIds(ids, generation);
    return ids;
  }
}
