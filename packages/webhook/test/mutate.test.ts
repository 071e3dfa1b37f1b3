import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ANNOTATION_OBJSETID, ANNOTATION_SPAN, BadReviewError, baggageValue, escapeJsonPointer, mutate, parseAdmissionReview, parseAdmissionReviewJson,
  parseBaggage, sameDesiredState, validTraceparent, type AdmissionReviewRequest, type JsonPatchOp, type MutateResult, type TraceHeaders,
} from '../src/index.js';
import { applyPatch } from './json-patch.js';

type Obj = Record<string, unknown>;

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const TP2 = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
const SET = '04bc5995-0147-4db8-9f06-fdbcb2e1a087';
const NEW_ID = '11111111-2222-4333-8444-555555555555';
const OPTS = { newObjsetId: () => NEW_ID };

// ---------------------------------------------------------------------------------------------
// Fixtures

function deployment(annotations?: Record<string, string> | null, extra: Obj = {}): Obj {
  const metadata: Obj = { name: 'web', namespace: 'default', labels: { app: 'web' }, ...extra };
  if (annotations !== undefined) metadata.annotations = annotations;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata,
    spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] } } },
  };
}

function pod(owner: { controller?: boolean } | undefined, annotations?: Record<string, string>): Obj {
  const metadata: Obj = { generateName: 'web-7d4b9c-', namespace: 'default' };
  if (owner) metadata.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c', uid: 'rs-uid', blockOwnerDeletion: true, ...owner }];
  if (annotations) metadata.annotations = annotations;
  return { apiVersion: 'v1', kind: 'Pod', metadata, spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] } };
}

function review(operation: string, object: unknown, extra: Obj = {}): AdmissionReviewRequest {
  return parseAdmissionReview({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      requestKind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      requestResource: { group: 'apps', version: 'v1', resource: 'deployments' },
      name: 'web',
      namespace: 'default',
      operation,
      userInfo: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: operation === 'UPDATE' ? 'UpdateOptions' : 'CreateOptions' },
      ...extra,
    },
  });
}

const decodePatch = (r: MutateResult): JsonPatchOp[] => JSON.parse(Buffer.from(r.review.response.patch!, 'base64').toString('utf8')) as JsonPatchOp[];
const annotationsOf = (o: unknown): Record<string, string> | undefined => ((o as Obj).metadata as Obj).annotations as Record<string, string> | undefined;

/**
 * Runs a review, checks the patch against `expected`, applies it, checks the resulting annotations,
 * and checks that a second invocation with the patched object and the same headers patches nothing.
 */
