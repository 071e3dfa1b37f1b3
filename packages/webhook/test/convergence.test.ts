import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ANNOTATION_OBJSETID, ANNOTATION_SPAN, mutate, parseAdmissionReview, sameDesiredState, validObjsetId, validTraceparent,
  type AdmissionReviewRequest, type JsonPatchOp, type MutateResult, type TraceHeaders,
} from '../src/index.js';
import { applyPatch } from './json-patch.js';

/**
 * Convergence as a property, over many generated reviews (seeded, so a failure names a case that
 * can be replayed): the webhook never makes a controller loop.
 *  - For any review, calling mutate again on the object as patched, with the same headers and the
 *    same oldObject, yields no patch (and the same audit annotations).
 *  - An object with a controller owner is never patched.
 *  - A root's span annotation changes only when the request changes its desired state (or on CREATE).
 *  - A patch only ever touches the two annotations and always applies cleanly.
 * Malformed objects are generated too: they are allowed unchanged (outcome 'error'), never thrown.
 */

const SEEDS = [1, 2, 3, 0x5eed, 20260213];
const CASES_PER_SEED = 2000;

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Obj = Record<string, unknown>;
type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const chance = (r: Rand, p: number): boolean => r() < p;

const TPS = ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00', '00-11111111111111111111111111111111-2222222222222222-01'];
const HEADER_TPS: Array<TraceHeaders['traceparent']> = [...TPS, ...TPS, 'garbage', '00-00000000000000000000000000000000-00f067aa0ba902b7-01', undefined, [TPS[0]!, TPS[1]!], ` ${TPS[2]} `];
const SETS = ['04bc5995-0147-4db8-9f06-fdbcb2e1a087', 'set-b', 'd0c0ffee-0000-4000-8000-000000000001'];
const ANNOTATION_VALUES = [...SETS, ...TPS, '', 'x'.repeat(300), 'a\nb', 'garbage'];
const BAGGAGES: Array<string | undefined> = [undefined, undefined, `objectSetID=${SETS[0]}`, `objectSetID=${SETS[1]}`, 'objectSetID=', 'other=1', 'objectSetID=%ZZ', 'objectSetID=a%0Ab', ` objectSetID = ${SETS[2]} ;p, x=1`];
const UIDS = [undefined, 'uid-1', 'uid-2', ''];

function annotations(r: Rand): Obj | null | undefined {
  const shape = r();
  if (shape < 0.15) return undefined;
  if (shape < 0.2) return null;
  const out: Obj = {};
  if (chance(r, 0.5)) out[ANNOTATION_SPAN] = pick(r, ANNOTATION_VALUES);
  if (chance(r, 0.5)) out[ANNOTATION_OBJSETID] = pick(r, ANNOTATION_VALUES);
  if (chance(r, 0.3)) out['deployment.kubernetes.io/revision'] = String(Math.floor(r() * 3));
  if (chance(r, 0.1)) out['odd~key/with/slashes'] = 'v';
  return out;
}

