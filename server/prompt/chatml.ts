// The InternLM2.5 chat template (chatml), built as token ids:
//   <s><|im_start|>system\n{sys}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n
// Control tokens come from trusted template text tokenized with special=true; everything between
// them (role name, newline, message content) is tokenized as plain text with special=false, so a
// message containing "<|im_end|>" stays text. Cutting the text exactly at the control tokens is what
// the Hugging Face tokenizer does too, so benign prompts get the same ids as the official template.

export type ChatRole = 'system' | 'user' | 'assistant' | 'environment';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** What the template needs from a model: tokenization (without BOS) and its BOS id. */
export interface ChatTokenizer {
  tokenize(text: string, options: { special: boolean }): number[];
  readonly info: { readonly bosId: number };
}

export interface ChatPromptOptions {
  /** Ends with "<|im_start|>assistant\n" so the model writes the reply (default true). */
  addGenerationPrompt?: boolean;
}

export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';

function controlToken(tokenizer: ChatTokenizer, text: string): number {
  const ids = tokenizer.tokenize(text, { special: true });
  if (ids.length !== 1) throw new Error(`the model's vocabulary has no ${text} control token; it is not an InternLM2 chat model`);
  return ids[0];
}

const plain = (tokenizer: ChatTokenizer, text: string) => tokenizer.tokenize(text, { special: false });

/** `<|im_end|>\n`: closes a turn. */
export function turnEndTokens(tokenizer: ChatTokenizer): number[] {
  return [controlToken(tokenizer, IM_END), ...plain(tokenizer, '\n')];
}

/** One turn: `<|im_start|>{role}\n{content}<|im_end|>\n`. */
export function chatTurnTokens(tokenizer: ChatTokenizer, message: ChatMessage): number[] {
  return [controlToken(tokenizer, IM_START), ...plain(tokenizer, `${message.role}\n${message.content}`), ...turnEndTokens(tokenizer)];
}

/** `<|im_start|>assistant\n`: what the model sees right before it writes a reply. */
export function generationPromptTokens(tokenizer: ChatTokenizer): number[] {
  return [controlToken(tokenizer, IM_START), ...plain(tokenizer, 'assistant\n')];
}

/** Token ids of the chat prompt for `messages`, starting with BOS. */
export function chatPromptTokens(tokenizer: ChatTokenizer, messages: readonly ChatMessage[], options: ChatPromptOptions = {}): number[] {
  // concat, not push(...): a long message's ids would overflow the call's argument stack.
  let ids = [tokenizer.info.bosId];
  for (const message of messages) ids = ids.concat(chatTurnTokens(tokenizer, message));
  if (options.addGenerationPrompt ?? true) ids = ids.concat(generationPromptTokens(tokenizer));
  return ids;
}
