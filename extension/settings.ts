// Typed access to the internlm.* settings (declared in package.json's contributes.configuration).
import * as vscode from 'vscode';
import type { Device, KVTypeSetting, RopeScaling, SamplingParams, ServerSettings } from '../server/protocol';

const SECTION = 'internlm';

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(SECTION);
}

/** The settings the server reads; a change to any of them is pushed to it. */
export function serverSettings(): ServerSettings {
  const c = config();
  return {
    modelPath: c.get<string>('modelPath', '').trim(),
    device: c.get<Device>('device', 'auto'),
    threads: c.get<number>('threads', 0),
    contextLength: c.get<number>('contextLength', 0),
    kvType: c.get<KVTypeSetting>('kvType', 'auto'),
    ropeScaling: c.get<RopeScaling>('ropeScaling', 'auto'),
    completion: { maxTokens: c.get<number>('completion.maxTokens', 64) },
    workspaceCache: { maxBytes: c.get<number>('workspaceCache.maxBytes', 4 * 2 ** 30) },
  };
}

export function affectsServer(e: vscode.ConfigurationChangeEvent): boolean {
  return ['modelPath', 'device', 'threads', 'contextLength', 'kvType', 'ropeScaling', 'completion.maxTokens', 'workspaceCache.maxBytes']
    .some((key) => e.affectsConfiguration(`${SECTION}.${key}`));
}

export interface CompletionSettings {
  enabled: boolean;
  debounceMs: number;
  /** Language id → enabled; "*" for every language not listed. */
  languages: Record<string, boolean>;
}

export function completionSettings(): CompletionSettings {
  const c = config();
  return {
    enabled: c.get<boolean>('completion.enabled', true),
    debounceMs: c.get<number>('completion.debounceMs', 150),
    languages: c.get<Record<string, boolean>>('completion.languages', {}),
  };
}

export function completionEnabledFor(settings: CompletionSettings, languageId: string): boolean {
  if (!settings.enabled) return false;
  return settings.languages[languageId] ?? settings.languages['*'] ?? true;
}

export async function setCompletionsEnabled(enabled: boolean): Promise<void> {
  await config().update('completion.enabled', enabled, vscode.ConfigurationTarget.Global);
}

export interface ChatSettings {
  /** "" leaves the system prompt to the server. */
  systemPrompt: string;
  sampling: Required<SamplingParams>;
}

export function chatSettings(): ChatSettings {
  const c = config();
  return {
    systemPrompt: c.get<string>('chat.systemPrompt', ''),
    sampling: {
      temperature: c.get<number>('chat.temperature', 0.8),
      topP: c.get<number>('chat.topP', 0.8),
      maxTokens: c.get<number>('chat.maxTokens', 2048),
    },
  };
}

/** Sets the model where the current one is set: a workspace value (npm start writes one) hides a global one. */
export async function setModelPath(modelPath: string): Promise<void> {
  const inWorkspace = config().inspect<string>('modelPath')?.workspaceValue !== undefined;
  await config().update('modelPath', modelPath, inWorkspace ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global);
}
