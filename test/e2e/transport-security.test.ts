import type { ChildProcess } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXPORT_PATH, parseConfig, Pipeline } from '@kube-correlate/collector';
import type { RequestTree } from '@kube-correlate/correlator';
import { auditEvent, makeSpan } from '@kube-correlate/fixtures';
import { encodeTraceRequest, encodeTracesJson, type Span } from '@kube-correlate/otlp';
import { createLogger, PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';
import { eventList, freePort, metricValue, reported, runCli, spawnCorrelate, tempDir, waitFor } from '../harness/index.js';
import { killGroup } from '../harness/supervise.js';
import { fingerprintOf, httpCall, makeTestPki, rawGrpcCall, type TestPki } from '../harness/tls.js';

/**
 * Transport security on real sockets, every listener (issue 14, item 6): OTLP/gRPC, OTLP/HTTP, the
 * k8saudit receiver and the query API with `tls` (mutual TLS on the receivers) and
 * `auth: { authenticator: bearertokenauth }`: plaintext refused, clients without a certificate (or
 * with one from another CA) refused, no token and a wrong token refused and counted, the right
 * token accepted; the CLI over TLS with a token (queries and replay) with one-line errors;
 * certificate and token reload; the otlp/otlphttp exporters to such a listener; and
 * `correlate start --config collector-config/embedded-tls.yaml` as shipped.
 */
const tmp = tempDir('kc-transport-');
let pki: TestPki;
const TOKEN = 'first-token-0123456789abcdef';
let tokenFile: string;
/** Copies of the serving pair the listeners use, replaced by the reload test. */
let servingCert: string;
let servingKey: string;
let p: { pipeline: Pipeline; metrics: PipelineMetrics; grpc: string; http: string; audit: string; query: string };
let n = 0;
/** The listeners' warnings (JSON lines), the last 100,000 characters. */
let warnings = '';

function tlsYaml(clientCa: boolean, extra = ''): string {
  return `{ cert_file: "${servingCert}", key_file: "${servingKey}"${clientCa ? `, client_ca_file: "${pki.ca}"` : ''}, reload_interval: 200ms${extra} }`;
}

test.before(reported('setup', async () => {
  pki = makeTestPki(join(tmp.dir, 'pki'));
  tokenFile = join(tmp.dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  servingCert = join(tmp.dir, 'serving.crt');
  servingKey = join(tmp.dir, 'serving.key');
  copyFileSync(pki.serverCert, servingCert);
  copyFileSync(pki.serverKey, servingKey);
  const auth = '{ authenticator: bearertokenauth }';
  const yaml = `
receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:0", tls: ${tlsYaml(true)}, auth: ${auth} }
      http: { endpoint: "127.0.0.1:0", tls: ${tlsYaml(true)}, auth: ${auth} }
  k8saudit: { endpoint: "127.0.0.1:0", tls: ${tlsYaml(true)}, auth: ${auth} }
exporters:
  correlator: { settle_after: 200ms }
extensions:
  bearertokenauth: { filename: "${tokenFile}" }
  store: { directory: "${join(tmp.dir, 'data')}", endpoint: "127.0.0.1:0", tls: ${tlsYaml(false, ', min_version: "1.3"')}, auth: ${auth} }
service:
  extensions: [store, bearertokenauth]
  pipelines:
    traces: { receivers: [otlp], exporters: [correlator] }
    logs: { receivers: [k8saudit], exporters: [correlator] }
`;
  const metrics = new PipelineMetrics();
  const logger = createLogger({ level: 'warn', destination: new Writable({ write(chunk: Buffer, _enc, cb) { warnings = (warnings + chunk.toString()).slice(-100_000); cb(); } }) });
  const pipeline = new Pipeline({ config: parseConfig(yaml, 'transport.yaml', {}), metrics, logger });
  await pipeline.start();
  const a = pipeline.addresses;
  p = { pipeline, metrics, grpc: a.otlpGrpc!, http: `https://${a.otlpHttp}`, audit: `https://${a.auditWebhook}/`, query: `https://${a.query}` };
}));

test.after(async () => {
  await p?.pipeline.shutdown();
  tmp.cleanup();
});

const CLIENT = () => ({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
const refused = (receiver: string, reason: string) => metricValue(p.metrics, 'kube_correlate_receiver_refused_total', { receiver, reason });
const handshakeErrors = (listener: string, reason: string) => metricValue(p.metrics, 'kube_correlate_tls_handshake_errors_total', { listener, reason });
const queryCount = (route: string, code: string) => metricValue(p.metrics, 'kube_correlate_query_requests_total', { route, code });

function spans(): Span[] {
  n++;
  return [makeSpan({ trace: 7000 + n, id: 1, name: `secured ${n}`, kind: 2 })];
}

/** A grpc-js client with TLS (the test CA; optionally a client certificate). */
function grpcClient(opts: { cert?: boolean; otherCert?: boolean } = {}): grpc.Client {
  const cert = opts.otherCert ? { key: readFileSync(pki.otherClientKey), cert: readFileSync(pki.otherClientCert) } : opts.cert ? { key: readFileSync(pki.clientKey), cert: readFileSync(pki.clientCert) } : undefined;
  return new grpc.Client(p.grpc, grpc.credentials.createSsl(readFileSync(pki.ca), cert?.key ?? null, cert?.cert ?? null), { 'grpc.ssl_target_name_override': 'localhost' });
}

function grpcExport(client: grpc.Client, body: Buffer, token?: string): Promise<{ code: number; details: string }> {
  const md = new grpc.Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => {
    client.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, body, md, { deadline: Date.now() + 20_000 }, (err) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: '' }));
  });
}

