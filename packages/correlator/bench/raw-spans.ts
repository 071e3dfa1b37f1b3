/**
 * Decoded Spans vs RawSpans in the join, in one process (issue 15, item 2):
 *
 *   node --expose-gc packages/correlator/dist/bench/raw-spans.js [--copies K] [--rounds R]
 *
 * Workload: the real kube-apiserver recordings (../shared/data/captures), each request split per
 * trace as the collector's Kafka exporter writes otlp_spans, copied K times with fresh trace ids
 * and audit ids (copy k: the first 8 hex digits of every trace id, and of every auditID and
 * audit-id attribute, are k), with their audit events. Every message is a view into one large
 * buffer, as a Kafka client hands out the messages of a fetch response.
 *
 * Memory: heapUsed + arrayBuffers (after global.gc()) with every span of the workload held in a
 * TraceJoin, minus the same before, per span held:
 *   decoded       decodeTraceRequest -> Span objects (what the embedded driver holds);
 *   raw/message   scanTraceRequest over a copy of the message (what the Kafka driver does: the
 *                 spans point into that copy);
 *   raw/detached  scanTraceRequest, then detachRawSpans: one copy per span, one per scope;
 *   raw/view      scanTraceRequest over the view itself: the spans keep the whole "fetch response"
 *                 alive, which was allocated before the first measurement, so this row counts
 *                 the records and the join's own structures only (a lower bound, not a choice).
 * CPU: process.cpuUsage() for read (decodeTraceRequest, or a copy of the message and
 * scanTraceRequest), then join + audit events + settle, then encode (encodeTraceRequest of
 * encodeCorrelatedTrace, or encodeCorrelatedRaw) of the whole workload, per span and per phase;
 * the two paths alternate for R rounds and the medians are printed. The audit events are read
 * before timing: parsed for the decoded path, held as their text (readAuditEventJson, as the Kafka
 * correlator holds them) for the raw path; the cost of reading them is printed on its own line.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readAuditEventJson, redactAuditEvent, validateAuditEvent, type AuditEvent } from '@kube-correlate/audit';
import { decodeTraceRequest, detachRawSpans, encodeTraceRequest, scanTraceRequest, splitTraceRequest, type RawSpan, type Span } from '@kube-correlate/otlp';
import { PipelineMetrics } from '@kube-correlate/telemetry';
import { encodeCorrelatedRaw, encodeCorrelatedTrace } from '../src/correlated-format.js';
import { RAW_SPANS } from '../src/span-model.js';
import { TraceJoin } from '../src/trace-join.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
const COPIES = arg('--copies', 4);
const ROUNDS = arg('--rounds', 5);
const DATA_DIR = process.env['KC_SHARED_DATA'] ?? fileURLToPath(new URL('../../../../../shared/data/', import.meta.url));

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const prefix = (k: number): string => k.toString(16).padStart(8, '0');
const rewrite = (id: string, k: number): string => prefix(k) + id.slice(8);

/** As the Kafka correlator read k8s_audit before (parsed, validated, redacted), or now (readAuditEventJson: held as text). */
function readParsed(text: string): AuditEvent | undefined {
  const v = validateAuditEvent(JSON.parse(text));
  return typeof v === 'string' ? undefined : redactAuditEvent(v).event;
}
function readHeld(text: string): AuditEvent | undefined {
  const r = readAuditEventJson(text);
  return 'error' in r ? undefined : r.event;
}

function workload(): { messages: Uint8Array[]; events: AuditEvent[]; texts: string[]; spans: number } {
  const parts: Uint8Array[] = [];
  const events: AuditEvent[] = [];
  const texts: string[] = [];
  let spans = 0;
  const dir = join(DATA_DIR, 'captures');
  for (const version of readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    const bin = readFileSync(join(dir, version, 'otlp.bin'));
    const traces: Span[][] = [];
    for (let i = 0; i < bin.length;) {
      const n = bin.readUInt32BE(i);
      for (const part of splitTraceRequest(bin.subarray(i + 4, i + 4 + n))) traces.push(decodeTraceRequest(part.request).spans);
      i += 4 + n;
    }
    const recorded = readFileSync(join(dir, version, 'audit.log'), 'utf8').split('\n').filter(Boolean).flatMap((l) => {
      const e = readParsed(l);
      return e ? [{ e, l }] : [];
    });
    for (let k = 0; k < COPIES; k++) {
      for (const list of traces) {
        const copy = list.map((s) => ({
          ...s,
          traceId: rewrite(s.traceId, k),
          attributes: s.attributes.map((kv) => (kv.key === 'audit-id' && 'stringValue' in kv.value ? { key: kv.key, value: { stringValue: rewrite(kv.value.stringValue, k) } } : kv)),
        }));
        parts.push(encodeTraceRequest(copy));
        spans += copy.length;
      }
      for (const { e, l } of recorded) {
        events.push({ ...e, auditID: rewrite(e.auditID, k) });
        texts.push(l.replace(`"auditID":"${e.auditID}"`, `"auditID":"${rewrite(e.auditID, k)}"`));
      }
    }
  }
  // One buffer, messages as views into it (a fetch response).
  const all = Buffer.concat(parts);
  const messages: Uint8Array[] = [];
  let at = 0;
  for (const p of parts) {
    messages.push(all.subarray(at, at + p.length));
    at += p.length;
  }
  return { messages, events, texts, spans };
}

