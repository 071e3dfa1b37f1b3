import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ObjectSets, objectUidOfRef, refMs, type ObjectIndex, type ObjectRow, type RefRow } from '../src/index.js';

// Object-set resolution over an in-memory ObjectIndex: the rules of object-sets.ts with no store.

const HOUR = 3_600_000;
const T0 = Date.parse('2026-12-02T10:00:00.000Z');
const at = (ms: number) => new Date(ms).toISOString();

/** An ObjectIndex over two arrays: what the store's SQL does, by scanning. */
class MemoryIndex implements ObjectIndex {
  readonly objects = new Map<string, ObjectRow>();
  readonly refs: RefRow[] = [];

  put(o: Partial<ObjectRow> & { uid: string }): this {
    this.objects.set(o.uid, {
      kind: 'Pod', api_version: 'v1', resource: 'pods', namespace: 'default', name: o.uid, owner_uid: '', objset_id: '', first_seen: at(T0),
      deleted: 0, owner_kind: '', owner_name: '', owner_api_version: '', ...o,
    });
    return this;
  }

  request(auditId: string, o: { uid?: string; resource?: string; name?: string; objsetId?: string; ms?: number }): this {
    this.refs.push({
      audit_id: auditId, resource: o.resource ?? 'pods', subresource: '', namespace: 'default', name: o.name ?? o.uid ?? '', uid: o.uid ?? '',
      objset_id: o.objsetId ?? '', request_received: at(o.ms ?? T0),
    });
    return this;
  }

  private on(o: ObjectRow): RefRow[] {
    return this.refs
      .filter((r) => r.uid === o.uid || (r.uid === '' && r.resource === o.resource && r.namespace === o.namespace && r.name === o.name))
      .sort((a, b) => (a.request_received < b.request_received ? -1 : a.request_received > b.request_received ? 1 : a.audit_id < b.audit_id ? -1 : 1));
  }

  object(uid: string) { return this.objects.get(uid); }
  children(ownerUid: string) { return [...this.objects.values()].filter((o) => o.owner_uid === ownerUid); }
  withObjset(setId: string) { return [...this.objects.values()].filter((o) => o.objset_id === setId); }
  refsWithObjset(setId: string) { return this.refs.filter((r) => r.objset_id === setId); }
  namesObjset(setId: string) { return this.withObjset(setId).length > 0 || this.refsWithObjset(setId).length > 0; }
  auditObjsetOf(o: ObjectRow) { return this.on(o).find((r) => r.objset_id)?.objset_id; }
  byRefName(resource: string, namespace: string, name: string) {
    return [...this.objects.values()].filter((o) => o.resource === resource && o.namespace === namespace && o.name === name).sort((a, b) => (a.first_seen < b.first_seen ? 1 : -1))[0];
  }
  refsOf(o: ObjectRow) { return this.on(o); }
  refsNewestFirst(o: ObjectRow) { return this.on(o).reverse(); }
  refsOldestFirst(o: ObjectRow) { return this.on(o); }
}

/** Deployment d -> ReplicaSet rs -> Pods p1, p2 (ownerReferences only). */
function deployment(): MemoryIndex {
  return new MemoryIndex()
    .put({ uid: 'd', kind: 'Deployment', resource: 'deployments' })
    .put({ uid: 'rs', kind: 'ReplicaSet', resource: 'replicasets', owner_uid: 'd', owner_kind: 'Deployment', owner_name: 'd' })
    .put({ uid: 'p1', owner_uid: 'rs', owner_kind: 'ReplicaSet', owner_name: 'rs' })
    .put({ uid: 'p2', owner_uid: 'rs', owner_kind: 'ReplicaSet', owner_name: 'rs' });
}

const uids = (rows: readonly ObjectRow[]) => rows.map((o) => o.uid).sort();

test('a root object is its own set; its children join it up any number of levels', () => {
  const sets = new ObjectSets(deployment(), HOUR);
  for (const uid of ['d', 'rs', 'p1', 'p2']) assert.is(sets.setOf(uid), 'd', uid);
  assert.equal(uids(sets.members('d').members), ['d', 'p1', 'p2', 'rs']);
  assert.equal(sets.members('d').referenced, []);
  assert.equal(sets.pathOf('p1'), ['p1', 'rs', 'd']);
});

