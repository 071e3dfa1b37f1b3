import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditIDForSpans } from '@kube-correlate/audit';
import { COLLECTOR_CONFIG_DIR } from '@kube-correlate/cli';
import { loadConfigFile, Pipeline } from '@kube-correlate/collector';
import { createKafkaClient } from '@kube-correlate/kafka';
import { encodeTraceRequest } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { eventList, postJson, reported, tempDir, waitFor } from '../harness/index.js';
import { KAFKA_VERSIONS, kafkaClientEnv, startKafka, type KafkaBroker } from '../harness/kafka.js';
import { anyFileHolds, found, leaksUnder, needles, secretScenario, filesUnder } from '../harness/secrets.js';

/**
 * Issue 14, item 5, in Kafka mode against a real broker: the collector (kafka-collector.yaml as
 * shipped) redacts before it produces, so no secret is in any log segment of `k8s_audit`; events that
 * something else produced to `k8s_audit` unredacted are redacted by the correlator
 * (kafka-correlator.yaml) before they reach its internal topics, `otlp_correlated` or the store
 * (kafka-store.yaml, object sets partitioned: so also kc_objects and kc_objset_requests). Searched in the bytes of the broker's log segments and of the store's data
 * directory, beside a visible label that must be found there.
 */
let broker: KafkaBroker;
const storeData = tempDir('kc-kafka-leak-store-');
const running: Pipeline[] = [];
const metrics = { collector: new PipelineMetrics(), correlator: new PipelineMetrics(), store: new PipelineMetrics() };
let collector: Pipeline;
let store: Pipeline;

test.before(reported('start Kafka and the pipelines', async () => {
  broker = await startKafka({ version: KAFKA_VERSIONS[KAFKA_VERSIONS.length - 1]!, partitions: 2 });
  const env = {
    KAFKA_BROKERS: broker.brokers,
    KC_OTLP_GRPC_ENDPOINT: '127.0.0.1:0', KC_OTLP_HTTP_ENDPOINT: '127.0.0.1:0', KC_AUDIT_WEBHOOK_ENDPOINT: '127.0.0.1:0',
    KC_METRICS_ENDPOINT: '127.0.0.1:0', KC_QUERY_ENDPOINT: '127.0.0.1:0', KC_DATA_DIR: storeData.dir, KC_SETTLE_AFTER: '300ms',
    // The store shares object sets: its requests (audit events as stored) go through kc_objset_requests too.
    KC_OBJSET_PARTITIONED: 'true',
    ...kafkaClientEnv(),
  };
  const start = async (file: string, m: PipelineMetrics) => {
    const p = new Pipeline({ config: loadConfigFile(COLLECTOR_CONFIG_DIR + file, env), metrics: m, logger: silentLogger() });
    await p.start();
    running.push(p);
    return p;
  };
  collector = await start('kafka-collector.yaml', metrics.collector);
  await start('kafka-correlator.yaml', metrics.correlator);
  store = await start('kafka-store.yaml', metrics.store);
}));

test.after(reported('stop', async () => {
  for (const p of running.reverse()) await p.shutdown();
  await broker?.stop();
  storeData.cleanup();
}));

const byRule = async (m: PipelineMetrics) => Object.fromEntries((await m.auditRedactions.get()).values.map((v) => [v.labels.rule, v.value]));

test('no secret in Kafka or in the store: the collector redacts before producing, the correlator what others produced', async () => {
  const viaCollector = secretScenario('kcviacollector');
  const direct = secretScenario('kcdirect');

  // Through the collector's receivers.
  const http = `http://${collector.addresses.otlpHttp}`;
  for (const t of viaCollector.traces) {
    const res = await fetch(`${http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(t.spans) });
    assert.is(res.status, 200);
  }
  assert.is((await postJson(`http://${collector.addresses.auditWebhook}/`, eventList(viaCollector.events))).status, 200);

  // Straight to the topics, unredacted, as another producer might.
  const client = createKafkaClient({ client: kafkaClientEnv().KC_KAFKA_CLIENT, brokers: [broker.brokers], clientId: 'kc-leak-test' });
  const producer = await client.producer();
  try {
    await producer.send([
      ...direct.traces.map((t) => ({ topic: 'otlp_spans', key: t.traceId, value: Buffer.from(encodeTraceRequest(t.spans)) })),
      ...direct.events.map((e) => ({ topic: 'k8s_audit', key: auditIDForSpans(e.auditID), value: JSON.stringify(e) })),
    ]);
  } finally {
    await producer.disconnect();
  }

  // Everything reaches the store (audit-only requests after the correlator's pending_audit_ttl, 30 s).
  const query = `http://${store.addresses.query}`;
  for (const id of [...Object.values(viaCollector.ids), ...Object.values(direct.ids)]) {
    await waitFor(`audit ${id} in the store`, async () => ((await fetch(`${query}/api/v1/audit/${id}`)).ok ? true : undefined), 90_000);
  }
  for (const p of [...running].reverse()) await p.shutdown();


  const logDirs = join(broker.dir, 'data');
  const topicDirs = readdirSync(logDirs).filter((d) => /^(k8s_audit|otlp_spans|otlp_correlated|kc_audit_trace|kc_audit_by_trace|kc_objects|kc_objset_requests)-\d+$/.test(d));
  const audit = topicDirs.filter((d) => d.startsWith('k8s_audit-')).map((d) => join(logDirs, d));
  assert.ok(audit.length > 0 && topicDirs.some((d) => d.startsWith('otlp_correlated-')) && topicDirs.some((d) => d.startsWith('kc_audit_by_trace-')) && topicDirs.some((d) => d.startsWith('kc_objset_requests-')), topicDirs.join(', '));
  assert.ok(topicDirs.filter((d) => d.startsWith('kc_objset_requests-')).some((d) => filesUnder(join(logDirs, d)).some((f) => f.bytes.length > 0)), 'requests went through kc_objset_requests');
  // The search finds what is there: the visible label of each, and the secrets produced straight to k8s_audit.
  assert.ok(audit.some((d) => anyFileHolds(d, viaCollector.visible)), 'the collector\'s events are in k8s_audit');
  const auditBytes = audit.flatMap((d) => filesUnder(d)).map((f) => f.bytes);
  assert.ok(found(Buffer.concat(auditBytes), needles(direct.secrets)).length > 0, 'what was produced straight to k8s_audit is in its segments as it was sent');
  for (const d of topicDirs) {
    const secrets = d.startsWith('k8s_audit-') ? viaCollector.secrets : [...viaCollector.secrets, ...direct.secrets];
    assert.equal(leaksUnder(join(logDirs, d), secrets), {}, `no secret in ${d}`);
  }
  assert.ok(topicDirs.filter((d) => d.startsWith('otlp_correlated-')).some((d) => anyFileHolds(join(logDirs, d), direct.visible)), 'the direct events went out (redacted) on otlp_correlated');

  assert.ok(anyFileHolds(storeData.dir, viaCollector.visible) && anyFileHolds(storeData.dir, direct.visible), 'both in the store');
  assert.equal(leaksUnder(storeData.dir, [...viaCollector.secrets, ...direct.secrets]), {}, 'no secret in the store\'s data directory');

  assert.equal(await byRule(metrics.collector), viaCollector.expectedRedactions(), 'the collector counted what it redacted');
  assert.equal(await byRule(metrics.correlator), direct.expectedRedactions(), 'the correlator counted what it redacted of what others produced');
});

test.run();
