/**
 * Certificates and TLS clients for the transport-security tests: a throwaway CA made with
 * /usr/bin/openssl (EC P-256, two days), a serving certificate for 127.0.0.1 and localhost, client
 * certificates from it and from a second, untrusted CA, and clients that report what happened
 * (status, or the error code) instead of throwing.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';

const OPENSSL = '/usr/bin/openssl';

function openssl(args: string[], cwd: string): void {
  const r = spawnSync(OPENSSL, args, { cwd, encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`openssl ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}. The TLS tests need OpenSSL at ${OPENSSL} (Debian/Ubuntu: apt-get install -y openssl).`);
  }
}

export interface TestPki {
  dir: string;
  /** The CA that signs the serving certificate and the trusted client certificate. */
  ca: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate from `ca`. */
  clientCert: string;
  clientKey: string;
  /** A second CA, trusted by nobody, and a client certificate from it. */
  otherCa: string;
  otherClientCert: string;
  otherClientKey: string;
  /** Makes another serving certificate from `ca` (for reload tests): returns its paths. */
  newServer(name: string): { cert: string; key: string };
  /** Writes `src` over `dest` atomically (rename), as a Secret volume update does. */
  replace(src: string, dest: string): void;
}

export function makeTestPki(dir: string): TestPki {
  mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string) =>
    openssl(['req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const issue = (name: string, caName: string, subj: string, ext: string[]) => {
    openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], dir);
    writeFileSync(join(dir, `${name}.ext`), `${['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', ...ext].join('\n')}\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
    return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  ca('ca');
  ca('other-ca');
  const serverExt = ['extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost'];
  const server = issue('server', 'ca', '/CN=kube-correlate-collector', serverExt);
  const client = issue('client', 'ca', '/CN=kube-apiserver', ['extendedKeyUsage=clientAuth']);
  const other = issue('other-client', 'other-ca', '/CN=intruder', ['extendedKeyUsage=clientAuth']);
  return {
    dir, ca: join(dir, 'ca.crt'), serverCert: server.cert, serverKey: server.key,
    clientCert: client.cert, clientKey: client.key,
    otherCa: join(dir, 'other-ca.crt'), otherClientCert: other.cert, otherClientKey: other.key,
    newServer: (name) => issue(name, 'ca', `/CN=${name}`, serverExt),
    replace(src, dest) {
      const tmp = `${dest}.tmp`;
      copyFileSync(src, tmp);
      renameSync(tmp, dest);
    },
  };
}

/** The fingerprint (SHA-256, as X509Certificate shows it) of a PEM certificate file. */
export async function fingerprintOf(certFile: string): Promise<string> {
  const { X509Certificate } = await import('node:crypto');
  return new X509Certificate(readFileSync(certFile)).fingerprint256;
}

export interface TlsClientOptions {
  /** PEM CA bundle file to trust (default: none, so only plaintext works). */
  ca?: string;
  cert?: string;
  key?: string;
  /** Sent as `authorization: Bearer <token>`. */
  token?: string;
  /** Sent as `authorization` as it is. */
  authorization?: string;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export interface HttpOutcome {
  /** The HTTP status, or undefined when the request failed. */
  status?: number;
  headers?: IncomingHttpHeaders;
  body?: string;
  /** The error code when the request failed (ECONNRESET, ERR_SSL_..., DEPTH_ZERO_SELF_SIGNED_CERT, ...). */
  error?: string;
  /** The server certificate's fingerprint (TLS). */
  fingerprint256?: string;
}

/** One HTTP(S) request (no keep-alive); never throws. `url` decides http or https. */
export function httpCall(url: string, opts: TlsClientOptions & { method?: string; body?: string | Buffer; contentType?: string } = {}): Promise<HttpOutcome> {
  const u = new URL(url);
  const headers: Record<string, string | number> = {};
  if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
  if (opts.authorization !== undefined) headers['authorization'] = opts.authorization;
  if (opts.body !== undefined) {
    headers['content-type'] = opts.contentType ?? 'application/json';
    headers['content-length'] = Buffer.byteLength(opts.body);
  }
  const tls = u.protocol === 'https:';
  return new Promise((resolve) => {
    const common = { method: opts.method ?? (opts.body !== undefined ? 'POST' : 'GET'), headers, agent: false as const };
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const socket = res.socket as TLSSocket;
        const fp = tls && typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate()?.fingerprint256 : undefined;
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), ...(fp ? { fingerprint256: fp } : {}) });
      });
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    };
    const req = tls
      ? httpsRequest(u, {
        ...common,
        ...(opts.ca ? { ca: readFileSync(opts.ca) } : {}),
        ...(opts.cert ? { cert: readFileSync(opts.cert) } : {}),
        ...(opts.key ? { key: readFileSync(opts.key) } : {}),
        ...(opts.minVersion ? { minVersion: opts.minVersion } : {}),
        ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}),
      }, onResponse)
      : httpRequest(u, common, onResponse);
    req.setTimeout(20_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end(opts.body);
  });
}

/**
 * One unary gRPC call on a raw HTTP/2 connection (h2c, or h2 over TLS with `tls`): resolves with
 * grpc-status and grpc-message, or the connection error's code. Used to see exactly what a client
 * gets (no grpc-js client-side interpretation).
 */
export function rawGrpcCall(address: string, path: string, message: Buffer, opts: TlsClientOptions & { tls?: boolean; flag?: number; headers?: Record<string, string> } = {}): Promise<{ status?: string; message?: string; error?: string }> {
  return new Promise((resolve) => {
    const authority = `${opts.tls ? 'https' : 'http'}://${address}`;
    const session = http2Connect(authority, opts.tls ? {
      ...(opts.ca ? { ca: readFileSync(opts.ca) } : {}),
      ...(opts.cert ? { cert: readFileSync(opts.cert) } : {}),
      ...(opts.key ? { key: readFileSync(opts.key) } : {}),
    } : {});
    let done = false;
    const finish = (r: { status?: string; message?: string; error?: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ error: 'TIMEOUT' }), 20_000);
    session.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }));
    const headers: Record<string, string> = { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...(opts.headers ?? {}) };
    if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
    if (opts.authorization !== undefined) headers['authorization'] = opts.authorization;
    const req = session.request(headers);
    let got: Record<string, unknown> = {};
    req.on('response', (h) => (got = { ...got, ...h }));
    req.on('trailers', (t) => (got = { ...got, ...t }));
    req.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }));
    req.on('close', () => {
      if (got['grpc-status'] === undefined) return finish({ error: `stream closed without grpc-status (${req.rstCode})` });
      finish({ status: String(got['grpc-status']), message: decodeURIComponent(String(got['grpc-message'] ?? '')) });
    });
    req.resume();
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt8(opts.flag ?? 0, 0);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    req.end(frame);
  });
}
