import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditIDForSpans } from '@kube-correlate/audit';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { InMemoryKafka } from '@kube-correlate/kafka';
import { decodeTraceRequest, encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { PipelineMetrics } from '@kube-correlate/telemetry';
import { decodeCorrelated, KafkaCorrelator } from '../src/index.js';

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

test.run();
