// internlm plan: for each KV cache type, the longest context that fits next to the weights and one
// chunk's workspace: in host RAM (--device cpu, the default) or in a GPU's free memory after the
// weights were uploaded (--device cuda[:N]); the numbers come from engine/memory_plan.
import { KV_TYPES, type MemoryPlan } from '../../../native/index';
import { parseOptions, requiredString } from '../args';
import { ENGINE_FLAGS, engineOptions, loadModel } from '../model';
import { printJson } from '../output';

export async function planCommand(args: string[]): Promise<void> {
  const options = parseOptions(args, { model: { type: 'string' }, json: { type: 'boolean' }, ...ENGINE_FLAGS });
  const engine = engineOptions(options);
  const model = await loadModel(requiredString(options, 'model'), { ...engine, device: engine.device ?? 'cpu' });
  try {
    const plan = model.memoryPlan();
    if (options.json) printJson(plan);
    else process.stdout.write(describe(plan));
  } finally {
    model.dispose();
  }
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function describe(plan: MemoryPlan): string {
  const lines = [
    `device     ${plan.device}`,
    `free ${plan.device === 'cpu' ? 'RAM ' : 'GPU '}  ${mib(plan.memoryBytes)}`,
    `weights    ${mib(plan.weightsBytes)}${plan.device !== 'cpu' ? ' (on the GPU, not in free)' : plan.weightsInRam ? ' (in RAM, not in free RAM)' : ' (mapped)'}`,
    `for KV     ${mib(plan.kvBudgetBytes)}`,
    `workspace  ${mib(plan.workspaceBytes)}`,
    'kv type  bytes/token  max context',
    ...KV_TYPES.map((t) => `${t.padEnd(7)}  ${String(plan.kvTypes[t].bytesPerToken).padStart(11)}  ${plan.kvTypes[t].maxContext.toLocaleString('en-US')}`),
  ];
  return `${lines.join('\n')}\n`;
}
