/**
 * Long fuzz runs (npm run fuzz), and replays of saved inputs.
 *
 *   node test/dist/fuzz/run.js [--seconds 600] [--target otlp-protobuf,otlp-json,...] [--seed N]
 *                              [--cases N] [--case-timeout MS] [--out DIR]
 *   node test/dist/fuzz/run.js --replay FILE [--target NAME]
 *
 * Without --seed, every round takes a new random seed; rounds of `--round` seconds (60) go through
 * the targets in turn until --seconds have passed. Each failing input is printed and saved to --out
 * (test/artifacts/fuzz) with its seed, case number and error: `--replay` runs it again, and copying
 * it into test/fuzz/regressions/<target>/ makes it a regression test of the suite.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fuzz, runCase, saveFailure, type Failure } from './engine.js';
import { randomSeed } from './rng.js';
import { TARGETS, preview, target } from './targets.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function option(name: string): string | undefined {
  const i = process.argv.lastIndexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function number(name: string, fallback: number): number {
  const v = option(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} ${v}: expected a number`);
  return n;
}

function print(f: Failure, saved?: string): void {
  process.stdout.write(`\nFAIL ${f.target} seed ${f.seed} case ${f.case} (${f.kind}): ${f.message}\n`);
  if (f.stack) process.stdout.write(`${f.stack.split('\n').slice(1, 8).join('\n')}\n`);
  process.stdout.write(`  input: ${preview(f.input)}\n`);
  if (saved) process.stdout.write(`  saved: ${saved}\n  replay: node test/dist/fuzz/run.js --replay ${saved}\n`);
}

async function replay(file: string): Promise<number> {
  const meta = file.replace(/\.(bin|json|txt)$/, '.meta.json');
  const name = option('target') ?? (existsSync(meta) ? (JSON.parse(readFileSync(meta, 'utf8')) as { target: string }).target : basename(join(file, '..')));
  const t = target(name);
  const r = runCase(t, readFileSync(file));
  if ('outcome' in r) {
    process.stdout.write(`${file}: ${t.name}: ok (${r.outcome})\n`);
    return 0;
  }
  process.stdout.write(`${file}: ${t.name}: FAIL ${r.message}\n${r.stack ?? ''}\n`);
  return 1;
}

async function main(): Promise<number> {
  const replays = process.argv.flatMap((a, i) => (process.argv[i - 1] === '--replay' ? [a] : []));
  if (replays.length) {
    let bad = 0;
    for (const f of replays) bad += await replay(f);
    return bad ? 1 : 0;
  }
  const names = (option('target') ?? TARGETS.map((t) => t.name).join(',')).split(',').map((s) => target(s.trim()).name);
  const seconds = number('seconds', 600);
  const round = number('round', 60);
  const cases = option('cases') !== undefined ? number('cases', 0) : undefined;
  const fixedSeed = option('seed') !== undefined ? number('seed', 0) : undefined;
  const caseTimeoutMs = number('case-timeout', 30_000);
  const out = option('out') ?? join(ROOT, 'test', 'artifacts', 'fuzz');
  const started = Date.now();
  let failures = 0;
  let rounds = 0;
  process.stdout.write(`fuzzing ${names.join(', ')} for ${cases !== undefined ? `${cases} cases each` : `${seconds} s`}; failing inputs go to ${out}\n`);
  do {
    for (const name of names) {
      const left = seconds - (Date.now() - started) / 1000;
      if (cases === undefined && left <= 0) break;
      const seed = fixedSeed !== undefined ? fixedSeed + rounds : randomSeed();
      const r = await fuzz({ target: name, seed, caseTimeoutMs, ...(cases !== undefined ? { cases } : { seconds: Math.min(round, left) }) });
      const counts = Object.entries(r.outcomes).sort().map(([k, v]) => `${k} ${v}`).join(', ');
      process.stdout.write(`${name} seed ${seed}: ${r.cases} cases in ${(r.ms / 1000).toFixed(1)} s (${counts}); slowest case ${r.slowest.case} ${r.slowest.ms.toFixed(0)} ms; ${r.failures.length} failures\n`);
      for (const f of r.failures) print(f, saveFailure(out, f));
      failures += r.failures.length;
    }
    rounds++;
  } while (cases === undefined && (Date.now() - started) / 1000 < seconds);
  process.stdout.write(`\n${failures} failures in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  return failures ? 1 : 0;
}

process.exitCode = await main();
