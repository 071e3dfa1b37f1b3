import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { decodeTraceRequest, encodeTraceRequest, plainAttributes } from '@kube-correlate/otlp';
import { auditSpanId, buildRequestTree, decodeCorrelated, DERIVED_SCOPE, encodeCorrelatedTrace, encodeUnjoinedAudit, unjoinedTraceId } from '../src/index.js';

const scenario = generateDeploymentScenario({ seed: 9 });
const apply = scenario.applyRequest;

test('a settled trace encodes to spans + one audit span per request, and decodes back to the same tree', () => {
  const encoded = encodeCorrelatedTrace(apply.traceId, apply.spans, apply.auditEvents);
  assert.is(encoded.length, apply.spans.length + 1);
  const audit = encoded.find((s) => s.scope.name === DERIVED_SCOPE)!;
  assert.is(audit.spanId, auditSpanId(apply.auditID));
  assert.is(audit.parentSpanId, apply.serverSpanId, 'under the route span');
  assert.is(audit.name, 'audit create deployments');
  assert.equal(audit.events.map((e) => e.name), ['RequestReceived', 'ResponseComplete']);
  const server = plainAttributes(encoded.find((s) => s.spanId === apply.serverSpanId)!.attributes);
  assert.is(server['k8s.audit.id'], apply.auditID);
  assert.is(server['k8s.audit.code'], 201);
  assert.is(server['k8s.object.name'], 'web');
  assert.is(server['k8s.object.namespace'], 'default');

  // Through the wire format and back: the tree is the one built from the original data.
  const decoded = decodeCorrelated(decodeTraceRequest(encodeTraceRequest(encoded)).spans);
  const want = buildRequestTree(apply.traceId, apply.spans, apply.auditEvents);
  const got = buildRequestTree(apply.traceId, decoded.spans, decoded.joined.get(apply.traceId) ?? []);
  assert.equal(got, want);
  assert.is(decoded.unjoined.length, 0);
});

test('deterministic: derived spans do not depend on arrival order; same input, same bytes', () => {
  const a = encodeCorrelatedTrace(apply.traceId, apply.spans, apply.auditEvents);
  const b = encodeCorrelatedTrace(apply.traceId, [...apply.spans].reverse(), [...apply.auditEvents].reverse());
  assert.equal(a.at(-1), b.at(-1));
  assert.equal(Buffer.from(encodeTraceRequest(a)), Buffer.from(encodeTraceRequest(encodeCorrelatedTrace(apply.traceId, apply.spans, apply.auditEvents))));
});

test('late audit events without spans hang under the anchor they were paired with', () => {
  const out = encodeCorrelatedTrace(apply.traceId, [], apply.auditEvents, new Map([[apply.auditID, 'abcdefabcdefabcd']]));
  assert.is(out.length, 1);
  assert.is(out[0]!.parentSpanId, 'abcdefabcdefabcd');
  assert.equal(decodeCorrelated(out).joined.get(apply.traceId)?.length, 2);
});

test('unjoined audit events get a trace of their own, marked, and decode as unjoined', () => {
  const out = encodeUnjoinedAudit(apply.auditEvents);
  assert.is(out.length, 1);
  assert.is(out[0]!.traceId, unjoinedTraceId(apply.auditID));
  assert.is(out[0]!.parentSpanId, '');
  const d = decodeCorrelated(out);
  assert.is(d.unjoined.length, 2);
  assert.is(d.joined.size, 0);
  assert.is(d.spans.length, 0);
});
test.run();