function check(rv: AdmissionReviewRequest, headers: TraceHeaders, expected: JsonPatchOp[], annotations: Record<string, string> | undefined): MutateResult {
  const r = mutate(rv, headers, OPTS);
  assert.is(r.review.apiVersion, 'admission.k8s.io/v1');
  assert.is(r.review.kind, 'AdmissionReview');
  assert.is(r.review.response.uid, rv.request.uid);
  assert.is(r.review.response.allowed, true);
  assert.equal(r.patch, expected);
  if (expected.length) {
    assert.is(r.outcome, 'patched');
    assert.is(r.review.response.patchType, 'JSONPatch');
    assert.equal(decodePatch(r), expected);
  } else {
    assert.ok(r.outcome === 'unchanged' || r.outcome === 'owned' || r.outcome === 'skipped', r.outcome);
    assert.not.ok('patch' in r.review.response);
    assert.not.ok('patchType' in r.review.response);
  }
  const patched = applyPatch(rv.request.object, r.patch);
  if (annotations !== undefined) assert.equal(annotationsOf(patched), annotations);
  if (rv.request.object && r.outcome !== 'skipped') {
    const again = mutate({ ...rv, request: { ...rv.request, object: patched } }, headers, { newObjsetId: () => 'a-different-id' });
    assert.is(again.outcome, r.outcome === 'owned' ? 'owned' : 'unchanged', 'second invocation patches nothing');
    assert.not.ok('patch' in again.review.response);
    assert.equal(again.review.response.auditAnnotations, r.review.response.auditAnnotations);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// CREATE

test('create, no annotations: one add of the whole map (span + new objsetid), audit annotations', () => {
  const r = check(review('CREATE', deployment()), { traceparent: TP }, [
    { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: NEW_ID } },
  ], { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: NEW_ID });
  assert.equal(r.review.response.auditAnnotations, { traceparent: TP, objectSetID: NEW_ID });
  assert.is(r.operation, 'CREATE');
  assert.is(r.dryRun, false);
  assert.is(r.traceparent, 'valid');
  assert.is(r.baggage, 'missing');
});

test('create, other annotations present: per-key add with JSON Pointer escaping (~1)', () => {
  const r = check(review('CREATE', deployment({ 'kubectl.kubernetes.io/last-applied-configuration': '{}', team: 'a' })), { traceparent: TP }, [
    { op: 'add', path: '/metadata/annotations/trace.kubernetes.io~1span', value: TP },
    { op: 'add', path: '/metadata/annotations/trace.kubernetes.io~1objsetid', value: NEW_ID },
  ], { 'kubectl.kubernetes.io/last-applied-configuration': '{}', team: 'a', [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: NEW_ID });
  assert.equal(r.review.response.auditAnnotations, { traceparent: TP, objectSetID: NEW_ID });
});

test('create, annotations: null is treated as absent (add of the whole map)', () => {
  check(review('CREATE', deployment(null)), { traceparent: TP }, [
    { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: NEW_ID } },
  ], { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: NEW_ID });
});

test('create, empty annotations map: per-key add', () => {
  check(review('CREATE', deployment({})), { traceparent: TP }, [
    { op: 'add', path: '/metadata/annotations/trace.kubernetes.io~1span', value: TP },
    { op: 'add', path: '/metadata/annotations/trace.kubernetes.io~1objsetid', value: NEW_ID },
  ], { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: NEW_ID });
});

test('create: the default new objsetid is a random UUID (a client-set metadata.uid is ignored: the server replaces it)', () => {
  const a = mutate(review('CREATE', deployment(undefined, { uid: 'client-set' })), { traceparent: TP });
  const b = mutate(review('CREATE', deployment()), { traceparent: TP });
  const id = (r: MutateResult) => (r.patch[0]!.value as Record<string, string>)[ANNOTATION_OBJSETID]!;
  assert.match(id(a), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.is.not(id(a), id(b));
});

test('create, controller-owned object: never patched; the audit event records the traceparent (the owner defines the set)', () => {
  const r = check(review('CREATE', pod({ controller: true })), { traceparent: TP }, [], undefined);
  assert.is(r.outcome, 'owned');
  assert.equal(r.review.response.auditAnnotations, { traceparent: TP });
});

test('create, owner reference with controller: false (or absent) is still a root: new objsetid', () => {
  for (const owner of [{ controller: false }, {}]) {
    check(review('CREATE', pod(owner)), { traceparent: TP }, [
      { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: NEW_ID } },
    ], { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: NEW_ID });
  }
});

test('create, controller-owned object with baggage objectSetID: not patched; the set is recorded as an audit annotation only', () => {
  const r = check(review('CREATE', pod({ controller: true }, { 'kubernetes.io/psp': 'x' })), { traceparent: TP, baggage: `objectSetID=${SET}` }, [], { 'kubernetes.io/psp': 'x' });
  assert.is(r.outcome, 'owned');
  assert.equal(r.review.response.auditAnnotations, { traceparent: TP, objectSetID: SET });
  assert.is(r.baggage, 'valid');
});

test('create, controller-owned object carrying the owner\'s annotations (copied by its controller): not patched, its objsetid recorded', () => {
  const r = check(review('CREATE', pod({ controller: true }, { [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: SET })), { traceparent: TP }, [], { [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: SET });
  assert.equal(r.review.response.auditAnnotations, { traceparent: TP, objectSetID: SET });
});

test('create, root with baggage objectSetID: baggage wins over a new id', () => {
  check(review('CREATE', deployment()), { traceparent: TP, baggage: `other=1, objectSetID=${SET};ttl=30` }, [
    { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET } },
  ], { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET });
});

test('create with an existing objsetid annotation (kubectl apply of a manifest that carries it): kept', () => {
  const r = check(review('CREATE', deployment({ [ANNOTATION_OBJSETID]: SET })), { traceparent: TP }, [
    { op: 'add', path: '/metadata/annotations/trace.kubernetes.io~1span', value: TP },
  ], { [ANNOTATION_OBJSETID]: SET, [ANNOTATION_SPAN]: TP });
  assert.equal(r.review.response.auditAnnotations, { traceparent: TP, objectSetID: SET });
});

test('create without a traceparent (tracing off): objsetid only, no span, no traceparent audit annotation', () => {
  const r = check(review('CREATE', deployment()), {}, [
    { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_OBJSETID]: NEW_ID } },
  ], { [ANNOTATION_OBJSETID]: NEW_ID });
  assert.equal(r.review.response.auditAnnotations, { objectSetID: NEW_ID });
  assert.is(r.traceparent, 'missing');
});

