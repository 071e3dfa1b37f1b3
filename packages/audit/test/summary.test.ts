import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditEventKey, summarizeAudit, validateAuditEvent } from '../src/index.js';
import type { AuditEvent } from '../src/index.js';
import { v1Event } from './helpers.js';

function ev(stage: string, extra: Record<string, unknown> = {}): AuditEvent {
  const r = validateAuditEvent(v1Event('req-1', stage, extra));
  if (typeof r === 'string') throw new Error(r);
  return r;
}

const received = ev('RequestReceived', {
  level: 'RequestResponse',
  stageTimestamp: '2026-11-21T05:49:15.123456Z',
  objectRef: { resource: 'configmaps', namespace: 'default', apiVersion: 'v1' },
  annotations: { 'a.example/first': 'rr', 'a.example/shared': 'from-received' },
});
const complete = ev('ResponseComplete', {
  level: 'RequestResponse',
  stageTimestamp: '2026-11-21T05:49:15.323456Z',
  objectRef: { resource: 'configmaps', namespace: 'default', name: 'cm1', uid: 'u-1', apiVersion: 'v1' },
  responseStatus: { metadata: {}, code: 201 },
  requestObject: { kind: 'ConfigMap', metadata: { name: 'cm1' } },
  responseObject: { kind: 'ConfigMap', metadata: { name: 'cm1', uid: 'u-1' } },
  impersonatedUser: { username: 'system:serviceaccount:default:deployer' },
  annotations: { 'authorization.k8s.io/decision': 'allow', 'a.example/shared': 'from-complete' },
});
const panic = ev('Panic', {
  level: 'RequestResponse',
  stageTimestamp: '2026-11-21T05:49:15.423456Z',
  responseStatus: { code: 500 },
});

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
}

test('merged view of a request', () => {
  const s = summarizeAudit([received, complete]);
  assert.equal(s, {
    auditID: 'req-1',
    verb: 'create',
    user: 'kubernetes-admin',
    userAgent: 'kubectl/v1.34.0 (linux/amd64) kubernetes/abcdef0',
    sourceIPs: ['192.168.1.10'],
    objectRef: { resource: 'configmaps', namespace: 'default', name: 'cm1', uid: 'u-1', apiVersion: 'v1' },
    code: 201,
    requestURI: '/api/v1/namespaces/default/configmaps',
    level: 'RequestResponse',
    stages: { RequestReceived: '2026-11-21T05:49:15.123456Z', ResponseComplete: '2026-11-21T05:49:15.323456Z' },
    requestReceivedTimestamp: '2026-11-21T05:49:15.123456Z',
    annotations: { 'a.example/first': 'rr', 'a.example/shared': 'from-complete', 'authorization.k8s.io/decision': 'allow' },
    requestObject: { kind: 'ConfigMap', metadata: { name: 'cm1' } },
    responseObject: { kind: 'ConfigMap', metadata: { name: 'cm1', uid: 'u-1' } },
    impersonatedUser: 'system:serviceaccount:default:deployer',
  });
});

test('Panic code wins over ResponseComplete', () => {
  assert.is(summarizeAudit([panic, complete, received]).code, 500);
  assert.is(summarizeAudit([received]).code, undefined);
});

test('shuffled and duplicated stage sets give deep-equal results', () => {
  const base = [received, complete, panic];
  const expected = summarizeAudit(base);
  assert.equal(Object.keys(expected.stages).sort(), ['Panic', 'RequestReceived', 'ResponseComplete']);
  // Redelivered copies are distinct objects with equal content.
  const copies = base.map((e) => structuredClone(e));
  for (const order of permutations([...base, copies[1]!, copies[0]!])) {
    assert.equal(summarizeAudit(order), expected);
  }
});

test('conflicting copies of one stage: the choice does not depend on order', () => {
  const other = ev('ResponseComplete', { responseStatus: { code: 409 }, annotations: { x: 'y' } });
  const a = summarizeAudit([received, complete, other]);
  for (const order of permutations([received, complete, other])) assert.equal(summarizeAudit(order), a);
});

test('events of different requests, or none, are refused', () => {
  const foreign = validateAuditEvent(v1Event('req-2')) as AuditEvent;
  assert.throws(() => summarizeAudit([received, foreign]), /different requests: auditID "req-1" and "req-2"/);
  assert.throws(() => summarizeAudit([]), /no events/);
});

test('auditEventKey', () => {
  assert.is(auditEventKey(complete), 'req-1/ResponseComplete');
});

test.run();
