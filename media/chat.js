// @ts-check
// The chat view's script. It renders the conversation the extension sends (extension/chatTypes.ts
// has the message shapes), streams replies in as they arrive, and keeps a copy in the webview state
// so that the view shows at once when it is rebuilt. DOM is built with createElement and
// textContent only; markdown arrives as a tree from markdown.js.
(function () {
  'use strict';

  /**
   * @typedef {{ label: string, languageId: string, text: string }} Attachment
   * @typedef {{ id: string, role: 'user' | 'assistant', kind: 'chat' | 'workspace' | 'analysis',
   *   content: string, attachments?: Attachment[], state: 'streaming' | 'done' | 'stopped' | 'error',
   *   meta?: string, footnote?: string, error?: string }} Entry
   * @typedef {{ entries: Entry[], draft: string, attachments: Attachment[] }} State
   * @typedef {string | { tag: string, children?: MdNode[], href?: string, start?: number, align?: string }} MdNode
   */

  const vscode = /** @type {any} */ (globalThis).acquireVsCodeApi();
  const markdown = /** @type {any} */ (globalThis).InternlmMarkdown;

  /** @param {string} id */
  const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
  const messages = byId('messages');
  const empty = byId('empty');
  const input = /** @type {HTMLTextAreaElement} */ (byId('input'));
  const sendButton = /** @type {HTMLButtonElement} */ (byId('send'));
  const stopButton = /** @type {HTMLButtonElement} */ (byId('stop'));
  const speed = byId('speed');
  const attachmentsBox = byId('attachments');
  const notice = byId('notice');

  /** @type {State} */
  const state = Object.assign({ entries: [], draft: '', attachments: [] }, vscode.getState() ?? {});
  let busy = false;
  /** A long prompt's progress, shown in place of "Thinking" until the reply starts. */
  let reading = '';

  const KIND_BADGES = { workspace: 'Workspace', analysis: 'Analysis' };
  const TAGS = new Set(['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'ul', 'ol', 'li', 'blockquote', 'hr', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'strong', 'em', 'del', 'code', 'br', 'a']);

  // ------------------------------------------------------------ rendering

  /**
   * @param {string} tag
   * @param {string} [className]
   * @param {string} [text]
   */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** @param {MdNode} node @returns {Node} */
  function toDom(node) {
    if (typeof node === 'string') return document.createTextNode(node);
    if (node.tag === 'codeblock') return codeBlock(/** @type {any} */ (node));
    const element = /** @type {any} */ (node);
    const children = /** @type {MdNode[]} */ (element.children ?? []);
    if (!TAGS.has(element.tag)) {
      const fragment = document.createDocumentFragment();
      children.forEach((child) => fragment.appendChild(toDom(child)));
      return fragment;
    }
    const dom = document.createElement(element.tag);
    if (element.tag === 'a' && typeof element.href === 'string' && markdown.SAFE_URL.test(element.href)) {
      dom.setAttribute('href', element.href);
      dom.title = element.href;
    }
    if (element.tag === 'ol' && element.start) dom.setAttribute('start', String(element.start));
    if (element.align) dom.className = `align-${element.align}`;
    children.forEach((child) => dom.appendChild(toDom(child)));
    return dom;
  }

  /** @param {{ lang: string, code: string }} block */
  function codeBlock(block) {
    const box = el('div', 'codeblock');
    const bar = el('div', 'codeblock-bar');
    bar.append(el('span', 'lang', block.lang), el('button', 'copy', 'Copy'), el('button', 'insert', 'Insert at Cursor'));
    bar.querySelectorAll('button').forEach((b) => b.setAttribute('type', 'button'));
    const pre = el('pre');
    pre.appendChild(el('code', undefined, block.code));
    box.append(bar, pre);
    return box;
  }

  /** @param {string} text */
  function renderMarkdown(text) {
    const fragment = document.createDocumentFragment();
    for (const node of markdown.parse(text)) fragment.appendChild(toDom(node));
    return fragment;
  }

  /** @param {Attachment} attachment @param {(() => void) | undefined} onRemove */
  function chip(attachment, onRemove) {
    const box = el('span', 'chip');
    box.title = attachment.text.length > 400 ? `${attachment.text.slice(0, 400)}…` : attachment.text;
    box.appendChild(el('span', undefined, attachment.label));
    if (onRemove) {
      const remove = el('button', undefined, '×');
      remove.setAttribute('type', 'button');
      remove.setAttribute('aria-label', `Remove ${attachment.label}`);
      remove.addEventListener('click', onRemove);
      box.appendChild(remove);
    }
    return box;
  }

  /** @param {Entry} entry */
  function renderEntry(entry) {
    const box = el('div', `entry ${entry.role} ${entry.state}`);
    box.dataset.id = entry.id;
    const header = el('div', 'entry-header');
    header.appendChild(el('span', undefined, entry.role === 'user' ? 'You' : 'InternLM'));
    const badge = /** @type {Record<string, string>} */ (KIND_BADGES)[entry.kind];
    if (badge && entry.role === 'user') header.appendChild(el('span', 'badge', badge));
    box.appendChild(header);
    if (entry.role === 'user') {
      for (const a of entry.attachments ?? []) box.appendChild(chip(a, undefined));
      box.appendChild(el('div', 'text', entry.content));
      return box;
    }
    const content = el('div', 'content');
    if (entry.content) content.appendChild(renderMarkdown(entry.content));
    else if (entry.state === 'streaming') content.appendChild(el('span', 'thinking', reading || (entry.kind === 'analysis' ? 'Analyzing' : 'Thinking')));
    box.appendChild(content);
    if (entry.state === 'error') box.appendChild(el('div', 'error', entry.error ?? 'The request failed.'));
    const meta = [entry.state === 'stopped' ? 'Stopped' : '', entry.meta ?? ''].filter(Boolean).join(' · ');
    if (meta) box.appendChild(el('div', 'meta', meta));
    if (entry.footnote) {
      const footnote = el('div', 'footnote');
      footnote.appendChild(renderMarkdown(entry.footnote));
      box.appendChild(footnote);
    }
    return box;
  }

  function nearBottom() {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
  }

  /** @param {() => void} change */
  function keepingScroll(change) {
    const stick = nearBottom();
    change();
    if (stick) messages.scrollTop = messages.scrollHeight;
  }

  function renderAll() {
    keepingScroll(() => {
      messages.replaceChildren(...state.entries.map(renderEntry));
    });
    empty.hidden = state.entries.length > 0;
    messages.hidden = state.entries.length === 0;
    messages.scrollTop = messages.scrollHeight;
  }

  /** @param {Entry} entry */
  function renderOne(entry) {
    keepingScroll(() => {
      const old = messages.querySelector(`[data-id="${CSS.escape(entry.id)}"]`);
      const fresh = renderEntry(entry);
      if (old) old.replaceWith(fresh);
      else messages.appendChild(fresh);
    });
    empty.hidden = true;
    messages.hidden = false;
  }

  // Streaming: many deltas per frame are rendered once per frame.
  /** @type {Set<string>} */
  const dirty = new Set();
  let frame = 0;
  /** @param {string} id */
  function scheduleRender(id) {
    dirty.add(id);
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      for (const dirtyId of dirty) {
        const entry = state.entries.find((e) => e.id === dirtyId);
        if (entry) renderOne(entry);
      }
      dirty.clear();
    });
  }

  function renderAttachments() {
    attachmentsBox.replaceChildren(
      ...state.attachments.map((a, k) =>
        chip(a, () => {
          state.attachments.splice(k, 1);
          renderAttachments();
          save();
        }),
      ),
    );
  }

  function renderBusy() {
    sendButton.hidden = busy;
    stopButton.hidden = !busy;
    if (!busy) speed.textContent = '';
  }

  // The state is written at most every 300 ms while text streams in.
  let saveTimer = 0;
  function save() {
    if (saveTimer) return;
    saveTimer = window.setTimeout(() => {
      saveTimer = 0;
      vscode.setState(state);
    }, 300);
  }

  // ------------------------------------------------------------ user actions

  function send() {
    const text = input.value.trim();
    if (!text || busy) return;
    vscode.postMessage({ type: 'send', text, attachments: state.attachments });
    input.value = '';
    state.draft = '';
    state.attachments = [];
    renderAttachments();
    save();
  }

  byId('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  input.addEventListener('input', () => {
    state.draft = input.value;
    save();
  });
  stopButton.addEventListener('click', () => vscode.postMessage({ type: 'stop' }));
  byId('attach-selection').addEventListener('click', () => vscode.postMessage({ type: 'attachSelection' }));
  byId('attach-file').addEventListener('click', () => vscode.postMessage({ type: 'attachFile' }));
  byId('notice-action').addEventListener('click', () => vscode.postMessage({ type: 'noticeAction' }));
  messages.addEventListener('click', (event) => {
    const button = /** @type {HTMLElement} */ (event.target).closest('.codeblock-bar button');
    const code = button?.closest('.codeblock')?.querySelector('code')?.textContent;
    if (!button || code == null) return;
    vscode.postMessage({ type: button.classList.contains('copy') ? 'copy' : 'insert', code });
  });

  // ------------------------------------------------------------ messages from the extension

  window.addEventListener('message', (event) => {
    const message = event.data;
    switch (message.type) {
      case 'history':
        state.entries = message.entries;
        busy = message.busy;
        renderAll();
        renderBusy();
        break;
      case 'entry': {
        const k = state.entries.findIndex((e) => e.id === message.entry.id);
        if (k >= 0) state.entries[k] = message.entry;
        else state.entries.push(message.entry);
        dirty.delete(message.entry.id);
        renderOne(message.entry);
        break;
      }
      case 'delta': {
        const entry = state.entries.find((e) => e.id === message.id);
        if (!entry) break;
        entry.content += message.delta;
        scheduleRender(entry.id);
        break;
      }
      case 'busy':
        busy = message.busy;
        if (!busy) reading = '';
        renderBusy();
        break;
      case 'speed':
        speed.textContent = `${message.tokensPerSecond.toFixed(1)} tok/s`;
        break;
      case 'reading':
        reading = message.text;
        for (const entry of state.entries) if (entry.state === 'streaming' && !entry.content) renderOne(entry);
        break;
      case 'attach':
        state.attachments.push(message.attachment);
        renderAttachments();
        break;
      case 'notice':
        notice.hidden = !message.notice;
        if (message.notice) {
          byId('notice-text').textContent = message.notice.message;
          const action = byId('notice-action');
          action.hidden = !message.notice.actionTitle;
          action.textContent = message.notice.actionTitle ?? '';
        }
        return;
      case 'focusInput':
        input.focus();
        return;
    }
    save();
  });

  // Show what we had at once; the extension answers 'ready' with the authoritative history.
  input.value = state.draft;
  renderAll();
  renderAttachments();
  renderBusy();
  vscode.postMessage({ type: 'ready' });
})();
