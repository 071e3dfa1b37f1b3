import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DEFAULT_RULES,
  LAST_APPLIED_ANNOTATION,
  REDACTED,
  RedactionRuleError,
  compileRedactionRules,
  parseAuditLine,
  parseRedactionPath,
  redactAuditEvent,
  validateAuditEvent,
} from '../src/index.js';
import type { AuditEvent, Redaction } from '../src/index.js';
import { recordedAuditLogs } from './shared-data.js';

type Obj = Record<string, unknown>;

const logs = recordedAuditLogs();
const allEvents = logs.flatMap(([, events]) => events.map((e) => validateAuditEvent(e) as AuditEvent));

/** Distinct secret values: every one must be gone, as written and base64-encoded, from a redacted event. */
const SECRETS: string[] = [];
function secret(label: string): string {
  const s = `kc-secret-${label}-${SECRETS.length}-${Math.random().toString(36).slice(2, 10)}`;
  SECRETS.push(s);
  return s;
}
const b64 = (s: string) => Buffer.from(s).toString('base64');

function assertNoSecret(e: unknown, what: string): void {
  const text = JSON.stringify(e);
  for (const s of SECRETS) {
    assert.not.ok(text.includes(s), `${what}: ${s} survived`);
    assert.not.ok(text.includes(b64(s)), `${what}: base64 of ${s} survived`);
    // Inside the last-applied annotation the values are JSON in a JSON string.
    assert.not.ok(text.includes(JSON.stringify(b64(s)).slice(1, -1)), `${what}: ${s} survived escaped`);
  }
}

/** Where the last-applied copy sits in an object, as redaction paths name it. */
const LA = `metadata.annotations["${LAST_APPLIED_ANNOTATION}"]`;

/** A Secret as kube-apiserver serves it, with the last-applied copy kubectl apply writes. */
function secretObject(name: string, namespace: string, opts: { stringData?: boolean; lastApplied?: boolean } = {}): Obj {
  const data = { password: b64(secret('password')), 'tls.key': b64(secret('tls')) };
  const applied = { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'Opaque', data: { password: b64(secret('applied-password')) }, stringData: { token: secret('applied-token') } };
  return {
    kind: 'Secret',
    apiVersion: 'v1',
    metadata: {
      name, namespace, uid: '6a1f7f3e-0000-4000-8000-000000000001', resourceVersion: '1234',
      annotations: { team: 'payments', ...(opts.lastApplied === false ? {} : { [LAST_APPLIED_ANNOTATION]: JSON.stringify(applied) + '\n' }) },
      managedFields: [{ manager: 'kubectl-client-side-apply', operation: 'Update', fieldsType: 'FieldsV1', fieldsV1: { 'f:data': { '.': {}, 'f:password': {} } } }],
    },
    type: 'Opaque',
    data,
    ...(opts.stringData ? { stringData: { token: secret('stringData') } } : {}),
  };
}

