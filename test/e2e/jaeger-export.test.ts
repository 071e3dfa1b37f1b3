import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditIDForSpans } from '@kube-correlate/audit';
import { isLoneAuthentication, unjoinedTraceId } from '@kube-correlate/correlator';
import { auditEvent, generateDeploymentScenario } from '@kube-correlate/fixtures';
import { attrString, decodeTraceRequestJson, encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { eventList, metricValue, postJson, reported, ROOT, runCli, startPipeline, tempDir, waitFor, waitForTree, type TestPipeline } from '../harness/index.js';
import { startJaeger, type JaegerProcess } from '../harness/jaeger.js';
import { assertJaegerHasStoreTree, childrenFirst, scenarioSetTrace } from '../harness/objset-order.js';

/**
 * Issue 4's acceptance against the real Jaeger v2 binary (in-memory storage, loopback): the
 * embedded pipeline exports request traces (audit attributes + audit span) and object-set traces
 * (Deployment -> ReplicaSet -> Pods, one span link per request) over OTLP/gRPC; replays export no
 * span twice; late activity adds spans; `correlate --object/--objset/--trace --json` read the same
 * tree from the store and from Jaeger.
 */
const UI_CONFIG = join(ROOT, 'deploy/components/jaeger/ui-config.json');
let jaeger: JaegerProcess;
let p: TestPipeline;
const data = tempDir('kc-jaeger-export-');
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);
const withAnnotations = generateDeploymentScenario({ seed: 401, annotations: true, start: minutesAgo(10) });
const ownersOnly = generateDeploymentScenario({ seed: 402, annotations: false, start: minutesAgo(5), name: 'api' });

test.before(reported('start Jaeger and the pipeline', async () => {
  // Jaeger runs deploy/components/jaeger/config.yaml as shipped, on loopback ports.
  jaeger = await startJaeger({ configFile: join(ROOT, 'deploy/components/jaeger/config.yaml'), env: { JAEGER_UI_CONFIG: UI_CONFIG } });
  p = await startPipeline({ dataDir: data.dir, settleAfter: '150ms', pendingAuditTtl: '400ms', otlp: { endpoint: jaeger.otlpGrpc } });
}));
test.after(reported('stop', async () => {
  await p?.stop();
  await jaeger?.stop();
  data.cleanup();
}));

/** Spans of a trace as Jaeger stores them (raw_traces: no adjusters, so duplicates would show). */
async function jaegerSpans(traceId: string): Promise<Span[]> {
  const res = await fetch(`${jaeger.queryHttp}/api/v3/traces/${traceId}?raw_traces=true`, { signal: AbortSignal.timeout(10_000) });
  if (res.status === 404) return [];
  const body = (await res.json()) as { result: unknown };
  return decodeTraceRequestJson(body.result).spans;
}

async function replay(pipeline: TestPipeline, s: ReturnType<typeof generateDeploymentScenario>): Promise<void> {
  const res = await fetch(`${pipeline.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(s.spans) });
  assert.is(res.status, 200);
  assert.is((await postJson(pipeline.audit, eventList(s.auditEvents))).status, 200);
}

/** Waits until the export queue is empty and Jaeger has the scenario's object-set trace (its window's) with `spanCount` spans. */
async function exported(pipeline: TestPipeline, s: ReturnType<typeof generateDeploymentScenario>, spanCount: number): Promise<Span[]> {
  const setId = s.deploymentUid;
  await waitFor('export queue drained', () => (pipeline.pipeline.store!.exportQueueSize() === 0 ? true : undefined), 30_000);
  return waitFor(`object-set trace of ${setId} in Jaeger with ${spanCount} spans`, async () => {
    const spans = await jaegerSpans(scenarioSetTrace(s));
    return spans.length >= spanCount ? spans : undefined;
  }, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\njaeger log tail:\n${readFileSync(jaeger.logPath, 'utf8').slice(-2000)}`);
  });
}

const attr = (s: Span, key: string) => attrString(s.attributes, key);

