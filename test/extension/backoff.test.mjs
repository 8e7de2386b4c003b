// The server restart policy (extension/backoff.ts), compiled on the fly: it has no 'vscode' import.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { transformSync } from 'esbuild';

const source = readFileSync(new URL('../../extension/backoff.ts', import.meta.url), 'utf8');
const { code } = transformSync(source, { loader: 'ts', format: 'esm' });
const { Backoff } = await import(`data:text/javascript,${encodeURIComponent(code)}`);

describe('server restart backoff', () => {
  const options = { initialMs: 1000, maxMs: 8000, resetAfterMs: 60_000 };

  it('doubles the delay for a server that keeps dying, up to the maximum', () => {
    const backoff = new Backoff(options);
    const delays = [];
    for (let now = 0; now < 6; now++) {
      backoff.started(now * 10);
      delays.push(backoff.nextDelay(now * 10 + 5));
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 8000, 8000]);
    assert.equal(backoff.attempts, 6);
  });

  it('starts over once the server has run long enough', () => {
    const backoff = new Backoff(options);
    backoff.started(0);
    backoff.nextDelay(1);
    backoff.started(2);
    assert.equal(backoff.nextDelay(3), 2000);
    backoff.started(10);
    assert.equal(backoff.nextDelay(10 + 60_000), 1000);
    assert.equal(backoff.attempts, 1);
  });

  it('starts over after a restart by the user', () => {
    const backoff = new Backoff(options);
    backoff.nextDelay(0);
    backoff.nextDelay(1);
    backoff.reset();
    assert.equal(backoff.nextDelay(2), 1000);
  });
});
