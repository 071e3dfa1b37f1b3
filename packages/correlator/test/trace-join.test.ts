import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PipelineMetrics } from '@kube-correlate/telemetry';
import { auditEventJson, readAuditEventJson, type AuditEvent } from '@kube-correlate/audit';
import type { Span } from '@kube-correlate/otlp';
import { TraceJoin, type JoinOutput, type TraceJoinOptions } from '../src/index.js';
import { auditEvent, makeSpan, traceIdOf as tid } from '@kube-correlate/fixtures';

/**
 * The join rules (trace-join.ts), with an injected clock: what settles when, caps, duplicates, late
 * data, and the tokens each output releases (the drivers' at-least-once bookkeeping).
 */
function setup(opts: Partial<TraceJoinOptions> = {}) {
  let now = 0;
  let token = 0;
  const outputs: JoinOutput<number>[] = [];
  const metrics = new PipelineMetrics();
  const held: number[] = [];
  const join = new TraceJoin<number>({ settleAfterMs: 1000, pendingAuditTtlMs: 5000, metrics, onHold: ((t: number) => held.push(t)) as (t: never) => void, ...opts });
  // The driver's part: each add is one source message with its own token.
  const c = {
    addSpans: (s: Span[]) => join.addSpans(s, now, ++token),
    addAuditEvents: (e: AuditEvent[]) => join.addAuditEvents(e, now, ++token),
    tick: async () => void outputs.push(join.settle(now)),
    flush: async () => void outputs.push(join.settle(now)),
    stop: async () => void outputs.push(join.settle(now, true)),
    stats: () => join.stats(),
  };
  return {
    c, outputs, metrics, held, advance: (ms: number) => (now += ms),
    all: () => ({ traces: outputs.flatMap((o) => o.traces), unjoined: outputs.flatMap((o) => o.unjoinedAuditEvents), released: outputs.flatMap((o) => o.released) }),
  };
}

const counter = async (m: PipelineMetrics, name: string, labels: Record<string, string> = {}) => {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = metric?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
};

test('spans then audit: one update with both, after the idle window only', async () => {
  const { c, advance, all, metrics } = setup();
  c.addSpans([makeSpan({ trace: 1, id: 1, parent: 0, name: 'POST /api', kind: 2 }), makeSpan({ trace: 1, id: 2, parent: 1, name: 'Create', auditId: 'a1' })]);
  c.addAuditEvents([auditEvent({ auditID: 'a1', stage: 'RequestReceived' }), auditEvent({ auditID: 'a1', stage: 'ResponseComplete' })]);
  advance(999);
  await c.tick();
  assert.is(all().traces.length, 0, 'not settled before the window');
  advance(1);
  await c.tick();
  const [t] = all().traces;
  assert.ok(t);
  assert.is(t.traceId, tid(1));
  assert.equal(t.spans.map((s) => s.name), ['POST /api', 'Create']);
  assert.equal(t.auditEvents.map((e) => e.stage).sort(), ['RequestReceived', 'ResponseComplete']);
  assert.equal(t.auditIds, ['a1']);
  assert.is(await counter(metrics, 'kube_correlate_correlator_joined_total'), 1);
  assert.is(await counter(metrics, 'kube_correlate_correlator_settled_total', { reason: 'idle' }), 1);
});

test('audit before spans joins when the span with audit-id arrives', async () => {
  const { c, advance, all } = setup();
  c.addAuditEvents([auditEvent({ auditID: 'a1', stage: 'ResponseComplete' }), auditEvent({ auditID: 'a1', stage: 'RequestReceived' })]);
  assert.is(c.stats().pendingAudits, 1);
  advance(3000);
  c.addSpans([makeSpan({ trace: 1, id: 2, parent: 1, name: 'Create', auditId: 'a1' })]);
  assert.is(c.stats().pendingAudits, 0);
  advance(1000);
  await c.tick();
  assert.is(all().traces[0]!.auditEvents.length, 2);
  assert.is(all().unjoined.length, 0);
});

