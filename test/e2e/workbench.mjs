// A real VS Code workbench for end-to-end tests: code-server (installed by scripts/e2e-setup.sh)
// on 127.0.0.1 with a fresh user-data and extensions folder and the packaged .vsix installed,
// driven by Debian's chromium through playwright-core. Every wait is on something visible in the
// workbench, never a fixed sleep. Screenshots and logs go to test-artifacts/e2e/.
import { cpSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CODE_SERVER, codeServerDirs, freePort, installExtension, startCodeServer, stopCodeServer } from '../../scripts/code-server.mjs';
import { ROOT } from '../../scripts/package.mjs';

export { ROOT };
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'e2e');
export const CHROMIUM = process.env.INTERNLM_E2E_CHROMIUM ?? '/usr/bin/chromium';
export const EXTENSION_ID = 'internlm-local.internlm-vscode';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Why the end-to-end tests cannot run here (empty when they can). */
export function missingPrerequisites() {
  const missing = [];
  if (!existsSync(CODE_SERVER)) missing.push(`code-server is not installed (${path.relative(ROOT, CODE_SERVER)}); run scripts/e2e-setup.sh`);
  if (!existsSync(CHROMIUM)) missing.push(`chromium is not installed (${CHROMIUM}); run scripts/e2e-setup.sh`);
  if (!existsSync(path.join(ROOT, 'node_modules', 'playwright-core'))) missing.push('playwright-core is not installed; run npm install');
  const unbuilt = ['extension.js', 'server.js', 'internlm.node'].filter((f) => !existsSync(path.join(ROOT, 'dist', f)));
  if (unbuilt.length) missing.push(`the extension is not built (dist/: ${unbuilt.join(', ')} missing); run npm run build`);
  return missing;
}

/**
 * Starts code-server with the .vsix installed and a browser on the workbench.
 * @param {{ vsix: string, workspace: string, settings?: Record<string, unknown>, name?: string }} options
 */
export async function startWorkbench({ vsix, workspace, settings = {}, name = 'workbench' }) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const home = mkdtempSync(path.join(os.tmpdir(), 'internlm-e2e-'));
  const dirs = codeServerDirs(home);
  mkdirSync(path.join(dirs.userData, 'User'), { recursive: true });
  writeFileSync(
    path.join(dirs.userData, 'User', 'settings.json'),
    JSON.stringify(
      {
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'workbench.welcomePage.walkthroughs.openOnInstall': false,
        'security.workspace.trust.enabled': false,
        'telemetry.telemetryLevel': 'off',
        'extensions.autoUpdate': false,
        'extensions.autoCheckUpdates': false,
        'update.mode': 'none',
        'editor.inlineSuggest.enabled': true,
        ...settings,
      },
      null,
      2,
    ),
  );
  // Keep code-server's own files (config, logs, state) out of the real home folder.
  const env = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, 'config'),
    XDG_DATA_HOME: path.join(home, 'data'),
    XDG_CACHE_HOME: path.join(home, 'cache'),
  };
  const installOutput = installExtension(dirs, vsix, { env });
  const log = createWriteStream(path.join(ARTIFACTS, `${name}-code-server.log`));
  const { server, url } = await startCodeServer(dirs, { port: await freePort(), log, env, open: workspace }).catch((error) => {
    throw new Error(`${error.message}; see ${name}-code-server.log`);
  });
  const stop = async () => {
    await stopCodeServer(server);
    log.end();
    // The extension host's logs (our output channel among them) are worth keeping.
    const logs = path.join(dirs.userData, 'logs');
    if (existsSync(logs)) cpSync(logs, path.join(ARTIFACTS, `${name}-vscode-logs`), { recursive: true });
    rmSync(home, { recursive: true, force: true });
  };
  return openWorkbench(`${url}?folder=${encodeURIComponent(workspace)}`, { name, dirs, installOutput, stop });
}

/**
 * Headless chromium (a fresh profile) on a workbench that already runs at `url`, served by a
 * code-server that keeps its state in `dirs`. Closing the workbench closes the browser, then calls
 * `stop` (also when opening fails). The page's console goes to <name>-browser-console.log.
 */
export async function openWorkbench(url, { name, dirs, installOutput = '', stop = async () => {} }) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const profile = mkdtempSync(path.join(os.tmpdir(), 'internlm-chromium-'));
  const consoleLog = createWriteStream(path.join(ARTIFACTS, `${name}-browser-console.log`));
  let context;
  const close = async () => {
    await context?.close().catch(() => undefined);
    consoleLog.end();
    rmSync(profile, { recursive: true, force: true });
    await stop();
  };
  try {
    const { chromium } = await import('playwright-core');
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 900 },
    });
    context.setDefaultTimeout(60_000);
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => consoleLog.write(`[${m.type()}] ${m.text()}\n`));
    page.on('pageerror', (e) => consoleLog.write(`[pageerror] ${e.message}\n`));
    await page.goto(url);
    await page.locator('.monaco-workbench').waitFor();
    return new Workbench({ page, context, dirs, installOutput, name, stop: close });
  } catch (error) {
    await close();
    throw error;
  }
}

export class Workbench {
  constructor({ page, context, dirs, installOutput, name, stop }) {
    this.page = page;
    this.context = context;
    this.extensions = dirs.extensions;
    /** What `code-server --install-extension` printed. */
    this.installOutput = installOutput;
    this.name = name;
    this.stop = stop;
  }

