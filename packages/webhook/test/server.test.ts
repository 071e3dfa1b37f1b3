import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ANNOTATION_OBJSETID, ANNOTATION_SPAN, WebhookServer, WebhookStartError, mutate, type AdmissionReviewResponse, type JsonPatchOp,
} from '../src/index.js';

const OPENSSL = '/usr/bin/openssl';
const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const SET = '04bc5995-0147-4db8-9f06-fdbcb2e1a087';
const NEW_ID = '11111111-2222-4333-8444-555555555555';
const MAX_BODY = 16 * 1024;

// ---------------------------------------------------------------------------------------------
// Certificates: self-signed pairs from the openssl CLI, laid out like a Kubernetes Secret volume
// (tls.crt -> ..data/tls.crt, ..data -> ..<version>/), so a reload is the same atomic symlink swap.

interface Pair { cert: string; key: string; fingerprint: string }

function openssl(args: string[]): void {
  const r = spawnSync(OPENSSL, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`openssl is required for the webhook server tests (${OPENSSL}: ${r.error.message})`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

function newPair(dir: string, name: string): Pair {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', `/CN=kube-correlate-webhook-${name}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
  const pem = readFileSync(cert, 'utf8');
  return { cert: pem, key: readFileSync(key, 'utf8'), fingerprint: new X509Certificate(pem).fingerprint256 };
}

const tmp = mkdtempSync(join(tmpdir(), 'kc-webhook-'));
const pairs = { a: newPair(tmp, 'a'), b: newPair(tmp, 'b'), c: newPair(tmp, 'c') };
const volume = join(tmp, 'secret');
const certFile = join(volume, 'tls.crt');
const keyFile = join(volume, 'tls.key');
let version = 0;

/** Publishes a new Secret version (cert and key content as given) with an atomic ..data swap. */
function publish(cert: string, key: string): void {
  const dir = join(volume, `..v${++version}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tls.crt'), cert);
  writeFileSync(join(dir, 'tls.key'), key);
  symlinkSync(`..v${version}`, join(volume, '..data_tmp'));
  renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
}
publish(pairs.a.cert, pairs.a.key);
symlinkSync('..data/tls.crt', certFile);
symlinkSync('..data/tls.key', keyFile);

// ---------------------------------------------------------------------------------------------
// Clients

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function call(port: number, method: string, path: string, opts: { body?: string | Buffer; headers?: Record<string, string>; ca?: string; chunked?: boolean } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...(opts.headers ?? {}) };
    if (opts.body !== undefined && !opts.chunked) headers['content-length'] = Buffer.byteLength(opts.body);
    const req = httpsRequest({ host: '127.0.0.1', port, method, path, headers, ca: opts.ca ?? pairs.a.cert, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** SHA-256 fingerprint of the certificate the server presents on a new TLS connection. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function review(uid: string, operation: string, object: unknown, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid, operation, object, oldObject: null, dryRun: false, name: 'web', namespace: 'default',
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, resource: { group: 'apps', version: 'v1', resource: 'deployments' }, ...extra,
    },
  });
}
const deployment = () => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'default' }, spec: { replicas: 1 } });

/** A sample's value from the Prometheus text, 0 when absent. */
function sample(metrics: string, series: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

// ---------------------------------------------------------------------------------------------
// One server for the file; the mutate override throws for one marked uid (fault injection).

const server = new WebhookServer({
  certFile, keyFile, port: 0, host: '127.0.0.1', certPollIntervalMs: 50, maxBodyBytes: MAX_BODY, newObjsetId: () => NEW_ID,
  mutate: (rv, headers, opts) => {
    if (rv.request.uid === 'explode') throw new Error('injected fault');
    return mutate(rv, headers, opts);
  },
});
let port = 0;
const metricsText = async () => (await call(port, 'GET', '/metrics', { ca: currentCa })).body;
let currentCa = pairs.a.cert;

test.before(async () => {
  port = (await server.start()).port;
});

test.after(async () => {
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

test('POST /mutate: AdmissionReview in, AdmissionReview out with the same uid and a JSONPatch', async () => {
  const r = await call(port, 'POST', '/mutate', {
    body: review('uid-1', 'CREATE', deployment()),
    headers: { 'content-type': 'application/json', traceparent: TP, baggage: `objectSetID=${SET}` },
  });
  assert.is(r.status, 200);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const out = JSON.parse(r.body) as AdmissionReviewResponse;
  assert.is(out.apiVersion, 'admission.k8s.io/v1');
  assert.is(out.kind, 'AdmissionReview');
  assert.is(out.response.uid, 'uid-1');
  assert.is(out.response.allowed, true);
  assert.is(out.response.patchType, 'JSONPatch');
  const patch = JSON.parse(Buffer.from(out.response.patch!, 'base64').toString('utf8')) as JsonPatchOp[];
  assert.equal(patch, [{ op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_SPAN]: TP, [ANNOTATION_OBJSETID]: SET } }]);
  assert.equal(out.response.auditAnnotations, { traceparent: TP, objectSetID: SET });
});

test('POST /mutate: root without baggage gets the injected new id; delete is allowed with no patch; dry run counted', async () => {
  const create = JSON.parse((await call(port, 'POST', '/mutate', { body: review('uid-2', 'CREATE', deployment(), { dryRun: true }) })).body) as AdmissionReviewResponse;
  assert.equal(create.response.auditAnnotations, { objectSetID: NEW_ID });
  const del = JSON.parse((await call(port, 'POST', '/mutate', { body: review('uid-3', 'DELETE', null), headers: { traceparent: TP } })).body) as AdmissionReviewResponse;
  assert.equal(del.response, { uid: 'uid-3', allowed: true, auditAnnotations: { traceparent: TP } });
  const m = await metricsText();
  assert.is(sample(m, 'kube_correlate_webhook_reviews_total{operation="CREATE",outcome="patched",dry_run="true"}'), 1);
  assert.is(sample(m, 'kube_correlate_webhook_reviews_total{operation="DELETE",outcome="skipped",dry_run="false"}'), 1);
});

test('plaintext HTTP to the TLS port gets no HTTP answer', async () => {
  const before = sample(await metricsText(), 'kube_correlate_webhook_tls_handshake_errors_total{reason="not_tls"}');
  const outcome = await new Promise<string>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/mutate', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      resolve(`response ${res.statusCode}`);
      res.resume();
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end(review('uid-plain', 'CREATE', deployment()));
  });
  assert.match(outcome, /^error /, outcome);
  assert.not.match(outcome, /timeout/);
  await until('the handshake error to be counted', async () => sample(await metricsText(), 'kube_correlate_webhook_tls_handshake_errors_total{reason="not_tls"}') > before);
});

test('not an AdmissionReview: 400 with a JSON error message, counted as bad_request', async () => {
  const cases: Array<[string, RegExp]> = [
    ['{"kind":', /not valid JSON/],
    ['[]', /not a JSON object/],
    [JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'Status', request: { uid: 'u' } }), /kind must be "AdmissionReview"/],
    [JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'u' } }), /apiVersion must be/],
    [JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { operation: 'CREATE' } }), /request\.uid/],
    ['', /not valid JSON/],
  ];
  for (const [body, pattern] of cases) {
    const r = await call(port, 'POST', '/mutate', { body });
    assert.is(r.status, 400, body);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.match((JSON.parse(r.body) as { error: string }).error, pattern);
  }
  assert.is(sample(await metricsText(), 'kube_correlate_webhook_reviews_total{operation="unknown",outcome="bad_request",dry_run="false"}'), cases.length);
});

test('body over the limit: 413, by Content-Length and when streamed (chunked)', async () => {
  const big = review('uid-big', 'CREATE', { ...deployment(), data: 'x'.repeat(MAX_BODY) });
  const a = await call(port, 'POST', '/mutate', { body: big });
  assert.is(a.status, 413);
  assert.match((JSON.parse(a.body) as { error: string }).error, /exceeds 16384 bytes/);
  const b = await call(port, 'POST', '/mutate', { body: big, chunked: true });
  assert.is(b.status, 413);
  assert.is(sample(await metricsText(), 'kube_correlate_webhook_reviews_total{operation="unknown",outcome="too_large",dry_run="false"}'), 2);
  // The server is still fine afterwards.
  assert.is((await call(port, 'POST', '/mutate', { body: review('uid-after', 'CREATE', deployment()) })).status, 200);
});

test('internal errors never block: exception and bad object shape are allowed with no patch, counted by reason', async () => {
  const boom = await call(port, 'POST', '/mutate', { body: review('explode', 'CREATE', deployment()), headers: { traceparent: TP } });
  assert.is(boom.status, 200);
  assert.equal((JSON.parse(boom.body) as AdmissionReviewResponse).response, { uid: 'explode', allowed: true });
  const bad = await call(port, 'POST', '/mutate', { body: review('uid-bad', 'UPDATE', { metadata: { annotations: ['x'] } }), headers: { traceparent: TP } });
  assert.is(bad.status, 200);
  assert.equal((JSON.parse(bad.body) as AdmissionReviewResponse).response, { uid: 'uid-bad', allowed: true });
  const m = await metricsText();
  assert.is(sample(m, 'kube_correlate_webhook_errors_total{reason="exception"}'), 1);
  assert.is(sample(m, 'kube_correlate_webhook_errors_total{reason="bad_object"}'), 1);
  assert.is(sample(m, 'kube_correlate_webhook_reviews_total{operation="CREATE",outcome="error",dry_run="false"}'), 1);
  assert.is(sample(m, 'kube_correlate_webhook_reviews_total{operation="UPDATE",outcome="error",dry_run="false"}'), 1);
});

test('GET /healthz: 200 JSON; anything else: 404 JSON', async () => {
  const h = await call(port, 'GET', '/healthz');
  assert.is(h.status, 200);
  assert.equal(JSON.parse(h.body), { status: 'ok' });
  for (const [method, path] of [['GET', '/'], ['GET', '/mutate'], ['POST', '/healthz'], ['PUT', '/mutate'], ['GET', '/metricsx']]) {
    const r = await call(port, method!, path!);
    assert.is(r.status, 404, `${method} ${path}`);
    assert.match((JSON.parse(r.body) as { error: string }).error, /no route/);
  }
});

test('GET /metrics: Prometheus text with the webhook metrics and process metrics', async () => {
  const r = await call(port, 'GET', '/metrics');
  assert.is(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain/);
  for (const name of [
    '# TYPE kube_correlate_webhook_reviews_total counter',
    '# TYPE kube_correlate_webhook_review_duration_seconds histogram',
    'kube_correlate_webhook_review_duration_seconds_bucket{le="0.0001"}',
    '# TYPE kube_correlate_webhook_errors_total counter',
    '# TYPE kube_correlate_webhook_cert_reloads_total counter',
    'kube_correlate_webhook_trace_context_total{header="traceparent",state="valid"}',
    'kube_correlate_webhook_trace_context_total{header="baggage_objectsetid",state="valid"} 1',
    'kube_correlate_process_cpu_user_seconds_total',
  ]) assert.ok(r.body.includes(name), name);
  assert.ok(sample(r.body, 'kube_correlate_webhook_review_duration_seconds_count') >= 10);
});

test('certificate reload: a Secret-style symlink swap is served on new connections; broken pairs keep the old one', async () => {
  assert.is(await servedFingerprint(port), pairs.a.fingerprint);

  publish(pairs.b.cert, pairs.b.key);
  await until('certificate b to be served', async () => (await servedFingerprint(port)) === pairs.b.fingerprint);
  currentCa = pairs.b.cert;
  assert.is((await call(port, 'POST', '/mutate', { body: review('uid-b', 'CREATE', deployment()), ca: pairs.b.cert })).status, 200);
  assert.is(sample(await metricsText(), 'kube_correlate_webhook_cert_reloads_total{outcome="ok"}'), 1);

  // Garbage certificate: counted, b still served.
  publish('-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n', pairs.b.key);
  await until('the broken pair to be counted', async () => sample(await metricsText(), 'kube_correlate_webhook_cert_reloads_total{outcome="error"}') === 1);
  assert.is(await servedFingerprint(port), pairs.b.fingerprint);

  // A certificate with another pair's key: counted, b still served.
  publish(pairs.c.cert, pairs.a.key);
  await until('the mismatched pair to be counted', async () => sample(await metricsText(), 'kube_correlate_webhook_cert_reloads_total{outcome="error"}') === 2);
  assert.is(await servedFingerprint(port), pairs.b.fingerprint);

  // A good pair again.
  publish(pairs.c.cert, pairs.c.key);
  await until('certificate c to be served', async () => (await servedFingerprint(port)) === pairs.c.fingerprint);
  currentCa = pairs.c.cert;
  assert.is(sample(await metricsText(), 'kube_correlate_webhook_cert_reloads_total{outcome="ok"}'), 2);
  assert.is(await server.checkCertificate(), 'unchanged');
});

test('start errors: unreadable files, a pair that does not load, a port in use', async () => {
  const start = async (opts: Partial<ConstructorParameters<typeof WebhookServer>[0]>): Promise<WebhookStartError> => {
    const s = new WebhookServer({ certFile, keyFile, host: '127.0.0.1', port: 0, defaultMetrics: false, ...opts });
    try {
      await s.start();
    } catch (err) {
      await s.close();
      assert.instance(err, WebhookStartError);
      return err as WebhookStartError;
    }
    await s.close();
    throw new Error('start() should have failed');
  };
  const missing = await start({ certFile: join(tmp, 'missing.crt') });
  assert.is(missing.code, 'cert_unreadable');
  assert.match(missing.message, /cannot read --cert .*missing\.crt: ENOENT/);
  const mismatch = await start({ certFile: join(tmp, 'a.crt'), keyFile: join(tmp, 'b.key') });
  assert.is(mismatch.code, 'cert_invalid');
  const inUse = await start({ port });
  assert.is(inUse.code, 'address_in_use');
  assert.match(inUse.message, new RegExp(`port ${port} is already in use`));
});

test('close() is safe before start and twice', async () => {
  const s = new WebhookServer({ certFile, keyFile, port: 0, host: '127.0.0.1', defaultMetrics: false });
  await s.close();
  await s.close();
  const t = new WebhookServer({ certFile, keyFile, port: 0, host: '127.0.0.1', defaultMetrics: false });
  await t.start();
  await Promise.all([t.close(), t.close()]);
  assert.is(t.address, undefined);
});

test.run();
