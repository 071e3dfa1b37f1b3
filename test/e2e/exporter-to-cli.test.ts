import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SpanKind as ApiSpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { TreeNode } from '@kube-correlate/correlator';
import { ROOT, eventList, freePort, postJson, runCli, startPipeline, waitForTree, type TestPipeline } from '../harness/index.js';

let p: TestPipeline;
test.before(async () => {
  p = await startPipeline();
});
test.after(async () => {
  await p.stop();
});

const AUDIT_ID = '5f1d2c3b-9a8e-4f70-b6d5-1e2f3a4b5c6d';

/** Sends one kube-apiserver-shaped request through the real OTLP/gRPC exporter; returns its trace id. */
async function exportRequest(): Promise<string> {
  const exporter = new OTLPTraceExporter({ url: `http://${p.grpc}` });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'apiserver' }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('k8s.io/apiserver');
  const t0 = Date.now();
  const at = (ms: number) => new Date(t0 + ms);
  const root = tracer.startSpan('POST /api/v1/namespaces/{:namespace}/configmaps', {
    kind: ApiSpanKind.SERVER,
    startTime: at(0),
    attributes: { 'http.method': 'POST', 'http.target': '/api/v1/namespaces/default/configmaps', 'http.status_code': 201, 'audit-id': AUDIT_ID },
  });
  const rootCtx = trace.setSpan(context.active(), root);
  const handler = tracer.startSpan('Create', { startTime: at(1), attributes: { 'audit-id': AUDIT_ID, verb: 'create', resource: 'configmaps' } }, rootCtx);
  handler.addEvent('About to store object in database');
  const hctx = trace.setSpan(rootCtx, handler);
  const webhook = tracer.startSpan('Call mutating webhook', { startTime: at(2), kind: ApiSpanKind.CLIENT, attributes: { webhook: 'stamp.kube-correlate.io', operation: 'CREATE' } }, hctx);
  webhook.end(at(4));
  const etcd = tracer.startSpan('Create etcd3', { startTime: at(5), attributes: { 'audit-id': AUDIT_ID, key: '/registry/configmaps/default/cm' } }, hctx);
  const txn = tracer.startSpan('etcdserverpb.KV/Txn', { startTime: at(6), kind: ApiSpanKind.CLIENT }, trace.setSpan(hctx, etcd));
  txn.end(at(8));
  etcd.end(at(9));
  handler.setStatus({ code: SpanStatusCode.OK });
  handler.end(at(10));
  root.end(at(11));
  await provider.forceFlush();
  await provider.shutdown();
  return root.spanContext().traceId;
}

function auditEvent(stage: string, extra: Record<string, unknown> = {}) {
  return {
    kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'RequestResponse', auditID: AUDIT_ID, stage,
    requestURI: '/api/v1/namespaces/default/configmaps?fieldManager=kubectl-client-side-apply', verb: 'create',
    user: { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] },
    sourceIPs: ['172.18.0.1'], userAgent: 'kubectl/v1.34.1 (linux/amd64) kubernetes/93248f9',
    objectRef: { resource: 'configmaps', namespace: 'default', name: 'cm', apiVersion: 'v1' },
    requestReceivedTimestamp: '2026-11-21T05:49:15.100000Z', stageTimestamp: stage === 'RequestReceived' ? '2026-11-21T05:49:15.100000Z' : '2026-11-21T05:49:15.130000Z',
    ...extra,
  };
}

const shape = (n: TreeNode): unknown => ({ name: n.name, children: n.children.map(shape) });

