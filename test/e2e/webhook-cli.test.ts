import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, reported, runCli, spawnCorrelate, tempDir, waitFor } from '../harness/index.js';
import { killGroup } from '../harness/supervise.js';

/**
 * `correlate webhook --client-ca` as a process: only a client with a certificate from that CA (as
 * kube-apiserver presents through its admission kubeconfig) gets an answer; SIGTERM ends it with 0;
 * a --client-ca file that is missing or holds no certificate ends it at once with exit code 2.
 */
const tmp = tempDir('kc-webhook-cli-');
const f = (name: string) => join(tmp.dir, name);

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`openssl is required for this test: ${r.error?.message ?? r.stderr}`);
}

test.before(reported('certificates', () => {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', f('tls.key'), '-out', f('tls.crt'), '-days', '1', '-subj', '/CN=kube-correlate-webhook', '-addext', 'subjectAltName=IP:127.0.0.1']);
  for (const ca of ['ca', 'other-ca']) {
    openssl(['req', '-x509', ...ec, '-keyout', f(`${ca}.key`), '-out', f(`${ca}.crt`), '-days', '1', '-subj', `/CN=${ca}`, '-addext', 'basicConstraints=critical,CA:TRUE']);
    openssl(['req', ...ec, '-keyout', f(`client-${ca}.key`), '-out', f(`client-${ca}.csr`), '-subj', '/CN=kube-apiserver']);
    openssl(['x509', '-req', '-in', f(`client-${ca}.csr`), '-CA', f(`${ca}.crt`), '-CAkey', f(`${ca}.key`), '-CAcreateserial', '-out', f(`client-${ca}.crt`), '-days', '1']);
  }
}));
test.after(() => tmp.cleanup());

function healthz(port: number, client?: string): Promise<string> {
  return new Promise((resolve) => {
    const tls = client ? { cert: readFileSync(f(`client-${client}.crt`)), key: readFileSync(f(`client-${client}.key`)) } : {};
    const req = request({ host: '127.0.0.1', port, path: '/healthz', agent: false, ca: readFileSync(f('tls.crt')), ...tls }, (res) => {
      res.resume();
      res.on('end', () => resolve(`HTTP ${res.statusCode}`));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
    req.end();
  });
}

test('correlate webhook --client-ca: kube-apiserver\'s certificate is accepted, none or another CA\'s is refused; SIGTERM exits 0', async () => {
  const port = await freePort();
  const { child, exited } = spawnCorrelate(['webhook', '--cert', f('tls.crt'), '--key', f('tls.key'), '--client-ca', f('ca.crt'), '--host', '127.0.0.1', '--port', String(port)]);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  try {
    await waitFor('the webhook to start', () => (stderr.includes('admission webhook is running') ? true : undefined), 60_000).catch((e: Error) => {
      throw new Error(`${e.message}; stderr:\n${stderr}`);
    });
    assert.match(stderr, /clients\s+must present a certificate from .*ca\.crt/);
    assert.is(await healthz(port, 'ca'), 'HTTP 200');
    assert.match(await healthz(port), /^error /);
    assert.match(await healthz(port, 'other-ca'), /^error /);
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const end = await Promise.race([exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 20_000)))]);
    clearTimeout(timer);
    assert.equal(end, { code: 0, signal: null }, stderr);
  } finally {
    killGroup(child.pid, 'SIGKILL');
  }
});

test('correlate webhook: a missing or certificate-less --client-ca file exits 2 with a one-line reason', async () => {
  const port = String(await freePort());
  const missing = await runCli(['webhook', '--cert', f('tls.crt'), '--key', f('tls.key'), '--client-ca', f('nope.crt'), '--host', '127.0.0.1', '--port', port], { timeoutMs: 30_000 });
  assert.is(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /cannot read --client-ca .*nope\.crt: ENOENT/);
  const notCa = await runCli(['webhook', '--cert', f('tls.crt'), '--key', f('tls.key'), '--client-ca', f('ca.key'), '--host', '127.0.0.1', '--port', port], { timeoutMs: 30_000 });
  assert.is(notCa.code, 2, notCa.stderr);
  assert.match(notCa.stderr, /--client-ca .*ca\.key does not load: no PEM certificate/);
});

test.run();