/** The real Metadata-level Secret events of the captures, made RequestResponse as a mistaken policy logs them. */
function recordedSecretEvents(): Array<{ e: AuditEvent; expect: string[] }> {
  const out: Array<{ e: AuditEvent; expect: string[] }> = [];
  for (const e of allEvents) {
    const ref = e.objectRef;
    if (ref?.resource !== 'secrets' || e.stage !== 'ResponseComplete' || e.verb === 'watch') continue;
    const name = ref.name ?? 's1';
    const ns = ref.namespace ?? 'demo';
    const base = { ...e, level: 'RequestResponse' };
    if (e.verb === 'create') {
      out.push({
        e: { ...base, requestObject: secretObject(name, ns, { stringData: true }), responseObject: secretObject(name, ns) },
        expect: ['requestObject.data', 'requestObject.stringData', `requestObject.${LA}.data`, `requestObject.${LA}.stringData`,
          'responseObject.data', `responseObject.${LA}.data`, `responseObject.${LA}.stringData`],
      });
    } else if (e.verb === 'get') {
      out.push({ e: { ...base, responseObject: secretObject(name, ns) }, expect: ['responseObject.data', `responseObject.${LA}.data`, `responseObject.${LA}.stringData`] });
      // The same request as a list (SecretList) and as kubectl get's Table with the objects.
      out.push({
        e: { ...base, verb: 'list', responseObject: { kind: 'SecretList', apiVersion: 'v1', metadata: { resourceVersion: '9' }, items: [secretObject('a', ns, { lastApplied: false }), secretObject('b', ns)] } },
        expect: ['responseObject.items[0].data', 'responseObject.items[1].data', `responseObject.items[1].${LA}.data`, `responseObject.items[1].${LA}.stringData`],
      });
      out.push({
        e: { ...base, responseObject: { kind: 'Table', apiVersion: 'meta.k8s.io/v1', columnDefinitions: [{ name: 'Name' }, { name: 'Data' }], rows: [{ cells: [name, 2], object: secretObject(name, ns, { lastApplied: false }) }] } },
        expect: ['responseObject.rows[0].object.data'],
      });
      // A metadata-only read (the garbage collector's): no data, but the last-applied copy has it.
      const { data: _d, type: _t, ...meta } = secretObject(name, ns);
      out.push({
        e: { ...base, responseObject: { ...meta, kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1' } },
        expect: [`responseObject.${LA}.data`, `responseObject.${LA}.stringData`],
      });
    } else if (e.verb === 'delete') {
      // DeleteOptions in, Status out: nothing to redact.
      out.push({
        e: { ...base, requestObject: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' }, responseObject: { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name, kind: 'secrets' } } },
        expect: [],
      });
    }
  }
  return out;
}

test('the captures hold the Secret create/get/delete this test builds on', () => {
  const verbs = new Set(allEvents.filter((e) => e.objectRef?.resource === 'secrets').map((e) => e.verb));
  for (const v of ['create', 'get', 'delete']) assert.ok(verbs.has(v), v);
  assert.ok(allEvents.every((e) => e.level !== 'RequestResponse' || e.objectRef?.resource !== 'secrets'), 'recorded Secrets are Metadata level');
});

test('recorded Secret events at RequestResponse: no secret survives, keys are kept, redactions counted, input untouched', () => {
  const fixtures = recordedSecretEvents();
  assert.ok(fixtures.length >= 2 * 8, `${fixtures.length} fixtures`);
  let total = 0;
  for (const { e, expect } of fixtures) {
    const before = structuredClone(e);
    const { event, redactions } = redactAuditEvent(e);
    assert.equal(e, before, 'the input is not modified');
    assertNoSecret(event, `${e.verb} ${e.auditID}`);
    assert.equal(redactions.map((r) => r.path).sort(), [...expect].sort(), `${e.verb} ${(e.responseObject as Obj | undefined)?.kind}`);
    assert.ok(redactions.every((r) => r.rule === 'secret'));
    total += redactions.length;
    if (expect.length === 0) assert.is(event, e, 'nothing to redact: the same object');
    else {
      assert.is.not(event, e);
      // Everything but the objects is the same (shared, not copied).
      for (const k of Object.keys(e)) if (k !== 'requestObject' && k !== 'responseObject') assert.is(event[k], e[k], k);
    }
  }
  assert.ok(total > 40, `${total} redactions`);
  // What a user sees: which keys existed, not their values.
  const create = redactAuditEvent(fixtures.find((f) => f.e.verb === 'create')!.e).event;
  const req = create.requestObject as Obj;
  assert.equal(req.data, { password: REDACTED, 'tls.key': REDACTED });
  assert.equal(req.stringData, { token: REDACTED });
  assert.is(req.type, 'Opaque');
  const annotations = (req.metadata as { annotations: Record<string, string> }).annotations;
  assert.is(annotations.team, 'payments');
  const applied = annotations[LAST_APPLIED_ANNOTATION]!;
  assert.ok(applied.endsWith('\n'), 'kubectl\'s trailing newline kept');
  assert.equal(JSON.parse(applied), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's1', namespace: 'demo' }, type: 'Opaque', data: { password: REDACTED }, stringData: { token: REDACTED } });
  // managedFields name the keys (f:password), never values: kept.
  assert.equal(((req.metadata as Obj).managedFields as Obj[])[0]!.fieldsV1, { 'f:data': { '.': {}, 'f:password': {} } });
});

test('every other recorded event is returned as it is: the same object, no redactions', () => {
  let n = 0;
  for (const e of allEvents) {
    const { event, redactions } = redactAuditEvent(e);
    assert.is(event, e);
    assert.equal(redactions, []);
    n++;
  }
  assert.ok(n > 4000, `${n} events`);
  // Also at RequestResponse level, for objects that have a `data` too (ConfigMaps), and for the Secrets' own Metadata-level events.
  const cm = allEvents.find((e) => e.objectRef?.resource === 'configmaps' && e.verb === 'create')!;
  const withData = { ...cm, level: 'RequestResponse', requestObject: { kind: 'ConfigMap', data: { k: 'public' } }, responseObject: { kind: 'ConfigMap', data: { k: 'public' } } };
  assert.is(redactAuditEvent(withData).event, withData);
});

test('TokenRequest (serviceaccounts/token) status.token and TokenReview spec.token', () => {
  const tokenEvent = allEvents.find((e) => e.objectRef?.subresource === 'token' && e.stage === 'ResponseComplete');
  assert.ok(tokenEvent, 'a recorded TokenRequest');
  const jwt = secret('jwt');
  const tr = {
    ...tokenEvent!, level: 'RequestResponse',
    requestObject: { kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1', spec: { audiences: ['https://kubernetes.default.svc'], expirationSeconds: 3607 } },
    responseObject: { kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1', spec: { audiences: ['https://kubernetes.default.svc'] }, status: { token: jwt, expirationTimestamp: '2026-12-02T17:44:31Z' } },
  };
  const r1 = redactAuditEvent(tr);
  assertNoSecret(r1.event, 'TokenRequest');
  assert.equal(r1.redactions, [{ rule: 'tokenrequest', path: 'responseObject.status.token' }]);
  assert.is((r1.event.responseObject as { status: Obj }).status.expirationTimestamp, '2026-12-02T17:44:31Z');
  // The ServiceAccount itself (no subresource) is not a TokenRequest.
  const sa = { ...tr, objectRef: { ...tr.objectRef, subresource: undefined } };
  assert.is(redactAuditEvent(sa).event, sa);

  const bearer = secret('bearer');
  const review = {
    ...tokenEvent!, level: 'RequestResponse', requestURI: '/apis/authentication.k8s.io/v1/tokenreviews',
    objectRef: { resource: 'tokenreviews', apiGroup: 'authentication.k8s.io', apiVersion: 'v1' },
    requestObject: { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', spec: { token: bearer } },
    responseObject: { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', spec: { token: bearer }, status: { authenticated: true, user: { username: 'system:serviceaccount:demo:app' } } },
  };
  const r2 = redactAuditEvent(review);
  assertNoSecret(r2.event, 'TokenReview');
  assert.equal(r2.redactions, [{ rule: 'tokenreview', path: 'requestObject.spec.token' }, { rule: 'tokenreview', path: 'responseObject.spec.token' }]);
  assert.is(((r2.event.responseObject as { status: { user: Obj } }).status.user).username, 'system:serviceaccount:demo:app');
});

test('patches of Secrets: merge and strategic merge, JSON Patch values, apply configurations, a YAML body', () => {
  const create = allEvents.find((e) => e.objectRef?.resource === 'secrets' && e.verb === 'create' && e.stage === 'ResponseComplete')!;
  const patch = (requestObject: unknown) => ({ ...create, verb: 'patch', level: 'Request', requestObject });
  const check = (e: AuditEvent, paths: string[]): AuditEvent => {
    const before = structuredClone(e);
    const { event, redactions } = redactAuditEvent(e);
    assert.equal(e, before);
    assertNoSecret(event, JSON.stringify(paths));
    assert.equal(redactions.map((r: Redaction) => r.path), paths);
    return event;
  };
  // Merge patch: a key deleted with null hides nothing and stays null.
  const merge = check(patch({ data: { password: b64(secret('merge')), old: null }, metadata: { labels: { a: 'b' } } }), ['requestObject.data']);
  assert.equal((merge.requestObject as Obj).data, { password: REDACTED, old: null });
  // Strategic merge patch with a directive; server-side apply configuration with the annotation.
  check(patch({ $retainKeys: ['data'], stringData: { t: secret('smp') } }), ['requestObject.stringData']);
  check(patch({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's1', annotations: { [LAST_APPLIED_ANNOTATION]: JSON.stringify({ data: { k: b64(secret('apply')) } }) } }, data: { k: b64(secret('apply2')) } }),
    ['requestObject.data', `requestObject.${LA}.data`]);
  // JSON Patch: values landing in, or holding, data/stringData/the annotation; others untouched.
  const ops = [
    { op: 'add', path: '/data/new', value: b64(secret('jp-add')) },
    { op: 'replace', path: '/data', value: { a: b64(secret('jp-replace')) } },
    { op: 'test', path: '/stringData/x', value: secret('jp-test') },
    { op: 'add', path: '/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration', value: JSON.stringify({ stringData: { x: secret('jp-la') } }) },
    { op: 'add', path: '/metadata/annotations', value: { [LAST_APPLIED_ANNOTATION]: 'not json ' + secret('jp-la2') } },
    { op: 'replace', path: '', value: { kind: 'Secret', data: { z: b64(secret('jp-root')) } } },
    { op: 'add', path: '/metadata/labels/app', value: 'public' },
    { op: 'remove', path: '/data/gone' },
    { op: 'copy', from: '/data/a', path: '/data/b' },
    { op: 'add', path: 17, value: secret('jp-bad-path') },
  ];
  const jp = check(patch(ops), ['requestObject[0].value', 'requestObject[1].value', 'requestObject[2].value', 'requestObject[3].value.stringData',
    `requestObject[4].value["${LAST_APPLIED_ANNOTATION}"]`, 'requestObject[5].value.data', 'requestObject[9].value']);
  const out = jp.requestObject as Obj[];
  assert.equal(out[1]!.value, { a: REDACTED });
  assert.equal(JSON.parse(out[3]!.value as string), { stringData: { x: REDACTED } });
  assert.equal(out[4]!.value, { [LAST_APPLIED_ANNOTATION]: REDACTED });
  assert.equal(out[5]!.value, { kind: 'Secret', data: { z: REDACTED } });
  assert.is(out[6], ops[6], 'an op with nothing secret is shared');
  // A body logged as text (an apply patch in YAML): replaced whole.
  check(patch(`data:\n  k: ${b64(secret('yaml'))}\n`), ['requestObject']);
});

test('the last-applied annotation: unparseable or not an object is replaced whole; without secrets it is kept byte for byte', () => {
  const get = allEvents.find((e) => e.objectRef?.resource === 'secrets' && e.verb === 'get' && e.stage === 'ResponseComplete')!;
  const withAnnotation = (value: unknown) => ({ ...get, level: 'RequestResponse', responseObject: { kind: 'Secret', metadata: { annotations: { [LAST_APPLIED_ANNOTATION]: value } } } });
  for (const bad of [`{"data":{"k":"${b64(secret('truncated'))}"`, `["${secret('array')}"]`, 42]) {
    const { event, redactions } = redactAuditEvent(withAnnotation(bad));
    assertNoSecret(event, String(bad));
    assert.is(((event.responseObject as { metadata: { annotations: Obj } }).metadata.annotations)[LAST_APPLIED_ANNOTATION], REDACTED);
    assert.is(redactions.length, 1);
  }
  const plain = '{"apiVersion":"v1","kind":"Secret","type":"Opaque","metadata":{"name":"s"}}\n';
  const e = withAnnotation(plain);
  assert.is(redactAuditEvent(e).event, e);
  // Nested deeper than an event may be: replaced whole, never serialized.
  const deep = '['.repeat(5000) + ']'.repeat(5000);
  const r = redactAuditEvent(withAnnotation(`{"data":{"k":"${b64(secret('deep'))}"},"x":${deep}}`));
  assertNoSecret(r.event, 'deep annotation');
});

test('user rules: resource, group (omitted: any; "": core), subresource (omitted: any; "": main only), paths with wildcards and quoted keys', () => {
  const rules = compileRedactionRules([
    { name: 'db-creds', resource: 'databases', group: 'example.com', paths: ['spec.password', 'spec.users[*].password', 'metadata.annotations["example.com/token"]'] },
    { resource: 'widgets', paths: ['spec.key'] },
    { resource: 'gadgets', group: '', subresource: '', paths: ['spec.key'] },
  ]);
  const base = allEvents.find((e) => e.objectRef?.resource === 'configmaps' && e.verb === 'create')!;
  const ev = (objectRef: Obj, obj: unknown) => ({ ...base, level: 'RequestResponse', objectRef, requestObject: obj });
  const db = (pw: string) => ({
    apiVersion: 'example.com/v1', kind: 'Database',
    metadata: { name: 'db', annotations: { 'example.com/token': secret('ann'), other: 'x' } },
    spec: { password: pw, users: [{ name: 'a', password: secret('u1') }, { name: 'b' }, { name: 'c', password: secret('u3') }] },
  });
  const r = redactAuditEvent(ev({ resource: 'databases', apiGroup: 'example.com', apiVersion: 'v1' }, db(secret('db'))), rules);
  assertNoSecret(r.event, 'database');
  assert.equal(r.redactions, [
    { rule: 'db-creds', path: 'requestObject.spec.password' },
    { rule: 'db-creds', path: 'requestObject.spec.users[0].password' },
    { rule: 'db-creds', path: 'requestObject.spec.users[2].password' },
    { rule: 'db-creds', path: 'requestObject.metadata.annotations["example.com/token"]' },
  ]);
  assert.equal((r.event.requestObject as { spec: { users: Obj[] } }).spec.users[1], { name: 'b' });
  // The status subresource carries the whole object too: matched (subresource omitted).
  assert.is(redactAuditEvent(ev({ resource: 'databases', apiGroup: 'example.com', subresource: 'status' }, db(secret('st'))), rules).redactions.length, 4);
  // Another group's "databases" is not this rule's.
  const other = ev({ resource: 'databases', apiGroup: 'other.io' }, db(secret('other')));
  assert.is(redactAuditEvent(other, rules).event, other);
  // Group omitted: any group, the core group included.
  for (const apiGroup of ['a.io', undefined]) assert.is(redactAuditEvent(ev({ resource: 'widgets', apiGroup }, { spec: { key: secret('w') } }), rules).redactions[0]!.rule, '*/widgets');
  // group "" and subresource "": the core resource itself only.
  assert.is(redactAuditEvent(ev({ resource: 'gadgets' }, { spec: { key: secret('g') } }), rules).redactions.length, 1);
  const sub = ev({ resource: 'gadgets', subresource: 'status' }, { spec: { key: 'k' } });
  assert.is(redactAuditEvent(sub, rules).event, sub);
  const grp = ev({ resource: 'gadgets', apiGroup: 'x.io' }, { spec: { key: 'k' } });
  assert.is(redactAuditEvent(grp, rules).event, grp);
  // The defaults stay on alongside user rules, and can be left out.
  const s = { ...base, objectRef: { resource: 'secrets' }, requestObject: { data: { k: 'v' } } };
  assert.is(redactAuditEvent(s, rules).redactions.length, 1);
  assert.is(redactAuditEvent(s, compileRedactionRules([], false)).event, s);
  assert.is(DEFAULT_RULES.rules.length, 3);
});

test('redacting twice changes nothing more; odd shapes never throw; "__proto__" stays a plain key', () => {
  const fixtures = recordedSecretEvents();
  for (const { e } of fixtures) {
    const once = redactAuditEvent(e).event;
    const twice = redactAuditEvent(once);
    assert.is(twice.event, once);
    assert.equal(twice.redactions, []);
  }
  const base = fixtures[0]!.e;
  const odd: unknown[] = [1, true, 'text', [], [null, 1, 'x', [1]], { data: 'a string' }, { data: [1, 2] }, { data: null }, { items: 'x' }, { items: [1, null, { data: 5 }] },
    { kind: 'Table', rows: [null, { object: 'x' }, { object: { data: { k: 'v' } } }] }, { metadata: 'x' }, { metadata: { annotations: [] } }];
  for (const o of odd) {
    for (const ref of [{ resource: 'secrets' }, { resource: 'secrets', apiGroup: 5, subresource: {} }, { resource: 7 }, 'x', null]) {
      const r = redactAuditEvent({ ...base, objectRef: ref as never, requestObject: o, responseObject: o });
      assert.ok(JSON.stringify(r.event).length > 0);
    }
  }
  const parsed = parseAuditLine(JSON.stringify({ ...base, requestObject: 'X', responseObject: undefined }).replace('"X"', `{"data":{"__proto__":"${b64(secret('proto'))}"}}`), 1) as AuditEvent;
  const r = redactAuditEvent(parsed);
  assertNoSecret(r.event, '__proto__');
  const data = (r.event.requestObject as { data: Obj }).data;
  assert.ok(Object.hasOwn(data, '__proto__'));
  assert.is(Object.getPrototypeOf(data), Object.prototype);
  assert.is(({} as Obj).polluted, undefined);
});

test('parseRedactionPath: the grammar, and errors that say where', () => {
  assert.equal(parseRedactionPath('data'), [{ key: 'data' }]);
  assert.equal(parseRedactionPath('items[*].data'), [{ key: 'items' }, { any: true }, { key: 'data' }]);
  assert.equal(parseRedactionPath('spec.users[2].password'), [{ key: 'spec' }, { key: 'users' }, { index: 2 }, { key: 'password' }]);
  assert.equal(parseRedactionPath('metadata.annotations["example.com/a.b[c]\\"d"]'), [{ key: 'metadata' }, { key: 'annotations' }, { key: 'example.com/a.b[c]"d' }]);
  assert.equal(parseRedactionPath('[*]["x"][0]'), [{ any: true }, { key: 'x' }, { index: 0 }]);
  for (const [bad, msg] of [['', 'empty path'], ['a..b', 'empty key at character 3'], ['a.', 'expected a key after "." at character 3'], ['a[', 'expected [*], [<index>] or ["<key>"] at character 2'],
    ['a[x]', 'expected [*], [<index>] or ["<key>"] at character 2'], ['a]', '"]" without "[" at character 2'], ['a[*]b', 'expected "." or "[" at character 5'], ['a["x', 'expected ["<key>"] at character 2'], ['a.[0]', 'expected a key after "." at character 3']] as const) {
    try {
      parseRedactionPath(bad);
      assert.unreachable(bad);
    } catch (err) {
      assert.instance(err, RedactionRuleError);
      assert.is((err as Error).message, `path ${JSON.stringify(bad)}: ${msg}`);
    }
  }
  assert.throws(() => compileRedactionRules([{ resource: 'x', paths: ['a..b'] }]), /^rules\[0\] \(\*\/x\): path "a\.\.b": empty key/);
  assert.throws(() => compileRedactionRules([{ resource: 'y', paths: ['a'] }, { resource: '', paths: ['a'] }], false), /^rules\[1\]: resource is required/);
  assert.throws(() => compileRedactionRules([{ resource: 'x', paths: [] }]), /^rules\[0\] \(x\): paths must list at least one path/);
});

test.run();
