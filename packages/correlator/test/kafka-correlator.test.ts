import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditIDForSpans, REDACTED, type AuditEvent } from '@kube-correlate/audit';
import { auditEvent, generateDeploymentScenario, makeSpan } from '@kube-correlate/fixtures';
import { InMemoryKafka, type KafkaClient, type OutgoingMessage } from '@kube-correlate/kafka';
import { attrString, decodeTraceRequest, encodeTraceRequest, scanTraceRequest, spliceTraceRequest, type Span } from '@kube-correlate/otlp';
import { PipelineMetrics } from '@kube-correlate/telemetry';
import { decodeCorrelated, KafkaCorrelator, type CorrelatorClock } from '../src/index.js';

/**
 * The Kafka driver (kafka-correlator.ts) on an in-process Kafka (packages/kafka memory.ts): the
 * repartition through kc_audit_trace and kc_audit_by_trace joins every audit request to its trace
 * whatever the order, commits only what is durable downstream, re-produces output whose produce
 * failed before committing, and a restart from the committed offsets loses nothing.
 */
const scenario = generateDeploymentScenario({ seed: 77 });

async function until(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function correlator(kafka: InMemoryKafka, metrics = new PipelineMetrics()): KafkaCorrelator {
  return new KafkaCorrelator({ client: kafka, settleAfterMs: 50, pendingAuditTtlMs: 2000, defaultPartitions: 4, metrics });
}

/** Everything on otlp_correlated, as the store reads it back. */
function output(kafka: InMemoryKafka) {
  const spans: Span[] = kafka.messages('otlp_correlated').flatMap((m) => decodeTraceRequest(m.value!).spans);
  return decodeCorrelated(spans);
}

function produceScenario(kafka: InMemoryKafka, auditFirst: boolean): void {
  const spans = () => { for (const t of scenario.traces) kafka.append({ topic: 'otlp_spans', key: t.traceId, value: encodeTraceRequest(t.spans) }); };
  const audit = () => { for (const e of scenario.auditEvents) kafka.append({ topic: 'k8s_audit', key: auditIDForSpans(e.auditID), value: JSON.stringify(e) }); };
  if (auditFirst) { audit(); spans(); } else { spans(); audit(); }
}

const joinedAudits = (kafka: InMemoryKafka) => [...output(kafka).joined.values()].flat().length;
const lone = scenario.traces.filter((t) => t.kind === 'detached').length;

for (const auditFirst of [false, true]) {
  test(`every audit request joins its trace (${auditFirst ? 'audit' : 'spans'} first), every span once, and the group commits all its input`, async () => {
    const kafka = new InMemoryKafka();
    const c = correlator(kafka);
    await c.start();
    produceScenario(kafka, auditFirst);
    await until('every audit event joined', () => joinedAudits(kafka) >= scenario.auditEvents.length);
    await c.stop();
    const out = output(kafka);
    assert.is(out.unjoined.length, 0, 'none went out unjoined');
    const ids = out.spans.map((s) => `${s.traceId}/${s.spanId}`);
    const want = scenario.traces.filter((t) => t.kind !== 'detached').flatMap((t) => t.spans.map((s) => `${s.traceId}/${s.spanId}`));
    assert.equal([...new Set(ids)].sort(), [...new Set(want)].sort(), `every span (lone authentication traces dropped: ${lone})`);
    const committed = kafka.committed.get('kube-correlate-correlator')!;
    for (const topic of ['otlp_spans', 'k8s_audit', 'kc_audit_trace', 'kc_audit_by_trace']) {
      const parts = kafka.topics.get(topic)!;
      parts.forEach((list, p) => assert.is(committed.get(`${topic}\u0000${p}`) ?? 0, list.length, `${topic}[${p}] committed to its end`));
    }
  });
}

test('a produce that fails is produced again before anything is committed past its input', async () => {
  const kafka = new InMemoryKafka();
  const c = correlator(kafka);
  await c.start();
  for (const t of scenario.traces.slice(0, 5)) kafka.append({ topic: 'otlp_spans', key: t.traceId, value: encodeTraceRequest(t.spans) });
  await until('the pairs announced', () => kafka.end('kc_audit_trace') > 0);
  kafka.failNextSends = 3;
  await until('settled output on otlp_correlated', () => kafka.end('otlp_correlated') > 0, 30_000);
  await c.stop();
  const traces = new Set(output(kafka).spans.map((s) => s.traceId));
  for (const t of scenario.traces.slice(0, 5).filter((x) => x.kind !== 'detached')) assert.ok(traces.has(t.traceId), `trace ${t.traceId} written despite the failed produce`);
});

test('a crash before the output is durable: the next instance re-reads from the committed offsets and loses nothing', async () => {
  const kafka = new InMemoryKafka();
  const first = correlator(kafka);
  await first.start();
  produceScenario(kafka, false);
  // The first instance reads but the broker refuses its output: nothing settles durably.
  kafka.failNextSends = 1_000_000;
  await until('the first instance read its input', () => first.stats().traces > 0);
  // It dies (no stop, no commit of what it held); its consumer goes.
  await (first as unknown as { consumer: { disconnect(): Promise<void> } }).consumer.disconnect();
  kafka.failNextSends = 0;
  const second = correlator(kafka);
  await second.start();
  await until('every audit event joined by the second instance', () => joinedAudits(kafka) >= scenario.auditEvents.length);
  await second.stop();
  assert.is(output(kafka).unjoined.length, 0);
  await first.stop(); // its timer and producer go too (what it writes now is a duplicate)
});

test('caps apply in Kafka mode too: a trace over max_spans_per_trace is settled in parts, none lost', async () => {
  const kafka = new InMemoryKafka();
  const metrics = new PipelineMetrics();
  const c = new KafkaCorrelator({ client: kafka, settleAfterMs: 60_000, defaultPartitions: 2, maxSpansPerTrace: 3, metrics });
  await c.start();
  const big = scenario.traces.find((t) => t.spans.length > 6)!;
  kafka.append({ topic: 'otlp_spans', key: big.traceId, value: encodeTraceRequest(big.spans) });
  await until('parts written before the idle window', () => new Set(output(kafka).spans.map((s) => s.spanId)).size >= big.spans.length - 3);
  await c.stop();
  assert.is(new Set(output(kafka).spans.filter((s) => s.traceId === big.traceId).map((s) => s.spanId)).size, big.spans.length);
  const evicted = (await metrics.evicted.get()).values.find((v) => v.labels.reason === 'max_spans')?.value ?? 0;
  assert.ok(evicted > 0);
});

test('otlp_spans messages are read as strictly as the decoder reads them: invalid spans and unreadable messages are skipped and counted, the rest written as received', async () => {
  const kafka = new InMemoryKafka();
  const metrics = new PipelineMetrics();
  const c = new KafkaCorrelator({ client: kafka, settleAfterMs: 50, defaultPartitions: 2, metrics });
  await c.start();
  const t = scenario.traces.find((x) => x.kind !== 'detached' && x.spans.length > 3)!;
  const good = encodeTraceRequest(t.spans);
  // A second message of the trace: one span with an all-zero span id (invalid), one more valid span.
  const broken = encodeTraceRequest([{ ...t.spans[0]!, spanId: '0'.repeat(16) }, { ...t.spans[1]!, spanId: 'abcdefabcdefabcd', name: 'one more' }]);
  kafka.append({ topic: 'otlp_spans', key: t.traceId, value: good });
  kafka.append({ topic: 'otlp_spans', key: t.traceId, value: Buffer.from([0x0a, 0x05, 0x01]) }); // truncated
  kafka.append({ topic: 'otlp_spans', key: t.traceId, value: broken });
  await until('the trace written', () => output(kafka).spans.some((s) => s.traceId === t.traceId));
  await c.stop();
  const refused = Object.fromEntries((await metrics.receiverRefused.get()).values.map((v) => [v.labels.reason, v.value]));
  const decoded = (() => { try { return decodeTraceRequest(broken); } catch (err) { return err as Error; } })();
  assert.ok(!(decoded instanceof Error) && decoded.rejected.length === 1, `the decoder rejects one span of the broken message: ${decoded instanceof Error ? decoded.message : JSON.stringify(decoded.rejected)}`);
  assert.equal(refused, { malformed_protobuf: 1, invalid_span: 1 });
  const written = output(kafka).spans.filter((s) => s.traceId === t.traceId);
  const want = [...t.spans, ...decoded.spans].map((s) => s.spanId).sort();
  assert.equal(written.map((s) => s.spanId).sort(), want);
});

test('spans go out as the bytes they came in (fields this version does not know included), route spans with the audit attributes appended', async () => {
  const kafka = new InMemoryKafka();
  const c = new KafkaCorrelator({ client: kafka, settleAfterMs: 50, defaultPartitions: 2 });
  await c.start();
  const t = scenario.traces.find((x) => x.kind !== 'detached' && x.spans.some((s) => attrString(s.attributes, 'audit-id')))!;
  // Each span with an unknown field 100 (varint 1) after its own: a decode and re-encode would drop it.
  const unknown = Buffer.from([0xa0, 0x06, 0x01]);
  const value = spliceTraceRequest(scanTraceRequest(encodeTraceRequest(t.spans)).spans, () => unknown);
  const bodies = scanTraceRequest(value).spans.map((s) => Buffer.from(s.buf.subarray(s.start, s.end)));
  kafka.append({ topic: 'otlp_spans', key: t.traceId, value });
  for (const e of scenario.auditEvents) kafka.append({ topic: 'k8s_audit', key: auditIDForSpans(e.auditID), value: JSON.stringify(e) });
  await until('the trace joined', () => output(kafka).joined.has(t.traceId));
  await c.stop();
  const written = Buffer.concat(kafka.messages('otlp_correlated').filter((m) => m.key?.toString() === t.traceId).map((m) => m.value!));
  // Every span's bytes are in the output as they came; the route span's are followed by its k8s.audit.* attributes.
  for (const b of bodies) assert.ok(written.includes(b), 'a span\'s bytes, unknown field included');
  const route = decodeTraceRequest(written).spans.find((s) => attrString(s.attributes, 'k8s.audit.id') !== undefined && s.scope.name !== 'kube-correlate');
  assert.ok(route, 'a route span carries the audit attributes');
});

test('audit events read from k8s_audit are redacted before they are held, forwarded or written out (whatever produced them), and counted', async () => {
  const kafka = new InMemoryKafka();
  const metrics = new PipelineMetrics();
  const c = correlator(kafka, metrics);
  await c.start();
  const MARK = 'kc-kafka-marker-5e2a';
  const b64 = (x: string) => Buffer.from(x).toString('base64');
  const applied = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { token: `${MARK}-applied` } });
  const secret = {
    apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'd', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': applied } },
    data: { password: b64(`${MARK}-data`) }, stringData: { token: `${MARK}-string` },
  };
  // Joined: its spans arrive (forwarded through kc_audit_by_trace); unjoined: no spans, goes out after pending_audit_ttl.
  const joinedId = '5ec00000-0000-4000-8000-000000000001';
  const loneId = '5ec00000-0000-4000-8000-000000000002';
  const events: AuditEvent[] = [
    auditEvent({ auditID: joinedId, stage: 'ResponseComplete', level: 'RequestResponse', verb: 'create', objectRef: { resource: 'secrets', namespace: 'd', name: 's', apiVersion: 'v1' }, requestObject: secret, responseObject: secret }),
    auditEvent({ auditID: loneId, stage: 'ResponseComplete', level: 'RequestResponse', verb: 'create', requestURI: '/apis/authentication.k8s.io/v1/tokenreviews', objectRef: { resource: 'tokenreviews', apiGroup: 'authentication.k8s.io', apiVersion: 'v1' }, requestObject: { spec: { token: `${MARK}-token` } } }),
  ];
  for (const e of events) kafka.append({ topic: 'k8s_audit', key: auditIDForSpans(e.auditID), value: JSON.stringify(e) });
  kafka.append({ topic: 'otlp_spans', key: '', value: encodeTraceRequest([makeSpan({ trace: 0x5ec, id: 1, name: 'POST', auditId: joinedId }), makeSpan({ trace: 0x5ec, id: 2, parent: 1, name: 'Create', auditId: joinedId })]) });
  await until('both audit requests written out', () => {
    const out = output(kafka);
    return out.joined.size === 1 && out.unjoined.length === 1;
  });
  await c.stop();
  for (const topic of ['kc_audit_by_trace', 'otlp_correlated']) {
    const text = kafka.messages(topic).map((m) => m.value!.toString('latin1')).join('\n');
    assert.ok(text.length > 0, `${topic} has messages`);
    for (const needle of [MARK, b64(`${MARK}-data`)]) assert.not.ok(text.includes(needle), `${needle} in ${topic}`);
  }
  const out = output(kafka);
  const joined = [...out.joined.values()].flat()[0]!;
  assert.equal((joined.requestObject as { data: unknown }).data, { password: REDACTED }, 'keys kept');
  assert.match(JSON.stringify(out.unjoined), REDACTED);
  const counted = Object.fromEntries((await metrics.auditRedactions.get()).values.map((v) => [v.labels.rule, v.value]));
  // Secret: request data, stringData, the annotation's stringData; response the same: 6. TokenReview: 1.
  assert.equal(counted, { secret: 6, tokenreview: 1 });
});