function ownerReferences(r: Rand): unknown {
  return pick(r, [
    undefined, undefined, [], null,
    [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'dep-uid', controller: true, blockOwnerDeletion: true }],
    [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1', uid: 'rs-uid', controller: true }],
    [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', uid: 'cm-uid', controller: false }],
    [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', uid: 'cm-uid' }],
    [{ kind: 'X', controller: 'true' }], // not a boolean: not a controller
    ['not a record', { kind: 'Deployment', uid: 'dep-uid', controller: true }],
  ]);
}

function object(r: Rand): Obj {
  const metadata: Obj = { name: 'web', namespace: 'default' };
  const ann = annotations(r);
  if (ann !== undefined) metadata.annotations = ann;
  const owners = ownerReferences(r);
  if (owners !== undefined) metadata.ownerReferences = owners;
  const uid = pick(r, UIDS);
  if (uid !== undefined) metadata.uid = uid;
  if (chance(r, 0.3)) metadata.labels = { app: 'web' };
  if (chance(r, 0.1)) metadata.finalizers = ['example.com/f'];
  const out: Obj = { apiVersion: 'apps/v1', kind: pick(r, ['Deployment', 'ReplicaSet', 'Job', 'Service']), metadata };
  if (chance(r, 0.9)) out.spec = { replicas: pick(r, [1, 2, 3]), template: { spec: { containers: [{ name: 'c', image: pick(r, ['a', 'b']) }] } } };
  if (chance(r, 0.3)) out.status = { replicas: pick(r, [0, 1]) };
  return out;
}

/** The stored object an UPDATE is admitted against: mostly the new object before some edit. */
function oldObjectOf(r: Rand, obj: Obj): Obj | null {
  const kind = r();
  if (kind < 0.05) return null;
  if (kind < 0.15) return object(r);
  const old = structuredClone(obj);
  const meta = old.metadata as Obj;
  switch (pick(r, ['spec', 'spec', 'labels', 'annotations', 'status', 'owners', 'none'])) {
    case 'spec': old.spec = { replicas: 9 }; break;
    case 'labels': meta.labels = { app: 'old' }; break;
    case 'annotations': meta.annotations = annotations(r); break;
    case 'status': old.status = { replicas: 7 }; break;
    case 'owners': meta.ownerReferences = ownerReferences(r); break;
    default: break;
  }
  if (chance(r, 0.5) && meta.annotations === undefined) meta.annotations = annotations(r);
  if (!('uid' in meta) || chance(r, 0.2)) meta.uid = pick(r, ['stored-uid', 'uid-1']);
  return old;
}

const MALFORMED: unknown[] = [
  null, 'a string', 7, [], { kind: 'Deployment' }, { metadata: [] }, { metadata: { annotations: ['a'] } },
  { metadata: { ownerReferences: { controller: true } } }, { metadata: { annotations: { [ANNOTATION_SPAN]: 42 } } },
];

interface Case { review: AdmissionReviewRequest; headers: TraceHeaders; malformed: boolean }

function generate(r: Rand, i: number): Case {
  const operation = pick(r, ['CREATE', 'CREATE', 'CREATE', 'UPDATE', 'UPDATE', 'UPDATE', 'UPDATE', 'DELETE', 'CONNECT', 'PATCH']);
  const malformed = chance(r, 0.05);
  const obj = malformed ? pick(r, MALFORMED) : object(r);
  const request: Obj = {
    uid: `case-${i}`, operation, object: obj, oldObject: null, dryRun: chance(r, 0.1), name: 'web', namespace: 'default',
    kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, resource: { group: 'apps', version: 'v1', resource: 'deployments' },
  };
  if (operation === 'UPDATE' && !malformed) request.oldObject = oldObjectOf(r, obj as Obj);
  if (chance(r, 0.08)) request.subResource = pick(r, ['status', 'scale']);
  const headers: TraceHeaders = {};
  const tp = pick(r, HEADER_TPS);
  if (tp !== undefined) headers.traceparent = tp;
  const bg = pick(r, BAGGAGES);
  if (bg !== undefined) headers.baggage = bg;
  return { review: parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request }), headers, malformed };
}

const isRecord = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const annotationsOf = (o: unknown): Obj => (isRecord(o) && isRecord(o.metadata) && isRecord(o.metadata.annotations) ? o.metadata.annotations : {});
const hasController = (o: unknown): boolean => isRecord(o) && isRecord(o.metadata) && Array.isArray(o.metadata.ownerReferences) && o.metadata.ownerReferences.some((x) => isRecord(x) && x.controller === true);

