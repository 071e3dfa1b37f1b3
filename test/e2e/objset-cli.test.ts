import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TreeNode } from '@kube-correlate/correlator';
import { generateDeploymentScenario } from '@kube-correlate/fixtures';
import { encodeTraceRequest } from '@kube-correlate/otlp';
import { eventList, postJson, runCli, startPipeline, waitForTree, type TestPipeline } from '../harness/index.js';
import { scenarioSetTrace } from '../harness/objset-order.js';

/** Object sets through the real pipeline and the real CLI: --object and --objset, text and JSON. */
let p: TestPipeline;
const scenario = generateDeploymentScenario({ seed: 77 });
test.before(async () => {
  p = await startPipeline({ settleAfter: '150ms', pendingAuditTtl: '300ms' });
  const res = await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceRequest(scenario.spans) });
  assert.is(res.status, 200);
  assert.is((await postJson(p.audit, eventList(scenario.auditEvents))).status, 200);
  for (const r of scenario.requests) await waitForTree(p.query, r.traceId, r.spans.length, true);
});
test.after(async () => {
  await p.stop();
});

const objects = (n: TreeNode): string[] => [...(n.audit ? [] : n.attributes['k8s.object.kind'] ? [String(n.attributes['k8s.object.kind'])] : []), ...n.children.flatMap(objects)];

test('--object deployment/default/web --json: Deployment -> ReplicaSet -> 3 Pods, each request linked to its trace', async () => {
  const r = await runCli(['--object', 'deployment/default/web', '--json', '--endpoint', p.query]);
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { traceId: string; objectSetId: string; window: { start: string; end: string }; chain: unknown[]; root: TreeNode };
  assert.is(out.objectSetId, scenario.deploymentUid);
  assert.is(out.traceId, scenarioSetTrace(scenario), 'the trace of the window the scenario ran in');
  assert.equal(out.window, { start: '2025-11-21T10:00:00.000Z', end: '2025-11-21T11:00:00.000Z' });
  assert.equal(out.chain, [{ ...out.window, requests: 10, traceIds: [out.traceId] }]);
  assert.equal(objects(out.root), ['Deployment', 'ReplicaSet', 'Pod', 'Pod', 'Pod']);
  const linked = JSON.stringify(out.root);
  for (const req of scenario.requests) assert.ok(linked.includes(req.traceId), `${req.label} is linked`);
  const byId = await runCli(['--objset', scenario.deploymentUid, '--json', '--endpoint', p.query]);
  assert.equal(JSON.parse(byId.stdout), out);
});

test('the text form names the set, the objects and the requests with their audit lines', async () => {
  const r = await runCli(['--object', 'Deployment/default/web', '--endpoint', p.query]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, `object set ${scenario.deploymentUid}  window 2025-11-21T10:00:00Z to 2025-11-21T11:00:00Z  trace ${scenarioSetTrace(scenario)}  5 objects  10 requests\n`);
  assert.match(r.stdout, `chain: 1 window, oldest first (--window <time> shows another, --window all every one)\n▶ 2025-11-21T10:00:00Z  10 requests  trace ${scenarioSetTrace(scenario)}\n`);
  assert.match(r.stdout, /^object set of Deployment default\/web  /m);
  assert.match(r.stdout, /├─ create deployments  UNSET  [\d.]+ms  kube-apiserver-audit/);
  assert.match(r.stdout, /audit  create  deployments  default\/web  user=kubernetes-admin/);
  assert.match(r.stdout, /link → trace [0-9a-f]{32} span [0-9a-f]{16}: POST \/apis\/apps\/v1\/namespaces\/\{:namespace\}\/deployments/);
});

test('exit codes: unknown object or set 1, malformed --object 2', async () => {
  const missing = await runCli(['--object', 'deployment/default/nope', '--endpoint', p.query]);
  assert.is(missing.code, 1);
  assert.is(missing.stderr, 'correlate: object deployment/default/nope not found\n');
  const noSet = await runCli(['--objset', '00000000-0000-4000-8000-000000000001', '--endpoint', p.query]);
  assert.is(noSet.code, 1);
  const bad = await runCli(['--object', 'deployment', '--endpoint', p.query]);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, 'want <kind>/<namespace>/<name>');
  const badWindow = await runCli(['--object', 'deployment/default/web', '--window', 'yesterday', '--endpoint', p.query]);
  assert.is(badWindow.code, 2);
  assert.is(badWindow.stderr, 'correlate: invalid --window "yesterday": want a time inside the window (e.g. 2026-12-02T16:30:00Z) or "all"\n');
  const windowWithTrace = await runCli(['--trace', scenario.applyRequest.traceId, '--window', 'all', '--endpoint', p.query]);
  assert.is(windowWithTrace.code, 2);
  assert.match(windowWithTrace.stderr, '--window goes with --objset or --object');
});

test('--window: a window without requests shows the set\'s root and its chain; all shows every window', async () => {
  const empty = await runCli(['--objset', scenario.deploymentUid, '--window', '2025-11-21T12:30:00Z', '--json', '--endpoint', p.query]);
  assert.is(empty.code, 0, empty.stderr);
  const out = JSON.parse(empty.stdout) as { window: { start: string }; chain: unknown[]; root: TreeNode };
  assert.is(out.window.start, '2025-11-21T12:00:00.000Z');
  assert.is(out.root.name, 'object set of Deployment default/web');
  assert.equal(out.root.children, []);
  assert.is(out.chain.length, 1);
  const all = await runCli(['--objset', scenario.deploymentUid, '--window', 'all', '--endpoint', p.query]);
  assert.is(all.code, 0, all.stderr);
  assert.match(all.stdout, `object set ${scenario.deploymentUid}  every window  5 objects  10 requests\n`);
  const viaApi = await fetch(`${p.query}/api/v1/objsets/${scenario.deploymentUid}?window=soon`);
  assert.is(viaApi.status, 400);
  assert.match(((await viaApi.json()) as { error: string }).error, 'invalid window "soon"');
});

test.run();
