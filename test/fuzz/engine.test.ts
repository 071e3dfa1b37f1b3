import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fuzz, generateCase } from './engine.js';
import { TARGETS, target } from './targets.js';
import { Rng } from './rng.js';

test('a case that never ends is reported as a hang and the run goes on; one that eats memory as a crash; a TypeError as an error', async () => {
  const r = await fuzz({ target: 'selftest', seed: 1, cases: 14, caseTimeoutMs: 3000, maxHeapMb: 64 });
  assert.equal(r.failures.map((f) => [f.case, f.kind]), [[7, 'hang'], [9, 'crash'], [11, 'error']]);
  assert.match(r.failures[0]!.message, /longer than 3000 ms/);
  assert.match(r.failures[1]!.message, /worker died/);
  assert.match(r.failures[2]!.message, /^TypeError: /);
  // The failing inputs are the cases' own, generated again.
  for (const f of r.failures) assert.equal([...f.input], [...generateCase(target('selftest'), 1, f.case)]);
  assert.is(r.cases, 14);
  // (Outcome counts of a worker that was stopped are lost: statistics only.)
  assert.is(r.outcomes['ok'], 3, 'cases 10, 12 and 13, after the last restart');
});

test('cases are reproducible from (seed, case) alone, and differ between seeds', () => {
  for (const t of TARGETS.filter((x) => x.name === 'audit-line' || x.name === 'otlp-protobuf')) {
    for (const n of [0, 1, 17]) {
      assert.equal(Buffer.from(generateCase(t, 5, n)), Buffer.from(generateCase(t, 5, n)), `${t.name} ${n}`);
    }
    assert.not.equal(Buffer.from(generateCase(t, 5, 3)), Buffer.from(generateCase(t, 6, 3)));
  }
  const a = new Rng(1, 2);
  const b = new Rng(1, 2);
  for (let i = 0; i < 100; i++) assert.is(a.u32(), b.u32());
});

test.run();
