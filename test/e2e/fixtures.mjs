// What the end-to-end tests open and load: a small workspace, the models, and the settings they use.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Settings for a test workbench: a small context on the CPU, greedy replies, quick completions. */
export const E2E_SETTINGS = {
  'internlm.device': 'cpu',
  'internlm.contextLength': 4096,
  'internlm.chat.temperature': 0,
  'internlm.chat.maxTokens': 512,
  'internlm.completion.debounceMs': 50,
};

/**
 * The answer of the scripted model that Analyze Current File runs on: one finding (line 5's
 * off-by-one in src/inventory.ts) in the "L<line> <severity>: <message>" form the server parses.
 * Its tokens must be distinct (see test/fixtures/scripted-model.mjs).
 */
export const ANALYSIS = {
  answer: 'L5 error: off-by-one, this loop reads past the end; use < rather than <=.',
  message: 'off-by-one, this loop reads past the end; use < rather than <=.',
  severity: 'error',
  lineText: 'for (let i = 0; i <= items.length; i++)',
};

/** A small project to open: code to analyse and complete, a file that .gitignore hides. */
export function makeWorkspace(dir) {
  const files = {
    'README.md': '# Inventory\n\nA tiny inventory service used by the end-to-end tests.\n',
    '.gitignore': 'build/\n',
    'build/output.txt': 'generated, ignored\n',
    'src/inventory.ts': [
      'export interface Item { name: string; count: number }',
      '',
      'export function total(items: Item[]): number {',
      '  let sum = 0;',
      '  for (let i = 0; i <= items.length; i++) sum += items[i].count;',
      '  return sum;',
      '}',
      '',
    ].join('\n'),
    'src/stats.py': ['def mean(values):', '    return sum(values) / len(values)', '', ''].join('\n'),
  };
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
}

/**
 * The model the server loads: INTERNLM_E2E_MODEL (e.g. a real InternLM2.5 GGUF) or a generated one
 * with random weights, big enough that a reply takes long enough to watch it stream and stop it.
 */
export async function e2eModel(dir) {
  if (process.env.INTERNLM_E2E_MODEL) return process.env.INTERNLM_E2E_MODEL;
  const { makeModel } = await import('../fixtures/make-model.mjs');
  const made = await makeModel({ dir, preset: 'tiny', dim: 256, nLayers: 4, nHeads: 4, nKvHeads: 2, ffnDim: 768, formats: ['gguf-f32'] });
  return made.paths['gguf-f32'];
}
