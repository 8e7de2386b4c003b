// Prompt builders and token caches belong to one loaded model (its vocabulary): a new model gets
// fresh ones, and they go away with the old model. The chat template is built on first use, so a
// model without chat tokens still completes code and fails only where the chat format is needed.
import type { Model } from '../../native/index';
import { WorkspaceTokens } from '../workspace/pack';
import { ChatPrompts } from './chat';
import { CompletionPrompts } from './completion';
import { ChatTemplate } from './template';

export class PromptKit {
  readonly completion: CompletionPrompts;
  readonly workspace: WorkspaceTokens;
  private chatTemplate: ChatTemplate | undefined;
  private chatPrompts: ChatPrompts | undefined;

  constructor(private readonly model: Model) {
    this.completion = new CompletionPrompts(model);
    this.workspace = new WorkspaceTokens((text) => model.tokenize(text));
  }

  get template(): ChatTemplate {
    this.chatTemplate ??= new ChatTemplate(this.model);
    return this.chatTemplate;
  }

  get chat(): ChatPrompts {
    this.chatPrompts ??= new ChatPrompts(this.template);
    return this.chatPrompts;
  }
}

const kits = new WeakMap<Model, PromptKit>();

export function promptsFor(model: Model): PromptKit {
  let kit = kits.get(model);
  if (!kit) {
    kit = new PromptKit(model);
    kits.set(model, kit);
  }
  return kit;
}
