import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { treeNodes, type RequestTree, type TreeAudit, type TreeNode } from '@kube-correlate/correlator';
import { KUBERNETES_VERSION, MUTATING_WEBHOOK_MANIFEST, auditIdFromKubectlLog, startControlPlane, type ControlPlane } from '../harness/kube.js';
import { freePort, reported, runCli, spawnCorrelate, tempDir, waitFor } from '../harness/index.js';
import { stopGracefully } from '../harness/supervise.js';

/**
 * Smoke test of the real control plane (test/harness/kube.ts): etcd, kube-apiserver and
 * kube-controller-manager v1.37.2 built from the Go module proxy, tracing and the audit webhook
 * pointed at `correlate start` (the embedded pipeline, its own process). kubectl creates a
 * namespace and applies a Deployment as admin; the pipeline must hold the apply's trace with its
 * audit event joined, and the deployment controller's ReplicaSet create, as its service account.
 */
const tmp = tempDir('kc-control-plane-');
let cp: ControlPlane | undefined;
let pipeline: { child: ChildProcess; exited: Promise<unknown>; stderr: () => string; query: string } | undefined;

const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: { app: web }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - name: web
          image: nginx:1.27
`;

test.before(reported('setup', async () => {
  const [grpc, http, audit, query] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const { child, exited } = spawnCorrelate(['start'], {
    env: {
      KC_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`, KC_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`,
      KC_AUDIT_WEBHOOK_ENDPOINT: `127.0.0.1:${audit}`, KC_QUERY_ENDPOINT: `127.0.0.1:${query}`,
      KC_DATA_DIR: join(tmp.dir, 'data'), KC_SETTLE_AFTER: '1s', LOG_LEVEL: 'warn',
    },
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d).slice(-50_000)));
  pipeline = { child, exited, stderr: () => err, query: `http://127.0.0.1:${query}` };
  await waitFor('correlate start to be running', () => (err.includes('kube-correlate is running') ? true : undefined), 120_000)
    .catch((e: Error) => { throw new Error(`${e.message}; stderr:\n${err}`); });

  cp = await startControlPlane({ tracingEndpoint: `127.0.0.1:${grpc}`, auditWebhookUrl: `http://127.0.0.1:${audit}/` });
  process.stdout.write(`control plane ready in ${(cp.readyMs / 1000).toFixed(1)} s (${cp.server})\n`);
}));

test.after(async () => {
  await cp?.stop();
  if (pipeline) {
    await stopGracefully(pipeline.child, pipeline.exited);
  }
  tmp.cleanup();
});

const audits = (root: TreeNode): TreeAudit[] => treeNodes(root).flatMap((n) => (n.audit ? [n.audit] : []));