type Variant = 'decoded' | 'raw/message' | 'raw/detached' | 'raw/view' | '+audit parsed' | '+audit held';

function held(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/**
 * Bytes per span held: the join with every span of the workload in it (no settle). The `+audit`
 * variants are raw/message with every audit event joined too, read from its text as before
 * (parsed) or as the Kafka correlator now holds them (held: the text and the join's fields).
 */
function memory(variant: Variant, messages: readonly Uint8Array[], texts: readonly string[]): { perSpan: number; spans: number } {
  const before = held();
  let spans = 0;
  let join: TraceJoin<number, Span> | TraceJoin<number, RawSpan>;
  if (variant === 'decoded') {
    const j = new TraceJoin<number>({ metrics: new PipelineMetrics(), maxSpansInFlight: 10_000_000, maxTracesInFlight: 10_000_000, maxBytesInFlight: 2 ** 40 });
    messages.forEach((m, i) => j.addSpans(decodeTraceRequest(m).spans, 0, i, m.byteLength));
    join = j;
  } else {
    const j = new TraceJoin<number, RawSpan>({ metrics: new PipelineMetrics(), spanModel: RAW_SPANS, maxSpansInFlight: 10_000_000, maxTracesInFlight: 10_000_000, maxBytesInFlight: 2 ** 40 });
    messages.forEach((m, i) => {
      if (variant === 'raw/message' || variant.startsWith('+audit')) j.addSpans(scanTraceRequest(new Uint8Array(m)).spans, 0, i, m.byteLength);
      else if (variant === 'raw/view') j.addSpans(scanTraceRequest(m).spans, 0, i, m.byteLength);
      else {
        const s = scanTraceRequest(m).spans;
        detachRawSpans(s);
        j.addSpans(s, 0, i, m.byteLength);
      }
    });
    if (variant.startsWith('+audit')) {
      const read = variant === '+audit held' ? readHeld : readParsed;
      // Each text a string of its own, as each Kafka message's value is (the workload's stay alive).
      j.addAuditEvents(texts.flatMap((t) => read(Buffer.from(t, 'utf8').toString('utf8')) ?? []), 0);
    }
    join = j;
  }
  spans = join.stats().spansInFlight;
  const after = held();
  if (join.stats().tracesInFlight === 0) throw new Error('nothing held');
  return { perSpan: (after - before) / spans, spans };
}

interface Phases { read: number; join: number; encode: number; total: number }

/** CPU µs per span: read (all messages), then join + audit + settle, then encode, of the whole workload. */
function cpu(raw: boolean, messages: readonly Uint8Array[], events: readonly AuditEvent[], texts: readonly string[], spans: number): Phases {
  // Read before timing, afresh each round (a held event may keep what it worked out on first use).
  const heldEvents = raw ? texts.flatMap((t) => readHeld(t) ?? []) : [];
  const opts = { metrics: new PipelineMetrics(), maxSpansInFlight: 10_000_000, maxTracesInFlight: 10_000_000, maxBytesInFlight: 2 ** 40 };
  let bytes = 0;
  const us = (d: NodeJS.CpuUsage): number => (d.user + d.system) / spans;
  const t0 = process.cpuUsage();
  let t1: NodeJS.CpuUsage;
  let t2: NodeJS.CpuUsage;
  if (raw) {
    const read = messages.map((m) => scanTraceRequest(new Uint8Array(m)).spans);
    t1 = process.cpuUsage(t0);
    const j = new TraceJoin<number, RawSpan>({ ...opts, spanModel: RAW_SPANS });
    read.forEach((list, i) => j.addSpans(list, 0, i, messages[i]!.byteLength));
    j.addAuditEvents(heldEvents, 0);
    const out = j.settle(1, true);
    t2 = process.cpuUsage(t0);
    for (const t of out.traces) bytes += encodeCorrelatedRaw(t.traceId, t.spans, t.auditEvents, t.anchors, out.apiOperations).byteLength;
  } else {
    const read = messages.map((m) => decodeTraceRequest(m).spans);
    t1 = process.cpuUsage(t0);
    const j = new TraceJoin<number>(opts);
    read.forEach((list, i) => j.addSpans(list, 0, i, messages[i]!.byteLength));
    j.addAuditEvents(events, 0);
    const out = j.settle(1, true);
    t2 = process.cpuUsage(t0);
    for (const t of out.traces) bytes += encodeTraceRequest(encodeCorrelatedTrace(t.traceId, t.spans, t.auditEvents, t.anchors, out.apiOperations)).byteLength;
  }
  const t3 = process.cpuUsage(t0);
  if (bytes === 0) throw new Error('nothing written');
  return { read: us(t1), join: us(t2) - us(t1), encode: us(t3) - us(t2), total: us(t3) };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const { messages, events, texts, spans } = workload();
const bytes = messages.reduce((n, m) => n + m.byteLength, 0);
process.stdout.write(`workload: ${spans} spans in ${messages.length} otlp_spans messages (${(bytes / spans).toFixed(0)} bytes per span as received), ${events.length} audit events, ${COPIES} copies of the recordings\n`);

const mem: Record<string, number> = {};
const variants: Variant[] = ['decoded', 'raw/message', 'raw/detached', 'raw/view', '+audit parsed', '+audit held'];
for (const v of [...variants, ...variants]) {
  const r = memory(v, messages, texts);
  mem[v] = Math.min(mem[v] ?? Infinity, r.perSpan); // the lower of two passes: garbage of the other pass may not all be collected
}
process.stdout.write(`\nheap + arrayBuffers per span held in the join (bytes; ${(bytes / spans).toFixed(0)} bytes per span as received):\n`);
for (const [v, b] of Object.entries(mem)) process.stdout.write(`  ${v.padEnd(13)} ${b.toFixed(0).padStart(6)}   ${(mem['decoded']! / b).toFixed(2)}x less than decoded\n`);

{
  // Reading k8s_audit: parse + validate + redact, then (before) the stringify that forwarded it, or (now) readAuditEventJson.
  const perEvent = (f: () => void): number => {
    const t0 = process.cpuUsage();
    f();
    const d = process.cpuUsage(t0);
    return (d.user + d.system) / texts.length;
  };
  const before: number[] = [];
  const now: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    before.push(perEvent(() => { for (const t of texts) JSON.stringify(readParsed(t)); }));
    now.push(perEvent(() => { for (const t of texts) readHeld(t); }));
  }
  process.stdout.write(`\nCPU µs per audit event read from k8s_audit (medians of ${ROUNDS}): parsed + stringified to forward ${median(before).toFixed(2)}, held as text ${median(now).toFixed(2)}\n`);
}

const dec: Phases[] = [];
const raw: Phases[] = [];
cpu(false, messages, events, texts, spans); // warm-up
cpu(true, messages, events, texts, spans);
for (let r = 0; r < ROUNDS; r++) {
  dec.push(cpu(false, messages, events, texts, spans));
  raw.push(cpu(true, messages, events, texts, spans));
}
const row = (name: string, xs: Phases[]): string => {
  const m = (k: keyof Phases): string => median(xs.map((x) => x[k])).toFixed(2).padStart(7);
  return `  ${name.padEnd(9)} ${m('read')} ${m('join')} ${m('encode')} ${m('total')}   (totals: ${xs.map((x) => x.total.toFixed(2)).join(' ')})\n`;
};
process.stdout.write(`\nCPU µs per span (medians of ${ROUNDS} alternating rounds; read = decode or copy + scan, join = join + audit events + settle, encode = otlp_correlated):\n`);
process.stdout.write('               read    join  encode   total\n');
process.stdout.write(row('decoded', dec));
process.stdout.write(row('raw', raw));
const ratio = (k: keyof Phases): string => (median(dec.map((x) => x[k])) / median(raw.map((x) => x[k]))).toFixed(2).padStart(7);
process.stdout.write(`  ${'ratio'.padEnd(9)} ${ratio('read')} ${ratio('join')} ${ratio('encode')} ${ratio('total')}   (decoded / raw)\n`);
