// What the chat history holds and the messages between the extension and the chat webview
// (media/chat.js mirrors these shapes).

/** Code the user attached to a message: a selection or a whole file. */
export interface Attachment {
  /** Shown on the chip and in the message, e.g. "src/app.ts:10-24". */
  label: string;
  languageId: string;
  text: string;
}

/** chat: a conversation turn; workspace: Ask about Workspace; analysis: Analyze Current File. */
export type EntryKind = 'chat' | 'workspace' | 'analysis';
export type EntryState = 'streaming' | 'done' | 'stopped' | 'error';

export interface ChatEntry {
  id: string;
  role: 'user' | 'assistant';
  kind: EntryKind;
  /** Markdown for the assistant, plain text for the user. */
  content: string;
  attachments?: Attachment[];
  state: EntryState;
  /** One line of numbers under a reply: speed, tokens, cache reuse, time. */
  meta?: string;
  /** Markdown after a reply, e.g. the files a workspace question left out. */
  footnote?: string;
  error?: string;
}

/**
 * A call to action shown above the conversation (e.g. no model selected yet). The webview only
 * names the action's title; the extension keeps the command it runs.
 */
export interface Notice {
  message: string;
  actionTitle?: string;
}

export type ToWebview =
  | { type: 'history'; entries: ChatEntry[]; busy: boolean }
  /** An entry added or replaced as a whole. */
  | { type: 'entry'; entry: ChatEntry }
  /** Text appended to a streaming entry. */
  | { type: 'delta'; id: string; delta: string }
  | { type: 'busy'; busy: boolean }
  /** Live decoding speed while a reply streams. */
  | { type: 'speed'; tokensPerSecond: number }
  /** Progress of a long prompt being read before the reply starts ('' when none). */
  | { type: 'reading'; text: string }
  | { type: 'attach'; attachment: Attachment }
  | { type: 'notice'; notice: Notice | undefined }
  | { type: 'focusInput' };

export type FromWebview =
  | { type: 'ready' }
  | { type: 'send'; text: string; attachments: Attachment[] }
  | { type: 'stop' }
  | { type: 'newChat' }
  | { type: 'copy'; code: string }
  | { type: 'insert'; code: string }
  | { type: 'attachSelection' }
  | { type: 'attachFile' }
  | { type: 'noticeAction' };
