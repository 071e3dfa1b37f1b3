import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import { PermanentError, PipelineError } from '../component/errors.js';
import { retryAfterHeaders, statusOf, type Refusal } from '../component/status.js';
import type { Host } from '../component/component.js';
import { ReceiverCounters } from './receiver-counters.js';
import type { ListenerSecurity } from './security.js';

/**
 * HTTP listeners: one way to create, bind, answer on and close them, for the OTLP/HTTP receiver,
 * the audit webhook, the query API and /metrics. With `tls` (serverSettings, confmap/schema.ts)
 * they serve HTTPS with the certificate reloaded on change, with `auth` every request must carry
 * the token (security.ts): `serveHttp` is where both happen, for every HTTP listener alike.
 */

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

/** Splits "host:port" ("[::1]:4317", ":4317" = all interfaces). */
export function splitEndpoint(endpoint: string): { host: string; port: number } {
  const i = endpoint.lastIndexOf(':');
  let host = endpoint.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host: host || '0.0.0.0', port: Number(endpoint.slice(i + 1)) };
}

/**
 * A receiver that listens on HTTP: binds `endpoint`, hands each request to `handle`, stops
 * accepting on shutdown and lets in-flight requests finish. A request gets at most a minute (slow
 * clients cannot hold sockets for ever).
 */
export abstract class HttpReceiver {
  private server: Server | undefined;
  private boundAddress = '';
  protected readonly counters: ReceiverCounters;

  constructor(
    /** For messages: "OTLP/HTTP", "audit webhook". */
    private readonly what: string,
    protected readonly listener: { name: string; endpoint: string; logger: Logger; metrics: PipelineMetrics; security?: ListenerSecurity | undefined },
  ) {
    this.counters = new ReceiverCounters(listener.metrics, listener.name);
  }

  get address(): string {
    return this.boundAddress;
  }

  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>;

  /** A refusal's body in the receiver's format (google.rpc.Status, `{"error": ...}`), for this request. */
  protected abstract refusalBody(r: Refusal, req: IncomingMessage): { contentType: string; body: Buffer | string };

  /** Answers a failed request with the status the status table gives `err`, and counts it; a bug is logged. */
  protected refuse(req: IncomingMessage, res: ServerResponse, err: unknown, headers: Record<string, string> = {}): void {
    const r = statusOf(err);
    this.counters.refusedRequest(r.reason);
    if (r.internal) this.listener.logger.error({ err, receiver: this.listener.name }, `${this.what} request failed`);
    const { contentType, body } = this.refusalBody(r, req);
    answer(req, res, r.http, contentType, body, { ...retryAfterHeaders(r), ...headers });
  }

  /**
   * Reads the body (at most `maxBytes`, see readBody) and decodes it with `decode`, which throws a
   * PermanentError for what it refuses. Any other failure while reading is a 400 `read_error`,
   * logged.
   */
  protected async read<T>(req: IncomingMessage, maxBytes: number, decode: (body: Buffer) => T): Promise<T> {
    try {
      return decode(await readBody(req, maxBytes));
    } catch (err) {
      if (err instanceof PipelineError) throw err;
      this.listener.logger.error({ err, receiver: this.listener.name }, `${this.what}: reading request failed`);
      throw new PermanentError(`cannot read request: ${(err as Error).message}`, { reason: 'read_error' });
    }
  }

  /**
   * Listens. `host`: where the `auth.authenticator` extension is found (a receiver with `auth`
   * needs it). A request without the token is refused 401 before anything else is looked at.
   */
  async start(host?: Pick<Host, 'getExtension'>): Promise<void> {
    const { name, endpoint, logger, security } = this.listener;
    const { server, address } = await serveHttp({
      endpoint, security, host, what: `receiver ${name} (${this.what})`,
      handler: (req, res) => {
        const denied = security?.check(req.headers.authorization);
        if (denied) return this.refuse(req, res, denied.error, { 'www-authenticate': denied.challenge });
        void this.handle(req, res);
      },
    });
    this.boundAddress = address;
    this.server = server;
    logger.info({ receiver: name, endpoint: this.boundAddress, tls: !!security?.tls, auth: !!security?.authenticates }, `${this.what} receiver listening`);
  }

  async shutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.listener.security?.stop();
    if (server) await closeHttp(server);
  }
}