/** Deployment -> ReplicaSet -> 3 Pods under the set's root span; every request span has one link, to a request trace. */
function assertObjectSet(spans: Span[], s: ReturnType<typeof generateDeploymentScenario>): void {
  const ids = spans.map((x) => x.spanId);
  assert.is(new Set(ids).size, ids.length, 'every span id once');
  const roots = spans.filter((x) => !x.parentSpanId);
  assert.is(roots.length, 1, 'one root span');
  assert.is(attr(roots[0]!, 'k8s.objset.id'), s.deploymentUid);
  const objects = spans.filter((x) => attr(x, 'k8s.object.kind') && !attr(x, 'k8s.audit.id'));
  const byKind = (k: string) => objects.filter((x) => attr(x, 'k8s.object.kind') === k);
  assert.is(byKind('Deployment').length, 1);
  assert.is(byKind('ReplicaSet').length, 1);
  assert.is(byKind('Pod').length, 3);
  const deployment = byKind('Deployment')[0]!;
  const rs = byKind('ReplicaSet')[0]!;
  assert.is(deployment.parentSpanId, roots[0]!.spanId, 'Deployment under the set');
  assert.is(rs.parentSpanId, deployment.spanId, 'ReplicaSet under the Deployment');
  for (const pod of byKind('Pod')) assert.is(pod.parentSpanId, rs.spanId, 'Pod under the ReplicaSet');
  const requests = spans.filter((x) => attr(x, 'k8s.audit.id'));
  const requestTraces = new Set(s.requests.map((r) => r.traceId));
  for (const r of requests) {
    assert.is(r.links.length, 1, `request span ${r.name} has one link`);
    assert.ok(requestTraces.has(r.links[0]!.traceId), `${r.name} links to a request trace of the scenario`);
    assert.is(attr(r, 'k8s.audit.trace_id'), r.links[0]!.traceId);
  }
  // Every scenario request that touched an object of the set is there.
  const linked = new Set(requests.map((r) => r.links[0]!.traceId));
  const apply = s.applyRequest.traceId;
  assert.ok(linked.has(apply), 'the kubectl apply request is linked');
}

test('the kubectl apply trace in Jaeger carries its audit: k8s.audit.* on the server span, an audit span with one event per stage', async () => {
  await replay(p, withAnnotations);
  for (const r of withAnnotations.requests) await waitForTree(p.query, r.traceId, r.spans.length, true);
  const setSpans = await exported(p, withAnnotations, 1);
  assert.ok(setSpans.length > 0);
  const apply = withAnnotations.applyRequest;
  const spans = await jaegerSpans(apply.traceId);
  const server = spans.find((s) => s.spanId === apply.serverSpanId)!;
  assert.ok(server, 'the server span is in Jaeger');
  assert.is(attr(server, 'k8s.audit.id'), auditIDForSpans(apply.auditID));
  assert.is(attr(server, 'k8s.audit.verb'), 'create');
  assert.is(attr(server, 'k8s.object.name'), 'web');
  const audit = spans.filter((s) => s.scope.name === 'kube-correlate');
  assert.is(audit.length, 1, 'one audit span');
  assert.is(audit[0]!.parentSpanId, apply.serverSpanId);
  assert.equal(audit[0]!.events.map((e) => e.name).sort(), ['RequestReceived', 'ResponseComplete']);
  for (const e of audit[0]!.events) assert.is((JSON.parse(attr({ attributes: e.attributes } as Span, 'k8s.audit.event')!) as { auditID: string }).auditID, apply.auditID);
  assert.is(attr(audit[0]!, 'k8s.objset.id'), withAnnotations.deploymentUid, 'the audit span names its object set');
  assert.is(attr(audit[0]!, 'k8s.objset.trace_id'), scenarioSetTrace(withAnnotations), 'the trace of the set\'s window');
  assert.is(new Set(spans.map((s) => s.spanId)).size, spans.length, 'every span id once');
  assert.is(spans.length, apply.spans.length + 1, 'the received spans and the audit span');
});

test('the object-set trace (annotations): Deployment -> ReplicaSet -> Pods, one link per request, as many spans as the store tree', async () => {
  const tree = p.pipeline.store!.getObjectSet(withAnnotations.deploymentUid)!;
  assert.ok(tree, 'the store has the set');
  const spans = await exported(p, withAnnotations, tree.spanCount);
  assert.is(spans.length, tree.spanCount);
  assertObjectSet(spans, withAnnotations);
});

