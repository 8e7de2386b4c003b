// Two status-bar items: the server's state (loading %, ready, generating tok/s, reading a long
// prompt with a click that cancels it, error with a click-through fix) and the inline-completion toggle.
import * as vscode from 'vscode';
import type { ErrorKind, PrefillStatus, StatusParams } from '../server/protocol';
import type { Connection } from './languageServer';
import { prefillPercent, shortDuration } from './prefillText';
import { completionEnabledFor, completionSettings } from './settings';

interface Fix {
  command: string;
  args?: unknown[];
  title: string;
}

const FIXES: Record<ErrorKind, Fix> = {
  noModel: { command: 'internlm.selectModel', title: 'Select Model File…' },
  modelNotFound: { command: 'internlm.selectModel', title: 'Select Model File…' },
  badModel: { command: 'internlm.selectModel', title: 'Select Model File…' },
  outOfMemory: { command: 'workbench.action.openSettings', args: ['internlm.contextLength'], title: 'Lower the Context Length' },
  noGpu: { command: 'workbench.action.openSettings', args: ['internlm.device'], title: 'Choose the Device' },
  internal: { command: 'internlm.showLog', title: 'Show Server Log' },
};

export function fixFor(kind: ErrorKind | undefined): Fix {
  return FIXES[kind ?? 'internal'];
}

interface View {
  text: string;
  /** For screen readers (and the end-to-end tests): the state in words. */
  label: string;
  tooltip: string | vscode.MarkdownString;
  command: vscode.Command | string;
  error?: boolean;
}

export class StatusBar implements vscode.Disposable {
  private readonly server: vscode.StatusBarItem;
  private readonly completions: vscode.StatusBarItem;
  private connection: Connection = { kind: 'stopped' };
  private status: StatusParams | undefined;

  constructor() {
    this.server = vscode.window.createStatusBarItem('internlm.status', vscode.StatusBarAlignment.Right, 100);
    this.server.name = 'InternLM Status';
    this.completions = vscode.window.createStatusBarItem('internlm.completions', vscode.StatusBarAlignment.Right, 99);
    this.completions.name = 'InternLM Inline Completions';
    this.completions.command = 'internlm.toggleCompletions';
    this.render();
    this.renderCompletions();
    this.server.show();
    this.completions.show();
  }

  setConnection(connection: Connection): void {
    this.connection = connection;
    if (connection.kind !== 'running') this.status = undefined;
    this.render();
  }

  setStatus(status: StatusParams): void {
    this.status = status;
    this.render();
  }

  /** Re-reads the completion settings (after a settings change or a switch of editor). */
  renderCompletions(): void {
    const settings = completionSettings();
    const languageId = vscode.window.activeTextEditor?.document.languageId;
    const active = languageId ? completionEnabledFor(settings, languageId) : settings.enabled;
    this.completions.text = active ? '$(sparkle) Completions' : '$(circle-slash) Completions';
    let tooltip = `InternLM inline completions are ${settings.enabled ? 'on' : 'off'}. Click to turn them ${settings.enabled ? 'off' : 'on'}.`;
    if (settings.enabled && !active && languageId) tooltip += ` They are off for ${languageId} (internlm.completion.languages).`;
    this.completions.tooltip = tooltip;
    this.completions.accessibilityInformation = { label: `InternLM completions ${active ? 'on' : 'off'}` };
  }

  dispose(): void {
    this.server.dispose();
    this.completions.dispose();
  }

  private render(): void {
    const view = this.view();
    this.server.text = view.text;
    this.server.tooltip = view.tooltip;
    this.server.command = view.command;
    this.server.backgroundColor = view.error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    this.server.accessibilityInformation = { label: view.label };
  }

  private view(): View {
    const c = this.connection;
    switch (c.kind) {
      case 'missing':
        return {
          text: '$(error) InternLM: server missing',
          label: 'InternLM: server missing',
          tooltip: `The language server was not found at ${c.serverPath}. Reinstall the extension (or run "npm run build" in a development checkout).`,
          command: 'internlm.showLog',
          error: true,
        };
      case 'starting':
        return { text: '$(loading~spin) InternLM: starting', label: 'InternLM: starting', tooltip: 'Starting the InternLM server…', command: 'internlm.showLog' };
      case 'restarting':
        return {
          text: '$(warning) InternLM: restarting',
          label: 'InternLM: restarting',
          tooltip: `The InternLM server stopped (${c.reason}); restarting in ${Math.round(c.delayMs / 1000)} s. Click to restart now.`,
          command: 'internlm.restartServer',
          error: true,
        };
      case 'stopped':
        return { text: '$(circle-slash) InternLM: stopped', label: 'InternLM: stopped', tooltip: 'The InternLM server is not running. Click to start it.', command: 'internlm.restartServer' };
      case 'running':
        return this.statusView();
    }
  }

