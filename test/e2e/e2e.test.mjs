// End-to-end: the packaged extension in a real VS Code workbench (code-server + chromium). Skips,
// with the reason, when the workbench tools are not installed (scripts/e2e-setup.sh installs them),
// unless INTERNLM_E2E_REQUIRED is set (CI sets it), which turns a missing tool into a failure.
// Screenshots: test-artifacts/e2e/*.png.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { packageExtension, vsixTarget } from '../../scripts/package.mjs';
import { scriptedModel } from '../fixtures/scripted-model.mjs';
import { readZip } from '../support/zip.mjs';
import { ANALYSIS, E2E_SETTINGS, e2eModel, makeWorkspace } from './fixtures.mjs';
import { EXTENSION_ID, missingPrerequisites, startWorkbench } from './workbench.mjs';

const missing = missingPrerequisites();
if (missing.length && process.env.INTERNLM_E2E_REQUIRED) throw new Error(`INTERNLM_E2E_REQUIRED is set, but: ${missing.join('; ')}`);
// Each test skips on its own (not its suite), so that the runner counts and reports every skip.
const skipAll = missing.length ? `skipped: ${missing.join('; ')}` : false;
/** Shared by the suites: a temp folder, the packaged extension, the models. */
const shared = {};

before(async () => {
  if (skipAll) return;
  shared.temp = mkdtempSync(path.join(os.tmpdir(), 'internlm-e2e-test-'));
  // The package exactly as npm run package makes it (from the dist/ that npm test has just built).
  shared.vsix = packageExtension(path.join(shared.temp, 'vsix', 'internlm-vscode.vsix'));
  shared.model = await e2eModel(path.join(shared.temp, 'model'));
  // A random model's analysis has no findings; this one answers every prompt with ANALYSIS.
  shared.analyst = await scriptedModel(path.join(shared.temp, 'analyst'), ANALYSIS.answer);
});

after(() => {
  if (shared.temp) rmSync(shared.temp, { recursive: true, force: true });
});

/** A workbench on a fresh copy of the test workspace. */
function workbenchFor(name, settings) {
  const workspace = path.join(shared.temp, `${name}-workspace`);
  makeWorkspace(workspace);
  return startWorkbench({
    vsix: shared.vsix,
    workspace,
    name,
    settings: { ...E2E_SETTINGS, ...settings },
  });
}