/**
 * Creates and binds an HTTP listener: HTTPS when `security` has TLS (TLS handshake refusals
 * counted, the certificate reloaded when its files change), plain HTTP otherwise (with a warning
 * when that is not on loopback). Loads the TLS files and finds the authenticator first (`resolve`):
 * a missing file fails here, with a message naming its key. Requests get at most a minute.
 */
export async function serveHttp(opts: {
  endpoint: string;
  handler: RequestListener;
  /** For messages: "receiver otlp (OTLP/HTTP)", "query API". */
  what: string;
  security?: ListenerSecurity | undefined;
  host?: Pick<Host, 'getExtension'> | undefined;
  requestTimeoutMs?: number;
}): Promise<{ server: Server; address: string }> {
  const { security, handler } = opts;
  security?.resolve(opts.host);
  let server: Server;
  if (security?.tls) {
    const https: HttpsServer = createHttpsServer(security.serverOptions(), handler);
    https.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => security.onTlsClientError(err, socket));
    server = https;
  } else {
    server = createServer(handler);
  }
  server.requestTimeout = opts.requestTimeoutMs ?? 60_000;
  const address = await listenHttp(server, opts.endpoint, opts.what);
  if (security?.tls) security.watch((o) => (server as HttpsServer).setSecureContext(o));
  security?.warnIfExposed(splitEndpoint(opts.endpoint).host, opts.what);
  return { server, address };
}

/** Listens and resolves with the bound address, or rejects with a message naming the endpoint. */
export function listenHttp(server: Server, endpoint: string, what: string): Promise<string> {
  const { host, port } = splitEndpoint(endpoint);
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new Error(`${what}: cannot listen on ${endpoint}: ${err.code ?? err.message}`));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const a = server.address() as AddressInfo;
      resolve(`${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
    });
  });
}

/** Stops accepting, lets in-flight requests finish (bounded), then closes idle keep-alive sockets. */
export function closeHttp(server: Server, graceMs = 5000): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => server.closeAllConnections(), graceMs);
    t.unref();
    server.close(() => {
      clearTimeout(t);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * Writes a whole response. After an early answer (a refusal before the body was read) the rest of
 * the body is not read: the connection is closed rather than reused.
 */
export function answer(req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: Buffer | string, headers: Record<string, string> = {}): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { 'content-type': contentType, 'content-length': bytes.length, ...headers, ...(req.complete ? {} : { connection: 'close' }) });
  res.end(bytes);
}

/** A JSON body, or a 400 `invalid_json`. */
export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new PermanentError(`invalid JSON: ${(err as Error).message}`, { reason: 'invalid_json' });
  }
}

/** The media type of a request, lower case, without parameters ('' when absent). */
export function mediaType(req: IncomingMessage, absent = ''): string {
  return String(req.headers['content-type'] ?? absent).split(';')[0]!.trim().toLowerCase();
}

/**
 * Reads a request body of at most `maxBytes`, both as sent and after decompression
 * (Content-Encoding gzip, deflate or identity), so a small gzip bomb is refused like a large body.
 * Refusals are PermanentErrors: 413 `too_large`, 415 `unsupported_encoding`, 400 `bad_compression`.
 */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > maxBytes) throw tooLarge(declared, maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge(size, maxBytes);
    chunks.push(chunk);
  }
  const raw = Buffer.concat(chunks, size);
  const encoding = String(req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity' || encoding === '') return raw;
  if (encoding !== 'gzip' && encoding !== 'deflate') {
    throw new PermanentError(`unsupported Content-Encoding "${encoding}": send gzip, deflate or identity`, { http: 415, reason: 'unsupported_encoding' });
  }
  try {
    return await (encoding === 'gzip' ? gunzipAsync : inflateAsync)(raw, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new PermanentError(`request body is larger than ${maxBytes} bytes after ${encoding} decompression`, { http: 413, reason: 'too_large' });
    }
    throw new PermanentError(`cannot decompress ${encoding} body: ${(err as Error).message}`, { reason: 'bad_compression' });
  }
}

function tooLarge(size: number, max: number): PermanentError {
  return new PermanentError(`request body of ${size} bytes is larger than the limit of ${max} bytes`, { http: 413, reason: 'too_large' });
}
