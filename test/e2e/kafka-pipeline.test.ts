import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfigFile, Pipeline } from '@kube-correlate/collector';
import { buildRequestTree, type RequestTree } from '@kube-correlate/correlator';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { silentLogger, PipelineMetrics } from '@kube-correlate/telemetry';
import { COLLECTOR_CONFIG_DIR } from '@kube-correlate/cli';
import { KAFKA_VERSIONS, startKafka, type KafkaBroker } from '../harness/kafka.js';
import { eventList, postJson, reported, tempDir, waitForTree } from '../harness/index.js';

/**
 * Kafka mode against a real broker (each supported Kafka version): collector -> otlp_spans and
 * k8s_audit -> two correlator instances -> otlp_correlated -> store, read back with the query API.
 */
function pipelineFrom(file: string, env: NodeJS.ProcessEnv): Pipeline {
  const config = loadConfigFile(COLLECTOR_CONFIG_DIR + file, env);
  return new Pipeline({ config, metrics: new PipelineMetrics(), logger: silentLogger() });
}

for (const version of KAFKA_VERSIONS) {
  const t = suite(`Kafka ${version}`);
  let broker: KafkaBroker;
  const tmp = tempDir();
  const running: Pipeline[] = [];
  let collector: Pipeline;
  let store: Pipeline;

  t.before(reported('setup', async () => {
    broker = await startKafka({ version, partitions: 4 });
    const env = {
      KAFKA_BROKERS: broker.brokers,
      KC_OTLP_GRPC_ENDPOINT: '127.0.0.1:0', KC_OTLP_HTTP_ENDPOINT: '127.0.0.1:0', KC_AUDIT_WEBHOOK_ENDPOINT: '127.0.0.1:0',
      KC_METRICS_ENDPOINT: '127.0.0.1:0', KC_QUERY_ENDPOINT: '127.0.0.1:0', KC_DATA_DIR: tmp.dir, KC_SETTLE_AFTER: '300ms',
    };
    collector = pipelineFrom('kafka-collector.yaml', env);
    await collector.start();
    running.push(collector);
    for (let i = 0; i < 2; i++) {
      const c = pipelineFrom('kafka-correlator.yaml', env);
      await c.start();
      running.push(c);
    }
    store = pipelineFrom('kafka-store.yaml', env);
    await store.start();
    running.push(store);
  }));

  t.after(async () => {
    for (const p of running.reverse()) await p.shutdown();
    await broker?.stop();
    tmp.cleanup();
  });

  t('the Deployment scenario gives the same trees as embedded mode', async () => {
    const scenario = generateDeploymentScenario({ seed: 21 });
    const http = `http://${collector.addresses.otlpHttp}`;
    for (const tr of scenario.traces) {
      const res = await fetch(`${http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(tr.spans) });
      assert.is(res.status, 200, `${tr.label}: ${await res.text()}`);
    }
    const posted = await postJson(`http://${collector.addresses.auditWebhook}/`, eventList(scenario.auditEvents));
    assert.is(posted.status, 200, JSON.stringify(posted.body));

    const all = new Map<string, Span>(scenario.spans.map((s) => [`${s.traceId}/${s.spanId}`, s]));
    const query = `http://${store.addresses.query}`;
    // Every trace stored first, the caller's too, so links are followed as in embedded mode.
    // Generous: the first batch waits for both correlators to join the group.
    for (const tr of scenario.traces) await waitForTree(query, tr.traceId, tr.spans.length, false, 90_000);
    for (const r of scenario.requests) {
      const got: RequestTree = await waitForTree(query, r.traceId, r.spans.length, true);
      const want = buildRequestTree(r.traceId, r.spans, r.auditEvents, { resolveLink: (tr, sp) => all.get(`${tr}/${sp}`) });
      assert.equal(got, JSON.parse(JSON.stringify(want)), r.label);
    }
  });

  t.run();
}