test('create, controller-owned, no traceparent, no baggage: nothing to do (owned, no audit annotations)', () => {
  const r = check(review('CREATE', pod({ controller: true })), {}, [], undefined);
  assert.is(r.outcome, 'owned');
  assert.not.ok('auditAnnotations' in r.review.response);
});

test('dry run: the same patch as a real create, flagged dryRun', () => {
  const headers = { traceparent: TP, baggage: `objectSetID=${SET}` };
  const real = mutate(review('CREATE', deployment()), headers, OPTS);
  const dry = check(review('CREATE', deployment(), { dryRun: true }), headers, [
    { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET } },
  ], { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET });
  assert.is(dry.dryRun, true);
  assert.is(dry.review.response.patch, real.review.response.patch);
  assert.equal(dry.review.response.auditAnnotations, real.review.response.auditAnnotations);
});

// ---------------------------------------------------------------------------------------------
// UPDATE

/** The object with spec.replicas changed: a change of desired state. */
function scaled(obj: Obj, replicas: number): Obj {
  const out = structuredClone(obj);
  (out.spec as Obj).replicas = replicas;
  return out;
}

test('update that changes the spec, in a new trace: span replaced, existing objsetid kept', () => {
  const old = deployment({ [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: SET }, { uid: 'dep-uid' });
  const r = check(review('UPDATE', scaled(old, 5), { oldObject: old }), { traceparent: TP }, [
    { op: 'replace', path: '/metadata/annotations/trace.kubernetes.io~1span', value: TP },
  ], { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET });
  assert.equal(r.review.response.auditAnnotations, { traceparent: TP, objectSetID: SET });
});

test('update that changes only metadata or status (a finalizer, a label, an annotation, the status): the span is left as it is', () => {
  const old = deployment({ [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: SET }, { uid: 'dep-uid', resourceVersion: '41', generation: 1 });
  const edits: Array<[string, (o: Obj) => void]> = [
    ['finalizer added (a controller)', (o) => { (o.metadata as Obj).finalizers = ['example.com/cleanup']; }],
    ['label added', (o) => { ((o.metadata as Obj).labels as Obj).tier = 'web'; }],
    ['annotation added (kubectl annotate)', (o) => { ((o.metadata as Obj).annotations as Obj)['example.com/owner'] = 'team-a'; }],
    ['ownerReference added without controller (the garbage collector\'s orphan handling)', (o) => { (o.metadata as Obj).ownerReferences = [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', uid: 'cm-uid' }]; }],
    ['status written through the main resource', (o) => { o.status = { replicas: 3, readyReplicas: 2 }; }],
    ['nothing at all (a no-op update)', () => undefined],
  ];
  for (const [what, edit] of edits) {
    const obj = structuredClone(old);
    edit(obj);
    const r = check(review('UPDATE', obj, { oldObject: old }), { traceparent: TP }, [], undefined);
    assert.is(r.outcome, 'unchanged', what);
    assert.is(annotationsOf(obj)![ANNOTATION_SPAN], TP2, what);
    assert.equal(r.review.response.auditAnnotations, { traceparent: TP, objectSetID: SET }, `${what}: the audit event still has this request's context`);
  }
});

test('desired state is compared deeply: nested spec changes re-stamp, member order does not', () => {
  const old = deployment({ [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: SET }, { uid: 'dep-uid' });
  const image = structuredClone(old);
  ((((image.spec as Obj).template as Obj).spec as Obj).containers as Obj[])[0]!.image = 'nginx:1.28';
  check(review('UPDATE', image, { oldObject: old }), { traceparent: TP }, [
    { op: 'replace', path: '/metadata/annotations/trace.kubernetes.io~1span', value: TP },
  ], undefined);
  const reordered = { spec: structuredClone(old.spec), metadata: structuredClone(old.metadata), kind: old.kind, apiVersion: old.apiVersion };
  check(review('UPDATE', reordered, { oldObject: old }), { traceparent: TP }, [], undefined);
});

test('sameDesiredState: ignores top-level metadata and status only; arrays in order; deep nesting does not overflow', () => {
  assert.ok(sameDesiredState({ a: 1, metadata: { x: 1 }, status: { y: 1 } }, { a: 1, metadata: { x: 2 } }));
  assert.ok(sameDesiredState({ a: { b: [1, { c: null }] } }, { a: { b: [1, { c: null }] } }));
  assert.not.ok(sameDesiredState({ a: { b: [1, 2] } }, { a: { b: [2, 1] } }));
  assert.not.ok(sameDesiredState({ a: { metadata: 1 } }, { a: { metadata: 2 } }), 'only the top-level metadata is ignored');
  assert.not.ok(sameDesiredState({ a: 1 }, { a: 1, b: null }));
  assert.not.ok(sameDesiredState({ a: 1, b: null }, { a: 1 }));
  assert.not.ok(sameDesiredState({ a: [] }, { a: {} }));
  assert.not.ok(sameDesiredState({ a: '1' }, { a: 1 }));
  let x: unknown = 'leaf';
  let y: unknown = 'leaf';
  for (let i = 0; i < 200_000; i++) {
    x = { n: x };
    y = { n: y };
  }
  assert.ok(sameDesiredState({ spec: x }, { spec: y }));
});

test('update of a root that predates the webhook: objsetid = its stored uid (from oldObject); a metadata-only change adds no span', () => {
  const old = deployment({ team: 'a' }, { uid: 'dep-uid' });
  const obj = deployment({ team: 'b' }); // the client sent no uid
  check(review('UPDATE', obj, { oldObject: old }), { traceparent: TP }, [
    { op: 'add', path: '/metadata/annotations/trace.kubernetes.io~1objsetid', value: 'dep-uid' },
  ], { team: 'b', [ANNOTATION_OBJSETID]: 'dep-uid' });
  check(review('UPDATE', scaled(obj, 1), { oldObject: old }), { traceparent: TP }, [
    { op: 'add', path: '/metadata/annotations/trace.kubernetes.io~1span', value: TP },
    { op: 'add', path: '/metadata/annotations/trace.kubernetes.io~1objsetid', value: 'dep-uid' },
  ], { team: 'b', [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: 'dep-uid' });
});

test('update that drops the annotations (kubectl replace): objsetid restored from oldObject; the span only with a spec change', () => {
  const old = deployment({ [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: SET }, { uid: 'dep-uid' });
  check(review('UPDATE', deployment(undefined, { uid: 'dep-uid' }), { oldObject: old }), { traceparent: TP }, [
    { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_OBJSETID]: SET } },
  ], { [ANNOTATION_OBJSETID]: SET });
  check(review('UPDATE', scaled(deployment(undefined, { uid: 'dep-uid' }), 4), { oldObject: old }), { traceparent: TP }, [
    { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET } },
  ], { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET });
});

test('update without an oldObject (kube-apiserver always sends one): the span is left alone, objsetid still kept or set', () => {
  const obj = deployment({ [ANNOTATION_SPAN]: TP2 }, { uid: 'dep-uid' });
  check(review('UPDATE', obj), { traceparent: TP }, [
    { op: 'add', path: '/metadata/annotations/trace.kubernetes.io~1objsetid', value: 'dep-uid' },
  ], { [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: 'dep-uid' });
});

test('update carrying exactly the values: no patch (idempotent), audit annotations still recorded', () => {
  const old = deployment({ [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: SET }, { uid: 'dep-uid' });
  const obj = scaled(deployment({ [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET }, { uid: 'dep-uid' }), 7);
  const r = check(review('UPDATE', obj, { oldObject: old }), { traceparent: TP, baggage: `objectSetID=${SET}` }, [], { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET });
  assert.is(r.outcome, 'unchanged');
  assert.equal(r.review.response.auditAnnotations, { traceparent: TP, objectSetID: SET });
});

test('update with baggage naming a different set: baggage wins (replace), also on a metadata-only update', () => {
  const obj = deployment({ [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: 'old-set' }, { uid: 'dep-uid' });
  check(review('UPDATE', obj, { oldObject: obj }), { traceparent: TP, baggage: `objectSetID=${SET}` }, [
    { op: 'replace', path: '/metadata/annotations/trace.kubernetes.io~1objsetid', value: SET },
  ], { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET });
});

test('update of a controller-owned object (the recorded loop): the ReplicaSet the deployment controller writes with the Deployment\'s span is not patched', () => {
  // The stored ReplicaSet carries the span our webhook wrote before; the controller writes back the
  // Deployment's (copied) annotations. Patching it would be a difference the controller undoes.
  const stored = pod({ controller: true }, { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET });
  const written = pod({ controller: true }, { [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: SET });
  const r = check(review('UPDATE', scaled({ ...written, spec: { replicas: 3 } }, 5), { oldObject: { ...stored, spec: { replicas: 3 } } }), { traceparent: TP }, [], { [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: SET });
  assert.is(r.outcome, 'owned');
  assert.equal(r.review.response.auditAnnotations, { traceparent: TP, objectSetID: SET });
});

test('update of a controller-owned object: objectSetID for the audit event from baggage, else its annotation, else the old object\'s', () => {
  const old = pod({ controller: true }, { [ANNOTATION_OBJSETID]: 'old-set' });
  const cases: Array<[Obj, TraceHeaders, string | undefined]> = [
    [pod({ controller: true }, { [ANNOTATION_OBJSETID]: 'own-set' }), { baggage: `objectSetID=${SET}` }, SET],
    [pod({ controller: true }, { [ANNOTATION_OBJSETID]: 'own-set' }), {}, 'own-set'],
    [pod({ controller: true }, { [ANNOTATION_OBJSETID]: '' }), {}, 'old-set'],
    [pod({ controller: true }), {}, 'old-set'],
  ];
  for (const [obj, headers, want] of cases) {
    const r = check(review('UPDATE', obj, { oldObject: old }), headers, [], annotationsOf(obj));
    assert.is(r.review.response.auditAnnotations?.['objectSetID'], want);
  }
  const none = check(review('UPDATE', pod({ controller: true }), { oldObject: pod({ controller: true }) }), { traceparent: TP }, [], undefined);
  assert.equal(none.review.response.auditAnnotations, { traceparent: TP });
});

test('update with an empty objsetid annotation: replaced by a valid id', () => {
  const obj = deployment({ [ANNOTATION_OBJSETID]: '' }, { uid: 'dep-uid' });
  check(review('UPDATE', obj, { oldObject: obj }), {}, [
    { op: 'replace', path: '/metadata/annotations/trace.kubernetes.io~1objsetid', value: 'dep-uid' },
  ], { [ANNOTATION_OBJSETID]: 'dep-uid' });
});

test('update with an invalid traceparent keeps the existing span annotation, also when the spec changes', () => {
  const old = deployment({ [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: SET }, { uid: 'dep-uid' });
  const r = check(review('UPDATE', scaled(old, 9), { oldObject: old }), { traceparent: 'garbage' }, [], { [ANNOTATION_SPAN]: TP2, [ANNOTATION_OBJSETID]: SET });
  assert.is(r.traceparent, 'invalid');
  assert.equal(r.review.response.auditAnnotations, { objectSetID: SET });
});

// ---------------------------------------------------------------------------------------------
// No patch: DELETE, CONNECT, subresources

test('delete: allowed, no patch; the deleted object\'s set is recorded for the audit event', () => {
  const old = deployment({ [ANNOTATION_OBJSETID]: SET }, { uid: 'dep-uid' });
  const r = check(review('DELETE', null, { oldObject: old, options: { kind: 'DeleteOptions' } }), { traceparent: TP }, [], undefined);
  assert.is(r.outcome, 'skipped');
  assert.is(r.operation, 'DELETE');
  assert.equal(r.review.response.auditAnnotations, { traceparent: TP, objectSetID: SET });
});

test('connect (pods/exec): allowed, no patch', () => {
  const r = check(review('CONNECT', { kind: 'PodExecOptions', apiVersion: 'v1', command: ['sh'] }, { subResource: 'exec' }), { traceparent: TP }, [], undefined);
  assert.is(r.outcome, 'skipped');
  assert.equal(r.review.response.auditAnnotations, { traceparent: TP });
});

test('subresource (pods/status update, pods/binding create): allowed, no patch even without annotations', () => {
  for (const [op, sub, obj] of [['UPDATE', 'status', pod({ controller: true })], ['CREATE', 'binding', { kind: 'Binding', apiVersion: 'v1', metadata: { name: 'p' }, target: { kind: 'Node', name: 'n1' } }]] as const) {
    const r = check(review(op, obj, { subResource: sub }), { traceparent: TP, baggage: `objectSetID=${SET}` }, [], undefined);
    assert.is(r.outcome, 'skipped');
    assert.equal(r.review.response.auditAnnotations, { traceparent: TP, objectSetID: SET });
  }
});

test('unknown operation: allowed, no patch, label "unknown"', () => {
  const r = mutate(review('PATCH', deployment()), { traceparent: TP }, OPTS);
  assert.is(r.outcome, 'skipped');
  assert.is(r.operation, 'unknown');
});

// ---------------------------------------------------------------------------------------------
// Bad object shapes: allowed, no patch, outcome error

test('bad object shapes: allowed with no patch, outcome error, reason bad_object', () => {
  const shapes: unknown[] = [
    null,
    'a string',
    { kind: 'Deployment' }, // no metadata
    { metadata: [] },
    { metadata: { annotations: ['a'] } },
    { metadata: { annotations: 'x' } },
    { metadata: { ownerReferences: { controller: true } } },
    { metadata: { annotations: { [ANNOTATION_SPAN]: 42 } } },
    { metadata: { annotations: { [ANNOTATION_OBJSETID]: null } } },
  ];
  for (const obj of shapes) {
    const r = mutate(review('CREATE', obj), { traceparent: TP }, OPTS);
    assert.is(r.outcome, 'error', JSON.stringify(obj));
    assert.is(r.error?.reason, 'bad_object');
    assert.equal(r.review.response, { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
  }
  const r = mutate(review('UPDATE', deployment(), { oldObject: { metadata: 5 } }), { traceparent: TP }, OPTS);
  assert.is(r.outcome, 'error');
  assert.match(r.error!.message, /oldObject\.metadata/);
});

// ---------------------------------------------------------------------------------------------
// traceparent

test('traceparent validation', () => {
  assert.is(validTraceparent(TP), TP);
  assert.is(validTraceparent(` ${TP} `), TP);
  assert.is(validTraceparent([TP]), TP);
  const bad = [
    undefined,
    '',
    [TP, TP2], // two headers: ambiguous
    `${TP}, ${TP2}`, // Node's join of two headers
    TP.toUpperCase(),
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // version ff is invalid
    '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // only version 00 is accepted
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // all-zero trace id
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // all-zero span id
    '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01', // short trace id
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
    '00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01',
    '00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01',
  ];
  for (const v of bad) assert.is(validTraceparent(v), undefined, JSON.stringify(v));
});

test('bad traceparent on create: no span annotation, objsetid still set', () => {
  for (const tp of ['00-00000000000000000000000000000000-00f067aa0ba902b7-01', 'not-a-traceparent', `${TP}, ${TP2}`]) {
    const r = check(review('CREATE', deployment()), { traceparent: tp }, [
      { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_OBJSETID]: NEW_ID } },
    ], { [ANNOTATION_OBJSETID]: NEW_ID });
    assert.is(r.traceparent, 'invalid');
    assert.equal(r.review.response.auditAnnotations, { objectSetID: NEW_ID });
  }
});

// ---------------------------------------------------------------------------------------------
// baggage

test('baggage: members, whitespace, properties, percent-decoding', () => {
  assert.equal(parseBaggage('a=1,b=2'), [{ key: 'a', value: '1', properties: [] }, { key: 'b', value: '2', properties: [] }]);
  assert.equal(parseBaggage(' \ta = 1 ;  p1 ; p2=x  ,\tb=2 '), [
    { key: 'a', value: '1', properties: ['p1', 'p2=x'] },
    { key: 'b', value: '2', properties: [] },
  ]);
  assert.equal(parseBaggage('k=a%20b%2C%3Bc%25'), [{ key: 'k', value: 'a b,;c%', properties: [] }]);
  assert.equal(parseBaggage('k=%E2%9C%93'), [{ key: 'k', value: '✓', properties: [] }]);
  assert.equal(parseBaggage('k=a=b'), [{ key: 'k', value: 'a=b', properties: [] }], '= is a baggage-octet');
  assert.equal(parseBaggage('k=+'), [{ key: 'k', value: '+', properties: [] }], '+ is not a space');
  assert.equal(parseBaggage(['a=1', 'b=2']).map((m) => m.key), ['a', 'b']);
  assert.equal(parseBaggage(undefined), []);
  assert.equal(parseBaggage(''), []);
});

test('baggage: malformed members are dropped, the rest kept', () => {
  const members = parseBaggage('noequals, =novalue, bad key=1, k="quoted", k2=a b, k3=%ZZ, k4=%E2%9C, ,, ok=1, k5=back\\slash');
  assert.equal(members.map((m) => `${m.key}=${m.value}`), ['ok=1']);
  assert.equal(parseBaggage('empty='), [{ key: 'empty', value: '', properties: [] }]);
});

test('baggageValue: case-sensitive key, last occurrence wins, several headers', () => {
  assert.is(baggageValue(`objectSetID=${SET}`, 'objectSetID'), SET);
  assert.is(baggageValue(`objectsetid=${SET}`, 'objectSetID'), undefined);
  assert.is(baggageValue('objectSetID=a, x=1, objectSetID=b', 'objectSetID'), 'b');
  assert.is(baggageValue(['x=1', 'objectSetID=c;prop'], 'objectSetID'), 'c');
  assert.is(baggageValue('objectSetID=%ZZ, objectSetID=d', 'objectSetID'), 'd');
  assert.is(baggageValue('x=1', 'objectSetID'), undefined);
});

test('baggage objectSetID percent-encoded and padded: decoded value stored', () => {
  check(review('CREATE', deployment()), { baggage: '  objectSetID = set%2F1 ; ttl=5 ' }, [
    { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_OBJSETID]: 'set/1' } },
  ], { [ANNOTATION_OBJSETID]: 'set/1' });
});

test('baggage objectSetID empty, too long or with control characters: ignored (state invalid)', () => {
  for (const b of ['objectSetID=', `objectSetID=${'x'.repeat(257)}`, 'objectSetID=a%0Ab']) {
    const r = check(review('CREATE', deployment()), { traceparent: TP, baggage: b }, [
      { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: NEW_ID } },
    ], undefined);
    assert.is(r.baggage, 'invalid', b);
  }
});

// ---------------------------------------------------------------------------------------------
// JSON Pointer and the envelope

test('escapeJsonPointer: ~ then /, and the applier reverses it', () => {
  assert.is(escapeJsonPointer('trace.kubernetes.io/span'), 'trace.kubernetes.io~1span');
  assert.is(escapeJsonPointer('a~b/c~1'), 'a~0b~1c~01');
  const doc = { metadata: { annotations: {} as Record<string, string> } };
  const out = applyPatch(doc, [{ op: 'add', path: `/metadata/annotations/${escapeJsonPointer('a~b/c~1')}`, value: 'v' }]);
  assert.equal(out.metadata.annotations, { 'a~b/c~1': 'v' });
});

test('parseAdmissionReview: envelope errors are BadReviewError with a message', () => {
  const cases: Array<[unknown, RegExp]> = [
    [[], /not a JSON object/],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'Pod', request: { uid: 'u' } }, /kind must be "AdmissionReview"/],
    [{ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'u' } }, /apiVersion must be "admission\.k8s\.io\/v1"/],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /request is missing/],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { operation: 'CREATE' } }, /request\.uid/],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: '' } }, /request\.uid/],
  ];
  for (const [body, pattern] of cases) {
    try {
      parseAdmissionReview(body);
      assert.unreachable(JSON.stringify(body));
    } catch (err) {
      assert.instance(err, BadReviewError);
      assert.match((err as Error).message, pattern);
    }
  }
  try {
    parseAdmissionReviewJson('{"kind":');
    assert.unreachable();
  } catch (err) {
    assert.instance(err, BadReviewError);
    assert.match((err as Error).message, /not valid JSON/);
  }
});