test('a request exported by exporter-trace-otlp-grpc plus its audit EventList gives the tree with the audit on its root', async () => {
  const traceId = await exportRequest();
  const posted = await postJson(p.audit, eventList([auditEvent('RequestReceived'), auditEvent('ResponseComplete', { responseStatus: { metadata: {}, code: 201 } })]));
  assert.is(posted.status, 200, JSON.stringify(posted.body));
  await waitForTree(p.query, traceId, 5);

  const r = await runCli(['--trace', traceId, '--json', '--endpoint', p.query]);
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { traceId: string; root: TreeNode };
  assert.is(out.traceId, traceId);
  assert.equal(out.root.audit && {
    auditID: out.root.audit.auditID, verb: out.root.audit.verb, user: out.root.audit.user, userAgent: out.root.audit.userAgent, objectRef: out.root.audit.objectRef, code: out.root.audit.code,
  }, {
    auditID: AUDIT_ID, verb: 'create', user: 'kubernetes-admin', userAgent: 'kubectl/v1.34.1 (linux/amd64) kubernetes/93248f9',
    objectRef: { resource: 'configmaps', namespace: 'default', name: 'cm', apiVersion: 'v1' }, code: 201,
  });
  assert.equal(Object.keys(out.root.audit!.stages).sort(), ['RequestReceived', 'ResponseComplete']);
  assert.equal(shape(out.root), {
    name: 'POST /api/v1/namespaces/{:namespace}/configmaps',
    children: [{ name: 'Create', children: [{ name: 'Call mutating webhook', children: [] }, { name: 'Create etcd3', children: [{ name: 'etcdserverpb.KV/Txn', children: [] }] }] }],
  });
  // The contract's fields on every node.
  const create = out.root.children[0]!;
  for (const k of ['spanId', 'parentSpanId', 'name', 'service', 'startTimeUnixNano', 'durationNanos', 'attributes', 'children']) assert.ok(k in create, k);
  assert.is(create.parentSpanId, out.root.spanId);
  assert.is(create.service, 'apiserver');
  assert.is(create.attributes.verb, 'create');
  assert.is(create.events?.[0]?.name, 'About to store object in database');
  assert.is(create.status.code, 'OK');
  assert.is(out.root.attributes['http.status_code'], 201);

  // The text tree shows the same request with its audit line.
  const text = await runCli(['--trace', traceId, '--endpoint', p.query]);
  assert.is(text.code, 0);
  assert.match(text.stdout, `trace ${traceId}  5 spans  1 audited request`);
  assert.match(text.stdout, /POST \/api\/v1\/namespaces\/\{:namespace\}\/configmaps  UNSET  [\d.]+(µs|ms)  apiserver/);
  assert.match(text.stdout, `audit  create  configmaps  default/cm  user=kubernetes-admin  ua="kubectl/v1.34.1 (linux/amd64) kubernetes/93248f9"  code=201  id=${AUDIT_ID}`);
  assert.match(text.stdout, /└─ etcdserverpb\.KV\/Txn/);

  // --audit-id finds the same tree.
  const byAudit = await runCli(['--audit-id', AUDIT_ID, '--json', '--endpoint', p.query]);
  assert.is(byAudit.code, 0);
  assert.equal(JSON.parse(byAudit.stdout), out);

  // --data reads the store directly, with the same answer.
  const direct = await runCli(['--trace', traceId, '--json', '--data', p.dataDir]);
  assert.is(direct.code, 0, direct.stderr);
  assert.equal(JSON.parse(direct.stdout), out);
});

test('exit codes: 1 not found, 2 usage and connection errors, each with a one-line reason', async () => {
  const missing = await runCli(['--trace', '0af7651916cd43dd8448eb211c80319c', '--endpoint', p.query]);
  assert.is(missing.code, 1);
  assert.is(missing.stderr, 'correlate: trace 0af7651916cd43dd8448eb211c80319c not found\n');
  const badId = await runCli(['--trace', 'xyz', '--endpoint', p.query]);
  assert.is(badId.code, 2);
  assert.is(badId.stderr, 'correlate: invalid trace id "xyz": want 32 hex characters\n');
  const port = await freePort();
  const noServer = await runCli(['--trace', '0af7651916cd43dd8448eb211c80319c', '--endpoint', `http://127.0.0.1:${port}`]);
  assert.is(noServer.code, 2);
  assert.match(noServer.stderr, `correlate: cannot reach the query API at http://127.0.0.1:${port}: ECONNREFUSED`);
  assert.is(noServer.stderr.trim().split('\n').length, 1);
  // An endpoint that is not an http(s) URL: one line naming the flag, exit 2 (it used to reach fetch).
  for (const [args, want] of [
    [['--endpoint', 'ftp://127.0.0.1:4320'], 'correlate: invalid --endpoint "ftp://127.0.0.1:4320": ftp is not http or https; want a URL such as http://127.0.0.1:4320\n'],
    [['--endpoint', '127.0.0.1:4320'], 'correlate: invalid --endpoint "127.0.0.1:4320": want an http:// or https:// URL such as http://127.0.0.1:4320 (add the scheme: http://127.0.0.1:4320)\n'],
    [['--endpoint', 'localhost:4320'], 'correlate: invalid --endpoint "localhost:4320": want an http:// or https:// URL such as http://127.0.0.1:4320 (add the scheme: http://localhost:4320)\n'],
  ] as const) {
    const r = await runCli(['--trace', '0af7651916cd43dd8448eb211c80319c', ...args]);
    assert.is(r.code, 2, args.join(' '));
    assert.is(r.stderr, want);
  }
  const replayBad = await runCli(['replay', '--otlp', join(ROOT, 'package.json'), '--otlp-endpoint', 'unix:/run/x.sock']);
  assert.is(replayBad.code, 2);
  assert.is(replayBad.stderr, 'correlate: invalid --otlp-endpoint "unix:/run/x.sock": unix is not http or https; want a URL such as http://127.0.0.1:4318\n');
  const unknownFlag = await runCli(['--tracee', 'x']);
  assert.is(unknownFlag.code, 2);
  const both = await runCli(['--trace', '0af7651916cd43dd8448eb211c80319c', '--audit-id', 'x', '--endpoint', p.query]);
  assert.is(both.code, 2);
  const missingAudit = await runCli(['--audit-id', 'never-seen', '--endpoint', p.query]);
  assert.is(missingAudit.code, 1);
  const help = await runCli(['--help']);
  assert.is(help.code, 0);
  assert.match(help.stdout, '--trace <id>');
});

test.run();