test('children seen before their owner: the owner never seen is the set, named from the ownerReference, and the set moves once the owner shows its own', () => {
  const index = new MemoryIndex()
    .put({ uid: 'p1', owner_uid: 'rs', owner_kind: 'ReplicaSet', owner_name: 'web-1', owner_api_version: 'apps/v1' })
    .put({ uid: 'p2', owner_uid: 'rs', owner_kind: 'ReplicaSet', owner_name: 'web-1', owner_api_version: 'apps/v1' });
  const sets = new ObjectSets(index, HOUR);
  assert.is(sets.setOf('p1'), 'rs');
  assert.is(sets.setOf('rs'), 'rs');
  assert.not.ok(sets.isFinal('rs'), 'an owner not seen may still have an owner of its own');
  const m = sets.members('rs');
  assert.equal(uids(m.members), ['p1', 'p2']);
  assert.equal(m.referenced.map((o) => [o.uid, o.kind, o.name, o.api_version]), [['rs', 'ReplicaSet', 'web-1', 'apps/v1']]);
  assert.is(sets.resolve('p2'), 'rs', 'found by the uid of any of its objects');
  assert.equal(sets.pathOf('p1'), ['p1', 'rs']);

  // The owner arrives, with an owner of its own never seen: everything moves to that one.
  index.put({ uid: 'rs', kind: 'ReplicaSet', resource: 'replicasets', owner_uid: 'd', owner_kind: 'Deployment', owner_name: 'web' });
  assert.is(sets.setOf('p1'), 'd');
  assert.equal(sets.members('rs').members, [], 'the old set is empty');
  assert.is(sets.resolve('rs'), 'd');
  assert.equal(uids(sets.members('d').members), ['p1', 'p2', 'rs']);
  assert.equal(sets.members('d').referenced.map((o) => o.uid), ['d']);
  // Then the top owner: a root, final.
  index.put({ uid: 'd', kind: 'Deployment', resource: 'deployments' });
  assert.ok(sets.isFinal('d'));
  assert.equal(sets.members('d').referenced, []);
  assert.equal(uids(sets.members('d').members), ['d', 'p1', 'p2', 'rs']);
});

test('an objset annotation comes before the owner: the annotated object and what it owns form that set', () => {
  const index = deployment();
  index.objects.get('rs')!.objset_id = 'S';
  const sets = new ObjectSets(index, HOUR);
  assert.is(sets.setOf('rs'), 'S');
  assert.is(sets.setOf('p1'), 'S', 'a child takes its owner\'s annotated set');
  assert.is(sets.setOf('d'), 'd');
  assert.equal(uids(sets.members('S').members), ['p1', 'p2', 'rs']);
  assert.equal(uids(sets.members('d').members), ['d']);
  assert.equal(sets.members('S').referenced, [], 'its owner was seen (in a set of its own): not a referenced-only member');
  assert.ok(sets.isFinal('S'));
  assert.equal(sets.pathOf('p1'), ['p1', 'rs'], 'the path ends at the object that names its set');
});

test('an audit-annotation set id of a request on an object comes before its owner, the object annotation before both', () => {
  const index = deployment().request('a1', { uid: 'p1', objsetId: 'A' });
  const sets = new ObjectSets(index, HOUR);
  assert.is(sets.ownSetOf(index.object('p1')!), 'A');
  assert.is(sets.setOf('p1'), 'A', 'the audit annotation, not the owner\'s set');
  assert.is(sets.setOf('p2'), 'd');
  assert.equal(uids(sets.members('A').members), ['p1']);
  assert.ok(sets.isFinal('A'));
  // A request that names no uid is on the object its resource, namespace and name name.
  index.request('a2', { name: 'p2', objsetId: 'B' });
  assert.is(objectUidOfRef(index, index.refs[1]!), 'p2');
  assert.is(sets.setOf('p2'), 'B');
  assert.equal(uids(sets.members('B').members), ['p2'], 'found through the request naming the set');
  // The object's own annotation wins over the audit annotation.
  index.objects.get('p1')!.objset_id = 'O';
  assert.is(sets.setOf('p1'), 'O');
  assert.equal(sets.members('A').members, []);
  assert.is(sets.resolve('A'), undefined);
});

