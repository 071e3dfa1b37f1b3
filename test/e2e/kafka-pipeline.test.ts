import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfigFile, Pipeline } from '@kube-correlate/collector';
import { buildRequestTree, isLoneAuthentication, type RequestTree } from '@kube-correlate/correlator';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { silentLogger, PipelineMetrics } from '@kube-correlate/telemetry';
import { COLLECTOR_CONFIG_DIR } from '@kube-correlate/cli';
import { KAFKA_VERSIONS, kafkaClientEnv, startKafka, type KafkaBroker } from '../harness/kafka.js';
import { eventList, postJson, reported, runCli, tempDir, waitFor, waitForScenarioTrees } from '../harness/index.js';
import { startJaeger, type JaegerProcess } from '../harness/jaeger.js';
import { decodeTraceRequestJson, attrString } from '@kube-correlate/otlp';
import { auditIDForSpans } from '@kube-correlate/audit';
import { assertJaegerHasStoreTree, childrenFirst, jaegerTrace, scenarioSetTrace } from '../harness/objset-order.js';

/**
 * Kafka mode against a real broker (each supported Kafka version): collector -> otlp_spans and
 * k8s_audit -> two correlator instances -> otlp_correlated -> store, read back with the query API;
 * and otlp_correlated -> kafka-jaeger.yaml -> a real Jaeger, read back with `correlate --jaeger`.
 *
 * The one end-to-end file on kafkajs (`client: kafkajs`, the brief's library); the other Kafka
 * files run on the default, @platformatic/kafka. KC_KAFKA_CLIENT=platformatic runs this one on it too.
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
  let toJaeger: Pipeline;
  let jaeger: JaegerProcess;
  const jaegerData = tempDir();

  t.before(reported('setup', async () => {
    broker = await startKafka({ version, partitions: 4 });
    const env = {
      KAFKA_BROKERS: broker.brokers,
      KC_OTLP_GRPC_ENDPOINT: '127.0.0.1:0', KC_OTLP_HTTP_ENDPOINT: '127.0.0.1:0', KC_AUDIT_WEBHOOK_ENDPOINT: '127.0.0.1:0',
      KC_METRICS_ENDPOINT: '127.0.0.1:0', KC_QUERY_ENDPOINT: '127.0.0.1:0', KC_DATA_DIR: tmp.dir, KC_SETTLE_AFTER: '300ms',
      ...kafkaClientEnv('kafkajs'),
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
    jaeger = await startJaeger();
    // Held object-set spans wait a minute: only the hold, not its deadline, may put an out-of-order set right.
    toJaeger = pipelineFrom('kafka-jaeger.yaml', { ...env, KC_DATA_DIR: jaegerData.dir, JAEGER_OTLP_ENDPOINT: jaeger.otlpGrpc, KC_OBJSET_SETTLE_AFTER: '300ms', KC_OBJSET_WAIT_FOR_OWNERS: '60s' });
    await toJaeger.start();
    running.push(toJaeger);
  }));

  t.after(async () => {
    for (const p of running.reverse()) await p.shutdown();
    await broker?.stop();
    await jaeger?.stop();
    tmp.cleanup();
    jaegerData.cleanup();
  });

  t('the Deployment scenario gives the same trees as embedded mode', async () => {
    const scenario = generateDeploymentScenario({ seed: 21, start: new Date(Date.now() - 60_000) });
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
    // Generous: the first batch waits for both correlators to join the group. kube-apiserver's
    // lone authentication spans are dropped by the correlators, as in embedded mode (issue 13).
    const lone = scenario.traces.filter((tr) => isLoneAuthentication(tr.spans));
    assert.ok(lone.length > 0, 'the scenario has lone authentication traces');
    // Then each request's tree with every stage of its audit: each event is a message of its own on
    // k8s_audit and kc_audit_by_trace, so a tree can settle with one stage and be written again when
    // the other comes.
    const trees = await waitForScenarioTrees(query, scenario, 90_000);
    for (const r of scenario.requests) {
      const got: RequestTree = trees[r.traceId]!;
      const want = buildRequestTree(r.traceId, r.spans, r.auditEvents, { resolveLink: (tr, sp) => all.get(`${tr}/${sp}`) });
      assert.equal(got, JSON.parse(JSON.stringify(want)), r.label);
    }
    for (const tr of lone) assert.is(store.store!.getTrace(tr.traceId), undefined, `lone authentication trace ${tr.traceId} dropped`);

    // kafka-jaeger.yaml: the same traces and the object set in Jaeger, read back as the store has them.
    const setTrace = scenarioSetTrace(scenario);
    await waitFor('the object set in the kafka-jaeger store', () => toJaeger.store!.getObjectSet(scenario.deploymentUid), 30_000);
    // The store's tree is read again on each poll: with object sets partitioned (kafka-jaeger.yaml)
    // a set's requests reach its owner's store one message at a time, so a tree read early may lack some.
    let last: Span[] = [];
    let tree = toJaeger.store!.getObjectSet(scenario.deploymentUid)!;
    const setSpans = await waitFor('the object-set trace in Jaeger with every span of the store\'s tree', async () => {
      const res = await fetch(`${jaeger.queryHttp}/api/v3/traces/${setTrace}?raw_traces=true`);
      if (!res.ok) return undefined;
      const spans = decodeTraceRequestJson(((await res.json()) as { result: unknown }).result).spans;
      last = spans;
      if (toJaeger.store!.exportQueueSize() !== 0) return undefined;
      tree = toJaeger.store!.getObjectSet(scenario.deploymentUid)!;
      return spans.length >= tree.spanCount ? spans : undefined;
    }, 90_000).catch((err: Error) => {
      throw new Error(`${err.message}; Jaeger has ${last.length} (${last.map((x) => x.name).sort().join(', ')}); the store's tree now has ${toJaeger.store!.getObjectSet(scenario.deploymentUid)?.spanCount}; export queue: ${JSON.stringify(toJaeger.store!.allExports().slice(0, 20))}`);
    });
    assert.is(setSpans.length, tree.spanCount, 'each span once');
    assert.equal(setSpans.filter((x) => attrString(x.attributes, 'k8s.object.kind') && !attrString(x.attributes, 'k8s.audit.id')).map((x) => attrString(x.attributes, 'k8s.object.kind')).sort(), ['Deployment', 'Pod', 'Pod', 'Pod', 'ReplicaSet']);
    const fromJaeger = await runCli(['--object', 'deployment/default/web', '--json', '--jaeger', jaeger.queryHttp]);
    assert.is(fromJaeger.code, 0, fromJaeger.stderr);
    const fromStore = await runCli(['--object', 'deployment/default/web', '--json', '--endpoint', query]);
    assert.is(fromJaeger.stdout, fromStore.stdout, 'the Kafka-mode store and Jaeger give the same object-set tree');
  });

  t('out of order: children first, stages shuffled, the Deployment last; Jaeger\'s object-set trace is the store\'s', async () => {
    const s = generateDeploymentScenario({ seed: 23, annotations: true, start: new Date(Date.now() - 30_000), name: 'late' });
    const http = `http://${collector.addresses.otlpHttp}`;
    const res = await fetch(`${http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(s.spans) });
    assert.is(res.status, 200);
    const store = toJaeger.store!;
    const { children, owners } = childrenFirst(s, 9);
    for (const batch of children) {
      assert.is((await postJson(`http://${collector.addresses.auditWebhook}/`, eventList(batch))).status, 200);
      const ids = new Set(batch.map((e) => auditIDForSpans(e.auditID)));
      await waitFor('the batch in the kafka-jaeger store, and its export round done', () => ([...ids].every((id) => store.auditEvents(id).length > 0) && store.allExports().every((e) => e.kind === 'release') ? true : undefined), 60_000);
    }
    const setTrace = scenarioSetTrace(s);
    assert.not.ok((await jaegerTrace(jaeger.queryHttp, setTrace)).some((x) => !x.parentSpanId), 'no root span before the Deployment was seen');
    assert.is((await postJson(`http://${collector.addresses.auditWebhook}/`, eventList(owners))).status, 200);
    await waitFor('the Deployment in the kafka-jaeger store', () => (store.findObjects('deployment', 'default', 'late').length ? true : undefined), 60_000);
    await waitFor('nothing left to export', () => (store.allExports().length === 0 ? true : undefined), 30_000);
    const tree = store.getObjectSet(s.deploymentUid)!;
    const spans = await waitFor(`${tree.spanCount} object-set spans in Jaeger`, async () => {
      const got = await jaegerTrace(jaeger.queryHttp, setTrace);
      return got.length >= tree.spanCount ? got : undefined;
    }, 30_000);
    assertJaegerHasStoreTree(spans, tree);
    const fromJaeger = await runCli(['--objset', s.deploymentUid, '--json', '--jaeger', jaeger.queryHttp]);
    const fromStore = await runCli(['--objset', s.deploymentUid, '--json', '--endpoint', `http://${toJaeger.addresses.query}`]);
    assert.is(fromJaeger.code, 0, fromJaeger.stderr);
    assert.is(fromJaeger.stdout, fromStore.stdout, 'the CLI reads the same tree from Jaeger and from the store');
  });

  t.run();
}
