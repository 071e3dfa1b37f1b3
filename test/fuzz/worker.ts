/** The fuzz worker thread: runs cases [first, end) of one target and seed (engine.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { corpusOf, generateCase, runCase, type WorkerData, type WorkerMessage } from './engine.js';
import { target } from './targets.js';

const data = workerData as WorkerData;
const t = target(data.target);
corpusOf(t);
const counters = new Int32Array(data.progress);
const outcomes: Record<string, number> = {};
let slowest = { case: -1, ms: 0 };
let n = data.first;
for (; data.end < 0 || n < data.end; n++) {
  if (data.deadline && Date.now() > data.deadline) break;
  Atomics.store(counters, 0, n);
  Atomics.add(counters, 1, 1);
  let input: Uint8Array;
  try {
    input = generateCase(t, data.seed, n);
  } catch (err) {
    parentPort!.postMessage({ type: 'failure', case: n, message: `fuzzer bug: generating the case threw ${(err as Error).stack ?? String(err)}`, input: new Uint8Array(0) } satisfies WorkerMessage);
    continue;
  }
  const t0 = performance.now();
  const r = runCase(t, input);
  const ms = performance.now() - t0;
  if (ms > slowest.ms) slowest = { case: n, ms };
  if ('outcome' in r) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
  else parentPort!.postMessage({ type: 'failure', case: n, message: r.message, ...(r.stack ? { stack: r.stack } : {}), input } satisfies WorkerMessage);
}
parentPort!.postMessage({ type: 'done', cases: n - data.first, outcomes, slowest } satisfies WorkerMessage);
