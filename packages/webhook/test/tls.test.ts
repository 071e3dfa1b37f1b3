import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions } from 'node:tls';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WebhookServer, WebhookStartError, tlsErrorReason } from '../src/index.js';

/**
 * The webhook's TLS on real sockets (issue 14, item 6): TLS 1.2+ only, forward-secret AEAD suites
 * only, and with --client-ca a client certificate from that CA is required. The serving certificate
 * is RSA on purpose: with an ECDSA certificate, RSA key exchange (AES128-SHA) could never be
 * negotiated anyway, so refusing it would prove nothing.
 */

const OPENSSL = '/usr/bin/openssl';
const tmp = mkdtempSync(join(tmpdir(), 'kc-webhook-tls-'));

function openssl(args: string[]): void {
  const r = spawnSync(OPENSSL, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`openssl is required for the webhook TLS tests (${OPENSSL}: ${r.error.message})`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

const file = (name: string) => join(tmp, name);
/** A self-signed CA (EC P-256). */
function newCa(name: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`), '-days', '2',
    '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
}
/** A client certificate for kube-apiserver signed by a CA. */
function newClient(name: string, ca: string): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', '/CN=kube-apiserver']);
  openssl(['x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${ca}.crt`), '-CAkey', file(`${ca}.key`), '-CAcreateserial', '-out', file(`${name}.crt`), '-days', '2']);
}

// Serving pairs: RSA (the interesting one for suites) and ECDSA (for the ECDHE-ECDSA suites).
openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('rsa.key'), '-out', file('rsa.crt'), '-days', '2', '-subj', '/CN=kube-correlate-webhook', '-addext', 'subjectAltName=IP:127.0.0.1']);
openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', file('ec.key'), '-out', file('ec.crt'), '-days', '2', '-subj', '/CN=kube-correlate-webhook', '-addext', 'subjectAltName=IP:127.0.0.1']);
newCa('ca1');
newCa('ca2');
newClient('apiserver1', 'ca1');
newClient('apiserver2', 'ca2');
const pem = (name: string) => readFileSync(file(name));
const CA = { rsa: pem('rsa.crt'), ec: pem('ec.crt') };
const CLIENT1 = { cert: pem('apiserver1.crt'), key: pem('apiserver1.key') };
const CLIENT2 = { cert: pem('apiserver2.crt'), key: pem('apiserver2.key') };

// ---------------------------------------------------------------------------------------------
// Clients

type Handshake = { ok: true; protocol: string; cipher: string } | { ok: false; code: string };

/** A bare TLS handshake; resolves with what was negotiated or the client's error code. */
function handshake(port: number, opts: ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, ...opts }, () => {
      const out: Handshake = { ok: true, protocol: s.getProtocol() ?? '', cipher: s.getCipher().name };
      s.end();
      resolve(out);
    });
    s.setTimeout(10_000, () => s.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    s.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, code: err.code ?? err.message }));
  });
}

/**
 * GET /healthz: with TLS 1.3 a client believes the handshake done before the server has checked its
 * certificate, so only a request shows whether it got in.
 */
function healthz(port: number, opts: RequestOptions): Promise<string> {
  return new Promise((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/healthz', agent: false, ...opts }, (res) => {
      res.resume();
      res.on('end', () => resolve(`HTTP ${res.statusCode}`));
    });
    req.setTimeout(10_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
    req.end();
  });
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function refusals(server: WebhookServer, reason: string): Promise<number> {
  const m = await server.metrics.tlsErrors.get();
  return m.values.find((v) => v.labels['reason'] === reason)?.value ?? 0;
}

/** Expects a refusal counted under `reason` by the server. */
async function expectRefused(server: WebhookServer, reason: string, attempt: () => Promise<Handshake | string>, what: string): Promise<void> {
  const before = await refusals(server, reason);
  const r = await attempt();
  if (typeof r === 'string') {
    assert.match(r, /^error /, `${what}: ${r}`);
    assert.not.match(r, /TIMEOUT/, what);
  } else {
    assert.is(r.ok, false, `${what}: ${JSON.stringify(r)}`);
  }
  await until(`${what}: a refusal counted as ${reason}`, async () => (await refusals(server, reason)) > before);
}

async function started(opts: Partial<ConstructorParameters<typeof WebhookServer>[0]>): Promise<{ server: WebhookServer; port: number }> {
  const server = new WebhookServer({ certFile: file('rsa.crt'), keyFile: file('rsa.key'), port: 0, host: '127.0.0.1', defaultMetrics: false, certPollIntervalMs: 50, ...opts });
  const { port } = await server.start();
  return { server, port };
}