async function queryJson<T>(path: string): Promise<T | undefined> {
  const res = await fetch(`${pipeline!.query}${path}`, { signal: AbortSignal.timeout(10_000) });
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

test('/version and kubectl say v1.37.2', async () => {
  const r = await cp!.request('/version');
  assert.is(r.status, 200, r.body);
  const v = JSON.parse(r.body) as { gitVersion: string; major: string; minor: string };
  assert.is(v.gitVersion, KUBERNETES_VERSION);
  assert.is(v.major, '1');
  assert.is(v.minor, '37');
  const k = await cp!.kubectl(['version', '-o', 'json']);
  assert.is(k.code, 0, k.stderr);
  const kv = JSON.parse(k.stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
  assert.is(kv.clientVersion.gitVersion, KUBERNETES_VERSION);
  assert.is(kv.serverVersion.gitVersion, KUBERNETES_VERSION);
});

test('alice (no groups) is forbidden, admin is not: RBAC and client certificates work', async () => {
  const denied = await cp!.kubectl(['-n', 'default', 'get', 'pods'], { as: 'alice' });
  assert.is(denied.code, 1);
  assert.match(denied.stderr, 'User "alice" cannot list resource "pods"');
  const allowed = await cp!.kubectl(['-n', 'default', 'get', 'pods']);
  assert.is(allowed.code, 0, allowed.stderr);
});

test('kubectl apply of a Deployment: its trace is stored with the audit event joined; the deployment controller creates a ReplicaSet as its service account', async () => {
  const ns = await cp!.kubectl(['create', 'namespace', 'demo']);
  assert.is(ns.code, 0, ns.stderr);
  assert.is(ns.stdout.trim(), 'namespace/demo created');
  const apply = await cp!.kubectl(['apply', '-f', '-', '-v=8'], { input: DEPLOYMENT });
  assert.is(apply.code, 0, apply.stderr);
  assert.is(apply.stdout.trim(), 'deployment.apps/web created');

  // The POST that created the Deployment, as kubectl saw it: its Audit-Id response header.
  const auditId = auditIdFromKubectlLog(apply.stderr, 'POST', '/apis/apps/v1/namespaces/demo/deployments');
  assert.ok(auditId, `no Audit-Id of the POST in kubectl -v=8 output:\n${apply.stderr.slice(-4000)}`);

  // Its request tree: spans from kube-apiserver's tracing, joined with its audit event. kube-apiserver
  // exports a trace's spans in batches (the route span ends last and may come in a later one), and a
  // tree is queryable once settled, so wait for the spans asserted below as well as the audit event.
  // The same for the audit stages: the RequestReceived event (no code, no name for a create yet) and
  // the ResponseComplete one can come in different audit webhook batches (one per second).
  const expected = ['POST /apis/apps/v1/namespaces/{:namespace}/deployments', 'Create', 'Create etcd3'];
  const tree = await waitFor(`the request tree of audit ID ${auditId} with its audit event's ResponseComplete stage and the spans ${expected.join(', ')}`, async () => {
    const t = await queryJson<RequestTree>(`/api/v1/audit/${auditId!}`);
    if (!t || !audits(t.root).some((a) => a.auditID === auditId && a.stages.ResponseComplete !== undefined)) return undefined;
    const have = new Set(treeNodes(t.root).map((n) => n.name));
    return expected.every((n) => have.has(n)) ? t : undefined;
  }, 90_000);
  const names = treeNodes(tree.root).map((n) => n.name);
  assert.ok(names.includes('POST /apis/apps/v1/namespaces/{:namespace}/deployments'), `route span in ${names.join(', ')}`);
  assert.ok(names.includes('Create'), `handler span in ${names.join(', ')}`);
  assert.ok(names.some((n) => n === 'Create etcd3'), `storage span in ${names.join(', ')}`);
  assert.ok(treeNodes(tree.root).every((n) => n.service === 'apiserver'), 'every span comes from kube-apiserver');
  const route = treeNodes(tree.root).find((n) => n.name.startsWith('POST /apis/apps/v1/'))!;
  assert.is(route.attributes['audit-id'], auditId);
  const a = audits(tree.root).find((x) => x.auditID === auditId)!;
  assert.is(a.verb, 'create');
  assert.is(a.user, 'kubernetes-admin');
  assert.match(a.userAgent ?? '', new RegExp(`^kubectl/${KUBERNETES_VERSION.replace(/\./g, '\\.')} `));
  assert.is(a.code, 201);
  assert.equal([a.objectRef?.resource, a.objectRef?.namespace, a.objectRef?.name], ['deployments', 'demo', 'web']);

  // The same through the CLI, as a user reads it.
  const cli = await runCli(['--trace', tree.traceId, '--endpoint', pipeline!.query]);
  assert.is(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /audit  create  deployments  demo\/web  user=kubernetes-admin  ua="kubectl\/v1\.37\.2 [^"]*"  code=201/);

  // The deployment controller made a ReplicaSet owned by the Deployment...
  const rs = await waitFor('a ReplicaSet of demo/web', async () => {
    const r = await cp!.kubectl(['-n', 'demo', 'get', 'replicasets', '-o', 'json']);
    const items = (JSON.parse(r.stdout || '{"items":[]}') as { items: Array<{ metadata: { name: string; ownerReferences?: Array<{ kind: string; name: string }> } }> }).items;
    return items.find((i) => i.metadata.ownerReferences?.some((o) => o.kind === 'Deployment' && o.name === 'web'));
  }, 90_000);
  // ...and the pipeline holds that request, made as the controller's own service account.
  // (Its ResponseComplete stage, which has the code, may come in a later audit batch than RequestReceived.)
  const controllerCreate = await waitFor(`the deployment controller's create of ReplicaSet ${rs.metadata.name}, completed, in the object set of Deployment demo/web`, async () => {
    const set = await queryJson<RequestTree>('/api/v1/objects/Deployment/demo/web');
    return set ? audits(set.root).find((x) => x.verb === 'create' && x.objectRef?.resource === 'replicasets' && x.objectRef?.name === rs.metadata.name && x.stages.ResponseComplete !== undefined) : undefined;
  }, 90_000);
  assert.is(controllerCreate.user, 'system:serviceaccount:kube-system:deployment-controller');
  assert.is(controllerCreate.code, 201);
  // Its own request tree: the controller's request has spans too (a root trace of its own).
  const rsTree = await waitFor(`the request tree of the ReplicaSet create (${controllerCreate.auditID}) with its route span`, async () => {
    const t = await queryJson<RequestTree>(`/api/v1/audit/${controllerCreate.auditID}`);
    return t && treeNodes(t.root).some((n) => n.name === 'POST /apis/apps/v1/namespaces/{:namespace}/replicasets') ? t : undefined;
  }, 90_000);
  assert.ok(audits(rsTree.root).some((a) => a.auditID === controllerCreate.auditID), 'the ReplicaSet create joined with its audit event');
});

test('admissionWebhook: `correlate webhook` registered from deploy/base/mutating-webhook.yaml as shipped, only clientConfig swapped', async () => {
  // A control plane of its own (no tracing, no audit webhook): the first one is done.
  await cp?.stop();
  cp = await startControlPlane({ admissionWebhook: true });
  const hook = cp.webhook!;
  assert.ok(hook, 'webhook started');
  const shipped = parseYaml(readFileSync(MUTATING_WEBHOOK_MANIFEST, 'utf8')) as { metadata: unknown; webhooks: Array<Record<string, unknown>> };
  const live = JSON.parse((await cp.kubectl(['get', 'mutatingwebhookconfiguration', 'kube-correlate', '-o', 'json'])).stdout) as { webhooks: Array<Record<string, unknown>> };
  assert.is(live.webhooks.length, shipped.webhooks.length);
  for (const [i, w] of shipped.webhooks.entries()) {
    const l = live.webhooks[i]!;
    for (const key of ['name', 'rules', 'namespaceSelector', 'objectSelector', 'failurePolicy', 'timeoutSeconds', 'sideEffects', 'reinvocationPolicy', 'matchPolicy', 'admissionReviewVersions']) {
      assert.equal(l[key], w[key], `${String(w['name'])}: ${key} as shipped`);
    }
    assert.equal(l['clientConfig'], { url: `${hook.url}/mutate`, caBundle: readFileSync(cp.pki.caCert).toString('base64') });
  }
  // A Deployment (a root the shipped rules match) gets the webhook's annotations; a ConfigMap (not matched) does not.
  assert.is((await cp.kubectl(['create', 'namespace', 'hooked'])).code, 0);
  const d = await cp.kubectl(['-n', 'hooked', 'create', 'deployment', 'd1', '--image=registry.invalid/app:1', '-o', 'json']);
  assert.is(d.code, 0, d.stderr);
  const dAnnotations = (JSON.parse(d.stdout) as { metadata: { annotations?: Record<string, string> } }).metadata.annotations ?? {};
  assert.match(dAnnotations['trace.kubernetes.io/objsetid'] ?? '', /^[0-9a-f-]{36}$/);
  const cm = await cp.kubectl(['-n', 'hooked', 'create', 'configmap', 'c1', '--from-literal=k=v', '-o', 'json']);
  assert.is(cm.code, 0, cm.stderr);
  assert.not.ok((JSON.parse(cm.stdout) as { metadata: { annotations?: Record<string, string> } }).metadata.annotations?.['trace.kubernetes.io/objsetid']);
});

test.run();
