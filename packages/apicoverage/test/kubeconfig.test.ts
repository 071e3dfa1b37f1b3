import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KubeconfigError, fetchSpec, loadKubeconfig, parseKubeconfig } from '../src/index.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const CA = '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n';

const KIND = `apiVersion: v1
kind: Config
current-context: kind-kind
preferences: {}
clusters:
- cluster:
    certificate-authority-data: ${b64(CA)}
    server: https://127.0.0.1:38271/
  name: kind-kind
- cluster:
    server: https://10.0.0.1:6443
    insecure-skip-tls-verify: true
    tls-server-name: kubernetes.default
  name: other
contexts:
- context:
    cluster: kind-kind
    user: kind-kind
  name: kind-kind
- context:
    cluster: other
    user: token-user
    namespace: dev
  name: other
- context:
    cluster: other
    user: exec-user
  name: exec
- context:
    cluster: other
    user: half-cert
  name: half
users:
- name: kind-kind
  user:
    client-certificate-data: ${b64(CERT)}
    client-key-data: ${b64(KEY)}
- name: token-user
  user:
    token: abc.def
- name: exec-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: aws
- name: half-cert
  user:
    client-certificate-data: ${b64(CERT)}
`;

test('current context: server, CA and client certificate from inline data', () => {
  const t = parseKubeconfig(KIND);
  assert.equal(t, {
    contextName: 'kind-kind', clusterName: 'kind-kind', userName: 'kind-kind',
    server: 'https://127.0.0.1:38271', insecureSkipTlsVerify: false, ca: CA, cert: CERT, key: KEY,
  });
});

test('named context: token, insecure-skip-tls-verify, tls-server-name', () => {
  const t = parseKubeconfig(KIND, { context: 'other' });
  assert.equal(t, {
    contextName: 'other', clusterName: 'other', userName: 'token-user',
    server: 'https://10.0.0.1:6443', insecureSkipTlsVerify: true, tlsServerName: 'kubernetes.default', token: 'abc.def',
  });
});

test('file references resolve against the kubeconfig directory; tokenFile is trimmed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-'));
  try {
    writeFileSync(join(dir, 'ca.crt'), CA);
    writeFileSync(join(dir, 'client.crt'), CERT);
    writeFileSync(join(dir, 'client.key'), KEY);
    writeFileSync(join(dir, 'token'), 'tok-123\n');
    const cfg = `apiVersion: v1
kind: Config
current-context: c
clusters: [{name: k, cluster: {server: 'https://api.example.com:443/k8s/clusters/c-1', certificate-authority: ca.crt}}]
users: [{name: u, user: {client-certificate: client.crt, client-key: ${join(dir, 'client.key')}, tokenFile: token}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
`;
    const path = join(dir, 'config');
    writeFileSync(path, cfg);
    const t = loadKubeconfig(path);
    assert.equal(t, {
      contextName: 'c', clusterName: 'k', userName: 'u', server: 'https://api.example.com:443/k8s/clusters/c-1',
      insecureSkipTlsVerify: false, ca: CA, cert: CERT, key: KEY, token: 'tok-123',
    });
    writeFileSync(path, cfg.replace('ca.crt', 'missing.crt'));
    assert.throws(() => loadKubeconfig(path), (e: Error) => e instanceof KubeconfigError && e.message.includes(join(dir, 'missing.crt')) && e.message.startsWith(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('refusals name the problem', () => {
  const err = (text: string, context?: string): string => {
    try {
      parseKubeconfig(text, context === undefined ? {} : { context });
    } catch (e) {
      assert.instance(e, KubeconfigError);
      return (e as Error).message;
    }
    return 'no error';
  };
  assert.match(err(KIND, 'exec'), /user "exec-user" uses an exec credential plugin/);
  assert.match(err(KIND, 'half'), /needs both a certificate and a key/);
  assert.match(err(KIND, 'nope'), /no contexts entry named "nope"/);
  assert.match(err('clusters: []'), /no current-context/);
  assert.match(err('- a\n- b'), /expected a kubeconfig/);
  assert.match(err(': : :\n  - ['), /not valid YAML/);
  assert.match(err('current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: [{name: k, cluster: {server: ftp://x}}]'), /not an http\(s\) URL/);
  assert.match(err('current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\nclusters: [{name: k, cluster: {}}]'), /has no server/);
});

test('fetchSpec: GET /openapi/v2 with the bearer token (plain http test server)', async () => {
  let seen: { url?: string; auth?: string; accept?: string } = {};
  const server = createServer((req, res) => {
    seen = { url: req.url ?? '', auth: req.headers.authorization ?? '', accept: req.headers.accept ?? '' };
    if (req.url === '/prefix/openapi/v2') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ swagger: '2.0', paths: {} }));
    } else {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-'));
  try {
    const port = (server.address() as AddressInfo).port;
    const path = join(dir, 'config');
    writeFileSync(path, `current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: 'http://127.0.0.1:${port}/prefix'}}]
users: [{name: u, user: {token: t0k}}]
`);
    assert.equal(await fetchSpec(path), { swagger: '2.0', paths: {} });
    assert.equal(seen, { url: '/prefix/openapi/v2', auth: 'Bearer t0k', accept: 'application/json' });
    try {
      await fetchSpec(path, { path: '/nope' });
      assert.unreachable('expected an HTTP error');
    } catch (e) {
      assert.match((e as Error).message, /HTTP 404: not found/);
    }
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
