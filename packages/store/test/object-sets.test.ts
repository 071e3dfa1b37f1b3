import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEvent } from '@kube-correlate/audit';
import { DEFAULT_OBJSET_WINDOW_MS, objectSetTraceId, objectSetWindowStart, type TreeNode } from '@kube-correlate/correlator';
import { generateDeploymentScenario, type Scenario } from '@kube-correlate/fixtures';
import { TraceStore } from '../src/index.js';

const dirs: string[] = [];
test.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function storeWith(s: Scenario, events: AuditEvent[] = s.auditEvents): TraceStore {
  const dir = mkdtempSync(join(tmpdir(), 'kc-objset-'));
  dirs.push(dir);
  const store = new TraceStore({ dir });
  store.writeSync({
    traces: s.requests.map((r) => ({ traceId: r.traceId, spans: r.spans, auditEvents: [], auditIds: [r.auditID], reason: 'idle' as const })),
    unjoinedAuditEvents: events,
  });
  return store;
}

/** kind name -> [child kinds...], and request verbs per object, for comparing shapes. */
function shape(n: TreeNode): unknown {
  const objects = n.children.filter((c) => !c.audit);
  const requests = n.children.filter((c) => c.audit).map((c) => c.name);
  return { name: n.name.replace(/-[a-z0-9]+/g, '-x'), requests, objects: objects.map(shape) };
}

const want = {
  name: 'object set of Deployment default/web',
  requests: [],
  objects: [{
    name: 'Deployment default/web',
    requests: ['get deployments', 'create deployments', 'update deployments/status'],
    objects: [{
      name: 'ReplicaSet default/web-x',
      requests: ['create replicasets'],
      objects: [1, 2, 3].map(() => ({ name: 'Pod default/web-x-x', requests: ['create pods', 'create pods/binding'], objects: [] })),
    }],
  }],
};

test('Deployment -> ReplicaSet -> Pods from ownerReferences (no annotations), requests in time order, linked to their traces', () => {
  const s = generateDeploymentScenario({ seed: 5, annotations: false });
  const store = storeWith(s);
  const tree = store.getObjectSet(s.deploymentUid);
  assert.ok(tree);
  assert.is(tree.objectSetId, s.deploymentUid);
  const hour = objectSetWindowStart(Date.parse(s.auditEvents[0]!.requestReceivedTimestamp), DEFAULT_OBJSET_WINDOW_MS);
  assert.is(tree.traceId, objectSetTraceId(s.deploymentUid, hour), 'the trace of the set\'s window (the hour it ran in)');
  assert.equal(tree.window, { start: new Date(hour).toISOString(), end: new Date(hour + 3600_000).toISOString() });
  assert.equal(tree.chain, [{ start: new Date(hour).toISOString(), end: new Date(hour + 3600_000).toISOString(), requests: 10, traceIds: [tree.traceId] }]);
  assert.equal(shape(tree.root), want);
  const create = tree.root.children[0]!.children.find((c) => c.name === 'create deployments')!;
  assert.is(create.links?.[0]?.traceId, s.applyRequest.traceId);
  assert.is(create.links?.[0]?.spanId, s.applyRequest.serverSpanId);
  assert.is(create.audit?.code, 201);
  // every object of the set says so, and the CLI lookup by kind/namespace/name finds the same set
  assert.equal(store.getObjectSetOf('deployment', 'default', 'web'), tree);
  assert.equal(store.getObjectSetOf('Deployment', 'default', 'web'), tree);
  const pod = tree.root.children[0]!.children.find((c) => !c.audit)!.children.find((c) => !c.audit)!;
  assert.is(store.objectSetOf(String(pod.attributes['k8s.object.uid'])), s.deploymentUid);
  store.close();
});

test('with the trace.kubernetes.io annotations the set is the same', () => {
  const s = generateDeploymentScenario({ seed: 5, annotations: true });
  const store = storeWith(s);
  assert.equal(shape(store.getObjectSet(s.deploymentUid)!.root), want);
  store.close();
});

