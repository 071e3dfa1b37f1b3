import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TreeNode } from '@kube-correlate/correlator';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { encodeTraceRequest } from '@kube-correlate/otlp';
import { sharedDataFile } from '../harness/coverage.js';
import { eventList, postJson, reported, runCli, startPipeline, tempDir, waitForTree, type TestPipeline } from '../harness/index.js';

/**
 * `api_spec`: with the cluster's OpenAPI document, every request tree names its API operation on
 * the route span (k8s.api.operation_id, k8s.api.stability), through the real pipeline and CLI.
 */
const SPEC = sharedDataFile('openapi/swagger-v1.34.json');
const scenario = generateDeploymentScenario({ seed: 61, k8sVersion: '1.34' });
let p: TestPipeline;
test.before(reported('start', async () => {
  p = await startPipeline({ settleAfter: '150ms', apiSpec: SPEC });
}));
test.after(reported('stop', async () => { await p?.stop(); }));

const annotated = (n: TreeNode): TreeNode[] => [...(n.attributes['k8s.api.operation_id'] ? [n] : []), ...n.children.flatMap(annotated)];

test('each request of the Deployment scenario names its operation and stability on its route span', async () => {
  const res = await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(scenario.spans) });
  assert.is(res.status, 200);
  assert.is((await postJson(p.audit, eventList(scenario.auditEvents))).status, 200);
  const want: Record<string, string> = { create: 'createAppsV1NamespacedDeployment' };
  for (const r of scenario.requests) {
    const tree = await waitForTree(p.query, r.traceId, r.spans.length, true);
    const nodes = annotated(tree.root);
    assert.is(nodes.length, 1, `${r.label}: one span names the operation`);
    const node = nodes[0]!;
    assert.ok(node.audit, `${r.label}: on the span that carries the audit`);
    assert.is(node.attributes['k8s.api.stability'], 'stable');
    assert.match(String(node.attributes['k8s.api.operation_id']), /^(create|read|replace|patch|list|delete)[A-Z]/, r.label);
  }
  const apply = await runCli(['--trace', scenario.applyRequest.traceId, '--json', '--endpoint', p.query]);
  assert.is(annotated((JSON.parse(apply.stdout) as { root: TreeNode }).root)[0]!.attributes['k8s.api.operation_id'], want['create']);
});

test('a missing api_spec file is a config error naming the file', async () => {
  const dir = tempDir('kc-api-spec-');
  const r = await runCli(['start', '--config', 'collector-config/embedded.yaml'], { env: { ...process.env, KC_DATA_DIR: dir.dir, KC_API_SPEC: '/nonexistent/swagger.json', KC_OTLP_GRPC_ENDPOINT: '127.0.0.1:0', KC_OTLP_HTTP_ENDPOINT: '127.0.0.1:0', KC_AUDIT_WEBHOOK_ENDPOINT: '127.0.0.1:0', KC_QUERY_ENDPOINT: '127.0.0.1:0' } });
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /api_spec: .*\/nonexistent\/swagger\.json/);
  dir.cleanup();
});

test.run();
