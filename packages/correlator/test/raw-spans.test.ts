import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readAuditEventJson, redactAuditEvent, validateAuditEvent, type AuditEvent } from '@kube-correlate/audit';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { decodeTraceRequest, encodeTraceRequest, scanTraceRequest, splitTraceRequest, type RawSpan, type Span } from '@kube-correlate/otlp';
import { PipelineMetrics } from '@kube-correlate/telemetry';
import { buildRequestTree, decodeCorrelated, encodeCorrelatedRaw, encodeCorrelatedTrace, RAW_SPANS, TraceJoin, type DescribeRequest, type JoinOutput } from '../src/index.js';

/**
 * The Kafka correlator holds spans as bytes (scanTraceRequest) and writes otlp_correlated by
 * splicing them (encodeCorrelatedRaw), and holds audit events as their text (readAuditEventJson);
 * the embedded one holds decoded Spans and parsed events and encodes them (encodeCorrelatedTrace).
 * Fed the same messages, the two joins settle the same traces and their outputs decode to the same
 * spans (as sets: splicing groups spans by resource and scope; an audit span event's JSON as the
 * value it parses to: a held text keeps its original spelling).
 */

/** Audit events from their JSON texts: as the Kafka correlator holds them, and parsed, validated and redacted (as it did before). */
function auditFromTexts(texts: readonly string[]): { held: AuditEvent[]; parsed: AuditEvent[]; original: number } {
  const held: AuditEvent[] = [];
  const parsed: AuditEvent[] = [];
  let original = 0;
  for (const text of texts) {
    const r = readAuditEventJson(text);
    const v = validateAuditEvent(JSON.parse(text));
    if ('error' in r || typeof v === 'string') continue;
    held.push(r.event);
    parsed.push(redactAuditEvent(v).event);
    if (r.original) original++;
  }
  return { held, parsed, original };
}

const DATA_DIR = process.env['KC_SHARED_DATA'] ?? fileURLToPath(new URL('../../../../../shared/data/', import.meta.url));

/** Names every request whose verb is create or get (so k8s.api.* attributes are appended too). */
const describe: DescribeRequest = (events) => (['create', 'get'].includes(events[0]!.verb) ? { operationId: `op-${events[0]!.verb}`, stability: 'stable' } : undefined);

interface Run<S> { out: JoinOutput<number, S>; metrics: PipelineMetrics }

function runBoth(messages: readonly Uint8Array[], events: readonly AuditEvent[], heldEvents: readonly AuditEvent[] = events): { decoded: Run<Span>; raw: Run<RawSpan> } {
  const dm = new PipelineMetrics();
  const rm = new PipelineMetrics();
  const dj = new TraceJoin<number>({ metrics: dm, describeRequest: describe });
  const rj = new TraceJoin<number, RawSpan>({ metrics: rm, describeRequest: describe, spanModel: RAW_SPANS });
  messages.forEach((m, i) => {
    dj.addSpans(decodeTraceRequest(m).spans, 1000, i, m.byteLength);
    rj.addSpans(scanTraceRequest(m).spans, 1000, i, m.byteLength);
  });
  dj.addAuditEvents(events, 2000);
  rj.addAuditEvents(heldEvents, 2000);
  assert.equal(rj.stats(), dj.stats(), 'the same state (bytes included)');
  return { decoded: { out: dj.settle(3000, true), metrics: dm }, raw: { out: rj.settle(3000, true), metrics: rm } };
}

/** The span with each audit span event's JSON as the value it parses to. */
const spanKey = (s: Span): string => JSON.stringify({ ...s, events: s.events.map((e) => ({ ...e, attributes: e.attributes.map((kv) => (kv.key === 'k8s.audit.event' && 'stringValue' in kv.value ? { ...kv, value: JSON.parse(kv.value.stringValue) as unknown } : kv)) })) });
const asSet = (spans: readonly Span[]): Span[] => [...spans].sort((a, b) => (spanKey(a) < spanKey(b) ? -1 : spanKey(a) > spanKey(b) ? 1 : 0));