test('redelivered spans and audit events are dropped while buffered and counted', async () => {
  const { c, advance, all, metrics } = setup();
  c.addSpans([makeSpan({ trace: 1, id: 1, parent: 0, name: 'a' }), makeSpan({ trace: 1, id: 1, parent: 0, name: 'a' }), makeSpan({ trace: 1, id: 2, parent: 1, name: 'b', auditId: 'x' })]);
  c.addAuditEvents([auditEvent({ auditID: 'x', stage: 'RequestReceived' }), auditEvent({ auditID: 'x', stage: 'RequestReceived' })]);
  c.addAuditEvents([auditEvent({ auditID: 'y', stage: 'RequestReceived' }), auditEvent({ auditID: 'y', stage: 'RequestReceived' })]);
  advance(1000);
  await c.tick();
  assert.is(all().traces[0]!.spans.length, 2);
  assert.is(all().traces[0]!.auditEvents.length, 1);
  assert.is(await counter(metrics, 'kube_correlate_correlator_duplicates_total', { kind: 'span' }), 1);
  assert.is(await counter(metrics, 'kube_correlate_correlator_duplicates_total', { kind: 'audit_event' }), 2);
});

test('a differing copy of an audit stage is counted as a conflict, and the same copy is kept whichever came first', async () => {
  const real = auditEvent({ auditID: 'x', stage: 'ResponseComplete', user: { username: 'system:serviceaccount:kube-system:deployment-controller' } });
  const forged = auditEvent({ auditID: 'x', stage: 'ResponseComplete', user: { username: 'mallory' } });
  const kept: string[] = [];
  for (const order of [[real, forged], [forged, real]]) {
    for (const joined of [true, false]) {
      const { c, advance, all, metrics } = setup();
      if (joined) c.addSpans([makeSpan({ trace: 1, id: 2, parent: 1, name: 'b', auditId: 'x' })]);
      c.addAuditEvents([order[0]!]);
      c.addAuditEvents([order[1]!]);
      advance(joined ? 1000 : 5000);
      await c.tick();
      const events = joined ? all().traces[0]!.auditEvents : all().unjoined;
      assert.is(events.length, 1);
      kept.push(events[0]!.user.username ?? '');
      assert.is(await counter(metrics, 'kube_correlate_correlator_duplicates_total', { kind: 'audit_event_conflict' }), 1);
      assert.is(await counter(metrics, 'kube_correlate_correlator_duplicates_total', { kind: 'audit_event' }), 0);
    }
  }
  assert.is(new Set(kept).size, 1, `one choice whatever the order: ${kept.join(', ')}`);
});

test('audit events whose trace never comes are stored unjoined after their TTL', async () => {
  const { c, advance, all } = setup();
  c.addAuditEvents([auditEvent({ auditID: 'lonely', stage: 'RequestReceived' })]);
  advance(4999);
  await c.tick();
  assert.is(all().unjoined.length, 0);
  advance(1);
  await c.tick();
  assert.equal(all().unjoined.map((e) => e.auditID), ['lonely']);
});

test('a late audit event reopens its settled trace as a new update', async () => {
  const { c, advance, all } = setup();
  c.addSpans([makeSpan({ trace: 1, id: 2, parent: 1, name: 'Create', auditId: 'a1' })]);
  advance(1000);
  await c.tick();
  assert.is(all().traces.length, 1);
  c.addAuditEvents([auditEvent({ auditID: 'a1', stage: 'ResponseComplete' })]);
  assert.is(c.stats().pendingAudits, 0, 'joined through the auditID index, not left pending');
  advance(1000);
  await c.tick();
  const late = all().traces[1]!;
  assert.is(late.traceId, tid(1));
  assert.is(late.spans.length, 0);
  assert.equal(late.auditIds, ['a1']);
  assert.is(late.auditEvents[0]!.stage, 'ResponseComplete');
});

test('cap on traces in flight flushes the least recently updated trace early, losing nothing', async () => {
  const { c, all, metrics } = setup({ maxTracesInFlight: 2 });
  c.addSpans([makeSpan({ trace: 1, id: 1, parent: 0, name: 'one' })]);
  c.addSpans([makeSpan({ trace: 2, id: 1, parent: 0, name: 'two' })]);
  c.addSpans([makeSpan({ trace: 1, id: 2, parent: 1, name: 'one-b' })]); // trace 1 is now the most recent
  c.addSpans([makeSpan({ trace: 3, id: 1, parent: 0, name: 'three' })]);
  assert.is(c.stats().tracesInFlight, 2);
  await c.flush();
  assert.equal(all().traces.map((t) => [t.traceId, t.reason]), [[tid(2), 'max_traces']]);
  assert.is(await counter(metrics, 'kube_correlate_correlator_evicted_total', { reason: 'max_traces' }), 1);
  await c.stop();
  assert.is(all().traces.reduce((n, t) => n + t.spans.length, 0), 4, 'every span reached the sink');
});