test('audit events go out as the text they came in (when redaction changed nothing), through kc_audit_by_trace and into the audit span, without being stringified again', async () => {
  const kafka = new InMemoryKafka();
  const c = correlator(kafka);
  await c.start();
  const id = 'a0d17e00-0000-4000-8000-000000000001';
  const stages = ['RequestReceived', 'ResponseComplete'] as const;
  // Spelled as kube-apiserver's Go encoder and a pretty-printer would: a re-stringified copy differs.
  const texts = stages.map((stage, i) => {
    const json = JSON.stringify(auditEvent({ auditID: id, stage, userAgent: 'kubectl <go escapes>' })).replace(/</g, '\\u003c').replace(/>/g, '\\u003e');
    return i === 0 ? json : JSON.stringify(JSON.parse(json), null, 2);
  });
  for (const text of texts) kafka.append({ topic: 'k8s_audit', key: id, value: text });
  kafka.append({ topic: 'otlp_spans', key: '', value: encodeTraceRequest([makeSpan({ trace: 0xa0d, id: 1, name: 'POST', kind: 2, auditId: id }), makeSpan({ trace: 0xa0d, id: 2, parent: 1, name: 'Create', auditId: id })]) });
  await until('the request joined', () => [...output(kafka).joined.values()].flat().length === stages.length);
  await c.stop();
  const forwarded = kafka.messages('kc_audit_by_trace').map((m) => m.value!.toString('utf8'));
  for (const text of texts) assert.ok(forwarded.some((f) => f.includes(text)), 'forwarded as its text');
  const spans = kafka.messages('otlp_correlated').flatMap((m) => decodeTraceRequest(m.value!).spans);
  const held = spans.filter((s) => s.scope.name === 'kube-correlate').flatMap((s) => s.events.map((e) => attrString(e.attributes, 'k8s.audit.event')));
  assert.equal(held.sort(), [...texts].sort(), 'the audit span\'s events hold the original texts');
});

