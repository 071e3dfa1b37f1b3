import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEvent } from '@kube-correlate/audit';
import { DEFAULT_OBJSET_WINDOW_MS, objectSetRootSpanId, objectSetSpanId, objectSetTraceId, objectSetWindowStart, OBJSET_SCOPE } from '@kube-correlate/correlator';
import { generateDeploymentScenario, Rng, type Scenario } from '@kube-correlate/fixtures';
import { attrString, type Span } from '@kube-correlate/otlp';
import { objectSetSpans, planExport, TraceStore } from '../src/index.js';

/**
 * The object-set trace sent to Jaeger is the same whatever order its objects' audit events arrive
 * in (issue 12): children before owners, stages shuffled, the owner last. Spans cannot be changed
 * once sent, so those that may still change wait (the root until the root object was seen, an
 * owner known only from ownerReferences, a request until its audit is complete), and each span
 * goes out once.
 */
const dirs: string[] = [];
/** The trace of the (one-hour) window a scenario ran in. */
const windowTrace = (s: Scenario) => objectSetTraceId(s.deploymentUid, objectSetWindowStart(Date.parse(s.auditEvents[0]!.requestReceivedTimestamp), DEFAULT_OBJSET_WINDOW_MS));
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
function round(store: TraceStore, waitForOwnersMs = 60_000, maxSpansPerTrace?: number): Span[] {
  const entries = store.nextExports(10_000);
  const plan = planExport(store, entries, { now: clock, waitForOwnersMs, waitForAuditMs: waitForOwnersMs, ...(maxSpansPerTrace ? { maxSpansPerTrace } : {}) });
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
    const setTrace = windowTrace(s);
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
    const rootId = objectSetRootSpanId(s.deploymentUid, objectSetWindowStart(Date.parse(s.auditEvents[0]!.requestReceivedTimestamp), DEFAULT_OBJSET_WINDOW_MS));
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
  const setTrace = windowTrace(s);
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

/** The same requests `ms` later, with their own audit IDs (`tag` appended): activity in a later window. */
function shifted(events: AuditEvent[], ms: number, tag: string): AuditEvent[] {
  const move = (t: string) => {
    const micros = t.match(/\.(\d{6})Z$/)?.[1] ?? '000000';
    return `${new Date(Date.parse(t) + ms).toISOString().slice(0, 19)}.${micros}Z`;
  };
  return events.map((e) => ({ ...e, auditID: `${e.auditID}-${tag}`, requestReceivedTimestamp: move(e.requestReceivedTimestamp), stageTimestamp: move(e.stageTimestamp) }));
}

const objset = (spans: Span[]) => spans.filter((x) => x.scope.name === OBJSET_SCOPE);
const attr = (x: Span, key: string) => attrString(x.attributes, key);
const HOUR = 3600_000;

test('one trace per window: a later window gets its own trace (the objects of its requests under their owners), its root links back, the earlier trace gets one span linking forward', () => {
  const s = generateDeploymentScenario({ seed: 40 }); // 2025-11-21T10:15
  const store = newStore();
  writeTraces(store, s);
  store.writeSync({ traces: [], unjoinedAuditEvents: s.auditEvents });
  const first = objset(round(store));
  const w1 = objectSetWindowStart(Date.parse(s.auditEvents[0]!.requestReceivedTimestamp), HOUR);
  const t1 = objectSetTraceId(s.deploymentUid, w1);
  assert.ok(first.length > 0 && first.every((x) => x.traceId === t1), 'the 10:00 window\'s trace');
  const root1 = first.find((x) => !x.parentSpanId)!;
  assert.is(root1.name, 'object set of Deployment default/web');
  assert.is(attr(root1, 'k8s.objset.window.start'), '2025-11-21T10:00:00.000Z');
  assert.is(attr(root1, 'k8s.objset.window.end'), '2025-11-21T11:00:00.000Z');
  assert.is(attr(root1, 'k8s.objset.previous_trace_id'), undefined, 'the first window has no previous');
  assert.ok(first.every((x) => attr(x, 'k8s.objset.id') === s.deploymentUid && attr(x, 'k8s.objset.trace_id') === t1), 'every span names its set and its trace');

  // Two hours later the controllers touch the ReplicaSet and the Pods again.
  const later = shifted(s.auditEvents.filter((e) => e.objectRef?.resource !== 'deployments'), 2 * HOUR, 'later');
  store.writeSync({ traces: [], unjoinedAuditEvents: later });
  const second = round(store);
  const t2 = objectSetTraceId(s.deploymentUid, w1 + 2 * HOUR);
  const inT2 = second.filter((x) => x.traceId === t2);
  const root2 = inT2.find((x) => !x.parentSpanId)!;
  assert.ok(root2, 'the 12:00 window has its root');
  assert.is(root2.name, 'object set of Deployment default/web', 'named after the root object, as every window');
  assert.is(attr(root2, 'k8s.objset.previous_trace_id'), t1);
  assert.equal(root2.links.map((l) => `${l.traceId}/${l.spanId}`), [`${t1}/${root1.spanId}`], 'a span link to the previous window\'s root');
  assert.is.not(root2.spanId, root1.spanId, 'each window\'s root has an id of its own');
  const deployment = inT2.find((x) => x.name === 'Deployment default/web');
  assert.ok(deployment, 'the Deployment is in the window as the owner of what its requests touched');
  assert.not.ok(inT2.some((x) => x.parentSpanId === deployment.spanId && attr(x, 'k8s.audit.id')), 'with no request of its own in the window');
  assert.is(inT2.filter((x) => attr(x, 'k8s.audit.id')).length, later.filter((e) => e.stage === 'ResponseComplete').length, 'the window\'s requests');
  const ids = new Set(inT2.map((x) => x.spanId));
  assert.ok(inT2.every((x) => !x.parentSpanId || ids.has(x.parentSpanId)), 'the window\'s trace is connected');

  const forward = second.filter((x) => x.traceId === t1);
  assert.is(forward.length, 1, 'one new span in the earlier trace, none changed');
  assert.is(forward[0]!.name, 'continued in window 2025-11-21T12:00:00.000Z');
  assert.is(forward[0]!.parentSpanId, root1.spanId);
  assert.is(attr(forward[0]!, 'k8s.objset.next_trace_id'), t2);
  assert.equal(forward[0]!.links.map((l) => `${l.traceId}/${l.spanId}`), [`${t2}/${root2.spanId}`]);
  assert.ok(BigInt(forward[0]!.startTimeUnixNano) <= BigInt(root1.endTimeUnixNano), 'within the earlier window\'s activity, not stretching its timeline');

  assert.is(round(store).length, 0, 'nothing again');
  store.writeSync({ traces: [], unjoinedAuditEvents: later });
  store.writeSync({ traces: [], unjoinedAuditEvents: s.auditEvents });
  assert.is(round(store).length, 0, 'a replay of both windows sends nothing');

  const chain = store.getObjectSet(s.deploymentUid)!.chain!;
  assert.equal(chain, [
    { start: '2025-11-21T10:00:00.000Z', end: '2025-11-21T11:00:00.000Z', requests: 10, traceIds: [t1] },
    { start: '2025-11-21T12:00:00.000Z', end: '2025-11-21T13:00:00.000Z', requests: 7, traceIds: [t2] },
  ]);
  assert.is(store.getObjectSet(s.deploymentUid)!.traceId, t2, 'the newest window by default');
  assert.is(store.getObjectSet(s.deploymentUid, { window: Date.parse('2025-11-21T10:30:00Z') })!.traceId, t1, 'any time in a window picks it');
  store.close();
});

test('late activity in an earlier window goes to that window\'s trace; the chain is not sent twice', () => {
  const s = generateDeploymentScenario({ seed: 41 });
  const store = newStore();
  writeTraces(store, s);
  store.writeSync({ traces: [], unjoinedAuditEvents: s.auditEvents });
  round(store);
  store.writeSync({ traces: [], unjoinedAuditEvents: shifted(s.auditEvents, 3 * HOUR, 'b') });
  round(store);
  const w1 = objectSetWindowStart(Date.parse(s.auditEvents[0]!.requestReceivedTimestamp), HOUR);
  // A request of the first window whose audit came late (batches wait up to 30 s; a catch-up, hours).
  const late = shifted(s.auditEvents.filter((e) => e.objectRef?.resource === 'deployments' && e.verb === 'get'), 60_000, 'late');
  store.writeSync({ traces: [], unjoinedAuditEvents: late });
  const spans = objset(round(store));
  assert.equal(spans.map((x) => [x.traceId, x.name]), [[objectSetTraceId(s.deploymentUid, w1), 'get deployments']]);
  store.close();
});

test('a chain span lies within the root it hangs under as that root was sent, though requests came after it (Jaeger flags a child outside its parent)', () => {
  const s = generateDeploymentScenario({ seed: 44 });
  const store = newStore();
  writeTraces(store, s);
  store.writeSync({ traces: [], unjoinedAuditEvents: s.auditEvents });
  const w1 = objectSetWindowStart(Date.parse(s.auditEvents[0]!.requestReceivedTimestamp), HOUR);
  const t1 = objectSetTraceId(s.deploymentUid, w1);
  const root1 = objset(round(store)).find((x) => x.traceId === t1 && !x.parentSpanId)!;
  assert.ok(root1, 'the first window went out with its root');
  // Twenty minutes later, same window: a get of the Deployment, after its root went out.
  const late = shifted(s.auditEvents.filter((e) => e.objectRef?.resource === 'deployments' && e.verb === 'get'), 20 * 60_000, 'late');
  assert.ok(late.length > 0 && objectSetWindowStart(Date.parse(late[0]!.requestReceivedTimestamp), HOUR) === w1, 'the late request is in the first window');
  store.writeSync({ traces: [], unjoinedAuditEvents: late });
  const lateSpans = objset(round(store));
  assert.ok(lateSpans.some((x) => x.traceId === t1 && x.name === 'get deployments' && BigInt(x.startTimeUnixNano) > BigInt(root1.endTimeUnixNano)), 'the late request went to the first trace, past its root\'s end');
  // The next window: the first trace gets its forward link.
  store.writeSync({ traces: [], unjoinedAuditEvents: shifted(s.auditEvents.filter((e) => e.objectRef?.resource === 'pods'), HOUR, 'w2') });
  const next = objset(round(store));
  const forward = next.find((x) => x.traceId === t1 && attr(x, 'k8s.objset.next_trace_id'))!;
  assert.ok(forward, 'the forward link');
  assert.is(forward.parentSpanId, root1.spanId);
  const within = (child: Span, parent: Span) => BigInt(child.startTimeUnixNano) >= BigInt(parent.startTimeUnixNano) && BigInt(child.endTimeUnixNano) <= BigInt(parent.endTimeUnixNano);
  assert.ok(within(forward, root1), `forward link ${forward.startTimeUnixNano}..${forward.endTimeUnixNano} within the root as sent ${root1.startTimeUnixNano}..${root1.endTimeUnixNano}`);
  store.close();
});

test('a window whose requests come after a later window went out: it links back and forward, and the later trace gets a span linking back', () => {
  const s = generateDeploymentScenario({ seed: 43 });
  const store = newStore();
  writeTraces(store, s);
  const w1 = objectSetWindowStart(Date.parse(s.auditEvents[0]!.requestReceivedTimestamp), HOUR);
  const [t1, t2, t3] = [0, 1, 2].map((h) => objectSetTraceId(s.deploymentUid, w1 + h * HOUR));
  store.writeSync({ traces: [], unjoinedAuditEvents: s.auditEvents });
  round(store);
  store.writeSync({ traces: [], unjoinedAuditEvents: shifted(s.auditEvents.filter((e) => e.objectRef?.resource === 'pods'), 2 * HOUR, 'w3') });
  const root3 = round(store).find((x) => x.traceId === t3 && !x.parentSpanId)!;
  assert.ok(root3, 'the 12:00 window went out with its root');
  // The 11:00 window's only requests arrive now (a catch-up after an outage).
  store.writeSync({ traces: [], unjoinedAuditEvents: shifted(s.auditEvents.filter((e) => e.objectRef?.resource === 'replicasets'), HOUR, 'w2') });
  const spans = round(store);
  const root2 = spans.find((x) => x.traceId === t2 && !x.parentSpanId)!;
  assert.is(attr(root2, 'k8s.objset.previous_trace_id'), t1, 'back to the nearest earlier window');
  const chainSpans = spans.filter((x) => attr(x, 'k8s.objset.next_trace_id') || (x.parentSpanId && attr(x, 'k8s.objset.previous_trace_id')));
  assert.equal(chainSpans.map((x) => [x.traceId === t1 ? 't1' : x.traceId === t2 ? 't2' : 't3', x.name]).sort(), [
    ['t1', 'continued in window 2025-11-21T11:00:00.000Z'],
    ['t2', 'continued in window 2025-11-21T12:00:00.000Z'],
    ['t3', 'continued from window 2025-11-21T11:00:00.000Z'],
  ]);
  const back = chainSpans.find((x) => x.traceId === t3)!;
  assert.is(attr(back, 'k8s.objset.previous_trace_id'), t2);
  assert.ok(BigInt(back.startTimeUnixNano) >= BigInt(root3.startTimeUnixNano) && BigInt(back.endTimeUnixNano) <= BigInt(root3.endTimeUnixNano), `the span linking back ${back.startTimeUnixNano}..${back.endTimeUnixNano} within the later root as sent ${root3.startTimeUnixNano}..${root3.endTimeUnixNano}`);
  assert.is(round(store).length, 0);
  assert.equal(store.objectSetChain(s.deploymentUid).map((c) => c.traceIds[0]), [t1, t2, t3]);
  store.close();
});

test('a window past max_spans_per_trace continues in further parts: each connected, chained, every request once; a late request and a replay too', () => {
  const s = generateDeploymentScenario({ seed: 42, replicas: 6 });
  const store = newStore();
  writeTraces(store, s);
  store.writeSync({ traces: [], unjoinedAuditEvents: s.auditEvents });
  const cap = 9;
  const sent = objset(round(store, 60_000, cap));
  const w = objectSetWindowStart(Date.parse(s.auditEvents[0]!.requestReceivedTimestamp), HOUR);
  const traces = [...new Set(sent.map((x) => x.traceId))];
  assert.ok(traces.length >= 3, `${traces.length} parts`);
  assert.equal(traces, traces.map((_, k) => objectSetTraceId(s.deploymentUid, w, k)), 'part k of the window: objectSetTraceId(set, window, k)');
  const requestsWanted = s.auditEvents.filter((e) => e.stage === 'ResponseComplete').length;
  const requests = sent.filter((x) => attr(x, 'k8s.audit.id'));
  assert.is(requests.length, requestsWanted, 'every request once');
  assert.is(new Set(requests.map((x) => x.spanId)).size, requestsWanted);
  for (const [k, t] of traces.entries()) {
    const inT = sent.filter((x) => x.traceId === t);
    const ids = new Set(inT.map((x) => x.spanId));
    assert.is(ids.size, inT.length, `part ${k}: every span once`);
    assert.ok(inT.every((x) => !x.parentSpanId || ids.has(x.parentSpanId)), `part ${k}: connected (each request under its object, under its owners, under the root)`);
    const root = inT.find((x) => !x.parentSpanId)!;
    assert.is(root.spanId, objectSetRootSpanId(s.deploymentUid, w, k), `part ${k}: a root of its own`);
    assert.ok(root.links.every((l) => l.spanId !== root.spanId), 'a root never links to its own span id (the Jaeger UI would take it as its parent)');
    assert.is(root.name, k === 0 ? 'object set of Deployment default/web' : `object set of Deployment default/web (part ${k + 1})`);
    const next = inT.filter((x) => attr(x, 'k8s.objset.next_trace_id'));
    assert.ok(inT.length - next.length <= cap, `part ${k}: ${inT.length} spans`);
    if (k > 0) {
      assert.is(attr(root, 'k8s.objset.previous_trace_id'), traces[k - 1]);
      assert.equal(root.attributes.find((kv) => kv.key === 'k8s.objset.part')?.value, { intValue: String(k) });
    }
    assert.equal(next.map((x) => attr(x, 'k8s.objset.next_trace_id')), k < traces.length - 1 ? [traces[k + 1]] : [], `part ${k}: links forward to the next part`);
  }
  assert.equal(store.objectSetChain(s.deploymentUid).map((c) => c.traceIds), [traces], 'the chain lists the parts, as recorded');

  // A late request of the window goes to its last part; the request trace's audit span names that part.
  const late = shifted(s.auditEvents.filter((e) => e.objectRef?.resource === 'deployments' && e.verb === 'get'), 30_000, 'late');
  store.writeSync({ traces: [], unjoinedAuditEvents: late });
  const more = objset(round(store, 60_000, cap));
  const lateSpan = more.find((x) => attr(x, 'k8s.audit.id') === late[0]!.auditID)!;
  assert.ok(lateSpan);
  assert.ok(traces.indexOf(lateSpan.traceId) >= traces.length - 1, 'in the last part (or a new one)');
  assert.is(store.objectSetTraceOfAudit(late[0]!.auditID)?.traceId, lateSpan.traceId, 'the audit span\'s k8s.objset.trace_id names the part holding the request');
  assert.is(store.objectSetTraceOfAudit(s.applyRequest.auditID)?.traceId, traces[0], 'an early request: the first part');
  store.writeSync({ traces: [], unjoinedAuditEvents: [...s.auditEvents, ...late] });
  assert.is(round(store, 60_000, cap).length, 0, 'a replay sends nothing');
  store.close();
});

test.run();
