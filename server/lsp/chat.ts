// internlm/chat: one conversation turn, streamed. Chats share the "chat" session, so a follow-up
// turn prefills only the new user message (usage.cachedTokens shows the reuse).
import { ResponseError, ErrorCodes } from 'vscode-languageserver';
import { CHAT_SAMPLING, cancelledBeforeStart, generate } from '../generation';
import { promptsFor } from '../prompts/kit';
import { ChatRequest, type ChatMessage, type ChatParams } from '../protocol';
import { Superseded } from '../scheduler';
import type { ServerContext } from './context';
import { abortSignalOf, deltaStream, generationTarget, onRequest } from './requests';

const ROLES = new Set(['system', 'user', 'assistant']);

function validMessages(params: ChatParams): ChatMessage[] {
  const messages = Array.isArray(params?.messages) ? params.messages : [];
  if (messages.length === 0 || !messages.every((m) => ROLES.has(m?.role) && typeof m.content === 'string')) {
    throw new ResponseError(ErrorCodes.InvalidParams, 'internlm/chat needs messages: [{role: "system"|"user"|"assistant", content: string}, …]');
  }
  return messages;
}

export function registerChat(ctx: ServerContext): void {
  onRequest(ctx.connection, ChatRequest, async (params, token) => {
    const messages = validMessages(params);
    const progress = ctx.progress.prefill('Reading the conversation', abortSignalOf(token));
    const { signal } = progress;
    try {
      return await ctx.scheduler.run('chat', signal, async () => {
        const engine = await ctx.host.engine();
        const { chat } = promptsFor(engine.model);
        const context = engine.sessions.contextOf('chat');
        const maxTokens = params.maxTokens ?? CHAT_SAMPLING.maxTokens;
        // The reply's room comes out of the history's budget, but never all of it.
        const { ids, droppedMessages } = chat.build(messages, context - Math.min(maxTokens, Math.floor(context / 2)));
        if (droppedMessages > 0) ctx.log(`chat: left out the ${droppedMessages} oldest messages to fit the context`);
        const { result, tokens } = await generate(generationTarget(ctx, engine, 'chat', progress), {
          prompt: ids,
          maxTokens,
          temperature: params.temperature ?? CHAT_SAMPLING.temperature,
          topP: params.topP ?? CHAT_SAMPLING.topP,
          signal,
          onText: deltaStream(ctx.connection, params.partialResultToken),
        });
        chat.remember(ids, result.text, tokens, (reply) => engine.model.detokenize(reply));
        return result;
      });
    } catch (error) {
      if (error instanceof Superseded) return cancelledBeforeStart();
      throw error;
    } finally {
      progress.end();
    }
  });
}
