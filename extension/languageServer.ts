// Runs the language server (dist/server.js) in its own process through vscode-languageclient, so a
// crash in the native engine never takes the extension host down; restarts it with backoff when it
// dies and reports every change of connection and server status as events.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  type LanguageClientOptions,
  type Middleware,
  NotificationType,
  ProgressType,
  RequestType,
  RevealOutputChannelOn,
  State,
  TransportKind,
  WorkDoneProgressCancelNotification,
} from 'vscode-languageclient/node';
import { StatusNotification, type InitializationOptions, type ProgressToken, type RequestMethod, type StatusParams } from '../server/protocol';
import { Backoff } from './backoff';
import { serverSettings } from './settings';

export type Connection =
  | { kind: 'starting' }
  | { kind: 'running' }
  /** attempt: deaths in a row, 1 for the first. */
  | { kind: 'restarting'; delayMs: number; reason: string; attempt: number }
  /** dist/server.js is not there: an incomplete build or package. */
  | { kind: 'missing'; serverPath: string }
  | { kind: 'stopped' };

/** Thrown by request() when no server is connected, with a message fit for the user. */
export class ServerUnavailableError extends Error {}

export class LanguageServer implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private connection: Connection = { kind: 'stopped' };
  private restartTimer: NodeJS.Timeout | undefined;
  private disposed = false;
  private readonly backoff = new Backoff({ initialMs: 1000, maxMs: 30_000, resetAfterMs: 60_000 });
  private readonly connectionEmitter = new vscode.EventEmitter<Connection>();
  private readonly statusEmitter = new vscode.EventEmitter<StatusParams>();

  readonly onDidChangeConnection = this.connectionEmitter.event;
  readonly onStatus = this.statusEmitter.event;

  /** storagePath: where the server may keep caches (the extension's workspace or global storage). */
  constructor(
    private readonly serverPath: string,
    private readonly output: vscode.OutputChannel,
    private readonly middleware: Middleware,
    private readonly storagePath: string | undefined,
  ) {}

  get state(): Connection {
    return this.connection;
  }

  async start(): Promise<void> {
    this.clearRestartTimer();
    if (this.disposed) return;
    if (!existsSync(this.serverPath)) {
      this.output.appendLine(`[client] language server not found at ${this.serverPath}`);
      this.setConnection({ kind: 'missing', serverPath: this.serverPath });
      return;
    }
    const client = this.createClient();
    this.client = client;
    this.setConnection({ kind: 'starting' });
    try {
      await client.start();
    } catch (error) {
      this.onClientDied(client, `it failed to start: ${errorMessage(error)}`);
      return;
    }
    if (this.client !== client || client.state !== State.Running) return;
    this.backoff.started(Date.now());
    this.setConnection({ kind: 'running' });
  }

  /** A user's restart: immediate, and forgets earlier crashes. */
  async restart(): Promise<void> {
    this.backoff.reset();
    await this.stopClient();
    await this.start();
  }

  /** Pushes the current settings; the server reloads the model when a model setting changed. */
  async pushSettings(): Promise<void> {
    if (this.connection.kind !== 'running' || !this.client) return;
    await this.client.sendNotification(DidChangeConfigurationNotification.type, { settings: serverSettings() });
  }

  /**
   * Sends one of our requests. With onPartial, the request gets a partialResultToken and every
   * `$/progress` value on it is passed on as it arrives (before the result, as LSP guarantees).
   */
  async request<P extends object, R, D>(
    method: RequestMethod<P, R, D>,
    params: P,
    token: vscode.CancellationToken,
    onPartial?: (value: D) => void,
  ): Promise<R> {
    const client = this.client;
    if (this.connection.kind !== 'running' || !client) throw new ServerUnavailableError(this.unavailableMessage());
    const type = new RequestType<P, R, void>(method.method);
    if (!onPartial) return client.sendRequest(type, params, token);
    const partialResultToken = randomUUID();
    const subscription = client.onProgress(new ProgressType<D>(), partialResultToken, onPartial);
    try {
      return await client.sendRequest(type, { ...params, partialResultToken }, token);
    } finally {
      subscription.dispose();
    }
  }

  /** Cancels the server's work-done progress `token` (a long prefill): the request it belongs to stops. */
  async cancelProgress(token: ProgressToken): Promise<void> {
    if (this.connection.kind !== 'running' || !this.client) return;
    await this.client.sendNotification(WorkDoneProgressCancelNotification.type, { token });
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.clearRestartTimer();
    await this.stopClient();
    this.connectionEmitter.dispose();
    this.statusEmitter.dispose();
  }

  private createClient(): LanguageClient {
    const initializationOptions: InitializationOptions = { ...serverSettings(), storagePath: this.storagePath };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      initializationOptions,
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      middleware: this.middleware,
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue, handled: true }),
        // We restart ourselves (with backoff and a status the user sees); the client must not.
        closed: () => {
          this.onClientDied(client, 'its process exited');
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
    };
    const client = new LanguageClient(
      'internlm',
      'InternLM',
      { module: this.serverPath, transport: TransportKind.ipc },
      clientOptions,
    );
    // Only proposed feature in vscode-languageclient 9: textDocument/inlineCompletion (LSP 3.18).
    client.registerProposedFeatures();
    client.onNotification(new NotificationType<StatusParams>(StatusNotification.method), (status) => {
      if (this.client === client) this.statusEmitter.fire(status);
    });
    return client;
  }

  private onClientDied(client: LanguageClient, reason: string): void {
    if (this.client !== client || this.disposed) return;
    this.client = undefined;
    // After the client has finished handling the close itself (it is mid-way through it here).
    setTimeout(() => void client.dispose().catch(() => undefined), 0);
    const delayMs = this.backoff.nextDelay(Date.now());
    this.output.appendLine(`[client] the language server stopped (${reason}); restarting in ${delayMs} ms`);
    this.setConnection({ kind: 'restarting', delayMs, reason, attempt: this.backoff.attempts });
    this.restartTimer = setTimeout(() => void this.start(), delayMs);
  }

  private async stopClient(): Promise<void> {
    this.clearRestartTimer();
    const client = this.client;
    this.client = undefined;
    this.setConnection({ kind: 'stopped' });
    if (client?.isRunning()) {
      await client.stop(2000).catch((error) => this.output.appendLine(`[client] stop: ${errorMessage(error)}`));
    }
    await client?.dispose().catch(() => undefined);
  }

  private clearRestartTimer(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
  }

  private setConnection(connection: Connection): void {
    this.connection = connection;
    if (!this.disposed) this.connectionEmitter.fire(connection);
  }

  private unavailableMessage(): string {
    switch (this.connection.kind) {
      case 'missing':
        return `The InternLM language server is missing (${this.connection.serverPath}); reinstall the extension or run "npm run build".`;
      case 'restarting':
        return 'The InternLM server stopped and is restarting; try again in a moment.';
      case 'starting':
        return 'The InternLM server is starting; try again in a moment.';
      default:
        return 'The InternLM server is not running; run "InternLM: Restart Server".';
    }
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