test('correlate --object/--objset/--trace --json: the same tree from the store and from Jaeger', async () => {
  const compare = async (args: string[]) => {
    const fromStore = await runCli([...args, '--json', '--data', data.dir]);
    assert.is(fromStore.code, 0, fromStore.stderr);
    const fromJaeger = await runCli([...args, '--json', '--jaeger', jaeger.queryHttp]);
    assert.is(fromJaeger.code, 0, fromJaeger.stderr);
    assert.equal(JSON.parse(fromJaeger.stdout), JSON.parse(fromStore.stdout), `${args.join(' ')}: same JSON`);
    assert.is(fromJaeger.stdout, fromStore.stdout, `${args.join(' ')}: same bytes`);
    const text = await runCli([...args, '--jaeger', jaeger.queryHttp]);
    const storeText = await runCli([...args, '--data', data.dir]);
    assert.is(text.stdout, storeText.stdout, `${args.join(' ')}: same text`);
    return JSON.parse(fromStore.stdout) as { objectSetId?: string };
  };
  const byObject = await compare(['--object', 'deployment/default/web']);
  assert.is(byObject.objectSetId, withAnnotations.deploymentUid);
  await compare(['--objset', withAnnotations.deploymentUid]);
  await compare(['--trace', withAnnotations.applyRequest.traceId]);
  const missing = await runCli(['--object', 'deployment/default/nope', '--jaeger', jaeger.queryHttp]);
  assert.is(missing.code, 1);
  const down = await runCli(['--trace', withAnnotations.applyRequest.traceId, '--jaeger', 'http://127.0.0.1:1']);
  assert.is(down.code, 2);
  assert.match(down.stderr, /cannot reach Jaeger at http:\/\/127\.0\.0\.1:1/);
});

test('without trace.kubernetes.io annotations the same object set comes from ownerReferences', async () => {
  await replay(p, ownersOnly);
  for (const r of ownersOnly.requests) await waitForTree(p.query, r.traceId, r.spans.length, true);
  const tree = p.pipeline.store!.getObjectSet(ownersOnly.deploymentUid)!;
  assert.ok(tree);
  const spans = await exported(p, ownersOnly, tree.spanCount);
  assert.is(spans.length, tree.spanCount);
  assertObjectSet(spans, ownersOnly);
  const fromStore = await runCli(['--object', 'deployments/default/api', '--json', '--data', data.dir]);
  const fromJaeger = await runCli(['--object', 'deployments/default/api', '--json', '--jaeger', jaeger.queryHttp]);
  assert.is(fromJaeger.code, 0, fromJaeger.stderr);
  assert.is(fromJaeger.stdout, fromStore.stdout);
  assert.is((JSON.parse(fromJaeger.stdout) as { objectSetId: string }).objectSetId, ownersOnly.deploymentUid);
});