test.after(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// Protocol versions and suites

test('TLS 1.1 is refused; TLS 1.2 with a non-forward-secret or CBC suite is refused; ECDHE with AES-GCM or ChaCha20-Poly1305 and TLS 1.3 work', async () => {
  const { server, port } = await started({});
  try {
    // SECLEVEL=0: OpenSSL 3 clients will not even offer TLS 1.1 otherwise, and the server would see nothing.
    await expectRefused(server, 'protocol_version', () => handshake(port, { ca: CA.rsa, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }), 'a TLS 1.1 client');
    await expectRefused(server, 'no_shared_cipher', () => handshake(port, { ca: CA.rsa, maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA:AES256-SHA256' }), 'RSA key exchange, CBC (AES128-SHA, AES256-SHA256)');
    await expectRefused(server, 'no_shared_cipher', () => handshake(port, { ca: CA.rsa, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384' }), 'forward-secret but CBC (ECDHE-RSA-AES128-SHA)');
    await expectRefused(server, 'no_shared_cipher', () => handshake(port, { ca: CA.rsa, maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256:AES256-GCM-SHA384' }), 'AEAD without forward secrecy (AES128-GCM-SHA256)');
    await expectRefused(server, 'no_shared_cipher', () => handshake(port, { ca: CA.rsa, maxVersion: 'TLSv1.2', ciphers: 'DHE-RSA-AES128-GCM-SHA256' }), 'finite-field DHE');

    for (const cipher of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
      const r = await handshake(port, { ca: CA.rsa, maxVersion: 'TLSv1.2', ciphers: cipher });
      assert.equal(r, { ok: true, protocol: 'TLSv1.2', cipher }, cipher);
    }
    const t13 = await handshake(port, { ca: CA.rsa, minVersion: 'TLSv1.3' });
    assert.ok(t13.ok && t13.protocol === 'TLSv1.3', JSON.stringify(t13));
    // A client offering everything (Node's defaults) gets an allowed suite.
    const any12 = await handshake(port, { ca: CA.rsa, maxVersion: 'TLSv1.2' });
    assert.ok(any12.ok && /^ECDHE-RSA-(AES\d+-GCM|CHACHA20-POLY1305)/.test(any12.cipher), JSON.stringify(any12));
    assert.is(await healthz(port, { ca: CA.rsa }), 'HTTP 200');
  } finally {
    await server.close();
  }
});

test('an ECDSA serving certificate: ECDHE-ECDSA with AES-GCM or ChaCha20-Poly1305 works, ECDHE-ECDSA with CBC is refused', async () => {
  const { server, port } = await started({ certFile: file('ec.crt'), keyFile: file('ec.key') });
  try {
    for (const cipher of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
      assert.equal(await handshake(port, { ca: CA.ec, maxVersion: 'TLSv1.2', ciphers: cipher }), { ok: true, protocol: 'TLSv1.2', cipher }, cipher);
    }
    await expectRefused(server, 'no_shared_cipher', () => handshake(port, { ca: CA.ec, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384' }), 'ECDHE-ECDSA with CBC');
  } finally {
    await server.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Client certificates

test('--client-ca: no client certificate and one from another CA are refused, one from the CA is accepted (TLS 1.2 and 1.3)', async () => {
  const { server, port } = await started({ clientCaFile: file('ca1.crt') });
  try {
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      await expectRefused(server, 'no_client_certificate', () => healthz(port, { ca: CA.rsa, maxVersion }), `${maxVersion}, no client certificate`);
      await expectRefused(server, 'untrusted_client_certificate', () => healthz(port, { ca: CA.rsa, maxVersion, ...CLIENT2 }), `${maxVersion}, a certificate from another CA`);
      assert.is(await healthz(port, { ca: CA.rsa, maxVersion, ...CLIENT1 }), 'HTTP 200', `${maxVersion}, kube-apiserver's certificate`);
    }
    // The suite policy holds with client certificates too.
    await expectRefused(server, 'no_shared_cipher', () => handshake(port, { ca: CA.rsa, maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA', ...CLIENT1 }), 'a weak suite with a good certificate');
  } finally {
    await server.close();
  }
});

test('without --client-ca no client certificate is asked for', async () => {
  const { server, port } = await started({});
  try {
    assert.is(await healthz(port, { ca: CA.rsa }), 'HTTP 200');
    assert.is(await healthz(port, { ca: CA.rsa, ...CLIENT2 }), 'HTTP 200');
  } finally {
    await server.close();
  }
});

test('reloads: a new client CA file is used for new connections; a serving certificate reload keeps the protocol floor and the suites', async () => {
  const caFile = file('client-ca.pem');
  const certFile = file('serving.crt');
  const keyFile = file('serving.key');
  const put = (src: string, dst: string) => {
    copyFileSync(src, `${dst}.tmp`);
    renameSync(`${dst}.tmp`, dst);
  };
  put(file('ca1.crt'), caFile);
  put(file('rsa.crt'), certFile);
  put(file('rsa.key'), keyFile);
  const { server, port } = await started({ certFile, keyFile, clientCaFile: caFile });
  try {
    assert.is(await healthz(port, { ca: CA.rsa, ...CLIENT1 }), 'HTTP 200');

    put(file('ca2.crt'), caFile);
    await until('the new client CA to be used', async () => (await healthz(port, { ca: CA.rsa, ...CLIENT2 })) === 'HTTP 200');
    await expectRefused(server, 'untrusted_client_certificate', () => healthz(port, { ca: CA.rsa, ...CLIENT1 }), 'the old CA\'s client after the reload');

    // A client CA file without a certificate does not load: counted, and the previous CA stays.
    const errorsBefore = (await server.metrics.certReloads.get()).values.find((v) => v.labels['outcome'] === 'error')?.value ?? 0;
    put(file('ca1.key'), caFile);
    await until('the bad CA file to be counted', async () => ((await server.metrics.certReloads.get()).values.find((v) => v.labels['outcome'] === 'error')?.value ?? 0) > errorsBefore);
    assert.is(await healthz(port, { ca: CA.rsa, ...CLIENT2 }), 'HTTP 200');
    put(file('ca2.crt'), caFile); // the files load all together or not at all: repair the CA file first

    // A new serving pair (ECDSA now): still TLS 1.2+ and AEAD suites only.
    put(file('ec.key'), keyFile);
    put(file('ec.crt'), certFile);
    await until('the new serving certificate', async () => {
      const r = await handshake(port, { ca: CA.ec, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', ...CLIENT2 });
      return r.ok;
    });
    await expectRefused(server, 'no_shared_cipher', () => handshake(port, { ca: CA.ec, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA256', ...CLIENT2 }), 'CBC after the reload');
    await expectRefused(server, 'protocol_version', () => handshake(port, { ca: CA.ec, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0', ...CLIENT2 }), 'TLS 1.1 after the reload');
    await expectRefused(server, 'no_client_certificate', () => healthz(port, { ca: CA.ec }), 'no client certificate after the reload');
  } finally {
    await server.close();
  }
});

test('--client-ca start errors: unreadable, or no certificate in the file', async () => {
  const start = async (clientCaFile: string): Promise<WebhookStartError> => {
    const s = new WebhookServer({ certFile: file('rsa.crt'), keyFile: file('rsa.key'), clientCaFile, port: 0, host: '127.0.0.1', defaultMetrics: false });
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
  const missing = await start(file('missing-ca.crt'));
  assert.is(missing.code, 'cert_unreadable');
  assert.match(missing.message, /cannot read --client-ca .*missing-ca\.crt: ENOENT/);
  const notCa = await start(file('ca1.key'));
  assert.is(notCa.code, 'cert_invalid');
  assert.match(notCa.message, /--client-ca .*ca1\.key does not load: no PEM certificate/);
});

test('tlsErrorReason: OpenSSL codes and the socket\'s verification result', () => {
  const e = (code: string) => Object.assign(new Error(code), { code });
  assert.is(tlsErrorReason(e('ERR_SSL_UNSUPPORTED_PROTOCOL')), 'protocol_version');
  assert.is(tlsErrorReason(e('ERR_SSL_NO_SHARED_CIPHER')), 'no_shared_cipher');
  assert.is(tlsErrorReason(e('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE')), 'no_client_certificate');
  assert.is(tlsErrorReason(e('ECONNRESET'), { authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' as unknown as Error }), 'untrusted_client_certificate');
  assert.is(tlsErrorReason(e('ECONNRESET'), { authorizationError: null as unknown as Error }), 'aborted');
  assert.is(tlsErrorReason(e('ERR_SSL_HTTP_REQUEST')), 'not_tls');
  assert.is(tlsErrorReason(e('ERR_TLS_HANDSHAKE_TIMEOUT')), 'timeout');
  assert.is(tlsErrorReason(e('ERR_SOMETHING_NEW')), 'other');
});

test.run();
