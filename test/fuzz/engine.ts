/**
 * Runs a fuzz target in a worker thread, case after case, from a seed: case i is generated from
 * Rng(seed, i) alone, so any failure can be generated again from (target, seed, case). The main
 * thread watches a shared progress counter: a case that runs longer than `caseTimeoutMs` is a hang
 * (the worker is terminated), a worker that dies (out of memory) is a crash; either way the case's
 * input is generated again here, reported, and the run continues with the next case.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Rng } from './rng.js';
import { target as findTarget, type Corpus, type Target } from './targets.js';

export interface FuzzOptions {
  target: string;
  seed: number;
  /** Stop after this many cases... */
  cases?: number;
  /** ...or after this many seconds (whichever comes first). */
  seconds?: number;
  /** A case running longer than this is a hang. */
  caseTimeoutMs?: number;
  /** Stop collecting after this many failures. */
  maxFailures?: number;
  /** Worker heap limit: an input that makes a decoder allocate past it is a crash. */
  maxHeapMb?: number;
}

export interface Failure {
  target: string;
  seed: number;
  case: number;
  kind: 'error' | 'hang' | 'crash';
  /** Error name and message (first line of the report). */
  message: string;
  stack?: string;
  input: Uint8Array;
}

export interface FuzzReport {
  target: string;
  seed: number;
  cases: number;
  /** Cases per outcome label (statistics: those of a worker stopped by a hang or crash are lost). */
  outcomes: Record<string, number>;
  failures: Failure[];
  /** The slowest case (informational: the machine is shared, timings are not asserted). */
  slowest: { case: number; ms: number };
  ms: number;
}

/** Messages from the worker. */
export type WorkerMessage =
  | { type: 'failure'; case: number; message: string; stack?: string; input: Uint8Array }
  | { type: 'done'; cases: number; outcomes: Record<string, number>; slowest: { case: number; ms: number } };

export interface WorkerData {
  target: string;
  seed: number;
  first: number;
  /** Exclusive end case, or -1 for no end. */
  end: number;
  /** Epoch ms to stop at, or 0. */
  deadline: number;
  /** Int32Array over a SharedArrayBuffer: [current case, cases started]. */
  progress: SharedArrayBuffer;
}

const corpora = new Map<string, Corpus>();

/** A target's corpus, loaded once per thread. */
export function corpusOf(t: Target): Corpus {
  let c = corpora.get(t.name);
  if (!c) corpora.set(t.name, (c = t.corpus()));
  return c;
}

/** The input of case `n` (the same in any thread). */
export function generateCase(t: Target, seed: number, n: number): Uint8Array {
  return t.generate(new Rng(seed, n), corpusOf(t), n);
}

/** Runs one case in this thread: the outcome label, or the failure. */
export function runCase(t: Target, input: Uint8Array): { outcome: string } | { message: string; stack?: string } {
  try {
    return { outcome: t.check(input) };
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    return { message: `${e.name}: ${e.message}`.slice(0, 4000), ...(e.stack ? { stack: e.stack.slice(0, 8000) } : {}) };
  }
}

export async function fuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const t = findTarget(opts.target);
  const started = Date.now();
  const deadline = opts.seconds ? started + opts.seconds * 1000 : 0;
  const end = opts.cases ?? -1;
  const caseTimeoutMs = opts.caseTimeoutMs ?? 60_000;
  const maxFailures = opts.maxFailures ?? 20;
  const report: FuzzReport = { target: t.name, seed: opts.seed, cases: 0, outcomes: {}, failures: [], slowest: { case: -1, ms: 0 }, ms: 0 };
  let first = 0;
  while ((end < 0 || first < end) && (!deadline || Date.now() < deadline) && report.failures.length < maxFailures) {
    const progress = new SharedArrayBuffer(8);
    const counters = new Int32Array(progress);
    counters[0] = first - 1;
    const data: WorkerData = { target: t.name, seed: opts.seed, first, end, deadline, progress };
    const worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: data,
      resourceLimits: { maxOldGenerationSizeMb: opts.maxHeapMb ?? 1536 },
      stdout: false,
      stderr: false,
    });
    const stopped = await new Promise<{ how: 'done' | 'hang' | 'crash'; error?: string }>((resolve) => {
      let last = Atomics.load(counters, 1);
      let lastChange = Date.now();
      const timer = setInterval(() => {
        const now = Atomics.load(counters, 1);
        if (now !== last) {
          last = now;
          lastChange = Date.now();
        } else if (Date.now() - lastChange > (now === 0 ? Math.max(caseTimeoutMs, 300_000) : caseTimeoutMs)) {
          // (Before the first case the worker loads its corpus: a generous limit.)
          clearInterval(timer);
          void worker.terminate();
          resolve({ how: 'hang' });
        }
      }, Math.min(250, caseTimeoutMs / 4));
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'failure') {
          if (report.failures.length < maxFailures) report.failures.push({ target: t.name, seed: opts.seed, case: m.case, kind: 'error', message: m.message, ...(m.stack ? { stack: m.stack } : {}), input: m.input });
        } else {
          report.cases += m.cases;
          for (const [k, v] of Object.entries(m.outcomes)) report.outcomes[k] = (report.outcomes[k] ?? 0) + v;
          if (m.slowest.ms > report.slowest.ms) report.slowest = m.slowest;
        }
      });
      worker.on('error', (err) => {
        clearInterval(timer);
        resolve({ how: 'crash', error: `${err.name}: ${err.message}` });
      });
      worker.on('exit', () => {
        clearInterval(timer);
        resolve({ how: 'done' });
      });
    });
    if (stopped.how === 'done') break;
    // Hang or crash at the current case: generate it here, report it, go on after it.
    const n = Atomics.load(counters, 0);
    report.cases += n - first + 1;
    let input: Uint8Array = new Uint8Array(0);
    let note = '';
    try {
      input = generateCase(t, opts.seed, n);
    } catch (err) {
      note = ` (generating it again threw: ${(err as Error).message})`;
    }
    report.failures.push({
      target: t.name, seed: opts.seed, case: n, kind: stopped.how,
      message: (stopped.how === 'hang' ? `case ran longer than ${caseTimeoutMs} ms` : `worker died: ${stopped.error}`) + note,
      input,
    });
    first = n + 1;
  }
  report.ms = Date.now() - started;
  return report;
}

/** Writes a failing input (and what is known about it) to `dir`; returns the input's path. */
export function saveFailure(dir: string, f: Failure): string {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `${f.target}-seed${f.seed}-case${f.case}`);
  const ext = findTarget(f.target).ext;
  writeFileSync(`${base}.${ext}`, f.input);
  writeFileSync(`${base}.meta.json`, JSON.stringify({ target: f.target, seed: f.seed, case: f.case, kind: f.kind, message: f.message, stack: f.stack, bytes: f.input.length }, null, 2) + '\n');
  return `${base}.${ext}`;
}