test('cap on spans per trace splits the trace into updates', async () => {
  const { c, all, metrics } = setup({ maxSpansPerTrace: 3 });
  c.addSpans([1, 2, 3, 4, 5, 6, 7].map((i) => makeSpan({ trace: 1, id: i, parent: i === 1 ? 0 : 1, name: `s${i}` })));
  assert.ok(c.stats().spansInFlight <= 3);
  await c.stop();
  const ids = all().traces.flatMap((t) => t.spans.map((s) => s.spanId));
  assert.is(ids.length, 7);
  assert.is(new Set(ids).size, 7);
  assert.is(await counter(metrics, 'kube_correlate_correlator_evicted_total', { reason: 'max_spans' }), 2);
});

test('cap on spans across traces flushes the least recently updated traces', async () => {
  const { c, all, metrics } = setup({ maxSpansInFlight: 4 });
  c.addSpans([makeSpan({ trace: 1, id: 1, name: 'a' }), makeSpan({ trace: 1, id: 2, parent: 1, name: 'b' })]);
  c.addSpans([makeSpan({ trace: 2, id: 1, name: 'c' }), makeSpan({ trace: 2, id: 2, parent: 1, name: 'd' })]);
  c.addSpans([makeSpan({ trace: 3, id: 1, name: 'e' })]);
  assert.equal(c.stats().spansInFlight, 3);
  await c.flush();
  assert.equal(all().traces.map((t) => [t.traceId, t.reason]), [[tid(1), 'max_spans_in_flight']]);
  assert.is(await counter(metrics, 'kube_correlate_correlator_evicted_total', { reason: 'max_spans_in_flight' }), 1);
});

test('cap on pending audits stores the oldest unjoined', async () => {
  const { c, all } = setup({ maxPendingAudits: 2 });
  c.addAuditEvents([auditEvent({ auditID: 'p1', stage: 'RequestReceived' }), auditEvent({ auditID: 'p2', stage: 'RequestReceived' }), auditEvent({ auditID: 'p3', stage: 'RequestReceived' })]);
  await c.flush();
  assert.equal(all().unjoined.map((e) => e.auditID), ['p1']);
  assert.is(c.stats().pendingAudits, 2);
});

test('stop settles everything in flight, is safe twice and without start', async () => {
  const { c, all } = setup();
  c.addSpans([makeSpan({ trace: 1, id: 1, parent: 0, name: 'a' }), makeSpan({ trace: 2, id: 1, parent: 0, name: 'b' })]);
  c.addAuditEvents([auditEvent({ auditID: 'q', stage: 'RequestReceived' })]);
  await c.stop();
  await c.stop();
  assert.is(all().traces.length, 2);
  assert.ok(all().traces.every((t) => t.reason === 'shutdown'));
  assert.is(all().unjoined.length, 1);
  assert.equal(c.stats(), { tracesInFlight: 0, spansInFlight: 0, pendingAudits: 0, auditIndex: 0, bytesInFlight: 0 });
});

test('invalid options are refused with the option name', () => {
  assert.throws(() => new TraceJoin({ settleAfterMs: 0 }), /settleAfterMs/);
  assert.throws(() => new TraceJoin({ maxBytesInFlight: -1 }), /maxBytesInFlight/);
});

test('an auditID longer than 64 bytes joins the span carrying its truncated form', async () => {
  const long = 'client-chosen-' + 'x'.repeat(90);
  const { c, advance, all } = setup();
  c.addAuditEvents([auditEvent({ auditID: long, stage: 'RequestReceived' })]);
  c.addSpans([makeSpan({ trace: 1, id: 2, name: 'Create', auditId: long.slice(0, 64) })]);
  c.addAuditEvents([auditEvent({ auditID: long, stage: 'ResponseComplete' })]);
  advance(1000);
  await c.tick();
  assert.is(all().traces[0]!.auditEvents.length, 2);
  assert.is(all().unjoined.length, 0);
});

test('every token held is released once the data it brought settled, once per holder', async () => {
  const { c, advance, all, held } = setup();
  // One message with spans of two traces (token 1), audit of one of them before its spans (token 2), a pending audit (token 3).
  c.addSpans([makeSpan({ trace: 1, id: 1, name: 'a', auditId: 'x' }), makeSpan({ trace: 2, id: 1, name: 'b' })]);
  c.addAuditEvents([auditEvent({ auditID: 'x', stage: 'RequestReceived' })]);
  c.addAuditEvents([auditEvent({ auditID: 'never', stage: 'RequestReceived' })]);
  advance(1000);
  await c.tick();
  const counts = (xs: number[]) => xs.reduce((m, t) => m.set(t, (m.get(t) ?? 0) + 1), new Map<number, number>());
  assert.equal(counts(all().released), new Map([[1, 2], [2, 1]]), 'token 1 by both traces, token 2 by its trace; token 3 still pending');
  advance(5000);
  await c.tick();
  assert.equal(counts(all().released), counts(held), 'every hold released');
});