  /** Saves test-artifacts/e2e/<name>.png and returns its path. */
  async screenshot(name) {
    const file = path.join(ARTIFACTS, `${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }

  /** Our status-bar item, once it shows text matching pattern. */
  async statusBar(pattern) {
    const item = this.page.locator(`[id="${EXTENSION_ID}.internlm.status"]`);
    await item.filter({ hasText: pattern }).waitFor();
    return (await item.innerText()).trim();
  }

  /** Waits until the status item's accessible label (the state in words) matches pattern. */
  async statusLabel(pattern, timeout = 60_000) {
    const handle = await this.page.waitForFunction(
      ({ id, source, flags }) => {
        const item = document.getElementById(id);
        const label = (item?.hasAttribute('aria-label') ? item : item?.querySelector('[aria-label]'))?.getAttribute('aria-label');
        return label && new RegExp(source, flags).test(label) ? label : false;
      },
      { id: `${EXTENSION_ID}.internlm.status`, source: pattern.source, flags: pattern.flags },
      { timeout },
    );
    return handle.jsonValue();
  }

  /** Ids of the language server processes this workbench's extension started. */
  serverProcesses() {
    const script = path.join(this.extensions, `${EXTENSION_ID}-`);
    return readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .filter((pid) => {
        try {
          const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
          return argv.some((arg) => arg.startsWith(script) && arg.endsWith(path.join('dist', 'server.js')));
        } catch {
          return false;
        }
      })
      .map(Number);
  }

  async completionToggle() {
    return this.page.locator(`[id="${EXTENSION_ID}.internlm.completions"]`);
  }

  /** Runs a command from the palette by its title, e.g. "InternLM: New Chat". */
  async runCommand(title) {
    await this.page.keyboard.press('F1');
    const input = this.page.locator('.quick-input-widget input');
    await input.waitFor();
    await input.fill(`>${title}`);
    await this.page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().click();
  }

  /** Answers a quick input (an input box opened by a command). */
  async answerInput(text) {
    const input = this.page.locator('.quick-input-widget input');
    await input.waitFor();
    await input.fill(text);
    await input.press('Enter');
  }

  /** Picks a file in VS Code's own file dialog (a quick input in the browser) by its path. */
  async chooseFile(filePath) {
    const widget = this.page.locator('.quick-input-widget');
    // The dialog fills in its starting folder asynchronously; typing before that would be overwritten.
    await widget.locator('.quick-input-list .monaco-list-row').first().waitFor();
    await widget.locator('input').fill(filePath);
    // Enter counts only once the dialog has caught up with the typed path and lists the file.
    await widget.locator('.quick-input-list .monaco-list-row', { hasText: path.basename(filePath) }).first().waitFor();
    await widget.locator('input').press('Enter');
    await widget.waitFor({ state: 'hidden' });
  }

  /** Opens the InternLM container from the activity bar; returns the chat webview's frame. */
  async openChat() {
    // Clicking the container of the visible view would close the side bar.
    if (!(await this.chatLocator().locator('#chat-root').isVisible())) {
      await this.page.locator('.activitybar [aria-label^="InternLM"]').first().click();
    }
    return this.chatFrame();
  }

  /** The chat webview's inner document, once its script has rendered. */
  async chatFrame() {
    const view = this.chatLocator();
    await view.locator('#chat-root').waitFor();
    return view;
  }

  chatLocator() {
    // Ours among the workbench's webviews (a Welcome page is one too).
    return this.page.frameLocator(`iframe.webview.ready[src*="extensionId=${EXTENSION_ID}"]`).frameLocator('#active-frame');
  }

  /** The editor's cursor position as the status bar shows it, e.g. "Ln 5, Col 5". */
  async cursorPosition() {
    return (await this.page.locator('[id="status.editor.selection"]').innerText()).trim();
  }

  /**
   * The cursor position once it differs from `before`: the status bar follows the editor a moment
   * later. After `timeout` ms without a change, the unchanged position.
   */
  async cursorPositionAfter(before, timeout = 10_000) {
    const changed = await this.page
      .waitForFunction(
        (previous) => {
          const text = document.getElementById('status.editor.selection')?.textContent?.trim();
          return text && text !== previous ? text : false;
        },
        before,
        { timeout },
      )
      .catch(() => undefined);
    return changed ? changed.jsonValue() : this.cursorPosition();
  }

  /** The chat webview's Frame, for evaluating scripts in it (a frame locator cannot). */
  async chatDocument() {
    await this.chatFrame();
    for (const frame of this.page.frames()) {
      if (await frame.$('#chat-root').catch(() => null)) return frame;
    }
    throw new Error('the chat webview frame was not found');
  }

  /** Opens a workspace file in an editor through Quick Open. */
  async openFile(relativePath) {
    await this.page.keyboard.press('Control+P');
    const input = this.page.locator('.quick-input-widget input');
    await input.waitFor();
    await input.fill(relativePath);
    // Click the match: Enter would take whichever row is selected while the list still updates.
    await this.page.locator('.quick-input-list .monaco-list-row', { hasText: path.basename(relativePath) }).first().click();
    const editor = this.page.locator(`.editor-instance .monaco-editor[data-uri$="${relativePath}"]`);
    await editor.waitFor();
    return editor;
  }

  /** Shows the Problems panel; returns its locator. */
  async problems() {
    await this.runCommand('View: Focus Problems');
    const panel = this.page.locator('.markers-panel');
    await panel.waitFor();
    return panel;
  }

  async close() {
    await this.stop();
  }
}