function checkCase(c: Case, where: string): MutateResult {
  const req = c.review.request;
  const r = mutate(c.review, c.headers, { newObjsetId: () => 'new-id' });
  assert.is(r.review.response.uid, req.uid, where);
  assert.is(r.review.response.allowed, true, where);
  assert.ok(['patched', 'unchanged', 'owned', 'skipped', 'error'].includes(r.outcome), where);
  assert.is(r.outcome === 'patched', r.patch.length > 0, `${where}: patched iff a patch`);
  if (r.patch.length) assert.equal(JSON.parse(Buffer.from(r.review.response.patch!, 'base64').toString('utf8')) as JsonPatchOp[], r.patch, where);
  else assert.not.ok('patch' in r.review.response || 'patchType' in r.review.response, where);

  const mainWrite = (req.operation === 'CREATE' || req.operation === 'UPDATE') && !req.subResource;
  if (c.malformed && mainWrite) assert.is(r.outcome, 'error', where);
  if (!mainWrite) assert.is(r.outcome, 'skipped', where);
  if (mainWrite && !c.malformed && hasController(req.object)) assert.is(r.outcome, 'owned', `${where}: a controller-owned object is never patched`);

  // Only the two annotations, as strings, and the patch applies cleanly.
  for (const op of r.patch) {
    assert.ok(op.op === 'add' || op.op === 'replace', where);
    if (op.path === '/metadata/annotations') {
      assert.ok(isRecord(op.value) && Object.keys(op.value).every((k) => k === ANNOTATION_SPAN || k === ANNOTATION_OBJSETID), where);
    } else {
      assert.ok(['/metadata/annotations/trace.kubernetes.io~1span', '/metadata/annotations/trace.kubernetes.io~1objsetid'].includes(op.path), `${where}: ${op.path}`);
    }
  }
  const patched = applyPatch(req.object, r.patch);

  if (mainWrite && r.outcome !== 'error' && r.outcome !== 'owned') {
    const before = annotationsOf(req.object);
    const after = annotationsOf(patched);
    const tp = validTraceparent(c.headers.traceparent);
    const desiredChange = req.operation === 'CREATE' || (isRecord(req.oldObject) && !sameDesiredState(req.object as Obj, req.oldObject));
    if (!desiredChange || !tp) assert.is(after[ANNOTATION_SPAN], before[ANNOTATION_SPAN], `${where}: span left as it is`);
    else assert.is(after[ANNOTATION_SPAN], tp, `${where}: span re-stamped`);
    assert.ok(validObjsetId(after[ANNOTATION_OBJSETID]), `${where}: a root has a valid objsetid`);
    assert.is(r.review.response.auditAnnotations?.['objectSetID'], after[ANNOTATION_OBJSETID], `${where}: audit names the set`);
  }

  // Convergence: the same call on the patched object changes nothing more.
  const again = mutate({ ...c.review, request: { ...req, object: patched } }, c.headers, { newObjsetId: () => 'another-new-id' });
  assert.equal(again.patch, [], `${where}: second pass patches nothing`);
  assert.equal(again.review.response.auditAnnotations, r.review.response.auditAnnotations, `${where}: same audit annotations`);
  return r;
}

test(`convergence over ${SEEDS.length} x ${CASES_PER_SEED} generated reviews (seeds ${SEEDS.join(', ')})`, () => {
  const outcomes: Record<string, number> = {};
  for (const seed of SEEDS) {
    const r = prng(seed);
    for (let i = 0; i < CASES_PER_SEED; i++) {
      const c = generate(r, i);
      const where = `seed ${seed} case ${i}: ${JSON.stringify({ request: c.review.request, headers: c.headers })}`;
      const out = checkCase(c, where);
      outcomes[out.outcome] = (outcomes[out.outcome] ?? 0) + 1;
    }
  }
  // The generator reaches every outcome often enough for the properties to mean something.
  for (const o of ['patched', 'unchanged', 'owned', 'skipped', 'error']) assert.ok((outcomes[o] ?? 0) >= 100, `${o}: ${JSON.stringify(outcomes)}`);
});

test('a controller that copies its owner\'s annotations onto the object on every sync reaches a fixed point at once', () => {
  // The deployment controller's loop, modelled: each sync writes the owner's annotations onto the
  // ReplicaSet; kube-apiserver admits the write through the webhook; the controller compares what is
  // stored with what it wants. With the old rules the stored span differed after every write.
  const r = prng(7);
  for (let round = 0; round < 200; round++) {
    const ownerAnnotations: Obj = { [ANNOTATION_SPAN]: pick(r, TPS), [ANNOTATION_OBJSETID]: pick(r, SETS), 'deployment.kubernetes.io/revision': '1' };
    let stored: Obj = {
      apiVersion: 'apps/v1', kind: 'ReplicaSet', spec: { replicas: 3 },
      metadata: { name: 'web-1', namespace: 'default', uid: 'rs-uid', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'dep-uid', controller: true }], annotations: { ...(annotations(r) ?? {}) } },
    };
    let writes = 0;
    for (let sync = 0; sync < 5; sync++) {
      const current = annotationsOf(stored);
      if (Object.entries(ownerAnnotations).every(([k, v]) => current[k] === v)) break;
      const wanted = structuredClone(stored);
      (wanted.metadata as Obj).annotations = { ...current, ...ownerAnnotations };
      const review = parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: `sync-${round}-${sync}`, operation: 'UPDATE', object: wanted, oldObject: stored } });
      const out = mutate(review, { traceparent: pick(r, TPS) }); // a new trace per reconcile, as KEP-5915 has it
      stored = applyPatch(wanted, out.patch);
      writes++;
    }
    assert.is(writes, 1, `round ${round}: one write, then the controller sees what it wants`);
  }
});

test.run();
