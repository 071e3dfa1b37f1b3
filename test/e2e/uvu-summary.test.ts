import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../harness/index.js';

/**
 * test/run.mjs counts tests from the summary uvu prints last, never from other lines of a file's
 * output (a failed bench-harness test once printed "Total: 205 s for 7 benchmarks" and counted as
 * 205 failures).
 */
interface Counts { passed: number; failed: number; ranNothing: boolean }
const mod = (await import(pathToFileURL(join(ROOT, 'test', 'uvu-summary.mjs')).href)) as {
  uvuSummary: (out: string) => { total: number; passed: number; skipped: number } | undefined;
  fileCounts: (out: string, exit: { code: number | null; signal: string | null }) => Counts;
};

const summary = (total: number, passed: number, skipped = 0) =>
  `\n  Total:     ${total}\n  \x1b[31mPassed:    ${passed}\x1b[39m\n  Skipped:   ${skipped}\n  Duration:  1.23s\n\n`;

test('a failed test whose output holds other "Total:" lines counts once', () => {
  const out = `bench-harness  ✘\n   FAIL  "runs every benchmark"\nTotal bench time: 44 s\nTotal: 205 s for 7 benchmarks, 1 failed.\n${summary(1, 0)}`;
  assert.equal(mod.fileCounts(out, { code: 1, signal: null }), { passed: 0, failed: 1, ranNothing: false });
});

test('only the last summary counts (a child process printed its own)', () => {
  const out = `${summary(9, 9)}more output\n${summary(3, 2)}`;
  assert.equal(mod.uvuSummary(out), { total: 3, passed: 2, skipped: 0 });
  assert.equal(mod.fileCounts(out, { code: 1, signal: null }), { passed: 2, failed: 1, ranNothing: false });
});

test('all passed', () => {
  assert.equal(mod.fileCounts(`•••\n${summary(3, 3)}`, { code: 0, signal: null }), { passed: 3, failed: 0, ranNothing: false });
});

test('a skipped test is not a pass', () => {
  assert.equal(mod.fileCounts(summary(3, 2, 1), { code: 0, signal: null }), { passed: 2, failed: 1, ranNothing: false });
});

test('a crash or a hang without a summary is one failure', () => {
  assert.equal(mod.fileCounts('Error: boom\n    at x (y.js:1:1)\n', { code: 1, signal: null }), { passed: 0, failed: 1, ranNothing: true });
  assert.equal(mod.fileCounts(`partial\n[run] timed out after 600s\n`, { code: null, signal: 'SIGKILL' }), { passed: 0, failed: 1, ranNothing: true });
  // A summary cut off by the kill does not count.
  assert.equal(mod.uvuSummary('  Total:     4\n  Passed:    4\n'), undefined);
});

test('a file that ran no test is a failure', () => {
  assert.equal(mod.fileCounts('', { code: 0, signal: null }), { passed: 0, failed: 1, ranNothing: true });
  assert.equal(mod.fileCounts(summary(0, 0), { code: 0, signal: null }), { passed: 0, failed: 1, ranNothing: true });
});

test.run();
