// A real VS Code workbench for end-to-end tests: code-server (installed by scripts/e2e-setup.sh)
// on 127.0.0.1 with a fresh user-data and extensions folder and the packaged .vsix installed,
// driven by Debian's chromium through playwright-core. Every wait is on something visible in the
// workbench, never a fixed sleep. Screenshots and logs go to test-artifacts/e2e/.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'e2e');
export const CODE_SERVER = path.join(ROOT, '.cache', 'code-server', 'node_modules', '.bin', 'code-server');
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
  if (!existsSync(path.join(ROOT, 'dist', 'extension.js'))) missing.push('the extension is not built (dist/extension.js); run npm run build');
  return missing;
}

/** Packages dist/ as it is (built beforehand) into a .vsix; returns its path. */
export function packageExtension(outDir) {
  mkdirSync(outDir, { recursive: true });
  const vsix = path.join(outDir, 'internlm-vscode.vsix');
  const vsce = path.join(ROOT, 'node_modules', '@vscode', 'vsce', 'vsce');
  const result = spawnSync(process.execPath, [vsce, 'package', '--no-dependencies', '--allow-missing-repository', '--skip-license', '--out', vsix], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`vsce package failed:\n${result.stdout}\n${result.stderr}`);
  return vsix;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts code-server with the .vsix installed and a browser on the workbench.
 * @param {{ vsix: string, workspace: string, settings?: Record<string, unknown>, name?: string }} options
 */
export async function startWorkbench({ vsix, workspace, settings = {}, name = 'workbench' }) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const home = mkdtempSync(path.join(os.tmpdir(), 'internlm-e2e-'));
  const userData = path.join(home, 'user-data');
  const extensions = path.join(home, 'extensions');
  const config = path.join(home, 'code-server.yaml');
  mkdirSync(path.join(userData, 'User'), { recursive: true });
  writeFileSync(config, 'auth: none\ncert: false\n');
  writeFileSync(
    path.join(userData, 'User', 'settings.json'),
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
  const common = ['--config', config, '--user-data-dir', userData, '--extensions-dir', extensions];

  const install = spawnSync(CODE_SERVER, [...common, '--install-extension', vsix], { env, encoding: 'utf8' });
  if (install.status !== 0 || !/successfully installed/i.test(install.stdout)) {
    throw new Error(`code-server --install-extension failed (${install.status}):\n${install.stdout}\n${install.stderr}`);
  }

  const port = await freePort();
  const log = createWriteStream(path.join(ARTIFACTS, `${name}-code-server.log`));
  const server = spawn(
    CODE_SERVER,
    [
      ...common,
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--auth',
      'none',
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      '--ignore-last-opened',
      workspace,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  server.stdout.pipe(log, { end: false });
  server.stderr.pipe(log, { end: false });
  const url = await new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk) => {
      seen += chunk;
      const match = /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+\/?)/.exec(seen);
      if (match) {
        server.stdout.off('data', onData);
        resolve(match[1]);
      }
    };
    server.stdout.on('data', onData);
    server.once('exit', (code) => reject(new Error(`code-server exited (${code}) before listening; see ${name}-code-server.log`)));
  });

  const { chromium } = await import('playwright-core');
  const context = await chromium.launchPersistentContext(path.join(home, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
  });
  context.setDefaultTimeout(60_000);
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleLog = createWriteStream(path.join(ARTIFACTS, `${name}-browser-console.log`));
  page.on('console', (m) => consoleLog.write(`[${m.type()}] ${m.text()}\n`));
  page.on('pageerror', (e) => consoleLog.write(`[pageerror] ${e.message}\n`));

  await page.goto(`${url.replace(/\/?$/, '/')}?folder=${encodeURIComponent(workspace)}`);
  await page.locator('.monaco-workbench').waitFor();
  return new Workbench({ page, context, server, home, userData, extensions, name, logs: [log, consoleLog] });
}

export class Workbench {
  constructor({ page, context, server, home, userData, extensions, name, logs }) {
    this.page = page;
    this.context = context;
    this.server = server;
    this.home = home;
    this.userData = userData;
    this.extensions = extensions;
    this.name = name;
    this.logs = logs;
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
    return this.page.frameLocator('iframe.webview.ready').frameLocator('#active-frame');
  }

  /** The editor's cursor position as the status bar shows it, e.g. "Ln 5, Col 5". */
  async cursorPosition() {
    return (await this.page.locator('[id="status.editor.selection"]').innerText()).trim();
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
    await this.context.close().catch(() => undefined);
    if (this.server.exitCode === null) {
      const exited = new Promise((resolve) => this.server.once('exit', resolve));
      this.server.kill('SIGTERM');
      await exited;
    }
    // The extension host's logs (our output channel among them) are worth keeping.
    const logs = path.join(this.userData, 'logs');
    if (existsSync(logs)) cpSync(logs, path.join(ARTIFACTS, `${this.name}-vscode-logs`), { recursive: true });
    for (const log of this.logs) log.end();
    rmSync(this.home, { recursive: true, force: true });
  }
}
