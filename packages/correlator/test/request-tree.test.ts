import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildRequestTree, treeAuditStages, treeNodes, type TreeNode } from '../src/index.js';
import { auditEvent, makeSpan, spanIdOf as sid, traceIdOf as tid } from '@kube-correlate/fixtures';

const names = (n: TreeNode): unknown => (n.children.length ? [n.name, n.children.map(names)] : n.name);

function shuffle<T>(xs: T[], seed: number): T[] {
  const a = [...xs];
  let s = seed;
  for (let i = a.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

// kube-apiserver 1.33 shape: the route span has no audit-id, the handler and storage spans do.
const spans133 = [
  makeSpan({ trace: 1, id: 1, parent: 0, name: 'POST /api/v1/namespaces/{:namespace}/configmaps', kind: 2, start: 0, duration: 10_000 }),
  makeSpan({ trace: 1, id: 2, parent: 1, name: 'Create', auditId: 'a1', start: 100, duration: 9_000 }),
  makeSpan({ trace: 1, id: 3, parent: 2, name: 'Create etcd3', auditId: 'a1', start: 2_000, duration: 5_000 }),
  makeSpan({ trace: 1, id: 4, parent: 3, name: 'etcdserverpb.KV/Txn', kind: 3, start: 2_100, duration: 4_000 }),
  makeSpan({ trace: 1, id: 5, parent: 2, name: 'SerializeObject', auditId: 'a1', start: 6_000, duration: 8_000 }),
];
const events = [auditEvent({ auditID: 'a1', stage: 'RequestReceived' }), auditEvent({ auditID: 'a1', stage: 'ResponseComplete' })];

test('builds the tree from parent ids, children in start order, audit on the route span', () => {
  const t = buildRequestTree(tid(1), spans133, events);
  assert.equal(names(t.root), ['POST /api/v1/namespaces/{:namespace}/configmaps', [['Create', [['Create etcd3', ['etcdserverpb.KV/Txn']], 'SerializeObject']]]]);
  assert.is(t.root.audit?.auditID, 'a1');
  assert.is(t.root.audit?.verb, 'create');
  assert.is(t.root.audit?.user, 'alice');
  assert.is(t.root.audit?.code, 201);
  assert.equal(t.root.audit?.objectRef, { resource: 'configmaps', namespace: 'default', name: 'cm', apiVersion: 'v1' });
  assert.equal(Object.keys(t.root.audit?.stages ?? {}).sort(), ['RequestReceived', 'ResponseComplete']);
  assert.is(t.root.children[0]!.audit, undefined, 'audit is attached once');
  assert.is(t.root.durationNanos, 10_000);
  assert.is(t.spanCount, 5);
  assert.equal(t.auditIds, ['a1']);
});

test('same tree for any arrival order, duplicates and shuffled stages', () => {
  const want = JSON.stringify(buildRequestTree(tid(1), spans133, events));
  for (let seed = 1; seed < 20; seed++) {
    const got = buildRequestTree(tid(1), shuffle([...spans133, ...spans133.slice(0, 2)], seed), shuffle([...events, events[0]!], seed));
    assert.is(JSON.stringify(got), want, `seed ${seed}`);
  }
});

test('a span whose parent never arrived is kept under the root and marked', () => {
  const t = buildRequestTree(tid(1), [spans133[0]!, spans133[3]!], []);
  assert.is(t.root.name, spans133[0]!.name);
  assert.is(t.root.children.length, 1);
  assert.is(t.root.children[0]!.missingParent, true);
  assert.is(t.root.children[0]!.parentSpanId, sid(3));
});

test('without a root span a synthetic root holds the orphans', () => {
  const t = buildRequestTree(tid(1), spans133.slice(1), events);
  assert.is(t.root.synthetic, true);
  assert.is(t.root.name, '(root span not received)');
  assert.is(t.root.children[0]!.name, 'Create');
  assert.is(t.root.children[0]!.missingParent, true);
  assert.is(t.root.children[0]!.audit?.auditID, 'a1', 'without a SERVER span the top span carrying audit-id anchors the audit');
});

test('two requests in one trace (system:masters traceparent) each get their audit', () => {
  const spans = [
    makeSpan({ trace: 7, id: 1, parent: 0, name: 'client', kind: 3, start: 0, duration: 100_000 }),
    makeSpan({ trace: 7, id: 2, parent: 1, name: 'GET /api/v1/pods', kind: 2, auditId: 'r1', start: 10, duration: 40_000 }),
    makeSpan({ trace: 7, id: 3, parent: 2, name: 'List', auditId: 'r1', start: 20, duration: 30_000 }),
    makeSpan({ trace: 7, id: 4, parent: 1, name: 'POST /api/v1/pods', kind: 2, start: 50_000, duration: 90_000 }),
    makeSpan({ trace: 7, id: 5, parent: 4, name: 'Create', auditId: 'r2', start: 50_010, duration: 80_000 }),
  ];
  const t = buildRequestTree(tid(7), spans, [auditEvent({ auditID: 'r1', stage: 'ResponseComplete', verb: 'list' }), auditEvent({ auditID: 'r2', stage: 'ResponseComplete' })]);
  assert.is(t.root.audit, undefined);
  assert.is(t.root.children[0]!.audit?.auditID, 'r1');
  assert.is(t.root.children[1]!.audit?.auditID, 'r2');
  assert.equal(t.auditIds, ['r1', 'r2']);
});

test('treeNodes lists every node depth first; treeAuditStages the stages joined so far', () => {
  const t = buildRequestTree(tid(1), spans133, [events[0]!]);
  assert.equal(treeNodes(t.root).map((n) => n.name), ['POST /api/v1/namespaces/{:namespace}/configmaps', 'Create', 'Create etcd3', 'etcdserverpb.KV/Txn', 'SerializeObject']);
  assert.equal([...treeAuditStages(t.root)], ['a1 RequestReceived']);
  const whole = buildRequestTree(tid(1), spans133, events);
  assert.equal([...treeAuditStages(whole.root)].sort(), ['a1 RequestReceived', 'a1 ResponseComplete']);
});

test('links are followed to the caller span when it is known', () => {
  const caller = makeSpan({ trace: 9, id: 1, parent: 0, name: 'kubectl apply', kind: 3, duration: 50_000 });
  const root = makeSpan({ trace: 1, id: 1, name: 'POST /apis/apps/v1/namespaces/{:namespace}/deployments', kind: 2, links: [
    { traceId: tid(9), spanId: sid(1), traceState: '', attributes: [], droppedAttributesCount: 0, flags: 0 },
    { traceId: tid(8), spanId: sid(1), traceState: '', attributes: [], droppedAttributesCount: 0, flags: 0 },
  ] });
  const t = buildRequestTree(tid(1), [root], [], { resolveLink: (trace, s) => (trace === caller.traceId && s === caller.spanId ? caller : undefined) });
  assert.is(t.root.links?.length, 2);
  assert.is(t.root.links?.[0]!.target?.name, 'kubectl apply');
  assert.is(t.root.links?.[0]!.target?.durationNanos, 50_000);
  assert.is(t.root.links?.[1]!.target, undefined);
});

test('spans of other traces are ignored', () => {
  const t = buildRequestTree(tid(1), [...spans133, makeSpan({ trace: 2, id: 9, parent: 0, name: 'other' })], []);
  assert.is(t.spanCount, 5);
});

test.run();
