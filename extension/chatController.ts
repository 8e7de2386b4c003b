// The conversation and the request in flight, independent of the webview (which comes and goes as
// the view is hidden and shown): runs chat, workspace and analysis requests, streams their text,
// keeps the history in workspace state.
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import {
  AnalyzeFileRequest,
  AskWorkspaceRequest,
  ChatRequest,
  type AskWorkspaceResult,
  type ChatMessage,
  type FinishReason,
  type PrefillStatus,
  type SkippedFile,
  type TextDelta,
  type Timings,
  type Usage,
} from '../server/protocol';
import { messageWithAttachments } from './attachments';
import type { Attachment, ChatEntry, EntryKind, ToWebview } from './chatTypes';
import { errorMessage, type LanguageServer } from './languageServer';
import { prefillLine } from './prefillText';
import { chatSettings } from './settings';

const HISTORY_KEY = 'internlm.chat.history';
const MAX_ENTRIES = 200;

/** Where the controller's updates go: the chat webview while it exists. */
export interface ChatViewPort {
  post(message: ToWebview): void;
}

interface Finished {
  content: string;
  finishReason: FinishReason;
  meta?: string;
  footnote?: string;
}

type Runner = (token: vscode.CancellationToken, onDelta: (delta: TextDelta) => void) => Promise<Finished>;

export class ChatController implements vscode.Disposable {
  private entries: ChatEntry[];
  private running: { cts: vscode.CancellationTokenSource } | undefined;
  private port: ChatViewPort | undefined;

  constructor(
    private readonly server: LanguageServer,
    private readonly storage: vscode.Memento,
  ) {
    // A reload in the middle of a reply leaves it as far as it got.
    this.entries = storage.get<ChatEntry[]>(HISTORY_KEY, []).map((e) => (e.state === 'streaming' ? { ...e, state: 'stopped' } : e));
  }

  get busy(): boolean {
    return this.running !== undefined;
  }

  connect(port: ChatViewPort | undefined): void {
    this.port = port;
  }

  private reading = '';

  history(): ToWebview {
    return { type: 'history', entries: this.entries, busy: this.busy };
  }

  /** Live speed from the server's status while a reply streams. */
  showSpeed(tokensPerSecond: number): void {
    if (this.busy) this.port?.post({ type: 'speed', tokensPerSecond });
  }

  /** A long prompt being read: shown in place of "Thinking" until the reply starts. */
  showReading(prefill: PrefillStatus | undefined): void {
    const text = this.busy && prefill ? prefillLine(prefill) : '';
    if (text !== this.reading) this.port?.post({ type: 'reading', text });
    this.reading = text;
  }

  send(text: string, attachments: Attachment[]): Promise<void> {
    const conversation = this.conversation();
    const user = this.userEntry('chat', text, attachments);
    conversation.push({ role: 'user', content: messageWithAttachments(text, attachments) });
    const settings = chatSettings();
    const messages: ChatMessage[] = settings.systemPrompt ? [{ role: 'system', content: settings.systemPrompt }, ...conversation] : conversation;
    return this.run(user, async (token, onDelta) => {
      const result = await this.server.request(ChatRequest, { messages, ...settings.sampling }, token, onDelta);
      return { content: result.text, finishReason: result.finishReason, meta: formatMeta(result.usage, result.timings), footnote: lengthNote(result.finishReason) };
    });
  }

  askWorkspace(question: string): Promise<void> {
    const user = this.userEntry('workspace', question);
    return this.run(user, async (token, onDelta) => {
      const result = await this.server.request(AskWorkspaceRequest, { question, ...chatSettings().sampling }, token, onDelta);
      return {
        content: result.text,
        finishReason: result.finishReason,
        meta: formatMeta(result.usage, result.timings),
        footnote: [workspaceNote(result), lengthNote(result.finishReason)].filter(Boolean).join('\n\n'),
      };
    });
  }

  analyzeFile(document: vscode.TextDocument): Promise<void> {
    const user = this.userEntry('analysis', `Analyze ${vscode.workspace.asRelativePath(document.uri, false)}`);
    return this.run(user, async (token) => {
      const result = await this.server.request(AnalyzeFileRequest, { uri: document.uri.toString() }, token);
      const count = result.findings.length;
      return {
        content: result.report,
        finishReason: token.isCancellationRequested ? 'cancelled' : 'stop',
        meta: formatMeta(result.usage, result.timings),
        footnote: count ? `${count} finding${count === 1 ? '' : 's'} in the Problems panel.` : 'No findings.',
      };
    });
  }