test('owner seen after its children: the same set once the owner arrives, and the children grouped before', () => {
  const s = generateDeploymentScenario({ seed: 6 });
  const late = s.auditEvents.filter((e) => e.objectRef?.resource === 'deployments');
  const early = s.auditEvents.filter((e) => e.objectRef?.resource !== 'deployments');
  const store = storeWith(s, early);
  const before = store.getObjectSet(s.deploymentUid);
  assert.ok(before, 'children of an owner never seen are grouped under its uid');
  // The owner, known from its children's ownerReferences, is already in the tree and names the set.
  assert.is(before.root.name, 'object set of Deployment default/web');
  const owner = before.root.children[0]!;
  assert.is(owner.name, 'Deployment default/web');
  assert.is(owner.attributes['k8s.object.observed'], false, 'known only from an ownerReference');
  assert.is(owner.children.filter((c) => !c.audit).map((c) => c.name.split(' ')[0]).join(), 'ReplicaSet');
  store.writeSync({ traces: [], unjoinedAuditEvents: late });
  const after = store.getObjectSet(s.deploymentUid)!;
  assert.equal(shape(after.root), want);
  // Every span id and parent the children had before the owner came is the same after.
  const ids = (n: TreeNode, out = new Map<string, string>()) => {
    out.set(n.spanId, n.parentSpanId);
    n.children.forEach((c) => ids(c, out));
    return out;
  };
  const afterIds = ids(after.root);
  for (const [id, parent] of ids(before.root)) assert.is(afterIds.get(id), parent, `span ${id} keeps its id and parent`);
  assert.is(after.root.children[0]!.attributes['k8s.object.observed'], undefined, 'the Deployment is observed now');
  store.close();
});

test('a deleted object keeps its history (every window); the newest window shows the delete under the Pod\'s owners', () => {
  const s = generateDeploymentScenario({ seed: 7 });
  const pod = s.auditEvents.find((e) => e.objectRef?.resource === 'pods' && !e.objectRef.subresource && e.stage === 'ResponseComplete')!;
  const podObj = pod.responseObject as { metadata: { name: string; uid: string } };
  const del: AuditEvent[] = (['RequestReceived', 'ResponseComplete'] as const).map((stage) => ({
    ...pod, auditID: 'delete-1', stage, verb: 'delete', requestObject: undefined, responseObject: undefined,
    objectRef: { resource: 'pods', namespace: 'default', name: podObj.metadata.name, apiVersion: 'v1' },
    responseStatus: { code: 200 }, requestReceivedTimestamp: '2030-01-01T00:00:00.000000Z', stageTimestamp: '2030-01-01T00:00:00.010000Z',
  }));
  const store = storeWith(s, [...s.auditEvents, ...del]);
  const tree = store.getObjectSet(s.deploymentUid, { window: 'all' })!;
  const json = JSON.stringify(tree);
  assert.ok(json.includes('"k8s.object.deleted":true'));
  assert.is(tree.window, null);
  assert.is(tree.traceId, '', 'every window: no one trace');
  const podNode = tree.root.children[0]!.children.find((c) => !c.audit)!.children.find((c) => c.attributes['k8s.object.uid'] === podObj.metadata.uid)!;
  assert.equal(podNode.children.filter((c) => c.audit).map((c) => c.name), ['create pods', 'create pods/binding', 'delete pods']);
  // By default, the newest window (2030): the delete, under the Pod, under its ReplicaSet and Deployment.
  const newest = store.getObjectSet(s.deploymentUid)!;
  assert.is(newest.window?.start, '2030-01-01T00:00:00.000Z');
  assert.equal(shape(newest.root), {
    name: 'object set of Deployment default/web', requests: [],
    objects: [{ name: 'Deployment default/web', requests: [], objects: [{ name: 'ReplicaSet default/web-x', requests: [], objects: [{ name: 'Pod default/web-x-x', requests: ['delete pods'], objects: [] }] }] }],
  });
  assert.equal(newest.chain!.map((c) => [c.start, c.requests]), [[newest.chain![0]!.start, 10], ['2030-01-01T00:00:00.000Z', 1]]);
  store.close();
});

test('a v1 store is migrated: its audit events are indexed into objects', () => {
  const s = generateDeploymentScenario({ seed: 9 });
  const store = storeWith(s);
  const dir = store.path.replace(/\/kube-correlate\.db$/, '');
  const db = (store as unknown as { db: { exec(sql: string): void; pragma(x: string): void } }).db;
  db.exec('DROP TABLE objects; DROP TABLE object_refs;');
  db.pragma('user_version = 1');
  store.close();
  const reopened = new TraceStore({ dir });
  assert.equal(shape(reopened.getObjectSet(s.deploymentUid)!.root), want);
  reopened.close();
});

test('unknown sets and objects are undefined', () => {
  const s = generateDeploymentScenario({ seed: 8 });
  const store = storeWith(s);
  assert.is(store.getObjectSet('00000000-0000-4000-8000-000000000000'), undefined);
  assert.is(store.getObjectSetOf('deployment', 'default', 'nope'), undefined);
  store.close();
});

test.run();