  private statusView(): View {
    const s = this.status;
    const focusChat: vscode.Command = { command: 'internlm.chat.focus', title: 'Open Chat' };
    if (!s) return { text: '$(loading~spin) InternLM', label: 'InternLM: starting', tooltip: 'Waiting for the InternLM server…', command: 'internlm.showLog' };
    if (s.prefill && (s.state === 'busy' || s.state === 'ready')) return this.prefillView(s.prefill);
    switch (s.state) {
      case 'loading': {
        const percent = s.progress === undefined ? '' : ` ${Math.round(s.progress * 100)}%`;
        return { text: `$(loading~spin) InternLM: loading${percent}`, label: `InternLM: loading${percent}`, tooltip: s.message ?? 'Loading the model…', command: 'internlm.showLog' };
      }
      case 'busy': {
        const speed = s.tokensPerSecond ? ` ${s.tokensPerSecond.toFixed(1)} tok/s` : '';
        return { text: `$(sync~spin) InternLM${speed}`, label: `InternLM: generating${speed}`, tooltip: this.details(s, 'Generating…'), command: focusChat };
      }
      case 'ready':
        return { text: '$(hubot) InternLM', label: 'InternLM: ready', tooltip: this.details(s, 'Ready.'), command: focusChat };
      case 'error': {
        const fix = fixFor(s.errorKind);
        const tooltip = new vscode.MarkdownString(
          `${escapeMarkdown(s.message ?? 'The InternLM server reported an error.')}\n\n[${fix.title}](command:${fix.command}${
            fix.args ? `?${encodeURIComponent(JSON.stringify(fix.args))}` : ''
          })`,
        );
        tooltip.isTrusted = { enabledCommands: [fix.command] };
        return { text: '$(error) InternLM', label: `InternLM: error: ${s.message ?? 'see the server log'}`, tooltip, command: { command: fix.command, arguments: fix.args, title: fix.title }, error: true };
      }
    }
  }

  /** "$(sync~spin) InternLM 15% · ETA 54s"; a click cancels the request that is reading. */
  private prefillView(p: PrefillStatus): View {
    const percent = prefillPercent(p);
    const eta = p.secondsLeft === undefined ? '' : ` · ETA ${shortDuration(p.secondsLeft)}`;
    const numbers = `${p.done.toLocaleString('en-US')} / ${p.total.toLocaleString('en-US')} tokens` +
      (p.tokensPerSecond ? ` at ${p.tokensPerSecond.toLocaleString('en-US')} tokens/s` : '');
    return {
      text: `$(sync~spin) InternLM ${percent}${eta}`,
      label: `InternLM: ${p.title.toLowerCase()}, ${percent}${eta.replace(' · ', ', ')}`,
      tooltip: new vscode.MarkdownString(`**InternLM** — ${escapeMarkdown(p.title)}: ${escapeMarkdown(numbers)}\n\nClick to cancel.`),
      command: { command: 'internlm.cancelPrefill', arguments: [p.token], title: 'Cancel' },
    };
  }

  private details(s: StatusParams, headline: string): vscode.MarkdownString {
    const lines = [`**InternLM** — ${escapeMarkdown(s.message ?? headline)}`];
    if (s.model) lines.push(`Model: ${escapeMarkdown(s.model)}`);
    if (s.device) lines.push(`Device: ${escapeMarkdown(s.device)}`);
    if (s.memory) lines.push(`Memory: ${formatBytes(s.memory.used)}${s.memory.total ? ` of ${formatBytes(s.memory.total)}` : ''}`);
    if (s.tokensPerSecond) lines.push(`Speed: ${s.tokensPerSecond.toFixed(1)} tokens/s`);
    if (s.context) lines.push(`Context: ${s.context.tokens.toLocaleString('en-US')} tokens (${escapeMarkdown(s.context.kvType)} KV cache)`);
    return new vscode.MarkdownString(lines.join('\n\n'));
  }
}

function formatBytes(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, '\\$&');
}
