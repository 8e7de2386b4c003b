// How long a context each session gets, from the engine's memory plan (model.memoryPlan(): free
// memory, what the weights and one chunk's activations take, KV bytes per token for each type).
//
// KV caches grow as they fill, so a session's context is a cap, not an allocation. The caps of all
// sessions together must still fit, or a mix of requests could run the machine out of memory in
// the middle of a prefill. The sessions are budgeted like this:
// - completion: 8K tokens (its prompt is at most 4K tokens plus the suggestion);
// - chat and analyze: the model's trained context, at most 32K each (a conversation or one file
//   rarely needs more, and past the trained length the answers rely on RoPE scaling);
// - workspace: everything that is left, up to what the model can use. It is the one request whose
//   prompt grows with the data (the whole workspace), so it gets the long context.
// An explicit internlm.contextLength sets the workspace session's context (and caps the others);
// when that does not fit, the user gets the numbers and two ways out instead of a crash later.
import type { KVType, MemoryPlan, ModelInfo } from '../native/index';
import type { KVTypeSetting } from './protocol';
import type { Purpose } from './scheduler';

/** With dynamic NTK scaling the model reads past its trained length, up to a million tokens (DESIGN.md). */
export const MAX_SCALED_CONTEXT = 1 << 20;
const COMPLETION_CONTEXT = 8192;
const SHORT_CONTEXT = 32768;
/** Below this the workspace session is not worth its own share: the sessions split what there is. */
const MIN_LONG_CONTEXT = 4096;
/** Below this per session nothing useful runs. */
const MIN_CONTEXT = 1024;

const KV_ORDER: readonly KVType[] = ['f32', 'f16', 'q8', 'q4'];

export interface ContextPlan {
  /** The KV cache type the sessions use ("auto" resolved to the device's default). */
  kvType: KVType;
  contexts: Record<Purpose, number>;
  /** KV cache bytes per token of kvType, when the engine could plan. */
  bytesPerToken?: number;
  /** How the numbers came about, for the server log. */
  reason: string;
}

/** The requested context does not fit in memory; the message names the numbers and the way out. */
export class ContextDoesNotFit extends Error {}

/** The longest context the model can use: its trained length, or a million tokens with dynamic NTK. */
export function maxUsableContext(info: ModelInfo): number {
  return info.ropeScaling.type === 'dynamic' ? Math.max(info.contextLength, MAX_SCALED_CONTEXT) : info.contextLength;
}

/** The KV type the engine uses for "auto": f32 on the CPU, f16 on a GPU. */
export function resolveKvType(setting: KVTypeSetting, info: ModelInfo): KVType {
  if (setting !== 'auto') return setting;
  return info.device.startsWith('cpu') ? 'f32' : 'f16';
}

/** "1M", "1.5M", "300K", "4096": how people say context lengths (rounded down, as the engine does). */
export function tokenCount(n: number): string {
  if (n >= 1_000_000) {
    const tenths = Math.floor(n / 100_000);
    return `${Math.floor(tenths / 10)}${tenths % 10 ? `.${tenths % 10}` : ''}M`;
  }
  if (n >= 10_000) return `${Math.floor(n / 1000)}K`;
  return String(n);
}

