// What one test file's output says about its tests: uvu prints one summary block when the process
// ends ("Total: N", "Passed: N", "Skipped: N", "Duration: ..." on consecutive lines). Only that block
// counts: a test's own output may hold "Total: 205 s for 7 benchmarks" (the bench runner's last line)
// or a child's uvu summary, and counting every "Total:" line turned one failed test into 205.
// Shared by test/run.mjs and its test (test/e2e/uvu-summary.test.ts).

const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
const BLOCK = /^\s*Total:\s+(\d+)\s*\n\s*Passed:\s+(\d+)\s*\n\s*Skipped:\s+(\d+)\s*\n\s*Duration:[^\n]*\n?\s*$/;

/**
 * The tests a file ran, from its whole output: `{ total, passed, skipped }` of the summary block it
 * ends with, or undefined when it does not end with one (it crashed, hung or ran nothing).
 */
export function uvuSummary(output) {
  const text = strip(output).trimEnd() + '\n';
  const at = text.lastIndexOf('Total:');
  if (at < 0) return undefined;
  const lineStart = text.lastIndexOf('\n', at) + 1;
  const m = BLOCK.exec(text.slice(lineStart));
  if (!m) return undefined;
  return { total: Number(m[1]), passed: Number(m[2]), skipped: Number(m[3]) };
}

/**
 * How one file counts: its failed tests, or 1 when it exited badly without a summary that says so
 * (a crash or a hang is one failure, never silence), or ran no test at all.
 */
export function fileCounts(output, exit) {
  const s = uvuSummary(output);
  const passed = s?.passed ?? 0;
  // A skipped test is not a passed one: under CI nothing may skip.
  let failed = s ? s.total - s.passed : 0;
  const bad = exit.code !== 0 || !!exit.signal;
  if (bad && failed === 0) failed = 1;
  const ranNothing = !s || s.total === 0;
  if (ranNothing && failed === 0) failed = 1; // a file that ran no test is a failure, not a pass
  return { passed, failed, ranNothing };
}
