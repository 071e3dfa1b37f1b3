import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { treeNodes, type RequestTree, type TreeAudit, type TreeNode } from '@kube-correlate/correlator';
import { auditIdFromKubectlLog, startControlPlane, type ControlPlane } from '../harness/kube.js';
import { ROOT, freePort, reported, runCli, spawnCorrelate, tempDir, waitFor } from '../harness/index.js';
import { stopGracefully } from '../harness/supervise.js';
import { httpCall, makeTestPki, type TestPki } from '../harness/tls.js';

/**
 * kube-apiserver v1.37.2 (test/harness/kube.ts) to `correlate start --config
 * collector-config/embedded-tls.yaml`, over TLS on both paths, with deploy/apiserver's TLS variants
 * as shipped (only their /etc/kubernetes/kube-correlate/ paths and ports swapped for this test's):
 *  - traces: tracing-config-v1-tls.yaml plus the OTEL_EXPORTER_OTLP_TRACES_* variables its comment
 *    gives; the collector's OTLP/gRPC receiver requires a client certificate, so a stored span
 *    proves kube-apiserver spoke TLS and presented its certificate;
 *  - audit: audit-webhook-kubeconfig-tls.yaml (CA, client certificate, tokenFile) to a k8saudit
 *    receiver that requires both;
 *  - reading: the CLI over TLS with the token (and refused without it).
 */
const tmp = tempDir('kc-control-plane-tls-');
let cp: ControlPlane | undefined;
let pipeline: { child: ChildProcess; exited: Promise<unknown>; stderr: () => string; query: string } | undefined;
let pki: TestPki;
let tokenFile: string;

const APISERVER_DIR = '/etc/kubernetes/kube-correlate/';

/** deploy/apiserver's file names -> this test's files. */
function localPath(shipped: string): string {
  assert.ok(shipped.startsWith(APISERVER_DIR), `${shipped} is under ${APISERVER_DIR} (where deploy/README.md puts the files)`);
  const name = shipped.slice(APISERVER_DIR.length);
  const map: Record<string, string> = { 'collector-ca.crt': pki.ca, 'collector-client.crt': pki.clientCert, 'collector-client.key': pki.clientKey, 'collector-token': tokenFile };
  assert.ok(map[name], `a test file for ${name}`);
  return map[name]!;
}

/** The `env:` list that tracing-config-v1-tls.yaml's comment tells to add to kube-apiserver. */
function documentedTracingEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const name = /^#\s+- name: (OTEL_\w+)$/.exec(lines[i]!);
    const value = /^#\s+value: (\S+)$/.exec(lines[i + 1] ?? '');
    if (name && value) env[name[1]!] = value[1]!;
  }
  return env;
}

