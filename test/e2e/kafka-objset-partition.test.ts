import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfigFile, Pipeline } from '@kube-correlate/collector';
import { COLLECTOR_CONFIG_DIR } from '@kube-correlate/cli';
import { DEFAULT_OBJSET_WINDOW_MS, encodeCorrelatedTrace, objectSetWindowStart, OBJSET_SCOPE } from '@kube-correlate/correlator';
import { generateDeploymentScenario, type ScenarioRequest } from '@kube-correlate/fixtures';
import { createKafkaClient, type Producer } from '@kube-correlate/kafka';
import { encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { objectSetSpans } from '@kube-correlate/store';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { reported, tempDir, waitFor } from '../harness/index.js';
import { startJaeger, type JaegerProcess } from '../harness/jaeger.js';
import { KAFKA_VERSIONS, kafkaClientEnv, startKafka, type KafkaBroker } from '../harness/kafka.js';
import { jaegerTrace, scenarioSetTrace } from '../harness/objset-order.js';

/**
 * Object sets partitioned over two `correlate store` pipelines (kafka-jaeger.yaml, one consumer
 * group) against a real broker and Jaeger: the Deployment scenario's requests on otlp_correlated,
 * the ReplicaSet's and Pods' first and the Deployment's after, spread over the partitions of both
 * instances; the object set reaches Jaeger once, whole, and as one instance without partitioning
 * (`KC_OBJSET_PARTITIONED=false`, its own group and Jaeger) exports it; every request trace too.
 */
const version = KAFKA_VERSIONS[KAFKA_VERSIONS.length - 1]!;
let broker: KafkaBroker;
let shared: JaegerProcess;
let single: JaegerProcess;
let producer: Producer;
const running: Pipeline[] = [];
const dirs = [tempDir('kc-objset-a-'), tempDir('kc-objset-b-'), tempDir('kc-objset-one-')];

function storeFrom(env: NodeJS.ProcessEnv): Pipeline {
  const config = loadConfigFile(`${COLLECTOR_CONFIG_DIR}kafka-jaeger.yaml`, env);
  return new Pipeline({ config, metrics: new PipelineMetrics(), logger: silentLogger() });
}

test.before(reported('Kafka, two Jaegers, three correlate store pipelines', async () => {
  broker = await startKafka({ version, partitions: 4 });
  [shared, single] = await Promise.all([startJaeger(), startJaeger()]);
  const env = { KAFKA_BROKERS: broker.brokers, KC_QUERY_ENDPOINT: '127.0.0.1:0', KC_OBJSET_SETTLE_AFTER: '300ms', KC_OBJSET_WAIT_FOR_OWNERS: '60s', ...kafkaClientEnv() };
  for (const dir of dirs.slice(0, 2)) {
    const p = storeFrom({ ...env, KC_DATA_DIR: dir.dir, KC_JAEGER_GROUP: 'kc-objset-shared', JAEGER_OTLP_ENDPOINT: shared.otlpGrpc, KC_OBJSET_PARTITIONED: 'true' });
    await p.start();
    running.push(p);
  }
  const one = storeFrom({ ...env, KC_DATA_DIR: dirs[2]!.dir, KC_JAEGER_GROUP: 'kc-objset-single', JAEGER_OTLP_ENDPOINT: single.otlpGrpc, KC_OBJSET_PARTITIONED: 'false' });
  await one.start();
  running.push(one);
  producer = await createKafkaClient({ brokers: [broker.brokers], clientId: 'kc-objset-test' }).producer();
}));

test.after(async () => {
  await producer?.disconnect();
  for (const p of running.reverse()) await p.shutdown();
  await Promise.all([broker?.stop(), shared?.stop(), single?.stop()]);
  for (const d of dirs) d.cleanup();
});

/** Requests as the correlators put them on otlp_correlated (joined), keyed by trace id. */
async function produce(requests: ScenarioRequest[]): Promise<void> {
  await producer.send(requests.map((r) => ({ topic: 'otlp_correlated', key: r.traceId, value: encodeTraceRequest(encodeCorrelatedTrace(r.traceId, r.spans, r.auditEvents)) })));
}

const view = (s: Span) => ({
  spanId: s.spanId, parentSpanId: s.parentSpanId, name: s.name,
  attributes: Object.fromEntries([...s.attributes].sort((a, b) => (a.key < b.key ? -1 : 1)).map((kv) => [kv.key, JSON.stringify(kv.value)])),
  links: s.links.map((l) => `${l.traceId}/${l.spanId}`),
  ...(s.scope.name !== OBJSET_SCOPE || s.attributes.some((kv) => kv.key === 'k8s.audit.id') ? { start: s.startTimeUnixNano, end: s.endTimeUnixNano } : {}),
});
const sorted = (spans: Span[]) => [...spans].sort((a, b) => (a.spanId < b.spanId ? -1 : 1)).map(view);

test('two instances export the Deployment\'s object set once, whole, as one instance does; each request trace once', async () => {
  const s = generateDeploymentScenario({ seed: 61, start: new Date(Date.now() - 60_000) });
  const isOwner = (r: ScenarioRequest) => r.auditEvents.some((e) => e.objectRef?.resource === 'deployments');
  await produce(s.requests.filter((r) => !isOwner(r)));
  // The children are stored somewhere before the Deployment comes.
  await waitFor('the children stored', () => (running.slice(0, 2).reduce((n, p) => n + p.store!.counts().traces, 0) >= s.requests.filter((r) => !isOwner(r)).length ? true : undefined), 90_000);
  await produce(s.requests.filter(isOwner));

  const one = running[2]!;
  const want = await waitFor('the single instance\'s object set', () => {
    const tree = one.store!.getObjectSet(s.deploymentUid);
    return tree && tree.auditIds.length === s.requests.length ? objectSetSpans(tree, { release: true }).spans.length : undefined;
  }, 90_000);
  const setTrace = scenarioSetTrace(s);
  const fromSingle = await waitFor(`${want} spans in the single instance's Jaeger`, async () => {
    const spans = await jaegerTrace(single.queryHttp, setTrace);
    return spans.length >= want ? spans : undefined;
  }, 90_000);
  const fromShared = await waitFor(`${want} spans in the two instances' Jaeger`, async () => {
    const spans = await jaegerTrace(shared.queryHttp, setTrace);
    return spans.length >= want ? spans : undefined;
  }, 90_000);
  assert.is(new Set(fromShared.map((x) => x.spanId)).size, fromShared.length, 'every span of the set once in Jaeger');
  assert.equal(sorted(fromShared), sorted(fromSingle), 'the set as one instance exports it');
  const exporters = running.slice(0, 2).filter((p) => p.store!.objectSetParts(s.deploymentUid, objectSetWindowStart(Date.parse(s.auditEvents[0]!.requestReceivedTimestamp), DEFAULT_OBJSET_WINDOW_MS))[0]!.spans > 0);
  assert.is(exporters.length, 1, 'one instance exported the set');

  for (const r of s.requests) {
    const a = await waitFor(`request trace ${r.traceId} in the single instance's Jaeger`, async () => {
      const spans = await jaegerTrace(single.queryHttp, r.traceId);
      return spans.length > r.spans.length ? spans : undefined;
    }, 30_000);
    const b = await waitFor(`request trace ${r.traceId} in the two instances' Jaeger`, async () => {
      const spans = await jaegerTrace(shared.queryHttp, r.traceId);
      return spans.length >= a.length ? spans : undefined;
    }, 30_000);
    assert.equal(sorted(b), sorted(a), `${r.label}: the request trace as one instance exports it, each span once`);
  }
});

test.run();
