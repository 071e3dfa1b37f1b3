import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditIDForSpans, type AuditEvent } from '@kube-correlate/audit';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { attrString } from '@kube-correlate/otlp';
import { buildRequestTree, TraceJoin, decodeCorrelated, describeRequests, encodeCorrelatedTrace, type CorrelatorOutput, type DescribeRequest } from '../src/index.js';

const scenario = generateDeploymentScenario({ seed: 5 });
/** Names operations the way the catalogue would, from the verb and resource. */
const describe: DescribeRequest = (events) => {
  const e = events[0]!;
  return e.objectRef?.resource ? { operationId: `${e.verb}:${e.objectRef.resource}`, stability: 'stable' } : undefined;
};

test('describeRequests: one operation per audit request, by the auditID spans carry', () => {
  const ops = describeRequests(scenario.auditEvents, describe);
  assert.is(ops.size, new Set(scenario.auditEvents.filter((e) => e.objectRef?.resource).map((e) => auditIDForSpans(e.auditID))).size);
  const e = scenario.applyRequest.auditEvents[0]!;
  assert.equal(ops.get(auditIDForSpans(e.auditID)), { operationId: 'create:deployments', stability: 'stable' });
  assert.is(describeRequests(scenario.auditEvents, undefined).size, 0);
});

test('otlp_correlated: the route span and the audit span carry k8s.api.*, and it reads back from the audit span', () => {
  for (const r of scenario.requests) {
    const api = describeRequests(r.auditEvents, describe);
    const out = encodeCorrelatedTrace(r.traceId, r.spans, r.auditEvents, undefined, api);
    const e = r.auditEvents[0]!;
    const annotated = out.filter((s) => attrString(s.attributes, 'k8s.api.operation_id'));
    assert.is(annotated.length, 2, `${r.label}: the route span and the audit span`);
    for (const s of annotated) assert.is(attrString(s.attributes, 'k8s.api.operation_id'), `${e.verb}:${e.objectRef!.resource}`);
    assert.is(r.spans.some((s) => attrString(s.attributes, 'k8s.api.operation_id')), false, 'the input spans are not modified');
    const back = decodeCorrelated(out);
    assert.equal([...back.apiOperations], [...api], `${r.label}: read back`);
    assert.is(back.spans.some((s) => attrString(s.attributes, 'k8s.api.operation_id')), false, 'received spans come back without what was added');
  }
});

test('the tree puts the operation on the node that carries the audit', () => {
  const r = scenario.applyRequest;
  const api = describeRequests(r.auditEvents, describe);
  const tree = buildRequestTree(r.traceId, r.spans, r.auditEvents, { apiOperation: (id) => api.get(id) });
  const find = (n: typeof tree.root): typeof tree.root[] => [...(n.attributes['k8s.api.operation_id'] ? [n] : []), ...n.children.flatMap(find)];
  const nodes = find(tree.root);
  assert.is(nodes.length, 1);
  assert.ok(nodes[0]!.audit);
  assert.is(nodes[0]!.attributes['k8s.api.operation_id'], 'create:deployments');
});

test('the join names the operations of what it settles, also when the audit comes after the spans settled', async () => {
  const outputs: CorrelatorOutput[] = [];
  const join = new TraceJoin({ settleAfterMs: 10, describeRequest: describe });
  const apply = scenario.applyRequest;
  join.addSpans(apply.spans, 0);
  outputs.push(join.settle(1000)); // the spans settle alone
  assert.is(outputs.flatMap((o) => [...(o.apiOperations ?? [])]).length, 0);
  join.addAuditEvents(apply.auditEvents as AuditEvent[], 1000);
  outputs.push(join.settle(2000, true));
  const ops = new Map(outputs.flatMap((o) => [...(o.apiOperations ?? [])]));
  assert.equal(ops.get(auditIDForSpans(apply.auditID)), { operationId: 'create:deployments', stability: 'stable' });
});

test.run();
