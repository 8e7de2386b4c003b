// internlm chat: an interactive conversation in the chat template. The whole conversation is sent as
// the prompt every turn; the session keeps its KV cache, so only the new tokens are evaluated.
import readline from 'node:readline';
import type { Model, Session } from '../../../native/index';
import { chatTurnTokens, generationPromptTokens, turnEndTokens } from '../../prompt/chatml';
import { parseOptions, requiredString } from '../args';
import { ENGINE_FLAGS, SESSION_FLAGS, engineOptions, loadModel, sessionOptions } from '../model';
import { reportGeneration } from '../report';
import { DEFAULT_SAMPLING } from '../sampling';

const MAX_REPLY_TOKENS = 1024;

/**
 * The conversation as token ids, one entry per turn. A reply is kept as the very tokens the model
 * generated after the generation prompt (re-tokenizing its text could split it differently), so
 * the next turn's prompt extends the cached one exactly.
 */
type Turns = number[][];

export async function chatCommand(args: string[]): Promise<void> {
  const options = parseOptions(args, { model: { type: 'string' }, ...ENGINE_FLAGS, ...SESSION_FLAGS });
  const modelPath = requiredString(options, 'model');
  const model = await loadModel(modelPath, engineOptions(options));
  const session = model.createSession(sessionOptions(options));
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
  const turns: Turns = [];
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
        turns.length = 0;
        session.truncate(0);
        process.stderr.write('(conversation cleared)\n');
      } else if (command !== '') {
        reply = new AbortController();
        await answer(model, session, turns, line, reply.signal);
        reply = undefined;
      }
      prompt();
    }
  } finally {
    process.off('SIGINT', onInterrupt);
    rl.close();
  }
}

/** Streams the reply to `message` and adds both turns to `turns` (neither when it cannot fit). */
async function answer(model: Model, session: Session, turns: Turns, message: string, signal: AbortSignal): Promise<void> {
  const generation = generationPromptTokens(model);
  const user = chatTurnTokens(model, { role: 'user', content: message });
  const prompt = fitToContext(model, turns, [...user, ...generation]);
  if (prompt === undefined) {
    process.stderr.write(`(that message does not fit in the model's ${model.info.contextLength}-token context; try a shorter one)\n`);
    return;
  }
  const result = await session.generate({
    ...DEFAULT_SAMPLING,
    prompt,
    maxTokens: Math.min(MAX_REPLY_TOKENS, model.info.contextLength - prompt.length),
    signal,
    onText: (text) => process.stdout.write(text),
  });
  process.stdout.write('\n');
  if (result.finishReason !== 'stop') reportGeneration(result);
  turns.push(user, [...generation, ...result.tokens, ...turnEndTokens(model)]);
}

/**
 * The prompt for the conversation followed by `next`, dropping the oldest exchanges (from `turns`
 * itself, so the cached prefix stays stable afterwards) until it leaves room for a reply.
 */
function fitToContext(model: Model, turns: Turns, next: number[]): number[] | undefined {
  const context = model.info.contextLength;
  const replyRoom = Math.min(MAX_REPLY_TOKENS / 4, Math.floor(context / 4));
  for (;;) {
    const ids = [model.info.bosId, ...turns.flat(), ...next];
    if (ids.length + replyRoom <= context) return ids;
    if (turns.length === 0) return undefined;
    turns.splice(0, 2);
  }
}