/** The stored tree of a trace, read over TLS with the token. */
function storedTree(traceId: string): Promise<RequestTree> {
  return waitFor(`trace ${traceId} stored`, async () => {
    const r = await httpCall(`${p.query}/api/v1/traces/${traceId}`, { ca: pki.ca, token: currentToken });
    return r.status === 200 ? (JSON.parse(r.body!) as RequestTree) : undefined;
  }, 30_000);
}
let currentToken = TOKEN;

/** A bare TLS handshake to a listener; resolves with the certificate served or the client's error code. */
function handshake(address: string, opts: ConnectionOptions): Promise<{ ok: true; fingerprint256: string; protocol: string } | { ok: false; code: string }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const s = tlsConnect({ host, port, servername: 'localhost', ...opts }, () => {
      const out = { ok: true as const, fingerprint256: s.getPeerCertificate().fingerprint256, protocol: s.getProtocol() ?? '' };
      s.end();
      resolve(out);
    });
    s.setTimeout(20_000, () => s.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    s.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, code: err.code ?? err.message }));
  });
}
const hostPort = (url: string) => new URL(url).host;

test('plaintext is refused on every listener with tls; HTTPS handshakes refused as not_tls are counted', async () => {
  const body = Buffer.from(encodeTraceRequest(spans()));
  const raw = await rawGrpcCall(p.grpc, EXPORT_PATH, body, { token: TOKEN });
  assert.ok(raw.error, `OTLP/gRPC over h2c: ${JSON.stringify(raw)}`);
  const insecure = new grpc.Client(p.grpc, grpc.credentials.createInsecure());
  const r = await grpcExport(insecure, body, TOKEN);
  insecure.close();
  assert.is(r.code, grpc.status.UNAVAILABLE, r.details);
  for (const [url, listener] of [[p.http + '/v1/traces', 'receivers.otlp.protocols.http'], [p.audit, 'receivers.k8saudit'], [p.query + '/api/v1/traces', 'extensions.store']] as const) {
    const plain = await httpCall(url.replace('https:', 'http:'), { token: TOKEN, ...(url.includes('/v1/traces') || url === p.audit ? { body: '{}' } : {}) });
    assert.ok(plain.error && plain.status === undefined, `${url} over plaintext: ${JSON.stringify(plain)}`);
    await waitFor(`${listener} counts the plaintext handshake`, async () => ((await handshakeErrors(listener, 'not_tls')) >= 1 ? true : undefined));
  }
});