test('byte caps: a trace over max_bytes_per_trace is settled in parts; over max_bytes_in_flight the oldest goes first', async () => {
  const metrics = new PipelineMetrics();
  const join = new TraceJoin<number>({ maxBytesPerTrace: 1000, maxBytesInFlight: 2500, metrics });
  join.addSpans([1, 2, 3, 4].map((i) => makeSpan({ trace: 1, id: i, name: `s${i}` })), 0, 1, 2000); // 500 bytes each
  assert.ok(join.stats().bytesInFlight <= 1000, `one trace holds at most 1000 bytes (${join.stats().bytesInFlight})`);
  join.addSpans([makeSpan({ trace: 2, id: 1, name: 't2' })], 1, 2, 900);
  join.addSpans([makeSpan({ trace: 3, id: 1, name: 't3' })], 2, 3, 900);
  assert.ok(join.stats().bytesInFlight <= 2500);
  const out = join.settle(3);
  assert.ok(out.traces.some((t) => t.reason === 'max_bytes'));
  assert.ok(out.traces.some((t) => t.reason === 'max_bytes_in_flight'));
  const rest = join.settle(3, true);
  assert.is([...out.traces, ...rest.traces].reduce((n, t) => n + t.spans.length, 0), 6, 'nothing lost');
});

test('lone authentication traces are dropped and counted; a late authentication root of a known trace is kept', async () => {
  const { c, advance, all, metrics } = setup();
  const auth = (trace: number) => ({ ...makeSpan({ trace, id: 9, name: 'authentication' }), scope: { name: 'k8s.op/apiserver/pkg/endpoints/filterlatency', version: '', attributes: [], droppedAttributesCount: 0, schemaUrl: '' } });
  c.addSpans([auth(1)]);
  c.addSpans([makeSpan({ trace: 2, id: 1, parent: 9, name: 'POST /api', kind: 2 })]);
  advance(1000);
  await c.tick();
  c.addSpans([auth(2)]); // trace 2's root, after the rest settled
  advance(1000);
  await c.tick();
  assert.equal(all().traces.map((t) => [t.traceId, t.spans.map((s) => s.name).join()]), [[tid(2), 'POST /api'], [tid(2), 'authentication']]);
  assert.is(await counter(metrics, 'kube_correlate_correlator_dropped_total', { reason: 'lone_authentication' }), 1);
  assert.ok(all().released.includes(1), 'the dropped trace\'s source is released too');
});

test('settle(ready): an idle trace the driver holds back waits, settles once ready, or after maxLagWaitMs (counted)', async () => {
  const metrics = new PipelineMetrics();
  const join = new TraceJoin<number>({ settleAfterMs: 1000, maxLagWaitMs: 5000, metrics });
  join.addSpans([makeSpan({ trace: 1, id: 1, name: 'a' })], 0, 1, 0, 7);
  join.addSpans([makeSpan({ trace: 2, id: 1, name: 'b' })], 0, 2, 0, 8);
  const asked: Array<[number, number]> = [];
  let readyGroups = new Set<number>();
  const ready = (group: number, lastUpdate: number) => (asked.push([group, lastUpdate]), readyGroups.has(group));
  assert.is(join.settle(2000, false, ready).traces.length, 0, 'idle, not ready: held');
  assert.equal(asked, [[7, 0], [8, 0]], 'asked with the group and the last update');
  readyGroups = new Set([8]);
  assert.equal(join.settle(2500, false, ready).traces.map((t) => t.traceId), [tid(2)], 'the ready one settles, past the one held back');
  assert.is(join.settle(5999, false, ready).traces.length, 0, 'within settleAfterMs + maxLagWaitMs');
  assert.is(await counter(metrics, 'kube_correlate_correlator_lag_wait_exceeded_total', { kind: 'trace' }), 0);
  const out = join.settle(6000, false, ready);
  assert.equal(out.traces.map((t) => [t.traceId, t.reason]), [[tid(1), 'idle']], 'the bound settles it');
  assert.is(await counter(metrics, 'kube_correlate_correlator_lag_wait_exceeded_total', { kind: 'trace' }), 1);
});

