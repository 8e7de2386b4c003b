// internlm/analyzeFile: the whole file in one long prompt, a Markdown report back, and the findings
// published as diagnostics (source "InternLM"). Starting a run clears the previous run's diagnostics.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DiagnosticSeverity, ErrorCodes, ResponseError, type Diagnostic } from 'vscode-languageserver';
import { anchorFindings, parseAnalysis } from '../analyze/findings';
import { cancelledBeforeStart, generate, PromptTooLong } from '../generation';
import { analyzePrompt } from '../prompts/analyze';
import { promptsFor } from '../prompts/kit';
import { AnalyzeFileRequest, DIAGNOSTIC_SOURCE, type AnalyzeFileResult, type Finding, type FindingSeverity } from '../protocol';
import { Superseded } from '../scheduler';
import { uriToPath } from '../workspace/folders';
import type { ServerContext } from './context';
import { abortSignalOf, generationTarget, onRequest } from './requests';

const ANSWER_TOKENS = 1024;

const SEVERITY: Record<FindingSeverity, DiagnosticSeverity> = {
  error: DiagnosticSeverity.Error,
  warning: DiagnosticSeverity.Warning,
  information: DiagnosticSeverity.Information,
  hint: DiagnosticSeverity.Hint,
};

function toDiagnostic(finding: Finding): Diagnostic {
  return { range: finding.range, severity: SEVERITY[finding.severity], message: finding.message, source: DIAGNOSTIC_SOURCE };
}

/** The synchronized text of an open document, else the file on disk. */
async function documentText(ctx: ServerContext, uri: string): Promise<{ text: string; languageId: string }> {
  const doc = ctx.documents.get(uri);
  if (doc) return { text: doc.getText(), languageId: doc.languageId };
  const file = uriToPath(uri);
  try {
    if (file) return { text: await fs.readFile(file, 'utf8'), languageId: path.extname(file).slice(1) || 'plaintext' };
  } catch {
    // Reported below, like a URI that is not a file.
  }
  throw new ResponseError(ErrorCodes.InvalidParams, `Cannot read ${uri}: it is not open in the editor and not a readable file.`);
}

function report(text: string, findings: readonly Finding[], linesIncluded: number, totalLines: number): string {
  const parts: string[] = [];
  if (linesIncluded < totalLines) {
    parts.push(`> Only lines 1–${linesIncluded} of ${totalLines} fit into the context; the rest was not analyzed.`);
  }
  parts.push(text || (findings.length > 0 ? `Found ${findings.length} issue${findings.length === 1 ? '' : 's'}.` : 'No problems found.'));
  return parts.join('\n\n');
}

export function registerAnalyzeFile(ctx: ServerContext): void {
  onRequest(ctx.connection, AnalyzeFileRequest, async (params, token): Promise<AnalyzeFileResult> => {
    const uri = params?.uri;
    if (typeof uri !== 'string') throw new ResponseError(ErrorCodes.InvalidParams, 'internlm/analyzeFile needs {uri}');
    const { text, languageId } = await documentText(ctx, uri);
    void ctx.connection.sendDiagnostics({ uri, diagnostics: [] });
    const progress = ctx.progress.prefill(`Reading ${path.basename(ctx.folders.displayPath(uri))}`, abortSignalOf(token));
    const { signal } = progress;
    try {
      return await ctx.scheduler.run('analyze', signal, async () => {
        const engine = await ctx.host.engine();
        const context = engine.sessions.contextOf('analyze');
        const answerTokens = Math.min(ANSWER_TOKENS, Math.floor(context / 2));
        const prompt = analyzePrompt(promptsFor(engine.model).template, {
          path: ctx.folders.displayPath(uri), languageId, text, budget: context - answerTokens,
        });
        if (prompt.linesIncluded === 0 && prompt.totalLines > 0) {
          throw new PromptTooLong(`Not even the first lines of the file fit into the context of ${context} tokens. Raise internlm.contextLength.`);
        }
        const { result } = await generate(generationTarget(ctx, engine, 'analyze', progress), {
          prompt: prompt.ids, maxTokens: answerTokens, temperature: 0.2, topP: 0.9, signal,
        });
        const parsed = parseAnalysis(result.text);
        const findings = anchorFindings(parsed.findings, text.split(/\r?\n/).slice(0, prompt.linesIncluded));
        void ctx.connection.sendDiagnostics({ uri, diagnostics: findings.map(toDiagnostic) });
        return {
          report: report(parsed.report, findings, prompt.linesIncluded, prompt.totalLines),
          findings,
          usage: result.usage,
          timings: result.timings,
        };
      });
    } catch (error) {
      if (!(error instanceof Superseded)) throw error;
      const { usage, timings } = cancelledBeforeStart();
      return { report: 'Cancelled.', findings: [], usage, timings };
    } finally {
      progress.end();
    }
  });
}