test('mutual TLS on the receivers: no client certificate, or one from another CA, is refused in the handshake and counted; the CA\'s certificate gets in', async () => {
  const body = Buffer.from(encodeTraceRequest(spans()));
  for (const opts of [{}, { otherCert: true }]) {
    const c = grpcClient(opts);
    const r = await grpcExport(c, body, TOKEN);
    c.close();
    assert.is(r.code, grpc.status.UNAVAILABLE, `OTLP/gRPC ${JSON.stringify(opts)}: ${r.details}`);
  }
  for (const [url, listener] of [[`${p.http}/v1/traces`, 'receivers.otlp.protocols.http'], [p.audit, 'receivers.k8saudit']] as const) {
    const none = await httpCall(url, { ca: pki.ca, token: TOKEN, body: '{}' });
    assert.ok(none.error, `${url} without a client certificate: ${JSON.stringify(none)}`);
    const other = await httpCall(url, { ca: pki.ca, cert: pki.otherClientCert, key: pki.otherClientKey, token: TOKEN, body: '{}' });
    assert.ok(other.error, `${url} with another CA's certificate: ${JSON.stringify(other)}`);
    await waitFor(`${listener} counts both refusals`, async () =>
      (await handshakeErrors(listener, 'no_client_certificate')) >= 1 && (await handshakeErrors(listener, 'untrusted_client_certificate')) >= 1 ? true : undefined);
  }
  const c = grpcClient({ cert: true });
  const ok = await grpcExport(c, body, TOKEN);
  c.close();
  assert.is(ok.code, 0, ok.details);
});

