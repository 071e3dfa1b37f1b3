import { spawn } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { auditIDForSpans, type AuditEvent } from '@kube-correlate/audit';
import { buildRequestTree, isLoneAuthentication, type RequestTree, type TreeNode } from '@kube-correlate/correlator';
import { attrString, encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { TraceStore } from '@kube-correlate/store';
import { captureNames, loadCapture, type Capture } from '../harness/captures.js';
import { sharedDataFile } from '../harness/coverage.js';
import { CLI, eventList, metricValue, postJson, reported, runCli, startPipeline, tempDir, type TestPipeline } from '../harness/index.js';

/**
 * The real kube-apiserver recordings (../shared/data/captures: v1.34.4 and v1.37.2, the same
 * scenario), replayed into the embedded pipeline as kube-apiserver sent them: the OTLP requests'
 * bytes, the callers' spans, the audit log as webhook batches. Checked against what was sent:
 * every audited request's tree, the audit on the route span, no lone `authentication` traces,
 * real kinds (no PartialObjectMetadata), the Deployment's object set (by name, by the webhook's set
 * id and by the Deployment's uid), links followed both ways, HTTP attributes of either semantic
 * convention, the long client-chosen Audit-ID. Every capture directory present is replayed, so a
 * new recording is tested as it is added.
 */
const names = captureNames();
if (names.length < 2) throw new Error(`expected the v1.34.4 and v1.37.2 recordings in ../shared/data/captures, found ${names.join(', ') || 'none'}`);

const byTrace = (spans: Span[]) => {
  const m = new Map<string, Span[]>();
  for (const s of spans) {
    const list = m.get(s.traceId) ?? [];
    if (!list.some((x) => x.spanId === s.spanId)) list.push(s);
    m.set(s.traceId, list);
  }
  return m;
};

/** The tree without what depends on other traces (links followed either way). */
function local(n: TreeNode): unknown {
  const { links, linkedFrom, children, ...rest } = n;
  return { ...rest, links: links?.map((l) => `${l.traceId}/${l.spanId}`), children: children.map(local) };
}

function find(n: TreeNode, pred: (x: TreeNode) => boolean): TreeNode[] {
  return [...(pred(n) ? [n] : []), ...n.children.flatMap((c) => find(c, pred))];
}

for (const name of names) {
  const t = suite(`capture ${name}`);
  let cap: Capture;
  let p: TestPipeline;
  const data = tempDir('kc-capture-');
  let store: TraceStore;
  let lone = 0;

  t.before(reported('replay the recording', async () => {
    cap = loadCapture(name);
    p = await startPipeline({ dataDir: data.dir, settleAfter: '300ms', pendingAuditTtl: '2s' });
    for (const body of cap.otlpRequests) {
      const res = await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body });
      assert.is(res.status, 200, await res.text());
    }
    const caller = await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(cap.callerSpans) });
    assert.is(caller.status, 200);
    for (let i = 0; i < cap.auditEvents.length; i += 400) {
      const r = await postJson(p.audit, eventList(cap.auditEvents.slice(i, i + 400)));
      assert.is(r.status, 200, JSON.stringify(r.body));
    }
    lone = [...byTrace(cap.spans).values()].filter((spans) => isLoneAuthentication(spans)).length;
    // Shutdown settles and stores everything in flight; the metrics stay readable.
    await p.pipeline.shutdown();
    store = new TraceStore({ dir: data.dir, readonly: true });
  }));
  t.after(() => {
    store?.close();
    data.cleanup();
  });

  t('every audited request: its whole trace, the audit on its route span', () => {
    // The admin's traceparent was accepted as parent: the caller's span is that trace's root.
    const traces = byTrace([...cap.spans, ...cap.callerSpans]);
    const events = new Map<string, AuditEvent[]>();
    for (const e of cap.auditEvents) {
      const id = auditIDForSpans(e.auditID);
      events.set(id, [...(events.get(id) ?? []), e]);
    }
    let audited = 0;
    for (const [traceId, spans] of traces) {
      const ids = [...new Set(spans.map((s) => attrString(s.attributes, 'audit-id')).filter((x): x is string => !!x && events.has(x)))];
      if (ids.length === 0) continue;
      const got = store.getTrace(traceId);
      assert.ok(got, `trace ${traceId} stored`);
      const want = buildRequestTree(traceId, spans, ids.flatMap((id) => events.get(id)!));
      assert.equal(local(got.root), local(want.root), `trace ${traceId}`);
      for (const id of ids) {
        const [node, ...more] = find(got.root, (n) => n.audit?.auditID !== undefined && auditIDForSpans(n.audit.auditID) === id);
        assert.ok(node && more.length === 0, `audit ${id} on one node`);
        assert.is(node.kind, 'SERVER', `audit ${id} on the route span (${node.name})`);
        assert.is(node.attributes['audit-id'], id);
        audited++;
      }
    }
    assert.ok(audited > 500, `${audited} audited requests checked`);
  });

  t('no lone authentication span is a trace: dropped and counted', async () => {
    assert.ok(lone > 100, `the recording has lone authentication traces (${lone})`);
    assert.is(await metricValue(p.metrics, 'kube_correlate_correlator_dropped_total', { reason: 'lone_authentication' }), lone);
    const listed = store.recentTraces(1000);
    assert.ok(listed.length > 0);
    assert.not.ok(listed.some((x) => x.rootName === 'authentication' && x.spanCount === 1), 'none listed');
    const aLone = [...byTrace(cap.spans).entries()].find(([, spans]) => isLoneAuthentication(spans))!;
    assert.is(store.getTrace(aLone[0]), undefined, 'not stored');
  });

  t('objects have their own kinds: no PartialObjectMetadata from the garbage collector\'s reads', async () => {
    assert.ok(cap.auditEvents.some((e) => (e.responseObject as { kind?: string } | undefined)?.kind === 'PartialObjectMetadata'), 'the recording has metadata-only reads');
    const rs = await runCli(['--object', `deployment/${cap.facts.namespace}/web`, '--json', '--data', data.dir]);
    assert.is(rs.code, 0, rs.stderr);
    assert.not.ok(rs.stdout.includes('PartialObjectMetadata'));
  });

  t('the object set: Deployment -> both ReplicaSets -> Pods, named after the Deployment, found by name, set id and uid', async () => {
    const r = await runCli(['--object', `deployment/${cap.facts.namespace}/web`, '--json', '--data', data.dir]);
    assert.is(r.code, 0, r.stderr);
    const tree = JSON.parse(r.stdout) as RequestTree & { objectSetId: string };
    assert.is(tree.root.name, `object set of Deployment ${cap.facts.namespace}/web`);
    const objects = (n: TreeNode) => n.children.filter((c) => !c.audit);
    const [deployment, ...others] = objects(tree.root);
    assert.is(others.length, 0, 'one root object');
    assert.is(deployment!.attributes['k8s.object.kind'], 'Deployment');
    const replicaSets = objects(deployment!);
    assert.is(replicaSets.length, 2, 'the rollout made a second ReplicaSet');
    for (const rs of replicaSets) {
      assert.is(rs.attributes['k8s.object.kind'], 'ReplicaSet');
      const pods = objects(rs);
      assert.ok(pods.length > 0, `${rs.name} has its Pods`);
      for (const pod of pods) assert.is(pod.attributes['k8s.object.kind'], 'Pod');
      assert.ok(rs.children.some((c) => c.audit?.user.startsWith('system:serviceaccount:kube-system:')), `${rs.name}: the controllers' requests`);
    }
    const uid = String(deployment!.attributes['k8s.object.uid']);
    for (const id of new Set([tree.objectSetId, uid])) {
      const byId = await runCli(['--objset', id, '--json', '--data', data.dir]);
      assert.is(byId.code, 0, `--objset ${id}: ${byId.stderr}`);
      assert.is(byId.stdout, r.stdout, `--objset ${id === uid ? 'the Deployment\'s uid' : 'the set id'} gives the same tree`);
    }
  });

  t('links both ways: the request made with alice\'s traceparent links to her span, and her trace shows it as "linked from"', async () => {
    const { traceId, spanId } = cap.facts.traceparentAlice;
    const linking = cap.spans.filter((s) => s.links.some((l) => l.traceId === traceId && l.spanId === spanId));
    assert.ok(linking.length > 0, 'kube-apiserver recorded the caller as a link');
    const req = await runCli(['--trace', linking[0]!.traceId, '--json', '--data', data.dir]);
    assert.is(req.code, 0, req.stderr);
    const link = find((JSON.parse(req.stdout) as RequestTree).root, (n) => !!n.links?.length)[0]!.links![0]!;
    assert.is(link.traceId, traceId);
    assert.ok(link.target, 'the caller\'s span is known');
    const caller = await runCli(['--trace', traceId, '--json', '--data', data.dir]);
    assert.is(caller.code, 0, caller.stderr);
    const from = (JSON.parse(caller.stdout) as RequestTree).root.linkedFrom ?? [];
    assert.equal([...new Set(from.map((l) => l.traceId))].sort(), [...new Set(linking.map((s) => s.traceId))].sort());
    const text = await runCli(['--trace', traceId, '--data', data.dir]);
    assert.match(text.stdout, `linked from ← trace ${linking[0]!.traceId}`);
  });

  t('HTTP attributes read under either semantic convention', async () => {
    const route = cap.spans.find((s) => s.kind === 2 && attrString(s.attributes, 'audit-id') && s.name.startsWith('POST '))!;
    const newNames = route.attributes.some((kv) => kv.key === 'http.request.method');
    assert.is(newNames, name.startsWith('v1.37'), `${name} uses the ${newNames ? 'new' : 'old'} names`);
    const r = await runCli(['--trace', route.traceId, '--json', '--data', data.dir]);
    const node = find((JSON.parse(r.stdout) as RequestTree).root, (n) => n.spanId === route.spanId)[0]!;
    assert.is(node.http?.method, 'POST');
    assert.type(node.http?.statusCode, 'number');
    assert.ok(node.http?.target?.startsWith('/'), String(node.http?.target));
  });

  t('the long client-chosen Audit-ID finds its request by its whole value and by the 64 characters on spans', async () => {
    const id = cap.facts.clientAuditID;
    assert.ok(id.length > 64);
    const whole = await runCli(['--audit-id', id, '--json', '--data', data.dir]);
    assert.is(whole.code, 0, whole.stderr);
    const cut = await runCli(['--audit-id', id.slice(0, 64), '--json', '--data', data.dir]);
    assert.is(cut.stdout, whole.stdout);
    assert.ok(find((JSON.parse(whole.stdout) as RequestTree).root, (n) => n.audit?.auditID === id).length === 1, 'the audit keeps the whole id');
  });

  t('`correlate ... | head -1` ends quietly: a closed pipe is a normal end', async () => {
    const args = [CLI, 'coverage', '--spec', sharedDataFile('openapi/swagger-v1.37.json'), '--audit', sharedDataFile(`captures/${name}/audit.log`), '--format', 'csv', '--no-progress'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d));
    const first = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString())));
    child.stdout.destroy(); // what `head -1` does after its line
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.match(first, /^endpoint,/);
    assert.is(err, '', 'no stack trace');
    assert.is(code, 0);
  });

  t('coverage names the version the spec gives, not a made-up patch release', async () => {
    const r = await runCli(['coverage', '--spec', sharedDataFile('openapi/swagger-v1.37.json'), '--audit', sharedDataFile(`captures/${name}/audit.log`), '--no-progress']);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /^API coverage of Kubernetes 1\.37 \(spec /);
  });

  t.run();
}
