// The chat view in InternLM's activity-bar container. The webview is rebuilt each time the view is
// shown (no retainContextWhenHidden): it restores from its own state at once, then asks the
// controller for the authoritative history.
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { fileAttachment, selectionAttachment, targetEditor } from './attachments';
import type { ChatController, ChatViewPort } from './chatController';
import type { Attachment, FromWebview, ToWebview } from './chatTypes';
import type { ActionNotice } from './notices';

export const CHAT_VIEW_ID = 'internlm.chat';

export class ChatViewProvider implements vscode.WebviewViewProvider, ChatViewPort {
  private view: vscode.WebviewView | undefined;
  private notice: ActionNotice | undefined;
  /** Whether the webview's script is running (it is not while the view is hidden). */
  private scriptReady = false;
  /** Messages that must not be lost while the script is not running (attachments, focus). */
  private pending: ToWebview[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly controller: ChatController,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    const media = vscode.Uri.joinPath(this.extensionUri, 'dist', 'media');
    view.webview.options = { enableScripts: true, localResourceRoots: [media] };
    view.webview.html = chatHtml(view.webview, media);
    view.webview.onDidReceiveMessage((message: FromWebview) => this.onMessage(message));
    view.onDidChangeVisibility(() => {
      if (!view.visible) this.scriptReady = false;
    });
    view.onDidDispose(() => {
      if (this.view === view) {
        this.view = undefined;
        this.scriptReady = false;
        this.controller.connect(undefined);
      }
    });
    this.view = view;
    this.scriptReady = false;
    this.controller.connect(this);
  }

  post(message: ToWebview): void {
    if (this.scriptReady) void this.view?.webview.postMessage(message);
  }

  setNotice(notice: ActionNotice | undefined): void {
    this.notice = notice;
    this.post({ type: 'notice', notice: notice && { message: notice.message, actionTitle: notice.action?.title } });
  }

  /** Opens the view; resolves once it is there to take messages. */
  async reveal(): Promise<void> {
    await vscode.commands.executeCommand(`${CHAT_VIEW_ID}.focus`);
  }

  /** Adds an attachment to the message being written, and puts the cursor there. */
  async attach(attachment: Attachment): Promise<void> {
    this.deliver({ type: 'attach', attachment });
    this.deliver({ type: 'focusInput' });
    await this.reveal();
  }

  private deliver(message: ToWebview): void {
    if (this.scriptReady) this.post(message);
    else this.pending.push(message);
  }

  private onMessage(message: FromWebview): void {
    switch (message.type) {
      case 'ready':
        this.scriptReady = true;
        this.post(this.controller.history());
        this.setNotice(this.notice);
        for (const pending of this.pending.splice(0)) this.post(pending);
        return;
      case 'send':
        void this.controller.send(message.text, message.attachments);
        return;
      case 'stop':
        this.controller.stop();
        return;
      case 'newChat':
        this.controller.newChat();
        return;
      case 'copy':
        void vscode.env.clipboard.writeText(message.code).then(() => vscode.window.setStatusBarMessage('Copied to the clipboard', 2000));
        return;
      case 'insert':
        void insertAtCursor(message.code);
        return;
      case 'attachSelection':
      case 'attachFile': {
        const editor = targetEditor();
        if (!editor) {
          void vscode.window.showInformationMessage('Open a file in an editor first.');
          return;
        }
        const attachment = message.type === 'attachSelection' ? selectionAttachment(editor) : fileAttachment(editor);
        if (typeof attachment === 'string') void vscode.window.showInformationMessage(attachment);
        else this.deliver({ type: 'attach', attachment });
        return;
      }
      case 'noticeAction': {
        const action = this.notice?.action;
        if (action) void vscode.commands.executeCommand(action.command, ...(action.arguments ?? []));
        return;
      }
    }
  }
}

async function insertAtCursor(code: string): Promise<void> {
  const editor = targetEditor();
  if (!editor) {
    void vscode.window.showInformationMessage('Open a file in an editor to insert the code.');
    return;
  }
  await editor.edit((edit) => {
    for (const selection of editor.selections) edit.replace(selection, code);
  });
  await vscode.window.showTextDocument(editor.document, editor.viewColumn);
}

function chatHtml(webview: vscode.Webview, media: vscode.Uri): string {
  const nonce = randomBytes(16).toString('base64');
  const uri = (name: string) => webview.asWebviewUri(vscode.Uri.joinPath(media, name)).toString();
  // Nothing remote, no inline script or style: only our own files, scripts with the nonce.
  const csp = [
    "default-src 'none'",
    `style-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
    `img-src ${webview.cspSource} data:`,
    `font-src ${webview.cspSource}`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${uri('chat.css')}">
<title>InternLM Chat</title>
</head>
<body>
<div id="chat-root">
  <div id="notice" hidden><p id="notice-text"></p><button id="notice-action" type="button"></button></div>
  <div id="messages" role="log" aria-live="polite" aria-label="Conversation"></div>
  <div id="empty" hidden>
    <p><strong>Ask InternLM anything about your code.</strong></p>
    <p>It runs on this machine; nothing leaves it. Attach a selection or the current file, or use
    <em>InternLM: Ask about Workspace</em> for questions about the whole workspace.</p>
  </div>
  <form id="composer">
    <div id="attachments" aria-label="Attachments"></div>
    <textarea id="input" rows="3" placeholder="Ask InternLM… (Enter to send, Shift+Enter for a new line)" aria-label="Message"></textarea>
    <div id="toolbar">
      <button id="attach-selection" type="button" class="secondary" title="Attach the editor's selection">+ Selection</button>
      <button id="attach-file" type="button" class="secondary" title="Attach the current file">+ File</button>
      <span id="speed" aria-live="off"></span>
      <button id="stop" type="button" hidden>Stop</button>
      <button id="send" type="submit">Send</button>
    </div>
  </form>
</div>
<script nonce="${nonce}" src="${uri('markdown.js')}"></script>
<script nonce="${nonce}" src="${uri('chat.js')}"></script>
</body>
</html>`;
}
