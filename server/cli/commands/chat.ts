// internlm chat: an interactive conversation in the chat template. The whole conversation is sent as
// the prompt every turn; the session keeps its KV cache, so only the new tokens are evaluated.
import readline from 'node:readline';
import type { Model, Session } from '../../../native/index';
import { chatPromptTokens, type ChatMessage } from '../../prompt/chatml';
import { intOption, parseOptions, requiredString } from '../args';
import { loadModel } from '../model';
import { reportGeneration } from '../report';

const MAX_REPLY_TOKENS = 1024;
const SAMPLING = { temperature: 0.8, topP: 0.8 };

export async function chatCommand(args: string[]): Promise<void> {
  const options = parseOptions(args, { model: { type: 'string' }, threads: { type: 'string' } });
  const modelPath = requiredString(options, 'model');
  const model = await loadModel(modelPath, { threads: intOption(options, 'threads', { min: 1 }) });
  const session = model.createSession();
  try {
    await converse(model, session);
  } finally {
    session.dispose();
    model.dispose();
  }
}

async function converse(model: Model, session: Session): Promise<void> {
  const interactive = process.stdin.isTTY === true;
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: interactive });
  const history: ChatMessage[] = [];
  let reply: AbortController | undefined;
  // Ctrl-C stops the reply being written; at the prompt it quits. A terminal reports it through
  // readline, a pipe as a signal to the process.
  const onInterrupt = () => (reply ? reply.abort() : rl.close());
  rl.on('SIGINT', onInterrupt);
  process.on('SIGINT', onInterrupt);
  const prompt = () => interactive && rl.prompt();

  if (interactive) process.stderr.write(`Chatting with ${model.info.name}. /reset starts over, /exit quits, Ctrl-C stops a reply.\n`);
  rl.setPrompt('> ');
  prompt();
  try {
    for await (const line of rl) {
      const command = line.trim();
      if (command === '/exit') break;
      if (command === '/reset') {
        history.length = 0;
        session.truncate(0);
        process.stderr.write('(conversation cleared)\n');
      } else if (command !== '') {
        history.push({ role: 'user', content: line });
        reply = new AbortController();
        const text = await answer(model, session, history, reply.signal);
        reply = undefined;
        if (text === undefined) history.pop();
        else history.push({ role: 'assistant', content: text });
      }
      prompt();
    }
  } finally {
    process.off('SIGINT', onInterrupt);
    rl.close();
  }
}

/** Streams the reply to the last user message; undefined when it cannot fit in the context. */
async function answer(model: Model, session: Session, history: ChatMessage[], signal: AbortSignal): Promise<string | undefined> {
  const prompt = fitToContext(model, history);
  if (prompt === undefined) {
    process.stderr.write(`(that message does not fit in the model's ${model.info.contextLength}-token context; try a shorter one)\n`);
    return undefined;
  }
  const result = await session.generate({
    ...SAMPLING,
    prompt,
    maxTokens: Math.min(MAX_REPLY_TOKENS, model.info.contextLength - prompt.length),
    signal,
    onText: (text) => process.stdout.write(text),
  });
  process.stdout.write('\n');
  if (result.finishReason !== 'stop') reportGeneration(result);
  return result.text;
}

/**
 * The prompt for the conversation, dropping the oldest turns (from `history` itself, so the cached
 * prefix stays stable afterwards) until it leaves room for a reply.
 */
function fitToContext(model: Model, history: ChatMessage[]): number[] | undefined {
  const context = model.info.contextLength;
  const replyRoom = Math.min(MAX_REPLY_TOKENS / 4, Math.floor(context / 4));
  for (;;) {
    const tokens = chatPromptTokens(model, history);
    if (tokens.length + replyRoom <= context) return tokens;
    if (history.length <= 1) return undefined;
    history.splice(0, 2);
  }
}
