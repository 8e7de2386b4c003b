// internlm/askWorkspace: the workspace packed into one long prompt (see workspace/pack.ts for the
// rules), the question last, the answer streamed like chat. The result lists what was left out.
// The files part of the prompt is the workspace session's prefix: it is kept on disk after an
// answer and restored after a restart (workspace/prefix-cache.ts), and a long prefill reports
// work-done progress.
import { ErrorCodes, LSPErrorCodes, ResponseError } from 'vscode-languageserver';
import { CHAT_SAMPLING, cancelledBeforeStart, generate } from '../generation';
import { promptsFor } from '../prompts/kit';
import type { Engine } from '../engine-host';
import { workspacePrefixLength, workspacePrompt } from '../prompts/workspace';
import { AskWorkspaceRequest, type AskWorkspaceResult, type SkippedFile } from '../protocol';
import { Superseded } from '../scheduler';
import { selectFiles, type PackedFile, type Selection } from '../workspace/pack';
import type { PrefixIdentity } from '../workspace/prefix-cache';
import { scanWorkspace, type WorkspaceRoot } from '../workspace/scan';
import type { ServerContext } from './context';
import { abortSignalOf, deltaStream, generationTarget, onRequest } from './requests';

/** Files the walk lists at most; beyond this a workspace would not fit any context anyway. */
const MAX_FILES = 50_000;

function cancelled(): AskWorkspaceResult {
  return { ...cancelledBeforeStart(), filesIncluded: 0, filesSkipped: [], contextTokens: 0 };
}

/**
 * Saves the files part of the session's cache once the answer is out, queued behind the workspace
 * requests so that it never runs while one uses the session.
 */
function saveLater(ctx: ServerContext, engine: Engine, id: PrefixIdentity, prefix: readonly number[]): void {
  void ctx.scheduler.runQuietly('workspace', async () => {
    // Settings changed in between: these sessions are gone.
    if (ctx.host.readyEngine() !== engine) return;
    await ctx.prefixCache.save(engine.sessions.get('workspace'), id, prefix, ctx.host.settings.workspaceCache.maxBytes, engine.sessions.plan.bytesPerToken);
  }).catch((error: unknown) => ctx.log(`workspace cache not saved: ${error instanceof Error ? error.message : String(error)}`));
}

export function registerAskWorkspace(ctx: ServerContext): void {
  onRequest(ctx.connection, AskWorkspaceRequest, async (params, token): Promise<AskWorkspaceResult> => {
    const question = typeof params?.question === 'string' ? params.question.trim() : '';
    if (!question) throw new ResponseError(ErrorCodes.InvalidParams, 'internlm/askWorkspace needs a question');
    if (ctx.folders.folders.length === 0) {
      throw new ResponseError(LSPErrorCodes.RequestFailed, 'Open a folder first: a workspace question reads the files of the workspace folders.');
    }
    const progress = ctx.progress.prefill('Reading the workspace', abortSignalOf(token));
    const { signal } = progress;
    try {
      return await ctx.scheduler.run('workspace', signal, async () => {
        const engine = await ctx.host.engine();
        const kit = promptsFor(engine.model);
        const roots: WorkspaceRoot[] = await Promise.all(ctx.folders.folders.map(async (folder) => ({
          fsPath: folder.fsPath, prefix: ctx.folders.prefixOf(folder), exclude: await ctx.filesExclude(folder.fsPath),
        })));
        const scan = await scanWorkspace(roots, MAX_FILES);
        if (scan.truncated) ctx.log(`askWorkspace: the workspace has more than ${MAX_FILES} files; the rest were not read`);
        kit.workspace.retain(scan.files);
        const skipped: SkippedFile[] = [...scan.skipped];
        const packed: PackedFile[] = [];
        for (const file of scan.files) {
          if (signal.aborted) return cancelled();
          const loaded = await kit.workspace.load(file);
          if (typeof loaded === 'string') skipped.push({ path: file.relPath, reason: loaded });
          else if (loaded) packed.push(loaded);
        }

        const context = engine.sessions.contextOf('workspace');
        const maxTokens = Math.min(params.maxTokens ?? CHAT_SAMPLING.maxTokens, Math.floor(context / 2));
        // Fit the files into what the context leaves; the note naming left-out files takes room
        // too, so measure the real prompt and shrink the budget by any excess.
        let budget = context - maxTokens - workspacePrompt(kit.template, [], question, []).length;
        let selection: Selection;
        let omitted: SkippedFile[];
        let prompt: number[];
        for (;;) {
          selection = selectFiles(packed, Math.max(0, budget));
          omitted = selection.overBudget.map((f) => ({ path: f.relPath, reason: 'overBudget' as const }));
          prompt = workspacePrompt(kit.template, selection.included, question, omitted);
          const excess = prompt.length + maxTokens - context;
          if (excess <= 0 || selection.included.length === 0) break;
          budget -= excess;
        }
        const session = engine.sessions.get('workspace');
        const { info } = engine.model;
        const id: PrefixIdentity = { folders: ctx.folders.folders.map((f) => f.fsPath), fingerprint: info.fingerprint, kvType: engine.sessions.kvType };
        if (ctx.host.settings.workspaceCache.maxBytes > 0 && !signal.aborted) await ctx.prefixCache.restoreInto(session, info, id, prompt, context, maxTokens);
        const { result } = await generate(generationTarget(ctx, engine, 'workspace', progress), {
          prompt,
          maxTokens,
          temperature: params.temperature ?? CHAT_SAMPLING.temperature,
          topP: params.topP ?? CHAT_SAMPLING.topP,
          signal,
          onText: deltaStream(ctx.connection, params.partialResultToken),
        });
        saveLater(ctx, engine, id, prompt.slice(0, workspacePrefixLength(kit.template, selection.included)));
        return { ...result, filesIncluded: selection.included.length, filesSkipped: [...skipped, ...omitted], contextTokens: selection.tokens };
      });
    } catch (error) {
      if (error instanceof Superseded) return cancelled();
      throw error;
    } finally {
      progress.end();
    }
  });
}