test('bearer token on every listener: none or a wrong one is refused (UNAUTHENTICATED, 401 + WWW-Authenticate: Bearer) and counted; the right one is accepted', async () => {
  // OTLP/gRPC.
  const c = grpcClient({ cert: true });
  const s1 = spans();
  const body = Buffer.from(encodeTraceRequest(s1));
  const none = await grpcExport(c, body);
  assert.is(none.code, grpc.status.UNAUTHENTICATED);
  assert.is(none.details, 'authentication required: send "authorization: Bearer <token>"');
  const wrong = await grpcExport(c, body, 'not-the-token');
  assert.is(wrong.code, grpc.status.UNAUTHENTICATED);
  assert.match(wrong.details, 'token is missing or wrong');
  const schemeOnly = await grpcExport(c, body, '');
  assert.is(schemeOnly.code, grpc.status.UNAUTHENTICATED);
  const right = await grpcExport(c, body, TOKEN);
  c.close();
  assert.is(right.code, 0, right.details);
  await storedTree(s1[0]!.traceId);

  // OTLP/HTTP and the audit webhook.
  const s2 = spans();
  const json = JSON.stringify(encodeTracesJson(s2));
  const audit = JSON.stringify(eventList([auditEvent({ auditID: 'secured-audit-1', stage: 'ResponseComplete' })]));
  for (const [url, payload] of [[`${p.http}/v1/traces`, json], [p.audit, audit]] as const) {
    const missing = await httpCall(url, { ...CLIENT(), body: payload });
    assert.is(missing.status, 401, url);
    assert.is(missing.headers!['www-authenticate'], 'Bearer realm="kube-correlate"');
    const bad = await httpCall(url, { ...CLIENT(), body: payload, token: 'not-the-token' });
    assert.is(bad.status, 401, url);
    assert.is(bad.headers!['www-authenticate'], 'Bearer realm="kube-correlate", error="invalid_token"');
    const basic = await httpCall(url, { ...CLIENT(), body: payload, authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` });
    assert.is(basic.status, 401, `${url}: another scheme`);
    const ok = await httpCall(url, { ...CLIENT(), body: payload, authorization: `bearer ${TOKEN}` });
    assert.is(ok.status, 200, `${url}: ${ok.body}`);
  }
  await storedTree(s2[0]!.traceId);
  // 2 refused on gRPC (+1 scheme only), 3 on OTLP/HTTP: one receiver id for both protocols.
  assert.is(await refused('otlp', 'unauthenticated'), 6);
  assert.is(await refused('k8saudit', 'unauthenticated'), 3);

  // The query API: nothing listed, served or measured without the token; health checks stay open.
  const before = await queryCount('traces', '401');
  const list = await httpCall(`${p.query}/api/v1/traces?limit=1000`, { ca: pki.ca });
  assert.is(list.status, 401);
  assert.is(list.headers!['www-authenticate'], 'Bearer realm="kube-correlate"');
  assert.not.match(list.body!, s1[0]!.traceId);
  assert.equal(JSON.parse(list.body!), { error: 'authentication required: send "authorization: Bearer <token>"' });
  for (const path of [`/api/v1/traces/${s1[0]!.traceId}`, '/api/v1/audit/secured-audit-1', '/metrics', '/api/v1/objsets/x', '/nope']) {
    const r = await httpCall(`${p.query}${path}`, { ca: pki.ca, token: 'not-the-token' });
    assert.is(r.status, 401, path);
    assert.not.match(r.body!, 'kube_correlate_');
  }
  assert.is(await queryCount('traces', '401'), before + 1);
  assert.is(await queryCount('metrics', '401'), 1);
  assert.is((await httpCall(`${p.query}/healthz`, { ca: pki.ca })).status, 200);
  const listed = await httpCall(`${p.query}/api/v1/traces?limit=1000`, { ca: pki.ca, token: TOKEN });
  assert.is(listed.status, 200);
  assert.match(listed.body!, s1[0]!.traceId);
  assert.is((await httpCall(`${p.query}/metrics`, { ca: pki.ca, token: TOKEN })).status, 200);
});

test('protocol floor and suites: min_version "1.3" refuses a TLS 1.2 client; TLS 1.2 without forward-secret AEAD suites is refused', async () => {
  const query = hostPort(p.query);
  const old = await handshake(query, { ca: readFileSync(pki.ca), maxVersion: 'TLSv1.2' });
  assert.not.ok(old.ok, 'TLS 1.2 to a min_version 1.3 listener');
  const v13 = await handshake(query, { ca: readFileSync(pki.ca) });
  assert.ok(v13.ok && v13.protocol === 'TLSv1.3');
  const http = hostPort(p.http);
  const cbc = await handshake(http, { ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey), maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:AES128-SHA:AES128-GCM-SHA256' });
  assert.not.ok(cbc.ok, 'CBC and RSA key exchange suites');
  const gcm = await handshake(http, { ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey), maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
  assert.ok(gcm.ok && gcm.protocol === 'TLSv1.2', JSON.stringify(gcm));
});

test('the CLI over TLS with a token: queries and replay work; every refusal is one line, exit 2, saying what to give', async () => {
  const s = spans();
  const c = grpcClient({ cert: true });
  assert.is((await grpcExport(c, Buffer.from(encodeTraceRequest(s)), TOKEN)).code, 0);
  c.close();
  const traceId = s[0]!.traceId;
  await storedTree(traceId);
  const q = ['--endpoint', p.query, '--trace', traceId];
  const ok = await runCli([...q, '--cacert', pki.ca, '--token-file', tokenFile, '--json']);
  assert.is(ok.code, 0, ok.stderr);
  assert.is((JSON.parse(ok.stdout) as RequestTree).traceId, traceId);
  const inline = await runCli([...q, '--cacert', pki.ca, '--token', TOKEN]);
  assert.is(inline.code, 0, inline.stderr);
  assert.match(inline.stdout, `secured ${n}`);

  const origin = new URL(p.query).origin;
  const cases: Array<[string[], string]> = [
    [[...q, '--cacert', pki.ca], `correlate: query API answered 401: authentication required: send "authorization: Bearer <token>" (give the token with --token-file <file> or --token <token>)\n`],
    [[...q, '--cacert', pki.ca, '--token', 'wrong'], 'correlate: query API answered 401: invalid credentials: the Bearer token is missing or wrong (the token given was refused)\n'],
    [[...q, '--token-file', tokenFile], `correlate: the query API at ${origin}: its TLS certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE): give the CA that signed it with --cacert <file>\n`],
    [[...q, '--cacert', pki.otherCa, '--token-file', tokenFile], `correlate: the query API at ${origin}: its TLS certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE): give the CA that signed it with --cacert <file>\n`],
    [['--endpoint', p.query.replace('https:', 'http:'), '--trace', traceId, '--token-file', tokenFile], `correlate: the query API at ${origin.replace('https:', 'http:')} closed the connection (ECONNRESET): if it serves TLS, use https:// (with --cacert <file> for a private CA)\n`],
    [[...q, '--cacert', join(tmp.dir, 'none.crt')], `correlate: cannot read --cacert ${join(tmp.dir, 'none.crt')}: ENOENT\n`],
    [[...q, '--cacert', tokenFile], `correlate: --cacert ${tokenFile}: no PEM certificate in it\n`],
    [[...q, '--token', 'a', '--token-file', tokenFile], 'correlate: give --token or --token-file, not both\n'],
    [[...q, '--cert', pki.clientCert], 'correlate: --cert and --key go together (a client certificate needs its key)\n'],
  ];
  for (const [args, want] of cases) {
    const r = await runCli(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.is(r.stderr, want, args.join(' '));
  }

  // replay: OTLP/JSON lines and audit lines over mutual TLS with the token.
  const s2 = spans();
  const otlpFile = join(tmp.dir, 'replay-otlp.jsonl');
  const auditFile = join(tmp.dir, 'replay-audit.jsonl');
  writeFileSync(otlpFile, `${JSON.stringify(encodeTracesJson(s2))}\n`);
  writeFileSync(auditFile, `${JSON.stringify(auditEvent({ auditID: 'replayed-over-tls', stage: 'ResponseComplete' }))}\n`);
  const replay = ['replay', '--otlp', otlpFile, '--audit', auditFile, '--otlp-endpoint', p.http, '--audit-endpoint', p.audit, '--cacert', pki.ca, '--no-progress'];
  const sent = await runCli([...replay, '--cert', pki.clientCert, '--key', pki.clientKey, '--token-file', tokenFile]);
  assert.is(sent.code, 0, sent.stderr);
  assert.match(sent.stderr, 'replayed 1 OTLP requests and 1 audit events; 0 refused');
  await storedTree(s2[0]!.traceId);
  const noCert = await runCli([...replay, '--token-file', tokenFile]);
  assert.is(noCert.code, 2);
  assert.match(noCert.stderr, new RegExp(`^correlate: the OTLP/HTTP receiver at ${new URL(p.http).origin.replace(/\./g, '\\.')} refused the TLS handshake \\([A-Z_0-9]+\\): it requires a client certificate it trusts: give --cert <file> and --key <file>\\n$`));
  // A certificate from another CA: the listener checks it after the handshake and closes the connection without an alert.
  const otherCert = await runCli([...replay, '--cert', pki.otherClientCert, '--key', pki.otherClientKey, '--token-file', tokenFile]);
  assert.is(otherCert.code, 2);
  assert.match(otherCert.stderr, new RegExp(`^correlate: the OTLP/HTTP receiver at ${new URL(p.http).origin.replace(/\./g, '\\.')} closed the connection after the TLS handshake \\((ECONNRESET|EPIPE)\\): it did not accept the client certificate given: give --cert <file> and --key <file> from a CA it trusts\\n$`));
  const noToken = await runCli([...replay, '--cert', pki.clientCert, '--key', pki.clientKey]);
  assert.is(noToken.code, 2);
  assert.is(noToken.stderr, `correlate: the OTLP/HTTP receiver at ${new URL(p.http).origin} answered 401: authentication required: send "authorization: Bearer <token>" (give the token with --token-file <file> or --token <token>)\n`);
});

test('certificate reload: a new serving certificate is served on every listener without a restart (counted); files that do not load keep the previous one', async () => {
  const before = await fingerprintOf(pki.serverCert);
  const next = pki.newServer('rotated');
  const want = await fingerprintOf(next.cert);
  assert.is.not(want, before);
  const addresses = { 'receivers.otlp.protocols.grpc': p.grpc, 'receivers.otlp.protocols.http': hostPort(p.http), 'receivers.k8saudit': hostPort(p.audit), 'extensions.store': hostPort(p.query) };
  const serve = async (address: string) => {
    const h = await handshake(address, { ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey), ALPNProtocols: ['h2', 'http/1.1'] });
    assert.ok(h.ok, `${address}: ${JSON.stringify(h)}`);
    return h.ok ? h.fingerprint256 : '';
  };
  for (const a of Object.values(addresses)) assert.is(await serve(a), before);
  // Key first, then certificate: in between the pair does not match, which must not be served.
  const reloads = (listener: string, outcome: string) => metricValue(p.metrics, 'kube_correlate_tls_certificate_reloads_total', { listener, outcome });
  pki.replace(next.key, servingKey);
  for (const [listener, a] of Object.entries(addresses)) {
    await waitFor(`${listener} counts the mismatched pair`, async () => ((await reloads(listener, 'error')) >= 1 ? true : undefined), 30_000);
    assert.is(await serve(a), before, `${a}: a key without its certificate is not served`);
    assert.is(await reloads(listener, 'ok'), 0, listener);
  }
  pki.replace(next.cert, servingCert);
  for (const [listener, a] of Object.entries(addresses)) {
    await waitFor(`${listener} serves the new certificate`, async () => ((await serve(a)) === want ? true : undefined), 30_000);
    assert.ok((await reloads(listener, 'ok')) >= 1, listener);
  }
  // Still answers with the new certificate.
  const c = grpcClient({ cert: true });
  assert.is((await grpcExport(c, Buffer.from(encodeTraceRequest(spans())), currentToken)).code, 0);
  c.close();
});

