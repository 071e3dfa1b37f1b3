/**
 * What one TraceJoin.settle() call costs with many traces held (the Kafka driver calls it at each
 * trace's due time, up to every 20 ms):
 *
 *   node packages/correlator/dist/bench/settle-scan.js [--traces N] [--calls C]
 *
 * Two cases over N held traces of one span each: nothing due (the walk stops at the oldest trace,
 * LRU order), and every trace idle but held back by the driver's `ready` (a catch-up: the walk
 * visits all of them). The reference, in the same process, is copying the trace map once per call
 * (what settle() did before it walked the map in place).
 */
import { TraceJoin, type JoinSpan, type JoinSpanModel } from '../src/index.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} takes a positive number`);
  return v;
}

const traces = arg('--traces', 50_000);
const calls = arg('--calls', 2000);
const model: JoinSpanModel<JoinSpan> = { auditId: () => undefined, isLoneAuthentication: () => false };
const join = new TraceJoin<number, JoinSpan>({
  settleAfterMs: 1000, spanModel: model,
  maxTracesInFlight: traces * 2, maxSpansInFlight: traces * 2, maxBytesInFlight: Number.MAX_SAFE_INTEGER,
});
const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
const held = new Map<string, JoinSpan>();
for (let i = 0; i < traces; i++) {
  const span = { traceId: hex(i + 1, 32), spanId: hex(i + 1, 16) };
  join.addSpans([span], 0);
  held.set(span.traceId, span);
}

const perCall = (n: number, fn: () => void): number => {
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t) / n / 1000;
};

let sink = 0;
const copy = perCall(calls, () => { sink += [...held.values()].length; });
const nothingDue = perCall(calls, () => { sink += join.settle(500).traces.length; });
const waiting = perCall(Math.max(1, Math.floor(calls / 10)), () => { sink += join.settle(1500, false, () => false).traces.length; });
if (sink !== traces * calls) throw new Error(`settle handed out traces: ${sink - traces * calls}`);

const f = (us: number) => (us < 10 ? us.toFixed(2) : us.toFixed(0));
process.stdout.write(
  `settle() with ${traces} traces held (µs per call):\n` +
  `  reference: copy of the trace map    ${f(copy)}\n` +
  `  nothing due                         ${f(nothingDue)}  (${(nothingDue / copy).toFixed(3)}× the copy)\n` +
  `  every trace waiting on ready()      ${f(waiting)}  (${(waiting / copy).toFixed(2)}× the copy)\n`,
);
