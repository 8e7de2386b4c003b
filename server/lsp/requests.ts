// What every request handler shares: cancellation as an AbortSignal (so $/cancelRequest reaches the
// engine within one token or one prefill chunk), streamed text deltas through $/progress on the
// request's partial-result token, and user-facing errors as LSP error responses.
import { LSPErrorCodes, ProgressType, ResponseError, type CancellationToken, type Connection } from 'vscode-languageserver';
import { EngineUnavailable, type Engine } from '../engine-host';
import { PromptTooLong, type GenerationTarget } from '../generation';
import type { ErrorKind, ProgressToken, RequestMethod, TextDelta } from '../protocol';
import type { Purpose } from '../scheduler';
import type { ServerContext } from './context';
import type { PrefillProgress } from './prefill-progress';

const textDelta = new ProgressType<TextDelta>();

export function abortSignalOf(token: CancellationToken): AbortSignal {
  const controller = new AbortController();
  if (token.isCancellationRequested) controller.abort();
  else token.onCancellationRequested(() => controller.abort());
  return controller.signal;
}

/** A sink for streamed text, or undefined when the client gave no partial-result token. */
export function deltaStream(connection: Connection, token: ProgressToken | undefined): ((text: string) => void) | undefined {
  if (token === undefined) return undefined;
  return (delta) => {
    if (delta) void connection.sendProgress(textDelta, token, { delta });
  };
}

/** Errors the user can act on become error responses carrying their message (and the error kind). */
export function toResponseError(error: unknown): unknown {
  if (error instanceof EngineUnavailable) {
    return new ResponseError<{ errorKind: ErrorKind }>(LSPErrorCodes.RequestFailed, error.message, { errorKind: error.kind });
  }
  if (error instanceof PromptTooLong) return new ResponseError(LSPErrorCodes.RequestFailed, error.message);
  return error;
}

/** Registers a handler for one of our protocol's requests, with its types. */
export function onRequest<P, R>(connection: Connection, request: RequestMethod<P, R, unknown>,
  handler: (params: P, token: CancellationToken) => Promise<R>): void {
  connection.onRequest(request.method, async (params: P, token: CancellationToken) => {
    try {
      return await handler(params, token);
    } catch (error) {
      throw toResponseError(error);
    }
  });
}

/** Where a request of `purpose` generates: its session, with the scheduler's and status's hooks. */
export function generationTarget(ctx: ServerContext, engine: Engine, purpose: Purpose, progress?: PrefillProgress): GenerationTarget {
  return {
    session: engine.sessions.get(purpose),
    info: engine.model.info,
    contextLength: engine.sessions.contextOf(purpose),
    interactiveIdle: () => ctx.scheduler.interactiveIdle(),
    onSpeed: (tokensPerSecond) => ctx.status.speed(tokensPerSecond),
    onPrefillProgress: progress?.update,
  };
}
