// Prompt builders and token caches belong to one loaded model (its vocabulary): a new model gets
// fresh ones, and they go away with the old model.
import type { Model } from '../../native/index';
import { WorkspaceTokens } from '../workspace/pack';
import { ChatPrompts } from './chat';
import { CompletionPrompts } from './completion';
import { ChatTemplate } from './template';

export interface PromptKit {
  template: ChatTemplate;
  chat: ChatPrompts;
  completion: CompletionPrompts;
  workspace: WorkspaceTokens;
}

const kits = new WeakMap<Model, PromptKit>();

export function promptsFor(model: Model): PromptKit {
  let kit = kits.get(model);
  if (!kit) {
    const template = new ChatTemplate(model);
    kit = {
      template,
      chat: new ChatPrompts(template),
      completion: new CompletionPrompts(model),
      workspace: new WorkspaceTokens((text) => model.tokenize(text)),
    };
    kits.set(model, kit);
  }
  return kit;
}