export function formatBytes(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

function sideContexts(info: ModelInfo, cap: number): Omit<Record<Purpose, number>, 'workspace'> {
  const short = Math.min(info.contextLength, SHORT_CONTEXT, cap);
  return { completion: Math.min(COMPLETION_CONTEXT, cap), chat: short, analyze: short };
}

const sum = (side: Omit<Record<Purpose, number>, 'workspace'>) => side.completion + side.chat + side.analyze;

/** Whether `plan` describes the memory the model's KV caches live in (host RAM, or the GPU the model runs on). */
function planCovers(plan: MemoryPlan, info: ModelInfo): boolean {
  return plan.device.split(':')[0] === info.device.split(/[\s:(]/)[0];
}

/**
 * The sessions' contexts for `requested` tokens (0 = automatic) of `kvSetting`. `plan` undefined
 * (the engine could not plan) or for another device: automatic is the trained context, unchecked.
 * Throws ContextDoesNotFit.
 */
export function planContexts(info: ModelInfo, plan: MemoryPlan | undefined, requested: number, kvSetting: KVTypeSetting): ContextPlan {
  const kvType = resolveKvType(kvSetting, info);
  const usable = maxUsableContext(info);
  if (!plan || !planCovers(plan, info)) {
    const long = requested || info.contextLength;
    return {
      kvType,
      contexts: { ...sideContexts(info, long), workspace: long },
      reason: `no memory plan for ${info.device}: ${requested ? 'as set' : 'the trained context'}`,
    };
  }

  const perToken = plan.kvTypes[kvType].bytesPerToken;
  const free = plan.kvTypes[kvType].maxContext * perToken;
  const freeText = `${formatBytes(free)} free for KV caches`;
  if (requested > 0) {
    const side = sideContexts(info, requested);
    const need = (requested + sum(side)) * perToken;
    if (need > free) throw new ContextDoesNotFit(tooBig(plan, requested, kvType, side));
    const beyond = requested > usable ? ` (beyond the ${tokenCount(usable)} tokens this model can use)` : '';
    return { kvType, contexts: { ...side, workspace: requested }, bytesPerToken: perToken, reason: `as set${beyond}; ${freeText}` };
  }

  const side = sideContexts(info, usable);
  const long = Math.min(usable, Math.floor(free / perToken) - sum(side));
  if (long >= MIN_LONG_CONTEXT) {
    return { kvType, contexts: { ...side, workspace: long }, bytesPerToken: perToken, reason: `automatic: ${freeText}, model limit ${tokenCount(usable)}` };
  }
  // Little memory: the four sessions share it evenly.
  const share = Math.min(usable, Math.floor(free / perToken / 4));
  if (share < MIN_CONTEXT) {
    throw new ContextDoesNotFit(`Not enough free memory for the KV caches: ${formatBytes(free)} is left after the model's weights, ` +
      `which holds ${tokenCount(Math.floor(free / perToken))} tokens in ${kvType}. Close other programs, use a smaller quantization of the model, or set internlm.kvType to ${smallerTypes(kvType)}.`);
  }
  const shared = sideContexts(info, share);
  return { kvType, contexts: { ...shared, workspace: share }, bytesPerToken: perToken, reason: `automatic, little memory (${freeText}): shared evenly` };
}

function smallerTypes(kvType: KVType): string {
  const smaller = KV_ORDER.slice(KV_ORDER.indexOf(kvType) + 1);
  return smaller.length ? smaller.join(' or ') : 'a smaller type';
}

function tooBig(plan: MemoryPlan, requested: number, kvType: KVType, side: Omit<Record<Purpose, number>, 'workspace'>): string {
  const perToken = plan.kvTypes[kvType].bytesPerToken;
  const free = plan.kvTypes[kvType].maxContext * perToken;
  const available = Math.max(0, free - sum(side) * perToken);
  const fits = Math.floor(available / perToken);
  const smaller = KV_ORDER.slice(KV_ORDER.indexOf(kvType) + 1).find((t) => {
    const { bytesPerToken, maxContext } = plan.kvTypes[t];
    return (requested + sum(side)) * bytesPerToken <= maxContext * bytesPerToken;
  });
  const ways = [smaller ? `set internlm.kvType to ${smaller}` : '', fits >= MIN_CONTEXT ? `set internlm.contextLength to ${tokenCount(fits)} tokens or less` : '',
    'set internlm.contextLength to 0 (automatic)'].filter(Boolean);
  return `A ${tokenCount(requested)}-token context needs ${formatBytes(requested * perToken)} of KV cache in ${kvType}; ` +
    `this machine has ${formatBytes(available)} free for it (after the model's weights and the other sessions): ${ways.join(', or ')}.`;
}
