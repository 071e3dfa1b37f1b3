import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEvent } from '@kube-correlate/audit';
import { objectSetSpanId, objectSetTraceId, OBJSET_SCOPE } from '@kube-correlate/correlator';
import { generateDeploymentScenario, Rng, type Scenario } from '@kube-correlate/fixtures';
import type { Span } from '@kube-correlate/otlp';
import { objectSetSpans, planExport, TraceStore } from '../src/index.js';

/**
 * The object-set trace sent to Jaeger is the same whatever order its objects' audit events arrive
 * in (issue 12): children before owners, stages shuffled, the owner last. Spans cannot be changed
 * once sent, so those that may still change wait (the root until the root object was seen, an
 * owner known only from ownerReferences, a request until its audit is complete), and each span
 * goes out once.
 */
const dirs: string[] = [];
test.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

let clock = 1_000_000;
function newStore(): TraceStore {
  const dir = mkdtempSync(join(tmpdir(), 'kc-export-plan-'));
  dirs.push(dir);
  return new TraceStore({ dir, exportQueue: true, now: () => clock });
}

function writeTraces(store: TraceStore, s: Scenario): void {
  store.writeSync({ traces: s.requests.map((r) => ({ traceId: r.traceId, spans: r.spans, auditEvents: [], auditIds: [r.auditID], reason: 'idle' as const })), unjoinedAuditEvents: [] });
}

/** One export round as the exporter runs it: plan what is due, "send" it, record it, queue releases. */
function round(store: TraceStore, waitForOwnersMs = 60_000): Span[] {
  const entries = store.nextExports(10_000);
  const plan = planExport(store, entries, { now: clock, waitForOwnersMs, waitForAuditMs: waitForOwnersMs });
  store.markExported(plan.spans, [], entries);
  for (const r of plan.releases) store.scheduleRelease(r.key, r.atMs);
  for (const k of plan.complete) store.cancelRelease(k);
  return plan.spans;
}

