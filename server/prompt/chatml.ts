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

/** Token ids of the chat prompt for `messages`, starting with BOS. */
export function chatPromptTokens(tokenizer: ChatTokenizer, messages: readonly ChatMessage[], options: ChatPromptOptions = {}): number[] {
  const imStart = controlToken(tokenizer, IM_START);
  const imEnd = controlToken(tokenizer, IM_END);
  const plain = (text: string) => tokenizer.tokenize(text, { special: false });
  const ids = [tokenizer.info.bosId];
  for (const message of messages) {
    // The "\n" after <|im_end|> is a segment of its own: the next turn opens with a control token.
    ids.push(imStart, ...plain(`${message.role}\n${message.content}`), imEnd, ...plain('\n'));
  }
  if (options.addGenerationPrompt ?? true) ids.push(imStart, ...plain('assistant\n'));
  return ids;
}

/** The template as text (for display and debugging); not for tokenizing untrusted content. */
export function chatPromptText(messages: readonly ChatMessage[], options: ChatPromptOptions = {}): string {
  const turns = messages.map((m) => `${IM_START}${m.role}\n${m.content}${IM_END}\n`).join('');
  return `<s>${turns}${options.addGenerationPrompt ?? true ? `${IM_START}assistant\n` : ''}`;
}