/** Asserts the two outputs decode to the same spans; returns how many spans and route spans with added attributes there were. */
async function compare(what: string, r: { decoded: Run<Span>; raw: Run<RawSpan> }): Promise<{ spans: number; annotated: number }> {
  const d = r.decoded.out;
  const w = r.raw.out;
  assert.equal(w.traces.map((t) => t.traceId), d.traces.map((t) => t.traceId), `${what}: the same traces settle`);
  assert.equal(w.released, d.released, `${what}: the same tokens released`);
  for (const name of ['kube_correlate_correlator_dropped_total', 'kube_correlate_correlator_settled_total', 'kube_correlate_correlator_joined_total']) {
    const [a, b] = await Promise.all([r.raw.metrics, r.decoded.metrics].map(async (m) => (await m.registry.metrics()).split('\n').filter((l) => l.startsWith(name)).join('\n')));
    assert.is(a, b, `${what}: ${name}`);
  }
  let spans = 0;
  let annotated = 0;
  for (let i = 0; i < d.traces.length; i++) {
    const [dt, wt] = [d.traces[i]!, w.traces[i]!];
    const old = decodeTraceRequest(encodeTraceRequest(encodeCorrelatedTrace(dt.traceId, dt.spans, dt.auditEvents, dt.anchors, d.apiOperations)));
    const spliced = decodeTraceRequest(encodeCorrelatedRaw(wt.traceId, wt.spans, wt.auditEvents, wt.anchors, w.apiOperations));
    assert.is(spliced.rejected.length, 0);
    assert.equal(asSet(spliced.spans).map(spanKey), asSet(old.spans).map(spanKey), `${what}: trace ${dt.traceId}`);
    // And the store reads back the same tree.
    const [a, b] = [decodeCorrelated(spliced.spans), decodeCorrelated(old.spans)];
    assert.equal(buildRequestTree(dt.traceId, a.spans, a.joined.get(dt.traceId) ?? []), buildRequestTree(dt.traceId, b.spans, b.joined.get(dt.traceId) ?? []));
    spans += old.spans.length;
    annotated += old.spans.filter((s) => s.attributes.some((kv) => kv.key === 'k8s.audit.id') && s.scope.name !== 'kube-correlate').length;
  }
  return { spans, annotated };
}

test('the Deployment scenario: the spliced output decodes to what the decoded path writes', async () => {
  const scenario = generateDeploymentScenario({ seed: 31 });
  // Each trace as the collector writes it, and some in two messages (a trace's spans in two requests).
  const messages: Uint8Array[] = [];
  for (const [i, t] of scenario.traces.entries()) {
    if (i % 3 === 0 && t.spans.length > 1) {
      const half = Math.floor(t.spans.length / 2);
      messages.push(encodeTraceRequest(t.spans.slice(0, half)), encodeTraceRequest(t.spans.slice(half)));
    } else messages.push(encodeTraceRequest(t.spans));
  }
  const audit = auditFromTexts(scenario.auditEvents.map((e) => JSON.stringify(e)));
  assert.is(audit.held.length, scenario.auditEvents.length);
  const { spans, annotated } = await compare('scenario', runBoth(messages, audit.parsed, audit.held));
  assert.ok(spans > 50 && annotated >= 5, `${spans} spans, ${annotated} route spans with audit attributes`);
});

test('the real recordings: the spliced output decodes to what the decoded path writes', async () => {
  const dir = join(DATA_DIR, 'captures');
  if (!existsSync(dir)) throw new Error(`${dir} is missing (set KC_SHARED_DATA to the directory holding captures/)`);
  for (const version of readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
    const bin = readFileSync(join(dir, version, 'otlp.bin'));
    const messages: Uint8Array[] = [];
    for (let i = 0; i < bin.length;) {
      const n = bin.readUInt32BE(i);
      // As the collector's Kafka exporter writes them: one message per trace per request.
      for (const part of splitTraceRequest(bin.subarray(i + 4, i + 4 + n))) messages.push(part.request);
      i += 4 + n;
    }
    // The recorded lines as kube-apiserver wrote them (Go's escapes and key order): held as they are.
    const audit = auditFromTexts(readFileSync(join(dir, version, 'audit.log'), 'utf8').split('\n').filter(Boolean));
    assert.ok(audit.original > 0.9 * audit.held.length, `${version}: ${audit.original} of ${audit.held.length} events held as the text they came in`);
    const run = runBoth(messages, audit.parsed, audit.held);
    const { spans, annotated } = await compare(version, run);
    assert.match(await run.raw.metrics.registry.metrics(), /correlator_dropped_total\{reason="lone_authentication"\} [1-9]/, 'lone authentication traces dropped (and as many as by the decoded join)');
    assert.ok(spans > 500 && annotated > 50, `${version}: ${spans} spans, ${annotated} route spans with audit attributes`);
  }
});

test.run();