test('replaying twice, and again after a restart, leaves every span id once in Jaeger; late activity adds spans', async () => {
  const traces = [...new Set([...withAnnotations.traces, ...ownersOnly.traces].map((t) => t.traceId)), scenarioSetTrace(withAnnotations), scenarioSetTrace(ownersOnly)];
  const all = async () => (await Promise.all(traces.map(jaegerSpans))).flat();
  const beforeSpans = await all();
  const before = beforeSpans.length;
  const sentBefore = await metricValue(p.metrics, 'kube_correlate_exporter_sent_items_total', { exporter: 'otlp/jaeger', signal: 'spans' });
  assert.ok(sentBefore >= before, `${sentBefore} spans sent for ${before} in Jaeger`);

  const dups = () => metricValue(p.metrics, 'kube_correlate_store_rows_total', { table: 'spans', outcome: 'duplicate' });
  // Stored spans: kube-apiserver's lone authentication traces are dropped by the correlator.
  const stored = (s: typeof withAnnotations) => s.traces.filter((t) => !isLoneAuthentication(t.spans)).reduce((n, t) => n + t.spans.length, 0);
  await replay(p, withAnnotations);
  await waitFor('the replay settled', async () => ((await dups()) >= stored(withAnnotations) ? true : undefined));
  await p.stop();
  p = await startPipeline({ dataDir: data.dir, settleAfter: '150ms', pendingAuditTtl: '400ms', otlp: { endpoint: jaeger.otlpGrpc } });
  await replay(p, withAnnotations);
  await replay(p, ownersOnly);
  await waitFor('the replays settled', async () => ((await dups()) >= stored(withAnnotations) + stored(ownersOnly) ? true : undefined));

  // Late activity: an unsampled `kubectl get deployment web` (audit only, no spans) that arrives
  // now, received in the set's window (a request in a later window goes to that window's trace:
  // 'a later window' below).
  const auditID = randomUUID();
  const now = new Date(Date.parse(withAnnotations.applyRequest.auditEvents[0]!.requestReceivedTimestamp) + 1);
  const ref = { resource: 'deployments', namespace: 'default', name: 'web', apiGroup: 'apps', apiVersion: 'v1', uid: withAnnotations.deploymentUid };
  const common = { auditID, verb: 'get', requestURI: '/apis/apps/v1/namespaces/default/deployments/web', objectRef: ref, requestReceivedTimestamp: now.toISOString() };
  const late = [
    auditEvent({ ...common, stage: 'RequestReceived', stageTimestamp: now.toISOString() }),
    auditEvent({ ...common, stage: 'ResponseComplete', stageTimestamp: new Date(now.getTime() + 3).toISOString(), responseStatus: { metadata: {}, code: 200 } }),
  ];
  assert.is((await postJson(p.audit, eventList(late))).status, 200);
  const tree = await waitFor('the late request in the store tree', () => {
    const t = p.pipeline.store!.getObjectSet(withAnnotations.deploymentUid);
    return t && t.auditIds.includes(auditIDForSpans(auditID)) ? t : undefined;
  }, 15_000);
  const setSpans = await exported(p, withAnnotations, tree.spanCount);
  const lateSpan = setSpans.filter((s) => attr(s, 'k8s.audit.id') === auditID);
  assert.is(lateSpan.length, 1, 'one new request span');
  assert.is(lateSpan[0]!.links[0]!.traceId, unjoinedTraceId(auditID), 'linked to the audit-only trace of the request');
  assert.ok((await jaegerSpans(unjoinedTraceId(auditID))).length === 1, 'the audit-only trace is in Jaeger');

  const added = (await all()).filter((s) => !beforeSpans.some((b) => b.traceId === s.traceId && b.spanId === s.spanId));
  assert.equal(added.map((s) => s.name), [lateSpan[0]!.name], 'only the late request span was added to these traces');
  for (const t of traces) {
    const ids = (await jaegerSpans(t)).map((s) => s.spanId);
    assert.is(new Set(ids).size, ids.length, `trace ${t}: every span id once`);
  }
  const late2 = await runCli(['--audit-id', auditID, '--json', '--jaeger', jaeger.queryHttp]);
  assert.is(late2.code, 0, late2.stderr);
  const fromStore = await runCli(['--audit-id', auditID, '--json', '--endpoint', p.query]);
  assert.is(late2.stdout, fromStore.stdout, 'an audit-only request reads the same from Jaeger');
});

