import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { parseCaBundle } from '@kube-correlate/telemetry';
import { CliError } from './errors.js';

/**
 * How the CLI talks to a pipeline's listeners (the query API, the OTLP/HTTP receiver, the audit
 * webhook): http:// or https:// URLs, a CA to trust (`--cacert`), a client certificate for mutual
 * TLS (`--cert`, `--key`) and a bearer token (`--token`, `--token-file`). Every problem is a
 * one-line CliError (exit 2) saying what to change.
 */

/** The transport flags, as given on the command line. */
export interface TransportFlags {
  token?: string | undefined;
  tokenFile?: string | undefined;
  cacert?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/** The flags' files, read. */
export interface Transport {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** `Bearer <token>`. */
  authorization?: string;
}

const TOKEN = /^[\x21-\x7e]+$/;

export function hasTransportFlags(f: TransportFlags): boolean {
  return [f.token, f.tokenFile, f.cacert, f.cert, f.key].some((v) => v !== undefined);
}

/** Reads what the flags name; a missing or unusable file is a CliError naming the flag. */
export function loadTransport(f: TransportFlags): Transport {
  const read = (flag: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new CliError(`cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const out: Transport = {};
  if (f.token !== undefined && f.tokenFile !== undefined) throw new CliError('give --token or --token-file, not both');
  let token: string | undefined;
  if (f.tokenFile !== undefined) {
    token = read('--token-file', f.tokenFile).toString('utf8').trim();
    if (token === '') throw new CliError(`--token-file ${f.tokenFile} is empty`);
    if (!TOKEN.test(token)) throw new CliError(`--token-file ${f.tokenFile}: the token holds spaces or non-ASCII characters`);
  } else if (f.token !== undefined) {
    token = f.token.trim();
    if (!TOKEN.test(token)) throw new CliError('--token: want one token of visible ASCII characters (no spaces)');
  }
  if (token !== undefined) out.authorization = `Bearer ${token}`;
  if (f.cacert !== undefined) {
    const ca = read('--cacert', f.cacert);
    try {
      parseCaBundle(ca);
    } catch (err) {
      throw new CliError(`--cacert ${f.cacert}: ${(err as Error).message}`);
    }
    out.ca = ca;
  }
  if ((f.cert === undefined) !== (f.key === undefined)) throw new CliError('--cert and --key go together (a client certificate needs its key)');
  if (f.cert !== undefined && f.key !== undefined) {
    out.cert = read('--cert', f.cert);
    out.key = read('--key', f.key);
  }
  return out;
}

/** An endpoint flag's URL: http:// or https:// only, or a CliError naming the flag and an example. */
export function parseEndpoint(flag: string, value: string, example: string): URL {
  let url: URL;
  // host:port without a scheme (URL reads "localhost:" as one).
  if (/^(\[[0-9a-fA-F:]+\]|[^/:]+):\d+\/?$/.test(value)) throw new CliError(`invalid ${flag} "${value}": want an http:// or https:// URL such as ${example} (add the scheme: http://${value})`);
  try {
    url = new URL(value);
  } catch {
    throw new CliError(`invalid ${flag} "${value}": want an http:// or https:// URL such as ${example}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(`invalid ${flag} "${value}": ${url.protocol.replace(/:$/, '')} is not http or https; want a URL such as ${example}`);
  }
  return url;
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * HTTP(S) requests with the transport's CA, client certificate and token, over keep-alive
 * connections (one agent per scheme). `what` names the server in messages ("the query API").
 */
export class HttpClient {
  private readonly http = new HttpAgent({ keepAlive: true });
  private readonly https: HttpsAgent;

  constructor(private readonly transport: Transport = {}) {
    const t = transport;
    this.https = new HttpsAgent({ keepAlive: true, minVersion: 'TLSv1.2', ...(t.ca ? { ca: t.ca } : {}), ...(t.cert ? { cert: t.cert } : {}), ...(t.key ? { key: t.key } : {}) });
  }

  /** Resolves with the answer whatever its status; a connection or TLS failure is a CliError saying what to do (`hint` for a refused connection). */
  request(url: URL, opts: { what: string; method?: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number; hint?: string }): Promise<HttpAnswer> {
    const headers: Record<string, string | number> = { ...(opts.headers ?? {}) };
    if (this.transport.authorization) headers['authorization'] = this.transport.authorization;
    if (opts.body !== undefined) headers['content-length'] = Buffer.byteLength(opts.body);
    const tls = url.protocol === 'https:';
    const send = tls ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      // Whether this request's own connection completed its TLS handshake before failing, with no
      // answer: see failure().
      let handshaken = false;
      let answered = false;
      const fail = (err: NodeJS.ErrnoException) => reject(this.failure(err, url, opts.what, opts.hint, handshaken && !answered));
      const req = send(url, { method: opts.method ?? 'GET', headers, agent: tls ? this.https : this.http }, (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', fail);
      });
      if (tls) req.once('socket', (socket) => socket.once('secureConnect', () => (handshaken = true)));
      req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(Object.assign(new Error(`no answer within ${(opts.timeoutMs ?? 30_000) / 1000} s`), { code: 'ETIMEDOUT' })));
      req.on('error', fail);
      req.end(opts.body);
    });
  }

  close(): void {
    this.http.destroy();
    this.https.destroy();
  }

  /**
   * A failed connection as one line that says what to change. `closedAfterHandshake`: the
   * connection was closed right after its TLS handshake, before any answer.
   */
  private failure(err: NodeJS.ErrnoException, url: URL, what: string, hint: string | undefined, closedAfterHandshake = false): CliError {
    const code = err.code ?? err.message;
    const at = `${what} at ${url.origin}`;
    const tls = url.protocol === 'https:';
    if (tls && /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT_ALTNAME_INVALID/.test(code) && !/ALERT/.test(code)) {
      if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return new CliError(`${at}: its TLS certificate does not name ${url.hostname} (${code}): use the name the certificate carries in the URL`);
      return new CliError(`${at}: its TLS certificate is not trusted (${code}): give the CA that signed it with --cacert <file>`);
    }
    if (tls && /ALERT_CERTIFICATE_REQUIRED|ALERT_BAD_CERTIFICATE|ALERT_UNKNOWN_CA|ALERT_HANDSHAKE_FAILURE|ALERT_CERTIFICATE_UNKNOWN/.test(code)) {
      return new CliError(`${at} refused the TLS handshake (${code}): it requires a client certificate it trusts: give --cert <file> and --key <file>`);
    }
    if (tls && (code === 'EPROTO' || /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG/.test(code) || /wrong version number/i.test(err.message))) {
      return new CliError(`${at} does not speak TLS (${code}): use http://`);
    }
    // A Node server (every kube-correlate listener) that requires a client certificate checks it
    // after the handshake and closes the connection without a TLS alert when it does not trust it:
    // the client sees its handshake succeed, then a reset.
    if (closedAfterHandshake && this.transport.cert && (code === 'ECONNRESET' || code === 'EPIPE' || /socket hang up/i.test(err.message))) {
      return new CliError(`${at} closed the connection after the TLS handshake (${code}): it did not accept the client certificate given: give --cert <file> and --key <file> from a CA it trusts`);
    }
    if (!tls && (code === 'ECONNRESET' || code === 'HPE_INVALID_CONSTANT' || /socket hang up/i.test(err.message))) {
      return new CliError(`${at} closed the connection (${code}): if it serves TLS, use https:// (with --cacert <file> for a private CA)`);
    }
    return new CliError(`cannot reach ${at}: ${code}${hint ? ` (${hint})` : ''}`);
  }
}

/** The error message of a JSON answer `{"error": "..."}` or `{"message": "..."}`, else its text (first 200 characters). */
export function answerMessage(a: HttpAnswer): string {
  const text = a.body.toString('utf8');
  try {
    const j = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof j.error === 'string') return j.error;
    if (typeof j.message === 'string') return j.message;
  } catch {
    // not JSON
  }
  const t = text.trim();
  return t.length > 200 ? `${t.slice(0, 200)}…` : t;
}

/** What to say about a 401: how to give a token, or that the one given was refused. */
export function unauthorizedHint(transport: Transport): string {
  return transport.authorization ? 'the token given was refused' : 'give the token with --token-file <file> or --token <token>';
}
