import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { COLLECTOR_CONFIG_DIR } from '@kube-correlate/cli';
import { loadConfigFile, OtlpClient, Pipeline } from '@kube-correlate/collector';
import { buildRequestTree } from '@kube-correlate/correlator';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { getTraceV3, startJaeger, type JaegerProcess } from '../harness/jaeger.js';
import { KAFKA_VERSIONS, kafkaClientEnv, startKafka, type KafkaBroker } from '../harness/kafka.js';
import { eventList, postJson, reported, ROOT, tempDir, waitFor, waitForScenarioTrees } from '../harness/index.js';
import { join } from 'node:path';

/**
 * Our topics interoperate with the OpenTelemetry Collector's kafka exporter and receiver, using the
 * Jaeger v2 binary (an OpenTelemetry Collector distribution) on both sides:
 *  - Jaeger's kafka exporter (otlp_proto, partition_traces_by_id) writes otlp_spans; our
 *    correlators build the same trees from it as in embedded mode;
 *  - Jaeger's kafka receiver reads the otlp_spans our collector writes;
 *  - the OpenTelemetry Collector config we ship (collector-config/otelcol/) runs as is.
 */
const version = KAFKA_VERSIONS[KAFKA_VERSIONS.length - 1]!;
const t = suite(`Jaeger v2 as collector, Kafka ${version}`);
let broker: KafkaBroker;
const tmp = tempDir();
const running: Pipeline[] = [];
let collector: Pipeline;
let store: Pipeline;

const pipeline = (file: string, env: NodeJS.ProcessEnv) => new Pipeline({ config: loadConfigFile(COLLECTOR_CONFIG_DIR + file, env), metrics: new PipelineMetrics(), logger: silentLogger() });

t.before(reported('setup', async () => {
  broker = await startKafka({ version, partitions: 4 });
  const env = {
    KAFKA_BROKERS: broker.brokers, KC_OTLP_GRPC_ENDPOINT: '127.0.0.1:0', KC_OTLP_HTTP_ENDPOINT: '127.0.0.1:0', KC_AUDIT_WEBHOOK_ENDPOINT: '127.0.0.1:0',
    KC_METRICS_ENDPOINT: '127.0.0.1:0', KC_QUERY_ENDPOINT: '127.0.0.1:0', KC_DATA_DIR: tmp.dir, KC_SETTLE_AFTER: '300ms', ...kafkaClientEnv(),
  };
  collector = pipeline('kafka-collector.yaml', env);
  for (const p of [collector, pipeline('kafka-correlator.yaml', env), (store = pipeline('kafka-store.yaml', env))]) {
    await p.start();
    running.push(p);
  }
}));

t.after(async () => {
  for (const p of running.reverse()) await p.shutdown();
  await broker?.stop();
  tmp.cleanup();
});

t('spans written to otlp_spans by Jaeger\'s kafka exporter give the same trees as embedded mode', async () => {
  const jaeger: JaegerProcess = await startJaeger({ kafkaExporter: { brokers: broker.brokers, topic: 'otlp_spans', encoding: 'otlp_proto', partitionTracesById: true } });
  try {
    const scenario = generateDeploymentScenario({ seed: 33 });
    // All traces in one export: Jaeger's exporter splits them into one message per trace.
    const res = await fetch(`${jaeger.otlpHttp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(scenario.spans) });
    assert.is(res.status, 200, await res.text());
    const posted = await postJson(`http://${collector.addresses.auditWebhook}/`, eventList(scenario.auditEvents));
    assert.is(posted.status, 200);
    // Every trace stored (the caller's too, for links), then each request with every audit stage.
    const trees = await waitForScenarioTrees(`http://${store.addresses.query}`, scenario, 90_000);
    const all = new Map<string, Span>(scenario.spans.map((s) => [`${s.traceId}/${s.spanId}`, s]));
    for (const r of scenario.requests) {
      const got = trees[r.traceId]!;
      const want = buildRequestTree(r.traceId, r.spans, r.auditEvents, { resolveLink: (a, b) => all.get(`${a}/${b}`) });
      assert.equal(got, JSON.parse(JSON.stringify(want)), r.label);
    }
  } finally {
    await jaeger.stop();
  }
});

t('collector-config/otelcol/apiserver-to-kafka.yaml, as shipped, runs in the Jaeger binary and feeds our correlators over OTLP/gRPC', async () => {
  const jaeger = await startJaeger({ configFile: join(ROOT, 'collector-config/otelcol/apiserver-to-kafka.yaml'), env: { KAFKA_BROKERS: broker.brokers } });
  try {
    const scenario = generateDeploymentScenario({ seed: 35 });
    // As kube-apiserver sends them: OTLP/gRPC, one export per trace.
    const client = new OtlpClient({ protocol: 'grpc', endpoint: jaeger.otlpGrpc, timeoutMs: 5000, retry: { enabled: true, initialIntervalMs: 100, maxIntervalMs: 1000, maxElapsedMs: 10_000 } });
    try {
      for (const tr of scenario.traces) assert.is((await client.export(tr.spans)).rejectedSpans, 0);
    } finally {
      client.close();
    }
    assert.is((await postJson(`http://${collector.addresses.auditWebhook}/`, eventList(scenario.auditEvents))).status, 200);
    const all = new Map<string, Span>(scenario.spans.map((s) => [`${s.traceId}/${s.spanId}`, s]));
    const trees = await waitForScenarioTrees(`http://${store.addresses.query}`, scenario, 90_000);
    for (const r of scenario.requests) {
      const got = trees[r.traceId]!;
      assert.equal(got, JSON.parse(JSON.stringify(buildRequestTree(r.traceId, r.spans, r.auditEvents, { resolveLink: (a, b) => all.get(`${a}/${b}`) }))), r.label);
    }
  } finally {
    await jaeger.stop();
  }
});

t('Jaeger\'s kafka receiver reads the otlp_spans our collector writes', async () => {
  const scenario = generateDeploymentScenario({ seed: 34 });
  const res = await fetch(`http://${collector.addresses.otlpHttp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(scenario.spans) });
  assert.is(res.status, 200);
  const jaeger = await startJaeger({ kafka: { brokers: broker.brokers, topic: 'otlp_spans', encoding: 'otlp_proto', initialOffset: 'earliest' } });
  try {
    const apply = scenario.applyRequest;
    const got = await waitFor(`trace ${apply.traceId} in Jaeger`, async () => {
      const tr = (await getTraceV3(jaeger.queryHttp, apply.traceId)) as { result?: { resourceSpans?: Array<{ scopeSpans: Array<{ spans: Array<{ spanId: string; name: string }> }> }> } } | undefined;
      const spans = tr?.result?.resourceSpans?.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)) ?? [];
      return spans.length >= apply.spans.length ? spans : undefined;
    }, 60_000);
    assert.equal(got.map((s) => s.name).sort(), apply.spans.map((s) => s.name).sort());
    assert.equal(got.map((s) => s.spanId.toLowerCase()).sort(), apply.spans.map((s) => s.spanId).sort());
  } finally {
    await jaeger.stop();
  }
});

t.run();