for (const annotations of [false, true]) {
  test(`out of order (${annotations ? 'webhook annotations' : 'ownerReferences only'}): children first, stages shuffled, the Deployment last; Jaeger's object-set trace is the store's`, async () => {
    const name = annotations ? 'late-a' : 'late-o';
    const s = generateDeploymentScenario({ seed: annotations ? 411 : 412, annotations, start: minutesAgo(2), name });
    const other = tempDir('kc-jaeger-order-');
    // Held spans wait for a minute: only the hold, not its deadline, may put the tree right.
    const o = await startPipeline({ dataDir: other.dir, settleAfter: '150ms', pendingAuditTtl: '300ms', otlp: { endpoint: jaeger.otlpGrpc, objsetSettle: '200ms', waitForOwners: '60s' } });
    try {
      const res = await fetch(`${o.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(s.spans) });
      assert.is(res.status, 200);
      const { children, owners } = childrenFirst(s, 5);
      const store = o.pipeline.store!;
      for (const batch of children) {
        assert.is((await postJson(o.audit, eventList(batch))).status, 200);
        // Each batch stored and its export round done (only held releases left) before the next.
        const ids = new Set(batch.map((e) => auditIDForSpans(e.auditID)));
        await waitFor('the batch stored and exported', () => ([...ids].every((id) => store.auditEvents(id).length > 0) && store.allExports().every((e) => e.kind === 'release') ? true : undefined), 30_000);
      }
      const setTrace = scenarioSetTrace(s);
      const early = await jaegerSpans(setTrace);
      assert.not.ok(early.some((x) => !x.parentSpanId), 'no root span before the Deployment was seen');
      assert.is((await postJson(o.audit, eventList(owners))).status, 200);
      const tree = await waitFor('the Deployment in the store', () => {
        const t = store.getObjectSet(s.deploymentUid);
        return t && store.findObjects('deployment', 'default', name).length ? t : undefined;
      }, 30_000);
      await waitFor('nothing left to export', () => (store.allExports().length === 0 ? true : undefined), 30_000);
      const spans = await waitFor(`${tree.spanCount} object-set spans in Jaeger`, async () => {
        const got = await jaegerSpans(setTrace);
        return got.length >= tree.spanCount ? got : undefined;
      }, 30_000);
      assertJaegerHasStoreTree(spans, store.getObjectSet(s.deploymentUid)!);
      assertObjectSet(spans, s);
      const fromJaeger = await runCli(['--objset', s.deploymentUid, '--json', '--jaeger', jaeger.queryHttp]);
      const fromStore = await runCli(['--objset', s.deploymentUid, '--json', '--endpoint', o.query]);
      assert.is(fromJaeger.code, 0, fromJaeger.stderr);
      assert.is(fromJaeger.stdout, fromStore.stdout, 'the CLI reads the same tree from both');
    } finally {
      await o.stop();
      other.cleanup();
    }
  });
}

test('otlphttp: the same export over OTLP/HTTP (protobuf) to Jaeger\'s :4318 receiver', async () => {
  const viaHttp = generateDeploymentScenario({ seed: 403, start: minutesAgo(3), name: 'db' });
  const other = tempDir('kc-jaeger-http-');
  const h = await startPipeline({ dataDir: other.dir, settleAfter: '150ms', otlp: { endpoint: jaeger.otlpHttp, protocol: 'http' } });
  try {
    await replay(h, viaHttp);
    for (const r of viaHttp.requests) await waitForTree(h.query, r.traceId, r.spans.length, true);
    const tree = h.pipeline.store!.getObjectSet(viaHttp.deploymentUid)!;
    const spans = await exported(h, viaHttp, tree.spanCount);
    assert.is(spans.length, tree.spanCount);
    assertObjectSet(spans, viaHttp);
    assert.ok((await metricValue(h.metrics, 'kube_correlate_exporter_sent_items_total', { exporter: 'otlphttp/jaeger', signal: 'spans' })) > tree.spanCount);
  } finally {
    await h.stop();
    other.cleanup();
  }
});

test('deploy/components/jaeger/ui-config.json: Jaeger serves its link patterns, and each one resolves on the exported spans to a trace Jaeger has', async () => {
  type Pattern = { type: string; key: string; url: string; text: string };
  const config = JSON.parse(readFileSync(UI_CONFIG, 'utf8')) as { linkPatterns: Pattern[] };
  const index = await (await fetch(`${jaeger.queryHttp}/`)).text();
  const injected = /JAEGER_CONFIG = (\{.*\});/.exec(index);
  assert.ok(injected, 'the query service injected the UI config into index.html');
  assert.equal((JSON.parse(injected[1]!) as { linkPatterns: Pattern[] }).linkPatterns, config.linkPatterns);

  const apply = withAnnotations.applyRequest;
  const spans = [...(await jaegerSpans(apply.traceId)), ...(await jaegerSpans(scenarioSetTrace(withAnnotations)))];
  const byId = new Map(spans.map((s) => [`${s.traceId}/${s.spanId}`, s]));
  // As the Jaeger UI does: a parameter comes from the span's tags, else from its ancestors'.
  const param = (s: Span, name: string): string | undefined => {
    for (let cur: Span | undefined = s; cur; cur = byId.get(`${cur.traceId}/${cur.parentSpanId}`)) {
      const v = attr(cur, name);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  const resolve = (p: Pattern, s: Span) => {
    let ok = true;
    const url = p.url.replace(/#\{([^}]+)\}/g, (_m, name: string) => encodeURIComponent(param(s, name) ?? ((ok = false), '')));
    return ok ? url : undefined;
  };
  const pattern = (key: string, url: RegExp) => config.linkPatterns.find((x) => x.key === key && url.test(x.url))!;
  const [toSet, toRequest, search] = [pattern('k8s.objset.id', /^\/trace\//), pattern('k8s.audit.id', /^\/trace\//), pattern('k8s.audit.id', /^\/search/)];
  // From the apply request's audit span to its object set.
  const auditSpan = spans.find((s) => s.traceId === apply.traceId && s.scope.name === 'kube-correlate')!;
  const setUrl = resolve(toSet, auditSpan);
  assert.is(setUrl, `/trace/${scenarioSetTrace(withAnnotations)}`);
  // Every span carrying k8s.objset.id links to a trace Jaeger has.
  for (const s of spans.filter((x) => attr(x, toSet.key))) assert.is(resolve(toSet, s), setUrl);
  // From each request of the set to the request's own trace.
  const requests = spans.filter((s) => s.traceId !== apply.traceId && attr(s, toRequest.key));
  assert.ok(requests.length >= withAnnotations.requests.length - 1);
  for (const r of requests) {
    const url = resolve(toRequest, r);
    assert.ok(url, `${r.name}: the request-trace link resolves`);
    assert.ok((await jaegerSpans(url.slice('/trace/'.length))).length > 0, `${url} is a trace in Jaeger`);
  }
  assert.match(resolve(search, auditSpan)!, `tags=%7B%22k8s.audit.id%22%3A%22${encodeURIComponent(auditIDForSpans(apply.auditID))}%22%7D`);
  // The set's search: every trace of the set, through the API the UI searches with (tags filter).
  const setSearch = pattern('k8s.objset.id', /^\/search/);
  const searchUrl = new URL(resolve(setSearch, auditSpan)!, jaeger.queryHttp);
  assert.is(searchUrl.searchParams.get('tags'), JSON.stringify({ 'k8s.objset.id': withAnnotations.deploymentUid }));
  const found = await (await fetch(`${jaeger.queryHttp}/api/traces?service=kube-correlate&lookback=2w&limit=100&tags=${encodeURIComponent(searchUrl.searchParams.get('tags')!)}&start=${(Date.now() - 14 * 86_400_000) * 1000}&end=${(Date.now() + 3_600_000) * 1000}`)).json() as { data: Array<{ traceID: string }> };
  assert.equal(found.data.map((t) => t.traceID), [scenarioSetTrace(withAnnotations)], 'the search finds the set\'s trace');
});

test('a later window: its own trace, chained both ways in Jaeger; correlate --objset --jaeger lists the chain as the store does, --window picks one; the previous/next link patterns resolve', async () => {
  const s = ownersOnly;
  const first = scenarioSetTrace(s);
  const windowStart = Date.parse(s.auditEvents[0]!.requestReceivedTimestamp) - (Date.parse(s.auditEvents[0]!.requestReceivedTimestamp) % 3_600_000);
  // An unsampled `kubectl get deployment api` (audit only) in the next hour's window.
  const at = new Date(windowStart + 3_600_000 + 1000);
  const auditID = randomUUID();
  const ref = { resource: 'deployments', namespace: 'default', name: 'api', apiGroup: 'apps', apiVersion: 'v1', uid: s.deploymentUid };
  const common = { auditID, verb: 'get', requestURI: '/apis/apps/v1/namespaces/default/deployments/api', objectRef: ref, requestReceivedTimestamp: at.toISOString() };
  assert.is((await postJson(p.audit, eventList([
    auditEvent({ ...common, stage: 'RequestReceived', stageTimestamp: at.toISOString() }),
    auditEvent({ ...common, stage: 'ResponseComplete', stageTimestamp: new Date(at.getTime() + 2).toISOString(), responseStatus: { metadata: {}, code: 200 } }),
  ]))).status, 200);
  const store = p.pipeline.store!;
  const chain = await waitFor('two windows in the store', () => {
    const c = store.getObjectSet(s.deploymentUid)?.chain;
    return c && c.length === 2 ? c : undefined;
  });
  const second = chain[1]!.traceIds[0]!;
  assert.is(chain[0]!.traceIds[0], first);
  await waitFor('export queue drained', () => (store.exportQueueSize() === 0 ? true : undefined), 30_000);
  const later = await waitFor('the later window\'s trace in Jaeger', async () => {
    const got = await jaegerSpans(second);
    return got.length >= 3 ? got : undefined;
  }, 30_000);
  const root = later.find((x) => !x.parentSpanId)!;
  assert.is(root.name, 'object set of Deployment default/api');
  assert.is(attr(root, 'k8s.objset.previous_trace_id'), first);
  assert.equal(later.map((x) => x.name).sort(), ['Deployment default/api', 'get deployments', 'object set of Deployment default/api']);
  const next = (await jaegerSpans(first)).filter((x) => attr(x, 'k8s.objset.next_trace_id'));
  assert.equal(next.map((x) => [x.name, attr(x, 'k8s.objset.next_trace_id')]), [[`continued in window ${new Date(windowStart + 3_600_000).toISOString()}`, second]]);

  // The CLI follows the chain, from the store and from Jaeger alike.
  for (const args of [['--objset', s.deploymentUid], ['--object', 'deployment/default/api'], ['--objset', s.deploymentUid, '--window', new Date(windowStart + 60_000).toISOString()], ['--objset', s.deploymentUid, '--window', 'all']]) {
    const fromStore = await runCli([...args, '--json', '--endpoint', p.query]);
    const fromJaeger = await runCli([...args, '--json', '--jaeger', jaeger.queryHttp]);
    assert.is(fromStore.code, 0, fromStore.stderr);
    assert.is(fromJaeger.code, 0, fromJaeger.stderr);
    assert.is(fromJaeger.stdout, fromStore.stdout, `${args.join(' ')}: the same from Jaeger`);
    const out = JSON.parse(fromStore.stdout) as { traceId: string; window: { start: string } | null; chain: Array<{ traceIds: string[]; requests: number }> };
    assert.equal(out.chain.map((c) => c.traceIds), [[first], [second]]);
    assert.is(out.chain[1]!.requests, 1);
    if (args.includes('all')) assert.is(out.window, null);
    else assert.is(out.traceId, args.includes('--window') ? first : second, `${args.join(' ')}: the window shown`);
  }
  const text = await runCli(['--objset', s.deploymentUid, '--endpoint', p.query]);
  assert.match(text.stdout, `object set ${s.deploymentUid}  window ${new Date(windowStart + 3_600_000).toISOString().replace('.000Z', 'Z')} to `);
  assert.match(text.stdout, `chain: 2 windows, oldest first`);
  assert.match(text.stdout, new RegExp(`^▶ ${new Date(windowStart + 3_600_000).toISOString().replace('.000Z', 'Z')} +1 request +trace ${second}$`, 'm'));

  // The UI's previous/next link patterns resolve on these spans to the traces Jaeger has.
  const config = JSON.parse(readFileSync(UI_CONFIG, 'utf8')) as { linkPatterns: Array<{ key: string; url: string }> };
  const url = (key: string, span: Span) => config.linkPatterns.find((x) => x.key === key)!.url.replace(`#{${key}}`, attr(span, key)!);
  assert.is(url('k8s.objset.previous_trace_id', root), `/trace/${first}`);
  assert.is(url('k8s.objset.next_trace_id', next[0]!), `/trace/${second}`);
});

test.run();