test('deep chains resolve to the top, and a cycle of ownerReferences ends', () => {
  const index = new MemoryIndex().put({ uid: 'o0' });
  for (let i = 1; i <= 40; i++) index.put({ uid: `o${i}`, owner_uid: `o${i - 1}` });
  const sets = new ObjectSets(index, HOUR);
  assert.is(sets.setOf('o40'), 'o0');
  assert.is(sets.members('o0').members.length, 41);
  assert.is(sets.pathOf('o40').length, 41);
  const cycle = new MemoryIndex().put({ uid: 'x', owner_uid: 'y' }).put({ uid: 'y', owner_uid: 'x' });
  const c = new ObjectSets(cycle, HOUR);
  assert.type(c.setOf('x'), 'string');
  assert.equal(c.pathOf('x'), ['x', 'y']);
});

test('final-ness: a root seen, a named set, but not the uid of an owner not seen or of an object with an owner', () => {
  const index = deployment();
  const sets = new ObjectSets(index, HOUR);
  assert.ok(sets.isFinal('d'));
  assert.not.ok(sets.isFinal('rs'), 'an object with an owner is not a set id of its own');
  assert.not.ok(sets.isFinal('unknown'));
  index.request('a', { uid: 'p1', objsetId: 'W' });
  assert.ok(sets.isFinal('W'));
});

test('resolve: by set id or object uid; undefined for an id nothing belongs to', () => {
  const sets = new ObjectSets(deployment(), HOUR);
  assert.is(sets.resolve('d'), 'd');
  assert.is(sets.resolve('p2'), 'd');
  assert.is(sets.resolve('nope'), undefined);
});

test('windows, chain, last request before and first request from count each object\'s requests in their windows', () => {
  const index = deployment()
    .request('a1', { uid: 'd', ms: T0 + 10 })
    .request('a2', { uid: 'rs', ms: T0 + 20 })
    .request('a3', { uid: 'p1', ms: T0 + 2 * HOUR + 5 })
    .request('a4', { name: 'p2', ms: T0 + 2 * HOUR + 6 }) // by name
    .request('a5', { uid: 'other', ms: T0 + HOUR }); // not of the set
  const sets = new ObjectSets(index, HOUR);
  assert.equal(sets.windows('d'), [{ startMs: T0, requests: 2 }, { startMs: T0 + 2 * HOUR, requests: 2 }]);
  const chain = sets.chain('d', (start) => [`t${(start - T0) / HOUR}`]);
  assert.equal(chain, [
    { start: at(T0), end: at(T0 + HOUR), requests: 2, traceIds: ['t0'] },
    { start: at(T0 + 2 * HOUR), end: at(T0 + 3 * HOUR), requests: 2, traceIds: ['t2'] },
  ]);
  assert.is(sets.lastRequestBefore('d', T0 + 2 * HOUR), T0 + 20);
  assert.is(sets.lastRequestBefore('d', T0), undefined);
  assert.is(sets.firstRequestFrom('d', T0 + HOUR), T0 + 2 * HOUR + 5);
  assert.is(sets.firstRequestFrom('d', T0 + 3 * HOUR), undefined);
  assert.equal(sets.requestsOf(index.object('p2')!, { fromMs: T0 + 2 * HOUR, toMs: T0 + 3 * HOUR }).map((r) => r.audit_id), ['a4']);
  assert.equal(sets.requestsOf(index.object('p2')!, { fromMs: T0, toMs: T0 + HOUR }), []);
  assert.is(refMs(index.refs[0]!), T0 + 10);
});

test('trees: the set\'s tree nests objects by owner and holds only a window\'s requests; get() shows the newest window with the chain', () => {
  const index = deployment().request('a1', { uid: 'd', ms: T0 + 10 }).request('a3', { uid: 'p1', ms: T0 + 2 * HOUR + 5 });
  const sets = new ObjectSets(index, HOUR);
  const data = { auditEvents: () => [], tracesOf: () => [], windowTraceIds: () => ['t'] };
  const tree = sets.get('p1', data);
  assert.ok(tree);
  assert.is(tree.objectSetId, 'd');
  assert.equal(tree.window, { start: at(T0 + 2 * HOUR), end: at(T0 + 3 * HOUR) });
  assert.is(tree.chain?.length, 2);
  assert.is(tree.root.name, 'object set of Deployment default/d');
  assert.is(sets.windowTree('nope', T0, data), undefined);
  const all = sets.get('d', data, { window: 'all' });
  assert.is(all?.window, null);
  const d = all!.root.children[0]!;
  assert.is(d.name, 'Deployment default/d');
  assert.equal(d.children.map((c) => c.name), ['ReplicaSet default/rs']);
  assert.equal(d.children[0]!.children.map((c) => c.name).sort(), ['Pod default/p1', 'Pod default/p2']);
});

test.run();