test('token rotation: a changed token file is re-read; the new token gets in, the old one is refused', async () => {
  const next = 'second-token-fedcba9876543210';
  writeFileSync(join(tmp.dir, 'token.new'), `${next}\n`);
  pki.replace(join(tmp.dir, 'token.new'), tokenFile);
  await waitFor('the new token accepted', async () => ((await httpCall(`${p.query}/api/v1/traces`, { ca: pki.ca, token: next })).status === 200 ? true : undefined), 30_000);
  currentToken = next;
  assert.is((await httpCall(`${p.query}/api/v1/traces`, { ca: pki.ca, token: TOKEN })).status, 401);
  const c = grpcClient({ cert: true });
  assert.is((await grpcExport(c, Buffer.from(encodeTraceRequest(spans())), TOKEN)).code, grpc.status.UNAUTHENTICATED);
  assert.is((await grpcExport(c, Buffer.from(encodeTraceRequest(spans())), next)).code, 0);
  c.close();
  // An empty file keeps the token in use (and says so).
  writeFileSync(join(tmp.dir, 'token.empty'), '\n');
  pki.replace(join(tmp.dir, 'token.empty'), tokenFile);
  await waitFor('the empty token file reported', async () => (warnings.includes('token file did not load; still using the previous token') ? true : undefined), 30_000);
  assert.is((await httpCall(`${p.query}/api/v1/traces`, { ca: pki.ca, token: next })).status, 200);
});

