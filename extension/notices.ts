// What the user must do before InternLM can answer, from the settings, the connection and the
// server's status: shown in the chat view and, once per session, as a notification.
import type * as vscode from 'vscode';
import type { StatusParams } from '../server/protocol';
import type { Connection } from './languageServer';
import { fixFor } from './statusBar';

export const MODEL_SOURCE = 'internlm/internlm2_5-7b-chat-gguf';
export const MODEL_SOURCE_URL = `https://huggingface.co/${MODEL_SOURCE}`;

export interface ActionNotice {
  message: string;
  action?: vscode.Command;
}

export const NO_MODEL_MESSAGE =
  'No model selected. InternLM runs a model file on this machine: download an InternLM2.5 GGUF file ' +
  `(for example internlm2_5-7b-chat-q4_k_m.gguf from ${MODEL_SOURCE} on Hugging Face), then select it.`;

export function noticeFor(modelPath: string, connection: Connection, status: StatusParams | undefined): ActionNotice | undefined {
  if (connection.kind === 'missing') {
    return {
      message: `The InternLM language server is missing (${connection.serverPath}). Reinstall the extension.`,
      action: { command: 'internlm.showLog', title: 'Show Server Log' },
    };
  }
  if (!modelPath || status?.errorKind === 'noModel') {
    return { message: NO_MODEL_MESSAGE, action: { command: 'internlm.selectModel', title: 'Select Model File…' } };
  }
  if (connection.kind === 'restarting') {
    return { message: 'The InternLM server stopped and is restarting.', action: { command: 'internlm.restartServer', title: 'Restart Now' } };
  }
  if (connection.kind === 'running' && status?.state === 'error') {
    const fix = fixFor(status.errorKind);
    return {
      message: status.message ?? 'The InternLM server reported an error.',
      action: { command: fix.command, arguments: fix.args, title: fix.title },
    };
  }
  return undefined;
}
