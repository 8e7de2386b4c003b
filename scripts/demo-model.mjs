// The model npm start and npm run chat use when none is given: the test generator's tiny model with
// random weights (generated once into .cache/demo/). It proves the whole path works; its replies are noise.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './package.mjs';

export const DEMO_MODEL = path.join(ROOT, '.cache', 'demo', 'model-f32.gguf');

export async function demoModel() {
  if (!existsSync(DEMO_MODEL)) {
    const { makeModel } = await import('../test/fixtures/make-model.mjs');
    await makeModel({ dir: path.dirname(DEMO_MODEL), preset: 'tiny', formats: ['gguf-f32'], name: 'internlm2-demo (random weights)' });
  }
  return DEMO_MODEL;
}