test('otlp and otlphttp exporters to these listeners: tls.ca_file, a client certificate, server_name_override and a bearertokenauth token', async () => {
  const tokenCopy = join(tmp.dir, 'exporter-token');
  writeFileSync(tokenCopy, `${currentToken}\n`);
  const wrongToken = join(tmp.dir, 'exporter-wrong-token');
  writeFileSync(wrongToken, 'not-the-token\n');
  const run = async (type: 'otlp' | 'otlphttp', endpoint: string, variant: 'ok' | 'wrong-token' | 'wrong-name') => {
    const metrics = new PipelineMetrics();
    const yaml = `
receivers:
  otlp: { protocols: { grpc: { endpoint: "127.0.0.1:0" } } }
exporters:
  correlator: { settle_after: 100ms }
  ${type}/secured:
    endpoint: "${endpoint}"
    tls: { ca_file: "${pki.ca}", cert_file: "${pki.clientCert}", key_file: "${pki.clientKey}", server_name_override: ${variant === 'wrong-name' ? 'elsewhere.example' : 'localhost'} }
    auth: { authenticator: bearertokenauth/out }
    flush_interval: 100ms
    wait_for_audit: 200ms
    retry_on_failure: { initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 2s }
extensions:
  bearertokenauth/out: { filename: "${variant === 'wrong-token' ? wrongToken : tokenCopy}" }
  store: { directory: "${join(tmp.dir, `sender-${type}-${variant}`)}", endpoint: "127.0.0.1:0" }
service:
  extensions: [store, bearertokenauth/out]
  pipelines:
    traces: { receivers: [otlp], exporters: [correlator, ${type}/secured] }
`;
    const sender = new Pipeline({ config: parseConfig(yaml, 'sender.yaml', {}), metrics, logger: silentLogger() });
    await sender.start();
    const s = spans();
    const c = new grpc.Client(sender.addresses.otlpGrpc!, grpc.credentials.createInsecure());
    const r = await new Promise<number>((resolve) => c.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(encodeTraceRequest(s)), (err) => resolve(err ? err.code : 0)));
    c.close();
    assert.is(r, 0);
    return { sender, metrics, traceId: s[0]!.traceId };
  };
  const failed = (m: PipelineMetrics, exporter: string, labels: Record<string, string> = {}) => metricValue(m, 'kube_correlate_exporter_failed_total', { exporter, ...labels });
  const sentSpans = (m: PipelineMetrics, exporter: string) => metricValue(m, 'kube_correlate_exporter_sent_items_total', { exporter, signal: 'spans' });
  // IP addresses in the endpoints, and a serving certificate that names both 127.0.0.1 and
  // localhost: the name checked is server_name_override's (another name is refused).
  for (const [type, endpoint] of [['otlp', p.grpc], ['otlphttp', p.http]] as const) {
    const exporter = `${type}/secured`;
    const ok = await run(type, endpoint, 'ok');
    try {
      await storedTree(ok.traceId);
      await waitFor(`${type}: sent counted`, async () => ((await sentSpans(ok.metrics, exporter)) >= 1 ? true : undefined), 30_000);
    } finally {
      await ok.sender.shutdown();
    }
    const bad = await run(type, endpoint, 'wrong-token');
    try {
      const reason = type === 'otlp' ? 'unauthenticated' : 'http_4xx';
      await waitFor(`${type}: the refused token is counted (${reason})`, async () => ((await failed(bad.metrics, exporter, { reason })) >= 1 ? true : undefined), 30_000);
      assert.is(await sentSpans(bad.metrics, exporter), 0);
    } finally {
      await bad.sender.shutdown();
    }
    const misnamed = await run(type, endpoint, 'wrong-name');
    try {
      await waitFor(`${type}: a certificate not for server_name_override is refused (counted)`, async () => ((await failed(misnamed.metrics, exporter)) >= 1 ? true : undefined), 30_000);
      assert.is(await sentSpans(misnamed.metrics, exporter), 0);
      const r = await httpCall(`${p.query}/api/v1/traces/${misnamed.traceId}`, { ca: pki.ca, token: currentToken });
      assert.is(r.status, 404, `${type}: the trace sent to the wrong name was not received`);
    } finally {
      await misnamed.sender.shutdown();
    }
  }
});

