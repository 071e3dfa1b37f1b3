import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEvent } from '@kube-correlate/audit';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { attrString } from '@kube-correlate/otlp';
import { Correlator, withApiAttributes, type CorrelatorOutput, type DescribeRequest } from '../src/index.js';

const scenario = generateDeploymentScenario({ seed: 5 });
/** Names operations the way the catalogue would, from the verb and resource. */
const describe: DescribeRequest = (events) => {
  const e = events[0]!;
  return e.objectRef?.resource ? { operationId: `${e.verb}:${e.objectRef.resource}`, stability: 'stable' } : undefined;
};

test('withApiAttributes: the route span of each request gets k8s.api.operation_id and k8s.api.stability, nothing else changes', () => {
  for (const r of scenario.requests) {
    const out = withApiAttributes(r.spans, r.auditEvents, describe);
    const route = out.find((s) => s.spanId === r.serverSpanId) ?? out.find((s) => attrString(s.attributes, 'k8s.api.operation_id'));
    const e = r.auditEvents[0]!;
    assert.is(attrString(route!.attributes, 'k8s.api.operation_id'), `${e.verb}:${e.objectRef!.resource}`, r.label);
    assert.is(attrString(route!.attributes, 'k8s.api.stability'), 'stable');
    assert.is(out.filter((s) => attrString(s.attributes, 'k8s.api.operation_id')).length, 1, `${r.label}: one span annotated`);
    assert.is(r.spans.some((s) => attrString(s.attributes, 'k8s.api.operation_id')), false, 'the input spans are not modified');
    assert.is(withApiAttributes(out, r.auditEvents, () => ({ operationId: 'other', stability: 'alpha' })).find((s) => s.spanId === route!.spanId), route, 'already annotated: left alone');
  }
  assert.is(withApiAttributes(scenario.spans, [], describe), scenario.spans);
  assert.is(withApiAttributes(scenario.spans, scenario.auditEvents, undefined), scenario.spans);
});

test('the correlator annotates what it settles when given describeRequest', async () => {
  const outputs: CorrelatorOutput[] = [];
  let t = 0;
  const c = new Correlator({ sink: { write: async (o) => void outputs.push(o) }, settleAfterMs: 10, now: () => t, describeRequest: describe });
  const apply = scenario.applyRequest;
  c.addSpans(apply.spans);
  c.addAuditEvents(apply.auditEvents as AuditEvent[]);
  t = 1000;
  await c.stop();
  const spans = outputs.flatMap((o) => o.traces.flatMap((u) => u.spans));
  const annotated = spans.filter((s) => attrString(s.attributes, 'k8s.api.operation_id'));
  assert.is(annotated.length, 1);
  assert.is(attrString(annotated[0]!.attributes, 'k8s.api.operation_id'), 'create:deployments');
});

test.run();