function shuffle<T>(items: T[], seed: number): T[] {
  const rng = new Rng(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.float() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** What Jaeger shows of a span, without the times of object and root spans (as of their export). */
const view = (s: Span) => ({
  spanId: s.spanId, parentSpanId: s.parentSpanId, name: s.name,
  attributes: Object.fromEntries(s.attributes.map((kv) => [kv.key, JSON.stringify(kv.value)])),
  links: s.links.map((l) => `${l.traceId}/${l.spanId}`),
  ...(s.attributes.some((kv) => kv.key === 'k8s.audit.id') ? { start: s.startTimeUnixNano, end: s.endTimeUnixNano } : {}),
});
const byId = (spans: Span[]) => [...spans].sort((a, b) => (a.spanId < b.spanId ? -1 : 1)).map(view);

for (const annotations of [false, true]) {
  test(`children first, owners last, stages shuffled (${annotations ? 'webhook annotations' : 'ownerReferences'}): Jaeger gets the tree the store builds, each span once`, () => {
    const s = generateDeploymentScenario({ seed: 31, annotations });
    const isOwner = (e: AuditEvent) => e.objectRef?.resource === 'deployments';
    const children = shuffle(s.auditEvents.filter((e) => !isOwner(e)), 7);
    const owners = shuffle(s.auditEvents.filter(isOwner), 8);

    const store = newStore();
    const setTrace = objectSetTraceId(s.deploymentUid);
    writeTraces(store, s);
    round(store); // the request traces
    const sent: Span[] = [];
    // The children in two batches (second halves of stages first), each followed by an export round.
    const half = Math.floor(children.length / 2);
    for (const batch of [children.slice(half), children.slice(0, half)]) {
      store.writeSync({ traces: [], unjoinedAuditEvents: batch });
      const spans = round(store).filter((x) => x.scope.name === OBJSET_SCOPE);
      assert.ok(spans.every((x) => x.traceId === setTrace), 'object-set spans only ever in the set\'s trace');
      sent.push(...spans);
    }
    const rootId = objectSetSpanId(s.deploymentUid, 'set');
    assert.not.ok(sent.some((x) => x.spanId === rootId), 'the root waits for the root object');
    assert.not.ok(sent.some((x) => x.name.startsWith('Deployment ')), 'the owner known only from ownerReferences waits');
    if (annotations) {
      // The set's id is known from the annotation: what cannot change went out already.
      const rs = sent.find((x) => x.name.startsWith('ReplicaSet '));
      assert.ok(rs, 'the ReplicaSet went out');
      assert.is(rs.parentSpanId, objectSetSpanId(s.deploymentUid, 'object', s.deploymentUid), 'under the Deployment it names, before the Deployment was seen');
    } else {
      assert.is(sent.length, 0, 'the set\'s id is the uid of an owner not seen yet: all of it waits');
    }

    store.writeSync({ traces: [], unjoinedAuditEvents: owners });
    sent.push(...round(store).filter((x) => x.scope.name === OBJSET_SCOPE));
    assert.ok(sent.every((x) => x.traceId === setTrace));

    const final = store.getObjectSet(s.deploymentUid)!;
    assert.is(final.root.name, 'object set of Deployment default/web');
    const want = objectSetSpans(final, { release: true }).spans;
    assert.is(sent.length, want.length, 'every span of the tree went out, each once');
    assert.equal(byId(sent), byId(want));
    assert.is(store.allExports().length, 0, 'nothing left waiting');
    store.close();
  });
}

test('an owner that never comes: after wait_for_owners the held spans go out as they are, once', () => {
  const s = generateDeploymentScenario({ seed: 32 });
  const store = newStore();
  writeTraces(store, s);
  store.writeSync({ traces: [], unjoinedAuditEvents: s.auditEvents.filter((e) => e.objectRef?.resource !== 'deployments') });
  const setTrace = objectSetTraceId(s.deploymentUid);
  const first = round(store, 5000).filter((x) => x.traceId === setTrace);
  assert.is(first.length, 0, 'the set\'s id is an owner\'s not seen: it all waits');
  assert.is(store.allExports().filter((e) => e.key.startsWith('objset/')).length, 1, 'one release of the set queued');
  // (The Deployment's requests' route spans wait for their audit, which never comes either.)
  assert.ok(store.allExports().every((e) => e.kind === 'release'));
  assert.is(store.nextExports(10).length, 0, 'not due yet');
  assert.is(store.msUntilNextExport(), 5000);
  clock += 5000;
  const released = round(store, 5000).filter((x) => x.traceId === setTrace);
  const tree = store.getObjectSet(s.deploymentUid)!;
  assert.ok(released.every((x) => x.traceId === setTrace));
  assert.equal(released.filter((x) => !x.attributes.some((kv) => kv.key === 'k8s.audit.id')).map((x) => x.name.replace(/-[a-z0-9]+/g, '-x')).sort(), [
    'Deployment default/web', 'Pod default/web-x-x', 'Pod default/web-x-x', 'Pod default/web-x-x', 'ReplicaSet default/web-x', 'object set of Deployment default/web',
  ], 'the root, the owner named from its ownerReferences, the rest');
  assert.equal(released.find((x) => x.name === 'Deployment default/web')!.attributes.find((kv) => kv.key === 'k8s.object.observed')?.value, { boolValue: false });
  assert.is(released.length, tree.spanCount, 'the whole tree, once');
  assert.is(round(store, 5000).length, 0, 'nothing again');
  assert.is(store.allExports().length, 0);
  store.close();
});

test('a request trace: spans before their audit, stages one by one; the route and audit spans wait and go out whole, once', () => {
  const s = generateDeploymentScenario({ seed: 36 });
  const r = s.applyRequest;
  const store = newStore();
  store.writeSync({ traces: [{ traceId: r.traceId, spans: r.spans, auditEvents: [], auditIds: [r.auditID], reason: 'idle' }], unjoinedAuditEvents: [] });
  const sent: Span[] = [];
  sent.push(...round(store, 60_000).filter((x) => x.traceId === r.traceId));
  assert.not.ok(sent.some((x) => x.spanId === r.serverSpanId), 'the route span waits for its audit');
  assert.is(sent.length, r.spans.length - 1, 'the other spans went out');
  const [received, done] = [r.auditEvents.filter((e) => e.stage === 'RequestReceived'), r.auditEvents.filter((e) => e.stage !== 'RequestReceived')];
  store.writeSync({ traces: [{ traceId: r.traceId, spans: [], auditEvents: received, auditIds: [r.auditID], reason: 'idle' }], unjoinedAuditEvents: [] });
  assert.is(round(store, 60_000).filter((x) => x.traceId === r.traceId).length, 0, 'RequestReceived alone: still waiting');
  store.writeSync({ traces: [{ traceId: r.traceId, spans: [], auditEvents: done, auditIds: [r.auditID], reason: 'idle' }], unjoinedAuditEvents: [] });
  const last = round(store, 60_000).filter((x) => x.traceId === r.traceId);
  const route = last.find((x) => x.spanId === r.serverSpanId)!;
  assert.ok(route, 'the route span went out once the audit was complete');
  assert.ok(route.attributes.some((kv) => kv.key === 'k8s.audit.code'), 'with its k8s.audit.*');
  const audit = last.filter((x) => x.scope.name === 'kube-correlate');
  assert.is(audit.length, 1, 'one audit span, no "late" span');
  assert.equal(audit[0]!.events.map((e) => e.name).sort(), ['RequestReceived', 'ResponseComplete']);
  assert.is(store.allExports().length, 0, 'no release left');
});

test('a request whose audit never comes: after wait_for_audit its route span goes out without it', () => {
  const s = generateDeploymentScenario({ seed: 37 });
  const r = s.applyRequest;
  const store = newStore();
  store.writeSync({ traces: [{ traceId: r.traceId, spans: r.spans, auditEvents: [], auditIds: [r.auditID], reason: 'idle' }], unjoinedAuditEvents: [] });
  assert.is(round(store, 2000).length, r.spans.length - 1);
  clock += 2000;
  const released = round(store, 2000);
  assert.equal(released.map((x) => x.spanId), [r.serverSpanId]);
  assert.is(store.allExports().length, 0);
});

test('object entries come due once the set was quiet for settle_after, at most max_delay after the first', () => {
  const s = generateDeploymentScenario({ seed: 33 });
  const dir = mkdtempSync(join(tmpdir(), 'kc-export-plan-'));
  dirs.push(dir);
  const store = new TraceStore({ dir, exportQueue: true, now: () => clock, objectSetDebounce: { settleAfterMs: 1000, maxDelayMs: 3000 } });
  const [a, b] = [s.auditEvents.slice(0, 4), s.auditEvents.slice(4)];
  store.writeSync({ traces: [], unjoinedAuditEvents: a });
  const objects = () => store.nextExports(1000).filter((e) => e.kind === 'object');
  assert.is(objects().length, 0, 'not quiet yet');
  clock += 800;
  store.writeSync({ traces: [], unjoinedAuditEvents: b });
  clock += 800;
  // Keep touching the same objects every 800 ms: max_delay still lets them out.
  for (let i = 0; i < 3; i++) {
    store.writeSync({ traces: [], unjoinedAuditEvents: [...a, ...b].map((e) => ({ ...e, auditID: `${e.auditID}-${i}` })) });
    clock += 800;
  }
  assert.ok(objects().length > 0, 'due after max_delay although never quiet');
  store.close();
});

test('kinds come from what the request addressed, not from a metadata-only response (PartialObjectMetadata)', () => {
  const s = generateDeploymentScenario({ seed: 34 });
  const rsEvent = s.auditEvents.find((e) => e.objectRef?.resource === 'replicasets' && e.stage === 'ResponseComplete')!;
  const meta = (rsEvent.responseObject as { metadata: Record<string, unknown> }).metadata;
  // The garbage collector's metadata-only read of the ReplicaSet, after its create.
  const gcRead: AuditEvent[] = (['RequestReceived', 'ResponseComplete'] as const).map((stage) => ({
    ...rsEvent, auditID: 'gc-read-1', stage, verb: 'get', requestObject: undefined,
    user: { username: 'system:serviceaccount:kube-system:generic-garbage-collector' },
    responseObject: stage === 'ResponseComplete' ? { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: meta } : undefined,
    requestReceivedTimestamp: '2030-01-01T00:00:00.000000Z', stageTimestamp: '2030-01-01T00:00:00.001000Z',
  }));
  const store = newStore();
  store.writeSync({ traces: [], unjoinedAuditEvents: [...s.auditEvents, ...gcRead] });
  const rs = store.findObjects('replicaset', 'default', String(meta.name));
  assert.is(rs.length, 1);
  assert.is(rs[0]!.kind, 'ReplicaSet');
  assert.is(rs[0]!.api_version, 'apps/v1');
  const text = JSON.stringify(store.getObjectSet(s.deploymentUid));
  assert.not.ok(text.includes('PartialObjectMetadata '), 'no object named by the metadata-only shape');
  store.close();
});

test('--objset accepts the root object\'s uid when the set has an id of its own (the webhook\'s)', () => {
  const s = generateDeploymentScenario({ seed: 35, annotations: true });
  // The webhook names a new root's set with a random UUID (the object has no uid at admission).
  const setId = 'c0ffee00-1111-4222-8333-444455556666';
  const events = JSON.parse(JSON.stringify(s.auditEvents).replaceAll(`"trace.kubernetes.io/objsetid":"${s.deploymentUid}"`, `"trace.kubernetes.io/objsetid":"${setId}"`)) as AuditEvent[];
  assert.ok(JSON.stringify(events).includes(setId));
  // The Deployment carries it too (the deployment controller copies it onto its ReplicaSets).
  for (const e of events.filter((x) => x.objectRef?.resource === 'deployments')) {
    for (const o of [e.requestObject, e.responseObject] as Array<{ metadata?: { annotations?: Record<string, string> } } | undefined>) {
      if (o?.metadata) o.metadata.annotations = { ...o.metadata.annotations, 'trace.kubernetes.io/objsetid': setId };
    }
  }
  const store = newStore();
  store.writeSync({ traces: [], unjoinedAuditEvents: events });
  const bySet = store.getObjectSet(setId)!;
  assert.ok(bySet);
  assert.is(bySet.root.name, 'object set of Deployment default/web', 'named after its root object, not its id');
  const deployment = store.findObjects('deployment', 'default', 'web')[0]!;
  const byUid = store.getObjectSet(deployment.uid);
  assert.ok(byUid, 'found by the Deployment\'s uid');
  assert.is(byUid.objectSetId, bySet.objectSetId);
  store.close();
});

test.run();
