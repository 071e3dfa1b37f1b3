import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditIDForSpans } from '@kube-correlate/audit';
import { COLLECTOR_CONFIG_DIR } from '@kube-correlate/cli';
import { isLoneAuthentication } from '@kube-correlate/correlator';
import { loadConfigFile, Pipeline } from '@kube-correlate/collector';
import { generateDeploymentScenario, makeSpan } from '@kube-correlate/fixtures';
import { decodeTraceRequest, encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { createKafkaClient, topicSpec, type ConsumedMessage } from '@kube-correlate/kafka';
import { kafkaClientEnv, startKafka, type KafkaBroker } from '../harness/kafka.js';
import { metricValue, reported, waitFor } from '../harness/index.js';

/**
 * A catch-up settles hundreds of trees at once. Found by the correlator benchmark: they went out in
 * one produce call, which the client turns into one record batch per partition; over the topic's
 * max.message.bytes the broker refused it whole (MESSAGE_TOO_LARGE, not retriable), the settle was
 * retried every tick, and the correlator stalled for good. Here the broker's limit is 64 KB: a
 * backlog of trees must all arrive, and the one tree larger than the limit is dropped and counted
 * instead of stopping the others.
 */
const LIMIT = 64_000;
let broker: KafkaBroker;
let correlator: Pipeline;
let metrics: PipelineMetrics;

test.before(reported('setup', async () => {
  broker = await startKafka({ version: '4.2.0', partitions: 4, config: { 'message.max.bytes': LIMIT } });
}));

test.after(async () => {
  await correlator?.shutdown();
  await broker?.stop();
});

test('a backlog of trees over the topic\'s message size limit all arrives; a single tree over it is dropped and counted', async () => {
  const scenarios = Array.from({ length: 12 }, (_, i) => generateDeploymentScenario({ seed: 100 + i, start: new Date(Date.now() - 60_000) }));
  const traces = scenarios.flatMap((s) => s.traces);
  assert.is(new Set(traces.map((t) => t.traceId)).size, traces.length, 'distinct traces');
  // One trace whose tree is over the limit, sent in pieces that are each under it.
  const bigTrace = 'b'.repeat(32);
  const big: Span[] = Array.from({ length: 160 }, (_, i) => ({ ...makeSpan({ trace: 1, id: i + 1, name: `big ${i}` }), traceId: bigTrace, attributes: [{ key: 'blob', value: { stringValue: 'x'.repeat(600) } }] }));

  const kafka = createKafkaClient({ client: kafkaClientEnv().KC_KAFKA_CLIENT, brokers: [broker.brokers], clientId: 'kc-test' });
  const admin = await kafka.admin();
  await admin.ensureTopics(['otlp_spans', 'k8s_audit'].map((topic) => topicSpec(topic, 4)));
  const producer = await kafka.producer();
  // The backlog is in Kafka before the correlator starts, as after an outage.
  const spanMessages = traces.map((t) => ({ key: t.traceId, value: Buffer.from(encodeTraceRequest(t.spans)) }));
  for (let i = 0; i < big.length; i += 40) spanMessages.push({ key: bigTrace, value: Buffer.from(encodeTraceRequest(big.slice(i, i + 40))) });
  for (const m of spanMessages) assert.ok(m.value.length < LIMIT, 'each input message is under the limit');
  // A message per produce call: a batch of them would be over the broker's limit.
  for (const m of spanMessages) await producer.send([{ topic: 'otlp_spans', ...m }]);
  const audit = scenarios.flatMap((s) => s.auditEvents);
  for (const e of audit) await producer.send([{ topic: 'k8s_audit', key: auditIDForSpans(e.auditID), value: JSON.stringify(e) }]);
  await producer.disconnect();

  metrics = new PipelineMetrics();
  const config = loadConfigFile(`${COLLECTOR_CONFIG_DIR}kafka-correlator.yaml`, { KAFKA_BROKERS: broker.brokers, KC_SETTLE_AFTER: '500ms', KC_METRICS_ENDPOINT: '127.0.0.1:0', ...kafkaClientEnv() });
  correlator = new Pipeline({ config, metrics, logger: silentLogger() });
  await correlator.start();

  // Read otlp_correlated until every scenario trace is there (a stalled correlator never gets there).
  const seen = new Map<string, number>();
  const consumer = await kafka.consumer({ groupId: `kc-test-reader-${Date.now()}`, topics: ['otlp_correlated'], fromBeginning: true });
  await consumer.run(async (batch: ConsumedMessage[]) => {
    for (const message of batch) {
      for (const s of decodeTraceRequest(message.value!).spans) seen.set(s.traceId, (seen.get(s.traceId) ?? 0) + 1);
    }
  });
  try {
    // (kube-apiserver's lone authentication traces are dropped by the correlator: not expected.)
    const kept = traces.filter((t) => !isLoneAuthentication(t.spans));
    await waitFor(`${kept.length} trees on otlp_correlated`, () => (kept.every((t) => (seen.get(t.traceId) ?? 0) >= t.spans.length) ? true : undefined), 90_000);
    const dropped = await waitFor('the oversized tree counted', async () => (await metricValue(metrics, 'kube_correlate_exporter_failed_total', { reason: 'message_too_large' })) || undefined, 30_000);
    assert.is(dropped, 1, 'exactly the one oversized tree');
    assert.not.ok(seen.has(bigTrace), 'the oversized tree is not on the topic');
  } finally {
    await consumer.disconnect();
    await admin.disconnect();
  }
});

test.run();