test('nextDue: exact after settle, never later than the next trace or pending audit request due, and nothing settles before it', () => {
  const join = new TraceJoin<number>({ settleAfterMs: 1000, pendingAuditTtlMs: 5000, metrics: new PipelineMetrics() });
  assert.is(join.nextDue(), undefined, 'nothing held');
  join.addSpans([makeSpan({ trace: 1, id: 1, name: 'a' })], 100);
  join.addSpans([makeSpan({ trace: 2, id: 1, name: 'b' })], 300);
  assert.is(join.nextDue(), 1100);
  join.addSpans([makeSpan({ trace: 1, id: 2, parent: 1, name: 'c' })], 600); // trace 1 is due at 1600 now; the bound stays
  assert.ok(join.nextDue()! <= 1300);
  // At any time before the next due one, nothing settles, and the bound is then exact.
  assert.is(join.settle(1299).traces.length, 0);
  assert.is(join.nextDue(), 1300, 'trace 2');
  assert.equal(join.settle(1300).traces.map((t) => t.traceId), [tid(2)]);
  assert.is(join.nextDue(), 1600, 'trace 1');
  assert.is(join.settle(1599).traces.length, 0);
  join.addAuditEvents([auditEvent({ auditID: 'nd-1', stage: 'ResponseComplete' })], 1599); // pending: due at 6599
  assert.equal(join.settle(1600).traces.map((t) => t.traceId), [tid(1)]);
  assert.is(join.nextDue(), 6599, 'the pending audit request');
  assert.is(join.settle(6598).unjoinedAuditEvents.length, 0);
  assert.is(join.settle(6599).unjoinedAuditEvents.length, 1);
  assert.is(join.nextDue(), undefined);
});

test('nextDue: a trace that `ready` holds back is due when its wait runs out', () => {
  const join = new TraceJoin<number>({ settleAfterMs: 1000, maxLagWaitMs: 5000, metrics: new PipelineMetrics() });
  join.addSpans([makeSpan({ trace: 3, id: 1, name: 'a' })], 0);
  assert.is(join.settle(1000, false, () => false).traces.length, 0);
  assert.is(join.nextDue(), 6000);
  assert.is(join.settle(5999, false, () => false).traces.length, 0);
  assert.is(join.settle(6000, false, () => false).traces.length, 1);
});

test('a trace of many spans from many sources: duplicates found and each token held once past the short-list size', () => {
  const { c, all, advance, metrics, held } = setup();
  const spans = Array.from({ length: 40 }, (_, i) => makeSpan({ trace: 7, id: i + 1, name: `s${i}` }));
  for (const s of spans) c.addSpans([s]);
  for (const s of spans.slice(0, 20)) c.addSpans([s, s]); // each a redelivery, twice in one message
  assert.is(c.stats().spansInFlight, 40);
  advance(1000);
  void c.tick();
  const out = all();
  assert.is(out.traces.length, 1);
  assert.is(new Set(out.traces[0]!.spans.map((s) => s.spanId)).size, 40);
  assert.equal([...out.released].sort((a, b) => a - b), [...held].sort((a, b) => a - b), 'each token released as often as held');
  assert.is(new Set(held).size, held.length, 'each held once');
  assert.is(held.length, 60);
  return counter(metrics, 'kube_correlate_correlator_duplicates_total', { kind: 'span' }).then((n) => assert.is(n, 40));
});

test('held audit events (their text plus the join fields) that differ only in the text: a conflict, decided on the whole events whichever came first', async () => {
  const held = (annotations: Record<string, string>): AuditEvent => {
    const r = readAuditEventJson(JSON.stringify(auditEvent({ auditID: 'h', stage: 'ResponseComplete', annotations })));
    if ('error' in r) throw new Error(r.message);
    return r.event;
  };
  const [a, b] = [held({ 'authorization.k8s.io/decision': 'allow' }), held({ 'authorization.k8s.io/decision': 'forbid' })];
  const kept: string[] = [];
  for (const order of [[a, b], [b, a]]) {
    const { c, advance, all, metrics } = setup();
    c.addSpans([makeSpan({ trace: 1, id: 2, parent: 1, name: 'b', auditId: 'h' })]);
    c.addAuditEvents([order[0]!]);
    c.addAuditEvents([order[1]!]);
    advance(1000);
    await c.tick();
    const events = all().traces[0]!.auditEvents;
    assert.is(events.length, 1);
    kept.push(auditEventJson(events[0]!));
    assert.is(await counter(metrics, 'kube_correlate_correlator_duplicates_total', { kind: 'audit_event_conflict' }), 1);
  }
  assert.is(new Set(kept).size, 1, 'one choice whatever the order');
});

test.run();