describe('end-to-end in a VS Code workbench', () => {
  let workbench;

  before(async () => {
    if (skipAll) return;
    workbench = await workbenchFor('e2e', { 'internlm.modelPath': shared.model });
  });

  after(async () => {
    await workbench?.close();
  });

  it('installs the packaged .vsix: extension, server, native addon and media, for this platform', { skip: skipAll }, async () => {
    const zip = readZip(shared.vsix);
    const entries = [...zip.keys()];
    for (const file of ['package.json', 'dist/extension.js', 'dist/server.js', 'dist/engine.js', 'dist/internlm.node', 'dist/media/chat.js', 'dist/media/icon.svg']) {
      assert.ok(entries.includes(`extension/${file}`), `the .vsix holds ${file}`);
    }
    assert.deepEqual(entries.filter((e) => /\.map$|\.ts$|node_modules|native\//.test(e)), [], 'no sources, source maps or node_modules');
    assert.match(zip.get('extension.vsixmanifest')().toString(), new RegExp(`TargetPlatform="${vsixTarget()}"`));
    assert.match(workbench.installOutput, /Extension 'internlm-vscode\.vsix' was successfully installed/);
    const [installed] = readdirSync(workbench.extensions).filter((d) => d.startsWith(`${EXTENSION_ID}-`));
    assert.ok(installed, `installed into ${workbench.extensions}`);
    for (const file of ['dist/server.js', 'dist/internlm.node']) assert.ok(existsSync(path.join(workbench.extensions, installed, file)), `${file} installed`);
  });

  it('activates from the .vsix and shows the chat view', { skip: skipAll }, async () => {
    const status = await workbench.statusBar(/InternLM/);
    assert.match(status, /InternLM/);
    const chat = await workbench.openChat();
    await chat.locator('#input').waitFor();
    await workbench.screenshot('chat-view');
  });

  it('attaches the editor selection to the message being written', { skip: skipAll }, async () => {
    const editor = await workbench.openFile('src/inventory.ts');
    await editor.locator('.view-line', { hasText: 'export function total' }).click();
    await workbench.page.keyboard.press('Home');
    await workbench.page.keyboard.press('Shift+ArrowDown');
    await workbench.page.keyboard.press('Shift+ArrowDown');
    await workbench.page.keyboard.press('Shift+End');
    const chat = await workbench.openChat();
    await chat.locator('#attach-selection').click();
    const chip = chat.locator('#attachments .chip', { hasText: 'src/inventory.ts:3-5' });
    await chip.waitFor();
    await workbench.screenshot('chat-attachment');
    await chip.locator('button').click();
    await chip.waitFor({ state: 'detached' });
  });

  it('sends a message and shows the reply as it streams', { skip: skipAll }, async () => {
    await workbench.statusBar(/InternLM(?!.*loading)/);
    const chat = await workbench.openChat();
    const frame = await workbench.chatDocument();
    // Record every length the reply's text has while it is still streaming.
    await frame.evaluate(() => {
      const seen = [];
      Object.assign(window, { streamedLengths: seen });
      new MutationObserver(() => {
        const content = document.querySelector('.entry.assistant.streaming .content');
        if (content && !content.querySelector('.thinking')) seen.push(content.textContent.length);
      }).observe(document.getElementById('messages'), { childList: true, subtree: true, characterData: true });
    });
    await chat.locator('#input').fill('Write a short poem about the sea.');
    await chat.locator('#input').press('Enter');
    await chat.locator('.entry.user', { hasText: 'poem about the sea' }).waitFor();
    const reply = chat.locator('.entry.assistant').last();
    await reply.and(chat.locator('.done')).waitFor({ timeout: 120_000 });
    assert.match(await reply.locator('.meta').innerText(), /tok\/s/);
    const lengths = await frame.evaluate(() => /** @type {any} */ (window).streamedLengths);
    assert.ok(lengths.length >= 2 && lengths.some((n, k) => k > 0 && n > lengths[k - 1]), `the reply grew while streaming: ${lengths}`);
    await workbench.screenshot('chat-streamed-reply');
  });

  it('stops a generation', { skip: skipAll }, async () => {
    const chat = await workbench.openChat();
    await chat.locator('#input').fill('Count from one to one thousand, one number per line.');
    await chat.locator('#input').press('Enter');
    const reply = chat.locator('.entry.assistant').last();
    await reply.and(chat.locator('.streaming')).locator('.content:not(:has(.thinking))').waitFor();
    await chat.locator('#stop').click();
    await reply.and(chat.locator('.stopped')).waitFor();
    assert.match(await reply.locator('.meta').innerText(), /Stopped/);
    await chat.locator('#send').waitFor();
    await workbench.screenshot('chat-stopped');
  });

  it('accepts an inline suggestion in an editor', { skip: skipAll }, async () => {
    const editor = await workbench.openFile('src/stats.py');
    await editor.locator('.view-line').nth(2).click();
    await workbench.page.keyboard.press('Control+End');
    await workbench.page.keyboard.type('def median(values):\n');
    const ghost = editor.locator('.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text');
    await ghost.first().waitFor({ timeout: 60_000 });
    await workbench.screenshot('inline-suggestion');
    const before = await workbench.cursorPosition();
    await workbench.page.keyboard.press('Tab');
    await ghost.first().waitFor({ state: 'detached' });
    // Accepting puts the cursor after the inserted text; Tab without a suggestion would indent by 4.
    const afterAccept = await workbench.cursorPositionAfter(before);
    const [line0, col0] = before.match(/\d+/g).map(Number);
    const [line1, col1] = afterAccept.match(/\d+/g).map(Number);
    assert.ok(line1 > line0 || col1 > col0, `the cursor moved past the inserted text (${before} → ${afterAccept})`);
    assert.ok(!(line1 === line0 && col1 === col0 + 4), `Tab accepted the suggestion rather than indenting (${before} → ${afterAccept})`);
    await workbench.screenshot('inline-suggestion-accepted');
  });

  it('answers Ask about Workspace with the workspace in context', { skip: skipAll }, async () => {
    await workbench.runCommand('InternLM: Ask about Workspace');
    await workbench.answerInput('What does this project do?');
    const chat = await workbench.chatFrame();
    await chat.locator('.entry.user', { hasText: 'What does this project do?' }).locator('.badge', { hasText: 'Workspace' }).waitFor();
    const reply = chat.locator('.entry.assistant').last();
    await reply.and(chat.locator('.done')).waitFor({ timeout: 180_000 });
    assert.match(await reply.locator('.footnote').innerText(), /Context: \d+ files?, \d+ tokens/);
    await workbench.screenshot('ask-workspace');
  });

  it('shows a long workspace prefill in the status bar; a click there cancels it', { skip: skipAll }, async () => {
    // About 2,800 tokens of new files (newest, so they are read last): a prefill that reports progress.
    const workspace = path.join(shared.temp, 'e2e-workspace');
    for (let i = 0; i < 2; i++) {
      const lines = Array.from({ length: 25 }, (_, j) => `export function bulk${i}_${j}(x: number): number { return x * ${j} + ${i}; }`);
      writeFileSync(path.join(workspace, 'src', `bulk${i}.ts`), `${lines.join('\n')}\n`);
    }
    await workbench.runCommand('InternLM: Ask about Workspace');
    await workbench.answerInput('Summarize every function.');
    const label = await workbench.statusLabel(/InternLM: reading the workspace, \d+%/, 120_000);
    assert.match(await workbench.statusBar(/InternLM \d+%/), /InternLM \d+%( · ETA \d+[smh])?/);
    // The chat view shows the same progress in place of "Thinking" until the reply starts.
    const chat = await workbench.chatFrame();
    const reply = chat.locator('.entry.assistant').last();
    const reading = reply.locator('.thinking', { hasText: /Reading the workspace: \d+% · [\d,]+ \/ [\d,]+ tokens/ });
    await reading.waitFor({ timeout: 30_000 });
    const readingText = await reading.innerText();
    await workbench.screenshot('ask-workspace-progress');
    await workbench.page.locator(`[id="${EXTENSION_ID}.internlm.status"]`).click();
    await reply.and(chat.locator('.stopped')).waitFor({ timeout: 30_000 });
    await workbench.statusLabel(/InternLM: ready/);
    console.log(`# status bar during the prefill: ${label}; chat view: ${readingText}`);
  });

  it('analyzes the current file and publishes findings as diagnostics', { skip: skipAll }, async () => {
    // Switch to the scripted model (through the UI, as a user would), whose answer is one finding.
    await workbench.runCommand('InternLM: Select Model File…');
    await workbench.chooseFile(shared.analyst);
    await workbench.page.locator('.notifications-toasts', { hasText: `InternLM will use ${shared.analyst}` }).waitFor();
    await workbench.statusLabel(/InternLM: ready/, 120_000);
    const editor = await workbench.openFile('src/inventory.ts');
    await workbench.runCommand('InternLM: Analyze Current File');
    const chat = await workbench.chatFrame();
    await chat.locator('.entry.user', { hasText: 'Analyze src/inventory.ts' }).waitFor();
    const reply = chat.locator('.entry.assistant').last();
    await reply.and(chat.locator('.done')).waitFor({ timeout: 180_000 });
    assert.match(await reply.locator('.footnote').innerText(), /1 finding in the Problems panel/);
    await workbench.screenshot('analyze-file');

    // The squiggle sits on line 5, from its first non-blank character; hovering it shows the finding.
    const squiggle = editor.locator(`.squiggly-${ANALYSIS.severity}`);
    await squiggle.waitFor();
    const line5 = await editor.locator('.view-line', { hasText: ANALYSIS.lineText }).boundingBox();
    const box = await squiggle.boundingBox();
    assert.ok(Math.abs(box.y + box.height / 2 - (line5.y + line5.height / 2)) < line5.height, 'the squiggle is on the line of the finding');
    await workbench.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const hover = workbench.page.locator('.monaco-hover', { hasText: ANALYSIS.message });
    await hover.waitFor();
    assert.match(await hover.innerText(), /InternLM/);
    await workbench.screenshot('analyze-file-hover');

    const problems = await workbench.problems();
    const row = problems.locator('.monaco-list-row', { hasText: ANALYSIS.message });
    await row.waitFor();
    assert.match(await row.innerText(), /InternLM.*\[Ln 5, Col 3\]/s);
    await workbench.screenshot('analyze-file-problems');
  });

  it('keeps the conversation across a reload, until New Chat', { skip: skipAll }, async () => {
    const chat = await workbench.openChat();
    const before = await chat.locator('.entry').count();
    assert.ok(before >= 4, `a conversation to keep (${before} entries)`);
    await workbench.page.reload();
    await workbench.page.locator('.monaco-workbench').waitFor();
    const reloaded = await workbench.openChat();
    await reloaded.locator('.entry').nth(before - 1).waitFor();
    assert.equal(await reloaded.locator('.entry').count(), before);
    await workbench.runCommand('InternLM: New Chat');
    await reloaded.locator('#empty').waitFor();
    assert.equal(await reloaded.locator('.entry').count(), 0);
  });

  it('restarts the server with backoff when it dies, and says so', { skip: skipAll }, async () => {
    await workbench.statusLabel(/InternLM: (ready|generating)/);
    const [pid] = workbench.serverProcesses();
    assert.ok(pid, 'the language server process is running');
    process.kill(pid, 'SIGKILL');
    await workbench.statusLabel(/InternLM: restarting/);
    await workbench.page.locator('.notifications-toasts', { hasText: 'InternLM server stopped unexpectedly' }).waitFor();
    await workbench.screenshot('server-restarting');
    await workbench.statusLabel(/InternLM: ready/);
    const [restarted] = workbench.serverProcesses();
    assert.ok(restarted && restarted !== pid, 'a new server process runs');
  });
});

describe('first run without a model', () => {
  let workbench;

  before(async () => {
    if (skipAll) return;
    workbench = await workbenchFor('first-run', { 'internlm.modelPath': '' });
  });

  after(async () => {
    await workbench?.close();
  });

  it('says where to get a model and loads the one chosen with Select Model File…', { skip: skipAll }, async () => {
    await workbench.page.locator('.notifications-toasts', { hasText: 'internlm/internlm2_5-7b-chat-gguf' }).waitFor();
    await workbench.statusLabel(/InternLM: error/);
    const chat = await workbench.openChat();
    await chat.locator('#notice-text', { hasText: 'No model selected' }).waitFor();
    await workbench.screenshot('first-run');
    await chat.locator('#notice-action', { hasText: 'Select Model File…' }).click();
    await workbench.chooseFile(shared.model);
    await workbench.statusLabel(/InternLM: ready/, 120_000);
    await chat.locator('#notice').waitFor({ state: 'hidden' });
    await workbench.screenshot('first-run-model-loaded');
  });
});