  stop(): void {
    this.running?.cts.cancel();
  }

  newChat(): void {
    this.stop();
    this.entries = [];
    void this.save();
    this.port?.post(this.history());
  }

  dispose(): void {
    this.stop();
  }

  /** Earlier chat turns that got an answer, as the model should see them. */
  private conversation(): ChatMessage[] {
    const messages: ChatMessage[] = [];
    for (let i = 0; i + 1 < this.entries.length; i++) {
      const user = this.entries[i];
      const reply = this.entries[i + 1];
      if (user.kind !== 'chat' || user.role !== 'user' || reply.role !== 'assistant') continue;
      if (reply.state === 'error' || !reply.content) continue;
      messages.push({ role: 'user', content: messageWithAttachments(user.content, user.attachments) }, { role: 'assistant', content: reply.content });
    }
    return messages;
  }

  private userEntry(kind: EntryKind, content: string, attachments?: Attachment[]): ChatEntry {
    return { id: randomUUID(), role: 'user', kind, content, attachments: attachments?.length ? attachments : undefined, state: 'done' };
  }

  /** One request at a time (there is one model): a new one stops the one in flight. */
  private async run(user: ChatEntry, runner: Runner): Promise<void> {
    this.stop();
    const reply: ChatEntry = { id: randomUUID(), role: 'assistant', kind: user.kind, content: '', state: 'streaming' };
    this.add(user);
    this.add(reply);
    const cts = new vscode.CancellationTokenSource();
    this.running = { cts };
    this.port?.post({ type: 'busy', busy: true });
    try {
      const finished = await runner(cts.token, ({ delta }) => {
        reply.content += delta;
        this.port?.post({ type: 'delta', id: reply.id, delta });
      });
      reply.content = finished.content;
      reply.state = finished.finishReason === 'cancelled' ? 'stopped' : 'done';
      reply.meta = finished.meta;
      reply.footnote = finished.footnote || undefined;
    } catch (error) {
      if (cts.token.isCancellationRequested) {
        reply.state = 'stopped';
      } else {
        reply.state = 'error';
        reply.error = errorMessage(error);
      }
    } finally {
      if (this.running?.cts === cts) {
        this.running = undefined;
        this.reading = '';
        this.port?.post({ type: 'busy', busy: false });
      }
      cts.dispose();
      this.port?.post({ type: 'entry', entry: reply });
      await this.save();
    }
  }

  private add(entry: ChatEntry): void {
    this.entries.push(entry);
    if (this.entries.length > MAX_ENTRIES) this.entries.splice(0, this.entries.length - MAX_ENTRIES);
    this.port?.post({ type: 'entry', entry });
  }

  private save(): Thenable<void> {
    return this.storage.update(HISTORY_KEY, this.entries);
  }
}

export function formatMeta(usage: Usage, timings: Timings): string {
  const parts: string[] = [];
  if (usage.completionTokens > 0 && timings.generateMs > 0) parts.push(`${((usage.completionTokens * 1000) / timings.generateMs).toFixed(1)} tok/s`);
  parts.push(`${usage.completionTokens} tokens`);
  parts.push(`prompt ${usage.promptTokens}${usage.cachedTokens ? ` (${usage.cachedTokens} cached)` : ''}`);
  parts.push(`${((timings.promptMs + timings.generateMs) / 1000).toFixed(1)} s`);
  return parts.join(' · ');
}

function lengthNote(finishReason: FinishReason): string {
  return finishReason === 'length' ? 'The reply reached its token limit (internlm.chat.maxTokens).' : '';
}

const SKIP_REASONS: Record<SkippedFile['reason'], string> = {
  binary: 'binary',
  tooLarge: 'too large',
  generated: 'generated',
  overBudget: 'did not fit',
};

function workspaceNote(result: AskWorkspaceResult): string {
  const included = `Context: ${result.filesIncluded} file${result.filesIncluded === 1 ? '' : 's'}, ${result.contextTokens} tokens.`;
  const skipped = result.filesSkipped;
  if (!skipped.length) return included;
  const shown = skipped.slice(0, 20).map((f) => `\`${f.path}\` (${SKIP_REASONS[f.reason] ?? f.reason})`);
  const more = skipped.length > shown.length ? `, and ${skipped.length - shown.length} more` : '';
  return `${included} Left out: ${shown.join(', ')}${more}.`;
}