test('correlate start --config collector-config/embedded-tls.yaml as shipped: replay and queries over TLS with the token', async () => {
  const dir = join(tmp.dir, 'shipped');
  const [grpcPort, httpPort, auditPort, queryPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const token = join(tmp.dir, 'shipped-token');
  writeFileSync(token, 'shipped-config-token\n');
  const { child, exited } = spawnCorrelate(['start', '--config', 'collector-config/embedded-tls.yaml'], {
    env: {
      KC_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpcPort}`, KC_OTLP_HTTP_ENDPOINT: `127.0.0.1:${httpPort}`,
      KC_AUDIT_WEBHOOK_ENDPOINT: `127.0.0.1:${auditPort}`, KC_QUERY_ENDPOINT: `127.0.0.1:${queryPort}`,
      KC_TLS_CERT_FILE: pki.serverCert, KC_TLS_KEY_FILE: pki.serverKey, KC_TLS_CLIENT_CA_FILE: pki.ca, KC_TOKEN_FILE: token,
      KC_DATA_DIR: join(dir, 'data'), KC_SETTLE_AFTER: '300ms', LOG_LEVEL: 'warn',
    },
  });
  const proc: { child: ChildProcess; err: string } = { child, err: '' };
  child.stderr!.on('data', (d: Buffer) => (proc.err = (proc.err + d).slice(-50_000)));
  try {
    await waitFor('correlate start to be running', () => (proc.err.includes('kube-correlate is running') ? true : undefined), 120_000)
      .catch((e: Error) => { throw new Error(`${e.message}; stderr:\n${proc.err}`); });
    for (const line of [`OTLP/gRPC      127.0.0.1:${grpcPort} (TLS)`, `OTLP/HTTP      https://127.0.0.1:${httpPort}/v1/traces`, `audit webhook  https://127.0.0.1:${auditPort}/`, `query API      https://127.0.0.1:${queryPort}`]) assert.match(proc.err, line);
    const s = spans();
    const otlpFile = join(tmp.dir, 'shipped-otlp.jsonl');
    const auditFile = join(tmp.dir, 'shipped-audit.jsonl');
    const auditID = 'shipped-tls-audit';
    writeFileSync(otlpFile, `${JSON.stringify(encodeTracesJson(s))}\n`);
    writeFileSync(auditFile, `${JSON.stringify(auditEvent({ auditID, stage: 'ResponseComplete' }))}\n`);
    const tlsFlags = ['--cacert', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey, '--token-file', token];
    const sent = await runCli(['replay', '--otlp', otlpFile, '--audit', auditFile, '--otlp-endpoint', `https://127.0.0.1:${httpPort}`, '--audit-endpoint', `https://127.0.0.1:${auditPort}/`, '--no-progress', ...tlsFlags]);
    assert.is(sent.code, 0, sent.stderr);
    const q = ['--endpoint', `https://127.0.0.1:${queryPort}`, '--cacert', pki.ca, '--token-file', token];
    await waitFor('the replayed trace, read with correlate over TLS', async () => ((await runCli([...q, '--trace', s[0]!.traceId])).code === 0 ? true : undefined), 60_000);
    await waitFor('the replayed audit event', async () => ((await runCli([...q, '--audit-id', auditID])).code === 0 ? true : undefined), 60_000);
    const noToken = await runCli(['--endpoint', `https://127.0.0.1:${queryPort}`, '--cacert', pki.ca, '--trace', s[0]!.traceId]);
    assert.is(noToken.code, 2);
    assert.match(noToken.stderr, 'query API answered 401');
  } finally {
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => { timer = setTimeout(r, 20_000); })]);
    clearTimeout(timer);
    killGroup(child.pid, 'SIGKILL');
  }
});

test.run();
