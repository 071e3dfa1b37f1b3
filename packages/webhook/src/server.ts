import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Registry } from 'prom-client';
import { ServerTls, TlsFileError, TLS_MIN_VERSION, describeCert, silentLogger, tlsErrorReason, type Logger } from '@kube-correlate/telemetry';
import { WebhookMetrics, type ReviewMetricOutcome } from './metrics.js';
import {
  BadReviewError, allowResponse, mutate as defaultMutate, parseAdmissionReviewJson,
  type AdmissionReviewRequest, type MutateOptions, type MutateResult, type TraceHeaders,
} from './mutate.js';

/** kube-apiserver refuses request bodies over 3 MiB itself, so no honest review is larger. */
export const DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024;
export const DEFAULT_PORT = 8443;
export const DEFAULT_HOST = '0.0.0.0';
export const DEFAULT_CERT_POLL_INTERVAL_MS = 2000;
// The protocol floor, the suites and the handshake error reasons are every listener's
// (@kube-correlate/telemetry's tls.ts); re-exported here for the webhook's callers.
export { TLS_MIN_VERSION, TLS_CIPHERS, tlsErrorReason, type TlsErrorReason } from '@kube-correlate/telemetry';

export interface WebhookServerOptions {
  /** PEM certificate (chain) file, served to kube-apiserver. */
  certFile: string;
  /** PEM private key file. */
  keyFile: string;
  /**
   * PEM bundle of the CAs whose client certificates are accepted. When set, every connection must
   * present a certificate signed by one of them (kube-apiserver's, configured through its
   * --admission-control-config-file); the file is reloaded when it changes, like the serving pair.
   */
  clientCaFile?: string;
  /** Default 8443; 0 picks a free port. */
  port?: number;
  /** Default 0.0.0.0. */
  host?: string;
  logger?: Logger;
  /** Registry for the metrics (default: a new one). */
  registry?: Registry;
  /** Also register Node.js process metrics (prefix kube_correlate_) on it. Default true. */
  defaultMetrics?: boolean;
  /** How often the cert and key files are checked for changes (mtime, size, inode). Default 2000. */
  certPollIntervalMs?: number;
  /** Larger bodies are answered 413. Default 3 MiB. */
  maxBodyBytes?: number;
  /** Limit for receiving one whole request (Node's requestTimeout). Default 30 s, kube-apiserver's maximum webhook timeout. */
  requestTimeoutMs?: number;
  /** In-flight requests get this long after close() before their connections are cut. Default 5000. */
  shutdownGraceMs?: number;
  /** The decision function (default: mutate). Tests inject faults here. */
  mutate?: (review: AdmissionReviewRequest, headers: TraceHeaders, opts: MutateOptions) => MutateResult;
  /** Passed to mutate(): new object-set ids. */
  newObjsetId?: () => string;
}

export type WebhookStartErrorCode = 'cert_unreadable' | 'cert_invalid' | 'address_in_use' | 'listen_failed';

