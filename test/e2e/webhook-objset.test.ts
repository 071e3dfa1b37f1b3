import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEvent } from '@kube-correlate/audit';
import type { TreeNode } from '@kube-correlate/correlator';
import { WebhookServer } from '@kube-correlate/webhook';
import { eventList, postJson, reported, runCli, startPipeline, tempDir, waitFor, type TestPipeline } from '../harness/index.js';

/**
 * The webhook and the correlator agree: what `correlate webhook` writes (the objsetid annotation
 * on a root object, `<webhook name>/objectSetID` as an audit annotation, no patch at all on an
 * owned object) is what the pipeline groups by. kube-apiserver is played by this test: it calls the real
 * webhook over HTTPS, applies the JSONPatch, and sends the audit events it would write.
 */
const WEBHOOK_NAME = 'kube-correlate.trace.kubernetes.io'; // as deploy/base/mutating-webhook.yaml names it
const tmp = tempDir('kc-webhook-objset-');
let webhook: WebhookServer;
let p: TestPipeline;
let ca: string;

test.before(reported('start the webhook and the pipeline', async () => {
  const cert = join(tmp.dir, 'tls.crt');
  const key = join(tmp.dir, 'tls.key');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=kube-correlate-webhook', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`openssl is required to make the webhook's test certificate: ${r.error?.message ?? r.stderr}`);
  ca = readFileSync(cert, 'utf8');
  webhook = new WebhookServer({ certFile: cert, keyFile: key, port: 0, host: '127.0.0.1', defaultMetrics: false });
  await webhook.start();
  p = await startPipeline({ settleAfter: '100ms', pendingAuditTtl: '200ms' });
}));
test.after(reported('stop', async () => {
  await webhook?.close();
  await p?.stop();
  tmp.cleanup();
}));

type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };
/** The API group of an object: `apps` of `apps/v1`, '' (core) of `v1`. */
const groupOf = (o: Obj): string => (String(o['apiVersion']).includes('/') ? String(o['apiVersion']).split('/')[0]! : '');
interface Review { response: { uid: string; allowed: boolean; patch?: string; patchType?: string; auditAnnotations?: Record<string, string> } }

/** kube-apiserver's call: the AdmissionReview over HTTPS with the request's trace context headers. */
function admit(operation: 'CREATE' | 'UPDATE', resource: string, object: Obj, headers: Record<string, string>): Promise<Review> {
  const group = groupOf(object);
  const body = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid: randomUUID(), kind: { group, version: 'v1', kind: object['kind'] }, resource: { group, version: 'v1', resource },
      name: object.metadata['name'], namespace: 'default', operation, userInfo: { username: 'kubernetes-admin' }, object, oldObject: null, dryRun: false,
    },
  });
  const { port } = webhook.address!;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text) as Review) : reject(new Error(`webhook answered ${res.statusCode}: ${text}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Applies the response's JSONPatch (add/replace of annotations) as kube-apiserver would. */
function applied(object: Obj, review: Review): Obj {
  const out = structuredClone(object);
  if (!review.response.patch) return out;
  for (const op of JSON.parse(Buffer.from(review.response.patch, 'base64').toString()) as Array<{ op: string; path: string; value: unknown }>) {
    const parts = op.path.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
    let cur = out as Record<string, unknown>;
    for (const t of parts.slice(0, -1)) cur = cur[t] as Record<string, unknown>;
    cur[parts[parts.length - 1]!] = op.value;
  }
  return out;
}

/** The audit events kube-apiserver writes for a create: RequestReceived, ResponseComplete with the stored object and the webhook's audit annotations. */
function auditOf(resource: string, stored: Obj, review: Review, at: Date): AuditEvent[] {
  const auditID = randomUUID();
  const group = groupOf(stored);
  const common = {
    kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'RequestResponse', auditID, verb: 'create',
    requestURI: `${group ? `/apis/${group}/v1` : '/api/v1'}/namespaces/default/${resource}`, user: { username: 'kubernetes-admin' }, userAgent: 'kubectl/v1.34.1',
    objectRef: { resource, namespace: 'default', name: String(stored.metadata['name']), apiGroup: group, apiVersion: 'v1' },
    requestReceivedTimestamp: at.toISOString(),
  };
  const annotations = Object.fromEntries(Object.entries(review.response.auditAnnotations ?? {}).map(([k, v]) => [`${WEBHOOK_NAME}/${k}`, v]));
  return [
    { ...common, stage: 'RequestReceived', stageTimestamp: at.toISOString() },
    { ...common, stage: 'ResponseComplete', stageTimestamp: new Date(at.getTime() + 5).toISOString(), responseStatus: { metadata: {}, code: 201 }, responseObject: stored, annotations },
  ] as unknown as AuditEvent[];
}

const traceparent = () => `00-${randomUUID().replace(/-/g, '')}-${randomUUID().replace(/-/g, '').slice(0, 16)}-01`;
const kinds = (n: TreeNode): string[] => [...(n.audit ? [] : n.attributes['k8s.object.kind'] ? [String(n.attributes['k8s.object.kind'])] : []), ...n.children.flatMap(kinds)];

test('a Deployment admitted by the webhook, its ReplicaSet and Pod (never patched) form the object set the webhook named', async () => {
  const now = new Date(Date.now() - 60_000);
  const deploymentUid = randomUUID();
  const deployment: Obj = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'default' }, spec: { replicas: 1 } };
  const tp = traceparent();
  const dReview = await admit('CREATE', 'deployments', deployment, { traceparent: tp });
  assert.is(dReview.response.allowed, true);
  const patched = applied(deployment, dReview);
  const ann = patched.metadata['annotations'] as Record<string, string>;
  assert.is(ann['trace.kubernetes.io/span'], tp, 'the request\'s trace context on the object');
  const setId = ann['trace.kubernetes.io/objsetid']!;
  assert.match(setId, /^[0-9a-f-]{36}$/, 'a root object starts a set');
  assert.is(dReview.response.auditAnnotations?.['objectSetID'], setId);
  assert.is((await admit('CREATE', 'deployments', patched, { traceparent: tp })).response.patch, undefined, 'a second invocation changes nothing');

  // The deployment controller creates the ReplicaSet, owned by the Deployment, in the set's context.
  // An owned object is never patched (its controller owns its annotations): the set reaches the
  // correlator through the audit annotation and the ownerReference.
  const rs: Obj = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web-5d8f7c', namespace: 'default', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: deploymentUid, controller: true }] }, spec: { replicas: 1 } };
  const rsReview = await admit('CREATE', 'replicasets', rs, { traceparent: traceparent(), baggage: `objectSetID=${setId}` });
  assert.is(rsReview.response.patch, undefined, 'a controller-owned object is not patched');
  assert.is(rsReview.response.auditAnnotations?.['objectSetID'], setId, 'the baggage names the set in the audit event');
  const rsPatched = applied(rs, rsReview);

  // The replicaset controller creates a Pod. Controllers send no trace context today, and a Pod
  // does not get the Deployment's annotations: it joins the set through its ownerReference alone.
  const rsUid = randomUUID();
  const pod: Obj = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-5d8f7c-abcde', namespace: 'default', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f7c', uid: rsUid, controller: true }] }, spec: { containers: [{ name: 'web', image: 'nginx' }] } };
  const podReview = await admit('CREATE', 'pods', pod, { traceparent: traceparent() });
  assert.is(podReview.response.patch, undefined, 'a Pod of a ReplicaSet is not patched');
  assert.not.ok('objectSetID' in (podReview.response.auditAnnotations ?? {}), 'no set is known from the request itself');

  const stored = (o: Obj, uid: string): Obj => ({ ...o, metadata: { ...o.metadata, uid, creationTimestamp: now.toISOString() } });
  const events = [
    ...auditOf('deployments', stored(patched, deploymentUid), dReview, now),
    ...auditOf('replicasets', stored(rsPatched, rsUid), rsReview, new Date(now.getTime() + 50)),
    ...auditOf('pods', stored(applied(pod, podReview), randomUUID()), podReview, new Date(now.getTime() + 100)),
  ];
  assert.is((await postJson(p.audit, eventList(events))).status, 200);
  const out = await waitFor('the object set in the store', async () => {
    const r = await runCli(['--object', 'deployment/default/web', '--json', '--endpoint', p.query]);
    const tree = r.code === 0 ? (JSON.parse(r.stdout) as { objectSetId: string; root: TreeNode }) : undefined;
    return tree && kinds(tree.root).length === 3 ? tree : undefined;
  }, 15_000);
  assert.is(out.objectSetId, setId, 'the set the webhook named, not the Deployment\'s uid');
  assert.equal(kinds(out.root).sort(), ['Deployment', 'Pod', 'ReplicaSet']);
});

test.run();