test.before(reported('setup', async () => {
  pki = makeTestPki(join(tmp.dir, 'pki'));
  tokenFile = join(tmp.dir, 'token');
  writeFileSync(tokenFile, `${'kc-test-token-'.padEnd(48, 'x')}\n`, { mode: 0o600 });

  const [grpc, http, audit, query] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const { child, exited } = spawnCorrelate(['start', '--config', 'collector-config/embedded-tls.yaml'], {
    env: {
      KC_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`, KC_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`,
      KC_AUDIT_WEBHOOK_ENDPOINT: `127.0.0.1:${audit}`, KC_QUERY_ENDPOINT: `127.0.0.1:${query}`,
      KC_TLS_CERT_FILE: pki.serverCert, KC_TLS_KEY_FILE: pki.serverKey, KC_TLS_CLIENT_CA_FILE: pki.ca, KC_TOKEN_FILE: tokenFile,
      KC_DATA_DIR: join(tmp.dir, 'data'), KC_SETTLE_AFTER: '1s', LOG_LEVEL: 'warn',
    },
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d).slice(-50_000)));
  pipeline = { child, exited, stderr: () => err, query: `https://127.0.0.1:${query}` };
  await waitFor('correlate start to be running', () => (err.includes('kube-correlate is running') ? true : undefined), 120_000)
    .catch((e: Error) => { throw new Error(`${e.message}; stderr:\n${err}`); });
  assert.match(err, `query API      https://127.0.0.1:${query}`);

  // deploy/apiserver's TLS variants, paths and ports swapped.
  const kubeconfig = parseYaml(readFileSync(join(ROOT, 'deploy/apiserver/audit-webhook-kubeconfig-tls.yaml'), 'utf8')) as {
    clusters: Array<{ cluster: { server: string; 'certificate-authority': string } }>;
    users: Array<{ user: { 'client-certificate': string; 'client-key': string; tokenFile: string } }>;
  };
  const cluster = kubeconfig.clusters[0]!.cluster;
  const server = new URL(cluster.server);
  assert.is(server.protocol, 'https:');
  server.port = String(audit);
  cluster.server = server.href;
  cluster['certificate-authority'] = localPath(cluster['certificate-authority']);
  const user = kubeconfig.users[0]!.user;
  user['client-certificate'] = localPath(user['client-certificate']);
  user['client-key'] = localPath(user['client-key']);
  user.tokenFile = localPath(user.tokenFile);
  const kubeconfigPath = join(tmp.dir, 'audit-webhook-kubeconfig-tls.yaml');
  writeFileSync(kubeconfigPath, stringifyYaml(kubeconfig));

  const tracingText = readFileSync(join(ROOT, 'deploy/apiserver/tracing-config-v1-tls.yaml'), 'utf8');
  const tracing = parseYaml(tracingText) as { endpoint: string };
  assert.is(tracing.endpoint.split(':')[0], '127.0.0.1');
  tracing.endpoint = `127.0.0.1:${grpc}`;
  const tracingPath = join(tmp.dir, 'tracing-config-v1-tls.yaml');
  writeFileSync(tracingPath, stringifyYaml(tracing));
  const env = Object.fromEntries(Object.entries(documentedTracingEnv(tracingText)).map(([k, v]) => [k, localPath(v)]));
  assert.equal(Object.keys(env).sort(), ['OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE', 'OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE', 'OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY']);

  cp = await startControlPlane({
    // Turns on the audit policy and batch flags; the kubeconfig flag is overridden below.
    auditWebhookUrl: `https://127.0.0.1:${audit}/`,
    apiserverArgs: ['--tracing-config-file', tracingPath, '--audit-webhook-config-file', kubeconfigPath],
    apiserverEnv: env,
  });
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

test('kube-apiserver sends spans over mutual TLS and audit events over mutual TLS with the token; correlate reads the joined tree over TLS with the token', async () => {
  const ns = await cp!.kubectl(['create', 'namespace', 'tls-demo', '-o', 'json']);
  assert.is(ns.code, 0, ns.stderr);
  const cm = await cp!.kubectl(['-n', 'tls-demo', 'create', 'configmap', 'over-tls', '--from-literal=k=v', '-v=8']);
  assert.is(cm.code, 0, cm.stderr);
  const auditId = auditIdFromKubectlLog(cm.stderr, 'POST', '/api/v1/namespaces/tls-demo/configmaps');
  assert.ok(auditId, `no Audit-Id in kubectl -v=8 output:\n${cm.stderr.slice(-3000)}`);

  const args = ['--endpoint', pipeline!.query, '--cacert', pki.ca, '--token-file', tokenFile, '--audit-id', auditId, '--json'];
  const tree = await waitFor(`the request tree of ${auditId} with spans and its audit event, read with correlate over TLS`, async () => {
    const r = await runCli(args);
    if (r.code !== 0) return undefined;
    const t = JSON.parse(r.stdout) as RequestTree;
    // kube-apiserver exports a trace's spans in batches (the route span ends last and may come in a later
    // one) and a tree is queryable once settled: wait for the route span, not just any span.
    return treeNodes(t.root).some((n) => n.name === 'POST /api/v1/namespaces/{:namespace}/configmaps') && audits(t.root).some((a) => a.auditID === auditId) ? t : undefined;
  }, 120_000).catch((e: Error) => { throw new Error(`${e.message}; correlate start stderr:\n${pipeline!.stderr().slice(-4000)}`); });
  assert.ok(treeNodes(tree.root).every((n) => n.service === 'apiserver'), 'the spans came from kube-apiserver over TLS');
  const a = audits(tree.root).find((x) => x.auditID === auditId)!;
  assert.is(a.verb, 'create');
  assert.is(a.user, 'kubernetes-admin');

  // Without the token, and without TLS, the same query gets nothing.
  const noToken = await runCli(['--endpoint', pipeline!.query, '--cacert', pki.ca, '--audit-id', auditId]);
  assert.is(noToken.code, 2);
  assert.is(noToken.stderr, 'correlate: query API answered 401: authentication required: send "authorization: Bearer <token>" (give the token with --token-file <file> or --token <token>)\n');
  const plain = await httpCall(pipeline!.query.replace('https:', 'http:') + `/api/v1/audit/${auditId}`, { token: readFileSync(tokenFile, 'utf8').trim() });
  assert.ok(plain.error, `plaintext refused: ${JSON.stringify(plain)}`);
});

test.run();