/** start() failed; `code` says why, the message is one line naming the file or address. */
export class WebhookStartError extends Error {
  override readonly name = 'WebhookStartError';
  constructor(readonly code: WebhookStartErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A minute between warnings about refused client certificates (each one is counted). */
const CLIENT_CERT_WARN_INTERVAL_MS = 60_000;

function positive(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be a positive number, got ${v}`);
  return v;
}

/**
 * The admission webhook's HTTPS server: POST /mutate (AdmissionReview), GET /healthz, GET /metrics.
 * TLS 1.2 and 1.3 only, forward-secret AEAD suites only (TLS_CIPHERS); with clientCaFile, a client
 * certificate from those CAs is required. The serving certificate and the client CAs are reloaded
 * when their files change (polled: Kubernetes Secret volumes swap a symlink, which directory watches
 * miss); files that do not load are reported and the previous ones kept.
 */
export class WebhookServer {
  readonly metrics: WebhookMetrics;
  private readonly logger: Logger;
  private readonly opts: WebhookServerOptions;
  private readonly port: number;
  private readonly host: string;
  private readonly maxBodyBytes: number;
  private readonly pollMs: number;
  private readonly requestTimeoutMs: number;
  private readonly graceMs: number;
  private readonly decide: NonNullable<WebhookServerOptions['mutate']>;
  private server: Server | undefined;
  private readonly tls: ServerTls;
  private poll: NodeJS.Timeout | undefined;
  private lastClientCertWarning = 0;
  private closing: Promise<void> | undefined;

  constructor(opts: WebhookServerOptions) {
    this.opts = opts;
    this.logger = opts.logger ?? silentLogger();
    this.metrics = new WebhookMetrics(opts.registry, { defaultMetrics: opts.defaultMetrics ?? true });
    this.port = opts.port ?? DEFAULT_PORT;
    if (!Number.isInteger(this.port) || this.port < 0 || this.port > 65535) throw new RangeError(`port must be an integer 0-65535, got ${this.port}`);
    this.host = opts.host ?? DEFAULT_HOST;
    this.maxBodyBytes = positive('maxBodyBytes', opts.maxBodyBytes, DEFAULT_MAX_BODY_BYTES);
    this.pollMs = positive('certPollIntervalMs', opts.certPollIntervalMs, DEFAULT_CERT_POLL_INTERVAL_MS);
    this.requestTimeoutMs = positive('requestTimeoutMs', opts.requestTimeoutMs, 30_000);
    this.graceMs = positive('shutdownGraceMs', opts.shutdownGraceMs, 5000);
    this.decide = opts.mutate ?? defaultMutate;
    this.tls = new ServerTls({
      certFile: opts.certFile, keyFile: opts.keyFile, ...(opts.clientCaFile !== undefined ? { clientCaFile: opts.clientCaFile } : {}),
      names: { cert: '--cert', key: '--key', clientCa: '--client-ca' },
    });
  }

  /** The bound address, once started. */
  get address(): { host: string; port: number } | undefined {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a ? { host: a.address, port: a.port } : undefined;
  }

  /** Loads the key pair and listens. Throws WebhookStartError. */
  async start(): Promise<{ host: string; port: number }> {
    if (this.server) throw new Error('WebhookServer already started');
    let files;
    try {
      files = this.tls.load();
    } catch (err) {
      if (err instanceof TlsFileError) throw new WebhookStartError(err.code, err.message, { cause: err });
      throw err;
    }
    const server = createServer(
      {
        ...this.tls.serverOptions(),
        requestTimeout: this.requestTimeoutMs, headersTimeout: Math.min(10_000, this.requestTimeoutMs),
      },
      (req, res) => this.onRequest(req, res),
    );
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => this.onTlsError(err, socket));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const where = `${this.host}:${this.port}`;
        reject(err.code === 'EADDRINUSE'
          ? new WebhookStartError('address_in_use', `port ${this.port} is already in use (${where})`, { cause: err })
          : new WebhookStartError('listen_failed', `cannot listen on ${where}: ${err.code ?? err.message}`, { cause: err }));
      };
      server.once('error', onError);
      server.listen({ port: this.port, host: this.host }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error({ err }, 'webhook server error'));
    this.server = server;
    this.poll = setInterval(() => void this.checkCertificate(), this.pollMs);
    this.poll.unref();
    const address = this.address!;
    this.logger.info({ ...address, certFile: this.opts.certFile, ...describeCert(files.cert), clientCaFile: this.opts.clientCaFile, minVersion: TLS_MIN_VERSION }, 'admission webhook listening');
    return address;
  }

  /** Stops listening, lets in-flight reviews finish (up to shutdownGraceMs). Safe before start and twice. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    if (this.poll) clearInterval(this.poll);
    const server = this.server;
    if (!server) return (this.closing = Promise.resolve());
    this.closing = new Promise((resolve) => {
      const cut = setTimeout(() => server.closeAllConnections(), this.graceMs);
      cut.unref();
      server.close(() => {
        clearTimeout(cut);
        resolve();
      });
      server.closeIdleConnections();
    });
    return this.closing;
  }

  /**
   * Reloads the serving pair and the client CAs if their files changed since the last load or
   * attempt. Returns 'ok' when the new files are now served, 'error' when they did not load (the
   * previous ones stay), or 'unchanged'. Called by the poller; callable directly.
   */
  async checkCertificate(): Promise<'ok' | 'error' | 'unchanged'> {
    const server = this.server;
    if (!server || this.closing) return 'unchanged';
    const caFile = this.opts.clientCaFile;
    const r = await this.tls.check((options) => server.setSecureContext(options));
    if (r.outcome === 'error') {
      this.metrics.certReloads.inc({ outcome: 'error' });
      this.logger.warn({ err: r.error.message, certFile: this.opts.certFile, keyFile: this.opts.keyFile, clientCaFile: caFile }, 'new certificate, key or client CA did not load; still serving the previous ones');
    } else if (r.outcome === 'ok') {
      this.metrics.certReloads.inc({ outcome: 'ok' });
      this.logger.info({ certFile: this.opts.certFile, ...describeCert(r.files.cert), clientCaFile: caFile }, 'serving certificate and client CAs reloaded');
    }
    return r.outcome;
  }

  private onTlsError(err: NodeJS.ErrnoException, socket: TLSSocket | undefined): void {
    const reason = tlsErrorReason(err, socket);
    this.metrics.tlsErrors.inc({ reason });
    const fields = { reason, err: err.message, code: err.code, authorizationError: socket?.authorizationError, remoteAddress: socket?.remoteAddress };
    // A refused client certificate usually means kube-apiserver is not configured to present the
    // right one: every review is then lost (failurePolicy Ignore), so say it, at most once a minute.
    const certProblem = reason === 'no_client_certificate' || reason === 'untrusted_client_certificate';
    const now = Date.now();
    if (certProblem && now - this.lastClientCertWarning >= CLIENT_CERT_WARN_INTERVAL_MS) {
      this.lastClientCertWarning = now;
      this.logger.warn(fields, 'client certificate refused (check kube-apiserver\'s admission kubeconfig and --client-ca; further refusals are counted in kube_correlate_webhook_tls_handshake_errors_total)');
    } else {
      this.logger.debug(fields, 'TLS handshake failed');
    }
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    if (req.method === 'POST' && path === '/mutate') return this.onReview(req, res);
    if (req.method === 'GET' && path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/metrics') {
      this.metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
          res.end(text);
        },
        (err: unknown) => sendJson(res, 500, { error: `metrics: ${(err as Error).message}` }),
      );
      return;
    }
    sendJson(res, 404, { error: `no route for ${req.method ?? '?'} ${path}` });
  }

  private onReview(req: IncomingMessage, res: ServerResponse): void {
    const started = process.hrtime.bigint();
    res.once('finish', () => this.metrics.reviewSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9));
    const refuse = (code: 400 | 413, outcome: ReviewMetricOutcome, error: string) => {
      this.metrics.reviews.inc({ operation: 'unknown', outcome, dry_run: 'false' });
      this.logger.debug({ code, error }, 'refused admission request');
      sendJson(res, code, { error });
    };
    const tooLarge = `request body exceeds ${this.maxBodyBytes} bytes`;
    const declared = Number(req.headers['content-length']);
    if (declared > this.maxBodyBytes) {
      req.resume(); // discard the body (bounded by requestTimeout) so the client reads the answer
      return refuse(413, 'too_large', tooLarge);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > this.maxBodyBytes) {
        over = true;
        chunks.length = 0;
        refuse(413, 'too_large', tooLarge);
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => undefined); // aborted by the client: nothing to answer
    req.on('end', () => {
      if (over || res.headersSent) return;
      let review: AdmissionReviewRequest;
      try {
        review = parseAdmissionReviewJson(Buffer.concat(chunks, size).toString('utf8'));
      } catch (err) {
        return refuse(400, 'bad_request', err instanceof BadReviewError ? err.message : `unreadable body: ${(err as Error).message}`);
      }
      const result = this.review(review, req);
      this.metrics.reviews.inc({ operation: result.operation, outcome: result.outcome, dry_run: String(result.dryRun) });
      sendJson(res, 200, result.review);
    });
  }

  /** mutate(), with every failure turned into "allowed, no patch" (the webhook never blocks a write). */
  private review(review: AdmissionReviewRequest, req: IncomingMessage): MutateResult {
    const r = review.request;
    const headers: TraceHeaders = { traceparent: req.headers['traceparent'], baggage: req.headers['baggage'] };
    let result: MutateResult;
    try {
      result = this.decide(review, headers, this.opts.newObjsetId ? { newObjsetId: this.opts.newObjsetId } : {});
    } catch (err) {
      const operation = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'].includes(r.operation as string) ? (r.operation as MutateResult['operation']) : 'unknown';
      result = {
        review: allowResponse(r.uid), outcome: 'error', operation, dryRun: r.dryRun === true, patch: [],
        traceparent: 'missing', baggage: 'missing', error: { reason: 'exception', message: (err as Error).message },
      };
      this.metrics.errors.inc({ reason: 'exception' });
      this.logger.warn({ err, uid: r.uid, operation: r.operation, kind: r.kind?.kind }, 'review failed; allowed without a patch');
      return result;
    }
    this.metrics.traceContext.inc({ header: 'traceparent', state: result.traceparent });
    this.metrics.traceContext.inc({ header: 'baggage_objectsetid', state: result.baggage });
    if (result.outcome === 'error') {
      this.metrics.errors.inc({ reason: result.error?.reason ?? 'unknown' });
      this.logger.warn({ uid: r.uid, operation: r.operation, kind: r.kind?.kind, namespace: r.namespace, name: r.name, reason: result.error?.reason, error: result.error?.message }, 'review allowed without a patch');
    }
    return result;
  }
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
