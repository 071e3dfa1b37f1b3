/**
 * The suite's fuzz test of one target: a fixed number of cases from a fixed seed (the same inputs
 * on every run), then every saved regression input of the target. A failure prints the input and
 * where it was saved; `node test/dist/fuzz/run.js --replay <file>` runs it again.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fuzz, runCase, saveFailure } from './engine.js';
import { preview, target } from './targets.js';

/** test/fuzz/regressions in the source tree (from test/dist/fuzz/). */
const REGRESSIONS = fileURLToPath(new URL('../../fuzz/regressions/', import.meta.url));

export function fuzzSuite(name: string, opts: { seed: number; cases: number; expect: readonly string[] }): void {
  const t = target(name);
  test(`${name}: ${opts.cases} mutated recordings from seed ${opts.seed}: typed errors only, round trips hold, no hang`, async () => {
    const r = await fuzz({ target: name, seed: opts.seed, cases: opts.cases, caseTimeoutMs: 120_000 });
    const counts = Object.entries(r.outcomes).sort().map(([k, v]) => `${k} ${v}`).join(', ');
    process.stdout.write(`\n  ${name}: ${r.cases} cases in ${(r.ms / 1000).toFixed(1)} s (${counts}); slowest case ${r.slowest.case}: ${r.slowest.ms.toFixed(0)} ms\n`);
    const dir = join(tmpdir(), 'kube-correlate-fuzz');
    for (const f of r.failures) {
      const saved = saveFailure(dir, f);
      process.stdout.write(`  FAIL case ${f.case} (${f.kind}): ${f.message}\n    input ${preview(f.input, 200)}\n    saved ${saved} (replay: node test/dist/fuzz/run.js --replay ${saved})\n${f.stack ? `${f.stack.split('\n').slice(1, 6).join('\n')}\n` : ''}`);
    }
    assert.equal(r.failures.map((f) => `case ${f.case}: ${f.message}`), []);
    assert.is(r.cases, opts.cases);
    // Not degenerate: the mutations reach every outcome the decoder has.
    for (const o of opts.expect) assert.ok((r.outcomes[o] ?? 0) > 0, `no case ended "${o}" (${counts})`);
  });

  test(`${name}: saved regression inputs`, () => {
    const dir = join(REGRESSIONS, name);
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => !f.endsWith('.meta.json')).sort() : [];
    for (const f of files) {
      const r = runCase(t, readFileSync(join(dir, f)));
      assert.ok('outcome' in r, `${f}: ${'message' in r ? r.message : ''}`);
    }
    if (files.length) process.stdout.write(`\n  ${name}: ${files.length} regression inputs replayed\n`);
  });
}