test('a kc_audit_by_trace message in another layout (an older version, another writer) is read whole, redacted and re-serialized', async () => {
  const kafka = new InMemoryKafka();
  const c = new KafkaCorrelator({ client: kafka, settleAfterMs: 50, pendingAuditTtlMs: 2000, defaultPartitions: 1 });
  await c.start();
  const traceId = makeSpan({ trace: 0xb1d, id: 1, name: 'x' }).traceId;
  const e = auditEvent({ auditID: 'b1d00000-0000-4000-8000-000000000001', stage: 'ResponseComplete', level: 'RequestResponse', objectRef: { resource: 'secrets', namespace: 'd', name: 's', apiVersion: 'v1' }, requestObject: { kind: 'Secret', data: { k: 'a2MtYnktdHJhY2UtbWFyaw==' } } });
  kafka.append({ topic: 'kc_audit_by_trace', key: traceId, value: JSON.stringify({ event: e, anchor: '0000000000000001' }) });
  // And one with a duplicate key after the event: the fast path does not take it.
  kafka.append({ topic: 'kc_audit_by_trace', key: traceId, value: `{"anchor":"0000000000000001","event":${JSON.stringify({ ...e, stage: 'RequestReceived' })},"event":${JSON.stringify({ ...e, stage: 'RequestReceived', requestObject: undefined })}}` });
  await until('written', () => (output(kafka).joined.get(traceId)?.length ?? 0) === 2);
  await c.stop();
  const text = kafka.messages('otlp_correlated').map((m) => m.value!.toString('latin1')).join('');
  assert.not.ok(text.includes('a2MtYnktdHJhY2UtbWFyaw=='), 'redacted');
  const got = output(kafka).joined.get(traceId)!.sort((a, b) => (a.stage < b.stage ? -1 : 1));
  assert.equal(got.map((x) => x.stage), ['RequestReceived', 'ResponseComplete']);
  assert.is(got[0]!.requestObject, undefined, 'the last of the duplicate keys, as JSON.parse reads it');
  assert.equal((got[1]!.requestObject as { data: unknown }).data, { k: REDACTED });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** otlp_correlated messages per trace id (audit-only messages of unjoined events excluded). */
function writesPerTrace(kafka: InMemoryKafka): Map<string, number> {
  const n = new Map<string, number>();
  for (const m of kafka.messages('otlp_correlated')) {
    const key = m.key!.toString('utf8');
    n.set(key, (n.get(key) ?? 0) + 1);
  }
  return n;
}

test('a catch-up whose audit side is read late writes each tree once, fully joined (idle traces wait for the audit side)', async () => {
  const kafka = new InMemoryKafka();
  const metrics = new PipelineMetrics();
  const c = correlator(kafka, metrics);
  await c.start();
  // Pre-filled topics; the audit topic is read only after every span was read (a consumer lagging on it).
  kafka.paused.add('k8s_audit');
  produceScenario(kafka, false);
  const traces = scenario.traces.length;
  await until('every span read', () => c.stats().traces >= traces);
  await sleep(20 * 50); // twenty idle windows (settleAfterMs 50) with the audit side behind
  kafka.paused.delete('k8s_audit');
  await until('every audit event joined', () => joinedAudits(kafka) >= scenario.auditEvents.length);
  await c.stop();
  const out = output(kafka);
  assert.is(out.unjoined.length, 0, 'none went out unjoined');
  const writes = writesPerTrace(kafka);
  const joinedTraces = scenario.traces.filter((t) => t.kind !== 'detached');
  const twice = joinedTraces.filter((t) => (writes.get(t.traceId) ?? 0) !== 1).map((t) => `${t.traceId}: ${writes.get(t.traceId) ?? 0}`);
  assert.equal(twice, [], 'each tree written exactly once');
  assert.is(await metricCount(metrics, 'kube_correlate_correlator_lag_wait_exceeded_total'), 0, 'no wait cut short');
});

test('an idle trace waits for a lagging audit side at most maxLagWaitMs, and that is counted', async () => {
  const kafka = new InMemoryKafka();
  const metrics = new PipelineMetrics();
  const c = new KafkaCorrelator({ client: kafka, settleAfterMs: 50, pendingAuditTtlMs: 2000, maxLagWaitMs: 200, defaultPartitions: 4, metrics });
  await c.start();
  kafka.paused.add('k8s_audit');
  produceScenario(kafka, false);
  const joinedTraces = scenario.traces.filter((t) => t.kind !== 'detached');
  await until('every trace written without its audit events', () => joinedTraces.every((t) => writesPerTrace(kafka).has(t.traceId)));
  assert.ok(await metricCount(metrics, 'kube_correlate_correlator_lag_wait_exceeded_total', { kind: 'trace' }) >= joinedTraces.length);
  kafka.paused.delete('k8s_audit');
  await until('every audit event joined (late: a second update)', () => joinedAudits(kafka) >= scenario.auditEvents.length);
  await c.stop();
});

test('audit events wait for their spans while the span consumer lags, past pendingAuditTtlMs; one whose spans never come goes out unjoined once the spans were read', async () => {
  const kafka = new InMemoryKafka();
  const metrics = new PipelineMetrics();
  // maxLagWaitMs far above the test's waits (its default, 10 TTLs, is what the test sleeps: on a busy
  // machine the first events read would pass it); the next test covers it.
  const c = new KafkaCorrelator({ client: kafka, settleAfterMs: 50, pendingAuditTtlMs: 100, maxLagWaitMs: 600_000, defaultPartitions: 4, metrics });
  await c.start();
  kafka.paused.add('otlp_spans');
  produceScenario(kafka, true);
  const lonely = auditEvent({ auditID: '10ae0000-0000-4000-8000-000000000001', stage: 'ResponseComplete' });
  kafka.append({ topic: 'k8s_audit', key: auditIDForSpans(lonely.auditID), value: JSON.stringify(lonely) });
  await until('every audit event read', () => c.stats().pending >= new Set(scenario.auditEvents.map((e) => e.auditID)).size + 1);
  await sleep(10 * 100); // ten TTLs with the spans in Kafka but not read
  assert.is(kafka.end('otlp_correlated'), 0, 'nothing went out while the span side lagged');
  kafka.paused.delete('otlp_spans');
  await until('every audit event joined, and the lone one out unjoined', () => joinedAudits(kafka) >= scenario.auditEvents.length && output(kafka).unjoined.length > 0);
  await c.stop();
  const out = output(kafka);
  assert.equal(out.unjoined.map((e) => e.auditID), [lonely.auditID], 'only the event whose spans never came is unjoined');
  assert.is(await metricCount(metrics, 'kube_correlate_correlator_lag_wait_exceeded_total'), 0);
});

test('a pending audit event waits for a lagging span side at most maxLagWaitMs, and that is counted', async () => {
  const kafka = new InMemoryKafka();
  const metrics = new PipelineMetrics();
  const c = new KafkaCorrelator({ client: kafka, settleAfterMs: 50, pendingAuditTtlMs: 100, maxLagWaitMs: 200, defaultPartitions: 4, metrics });
  await c.start();
  kafka.paused.add('otlp_spans');
  const t = scenario.traces.find((x) => x.kind !== 'detached')!;
  kafka.append({ topic: 'otlp_spans', key: t.traceId, value: encodeTraceRequest(t.spans) });
  const e = auditEvent({ auditID: '10ae0000-0000-4000-8000-000000000002', stage: 'ResponseComplete' });
  kafka.append({ topic: 'k8s_audit', key: auditIDForSpans(e.auditID), value: JSON.stringify(e) });
  await until('the event out unjoined', () => output(kafka).unjoined.length === 1);
  assert.is(await metricCount(metrics, 'kube_correlate_correlator_lag_wait_exceeded_total', { kind: 'pending_audit' }), 1);
  kafka.paused.delete('otlp_spans');
  await c.stop();
});

test('while the input offsets cannot be read nothing waiting is let go; the admin client is made anew and the waits end', async () => {
  const kafka = new InMemoryKafka();
  let down = true;
  let admins = 0;
  // The in-memory Kafka whose admin calls fail while `down` (a broker that is unreachable).
  const client: KafkaClient = {
    producer: () => kafka.producer(),
    consumer: (o) => kafka.consumer(o),
    admin: async () => {
      admins++;
      const a = await kafka.admin();
      const guard = <A extends unknown[], R>(f: (...x: A) => Promise<R>) => async (...x: A): Promise<R> => {
        if (down) throw new Error('broker unreachable (injected)');
        return f(...x);
      };
      return { ...a, endOffsets: guard(a.endOffsets), committedOffsets: guard(a.committedOffsets) };
    },
  };
  // maxLagWaitMs far above the test's wait: its default (10 TTLs, 1.1 s after the event was read
  // with the TTL) is only 100 ms past the sleep below, which a busy machine overshoots; and then only
  // the offsets read again, not that deadline, can end the wait.
  const c = new KafkaCorrelator({ client, settleAfterMs: 50, pendingAuditTtlMs: 100, maxLagWaitMs: 600_000, defaultPartitions: 4 });
  await c.start();
  const e = auditEvent({ auditID: '10ae0000-0000-4000-8000-000000000003', stage: 'ResponseComplete' });
  kafka.append({ topic: 'k8s_audit', key: auditIDForSpans(e.auditID), value: JSON.stringify(e) });
  await until('the event read', () => c.stats().pending === 1);
  await sleep(10 * 100);
  assert.is(kafka.end('otlp_correlated'), 0, 'held while the offsets cannot be read');
  const before = admins;
  down = false;
  await until('the event out unjoined', () => output(kafka).unjoined.length === 1);
  assert.ok(admins > before, 'a new admin client after the failures');
  await c.stop();
});

/** A clock the test moves: timers fire (in time order) only when advanced past them, each settle awaited. */
class ManualClock implements CorrelatorClock {
  t = 1_000_000;
  private next = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  now(): number { return this.t; }
  setTimeout(fn: () => void, ms: number): unknown {
    this.timers.set(++this.next, { at: this.t + ms, fn });
    return this.next;
  }
  clearTimeout(h: unknown): void { this.timers.delete(h as number); }
  async advanceTo(to: number, c: KafkaCorrelator): Promise<void> {
    for (;;) {
      const due = [...this.timers].filter(([, x]) => x.at <= to).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
      await c.idle();
    }
    this.t = to;
  }
}

test('an idle trace settles at its due time (last update + settleAfterMs), not at the next tick; nothing settles before it', async () => {
  const kafka = new InMemoryKafka();
  const clock = new ManualClock();
  // settleAfterMs 1000: the input-progress tick runs every 250 ms.
  const c = new KafkaCorrelator({ client: kafka, settleAfterMs: 1000, defaultPartitions: 1, clock });
  await c.start();
  try {
    await dueTimes(kafka, clock, c);
  } finally {
    await c.stop();
  }
});

async function dueTimes(kafka: InMemoryKafka, clock: ManualClock, c: KafkaCorrelator): Promise<void> {
  const t0 = clock.t;
  await clock.advanceTo(t0 + 100, c);
  // Two traces without audit-ids (no pairs to wait for): A read at t0+100, B at t0+100 and again at t0+600.
  const [a, b] = [0xd0e1, 0xd0e2].map((trace) => [makeSpan({ trace, id: 1, name: 'GET', kind: 2 }), makeSpan({ trace, id: 2, parent: 1, name: 'child' })]);
  kafka.append({ topic: 'otlp_spans', key: '', value: encodeTraceRequest(a!) });
  kafka.append({ topic: 'otlp_spans', key: '', value: encodeTraceRequest(b!.slice(0, 1)) });
  await until('both read', () => c.stats().held === 2);
  await c.idle();
  await clock.advanceTo(t0 + 600, c);
  kafka.append({ topic: 'otlp_spans', key: '', value: encodeTraceRequest(b!.slice(1)) });
  await until('the second part of B read', () => c.stats().held === 3);
  await c.idle();
  const written = () => kafka.messages('otlp_correlated').map((m) => m.key!.toString('utf8'));
  await clock.advanceTo(t0 + 1099, c);
  assert.equal(written(), [], 'nothing before A is due (ticks at +250, +500, +750 and +1000 passed)');
  await clock.advanceTo(t0 + 1100, c);
  assert.equal(written(), [a![0]!.traceId], 'A at its due time: the tick would have written it at +1250');
  await clock.advanceTo(t0 + 1599, c);
  assert.equal(written(), [a![0]!.traceId], 'B not before its due time');
  await clock.advanceTo(t0 + 1600, c);
  assert.equal(written(), [a![0]!.traceId, b![0]!.traceId], 'B at its due time: the tick would have written it at +1750');
}

async function metricCount(m: PipelineMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (metric?.values ?? []).filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);
}


test('a spans batch whose produce failed still pairs its audit requests: they join, none goes out unjoined', async () => {
  const kafka = new InMemoryKafka();
  const metrics = new PipelineMetrics();
  const c = correlator(kafka, metrics);
  await c.start();
  // The first produce is the first spans batch's pairs (kc_audit_trace): it fails.
  kafka.failNextSends = 1;
  for (const t of scenario.traces) kafka.append({ topic: 'otlp_spans', key: t.traceId, value: encodeTraceRequest(t.spans) });
  await until('the pairs announced', () => kafka.end('kc_audit_trace') > 0);
  for (const e of scenario.auditEvents) kafka.append({ topic: 'k8s_audit', key: auditIDForSpans(e.auditID), value: JSON.stringify(e) });
  const out = () => { const o = output(kafka); return [...o.joined.values()].flat().length + o.unjoined.length; };
  await until('every audit event out, joined or not (pending_audit_ttl 2 s)', () => out() >= scenario.auditEvents.length);
  const restarts = (c as unknown as { consumer: { restarts: number } }).consumer.restarts;
  await c.stop();
  const retried = await metricCount(metrics, 'kube_correlate_exporter_failed_total');
  assert.ok(restarts + retried >= 1, 'the failed produce was retried, or its batch delivered again');
  const audited = new Set(scenario.auditEvents.map((e) => auditIDForSpans(e.auditID)));
  const announced = new Set(kafka.messages('kc_audit_trace').map((m) => m.key!.toString('utf8')));
  assert.equal([...audited].filter((id) => !announced.has(id)), [], 'every audit id paired on kc_audit_trace');
  assert.is(output(kafka).unjoined.length, 0, 'no audit event went out unjoined');
});

test('batches go on while their produce is in flight, and what they add meanwhile goes out in one call', async () => {
  const kafka = new InMemoryKafka();
  // A producer whose calls the test lets through by hand.
  const calls: Array<{ messages: OutgoingMessage[]; release(): Promise<void> }> = [];
  const real = await kafka.producer();
  let passThrough = false; // at the end: the final settle's produce goes straight through
  const held: KafkaClient = {
    producer: async () => ({
      send: (messages) => passThrough ? real.send(messages) : new Promise<void>((resolve, reject) => {
        calls.push({ messages, release: () => real.send(messages).then(resolve, reject) });
      }),
      disconnect: async () => undefined,
    }),
    admin: () => kafka.admin(),
    consumer: (o) => kafka.consumer(o),
  };
  // Nothing settles during the test (settleAfterMs far away): only the batches produce.
  const c = new KafkaCorrelator({ client: kafka, producerClient: held, settleAfterMs: 600_000, pendingAuditTtlMs: 600_000, defaultPartitions: 4 });
  await c.start();
  const traces = scenario.traces.filter((t) => t.kind !== 'detached' && t.spans.some((x) => attrString(x.attributes, 'audit-id')));
  for (const t of traces) kafka.append({ topic: 'otlp_spans', key: t.traceId, value: encodeTraceRequest(t.spans) });
  const withSpans = kafka.topics.get('otlp_spans')!.filter((list) => list.length > 0).length;
  assert.ok(withSpans >= 2, `the scenario's traces are on ${withSpans} partitions (need 2 or more)`);
  await until('every spans batch read while the first produce is in flight', () => c.stats().traces === traces.length);
  assert.is(calls.length, 1, 'one produce call in flight; the other batches wait behind it');
  await calls[0]!.release();
  await until('the second produce call', () => calls.length === 2);
  await calls[1]!.release();
  const auditIds = new Set(traces.flatMap((t) => t.spans.map((x) => attrString(x.attributes, 'audit-id')).filter((x): x is string => !!x).map(auditIDForSpans)));
  await until('every pair on kc_audit_trace', () => kafka.messages('kc_audit_trace').length >= auditIds.size);
  assert.is(calls.length, 2, `the batches behind the first call went out in one call (${withSpans} partitions with spans)`);
  assert.equal(new Set(kafka.messages('kc_audit_trace').map((m) => m.key!.toString('utf8'))), auditIds, 'each audit id paired');
  passThrough = true;
  await c.stop();
});

test.run();