test('parseAdmissionReviewJson: a kind or apiVersion nested 100,000 deep or a megabyte long is a short BadReviewError (was a RangeError from JSON.stringify, and a megabyte echoed)', () => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const cases: Array<[string, string]> = [
    [`{"kind":${deep}}`, 'kind must be "AdmissionReview", got an array'],
    [`{"kind":{"a":${deep}}}`, 'kind must be "AdmissionReview", got an object'],
    [`{"kind":"AdmissionReview","apiVersion":${deep}}`, 'apiVersion must be "admission.k8s.io/v1" (set admissionReviewVersions: [v1]), got an array'],
    [`{"kind":"${'x'.repeat(1_000_000)}"}`, `kind must be "AdmissionReview", got "${'x'.repeat(57)}..."`],
    ['{"kind":12}', 'kind must be "AdmissionReview", got 12'],
    ['{"kind":"AdmissionReview"}', 'apiVersion must be "admission.k8s.io/v1" (set admissionReviewVersions: [v1]), got null'],
  ];
  for (const [text, message] of cases) {
    try {
      parseAdmissionReviewJson(text);
      assert.unreachable(text.slice(0, 40));
    } catch (err) {
      assert.instance(err, BadReviewError);
      assert.is((err as Error).message, message);
    }
  }
});

test('mutate: objects nested 100,000 deep (CREATE, UPDATE with a spec change, owner references, annotations) never throw', () => {
  const deep = (): unknown => JSON.parse('{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000));
  const reviews = [
    review('CREATE', { metadata: { name: 'x' }, spec: deep() }),
    review('UPDATE', { metadata: {}, spec: deep() }, { oldObject: { metadata: {}, spec: deep() } }),
    review('UPDATE', { metadata: {}, spec: { b: deep() } }, { oldObject: { metadata: {}, spec: { a: deep() } } }),
    review('CREATE', { metadata: { ownerReferences: [deep()], annotations: { x: deep() } } }),
    review('CREATE', { metadata: { annotations: { [ANNOTATION_SPAN]: deep() } } }),
    review('DELETE', deep(), { oldObject: deep() }),
  ];
  for (const r of reviews) {
    const result = mutate(r, { traceparent: TP });
    assert.ok(JSON.stringify(result.review).length < 1000, result.outcome);
  }
});

test.run();
