import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import * as https from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import { createSecureContext } from 'node:tls';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { PermanentError, PipelineError, RetryableError } from '../../component/errors.js';
import { fromConnectionError, fromGrpcStatus, fromHttpStatus, grpcCodeName } from '../../component/status.js';
import { EXPORT_PATH, passthrough } from '../../wire/otlp-service.js';
import { fields, utf8 } from '../../wire/protobuf.js';

const gzipAsync = promisify(gzip);
const USER_AGENT = 'kube-correlate-otlp-exporter';
/** Non-2xx HTTP response bodies are kept up to this size, for the error message. */
const MAX_ERROR_BODY = 64 * 1024;
/** Successful responses larger than this are refused (an ExportTraceServiceResponse is tiny). */
const MAX_RESPONSE_BODY = 4 * 1024 * 1024;

export interface OtlpClientOptions {
  /**
   * 'grpc': endpoint "host:port", optionally "http://host:port" or "https://host:port" (TLS).
   * 'http': base URL "http://host:port" or "https://..."; requests go to `${base}/v1/traces`
   * unless the URL already ends with /v1/traces.
   */
  protocol: 'grpc' | 'http';
  endpoint: string;
  /** Extra HTTP headers or gRPC metadata (keys ending in "-bin" take base64 values). */
  headers?: Record<string, string>;
  /**
   * For an https:// endpoint (TLS): the CAs to trust (default: Node's roots), a client certificate
   * and key (mutual TLS), the name the server certificate must carry instead of the endpoint's host,
   * and no verification at all (tests only: anyone on the path could read and change the data).
   */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; serverName?: string; insecureSkipVerify?: boolean };
  /** The `authorization` to send with each attempt (an authenticator extension; a token file may change between attempts). */
  authorization?: () => string;
  /** Deadline of one attempt (connect, send, response), ms. */
  timeoutMs: number;
  /**
   * Exponential backoff: the n-th retry waits min(maxIntervalMs, initialIntervalMs * multiplier^(n-1))
   * ± randomization, unless the server asked for a delay. Retrying stops when the next wait would
   * end past maxElapsedMs since the export began; maxElapsedMs <= 0 means no limit (as the
   * collector's max_elapsed_time: 0).
   */
  retry: { enabled: boolean; initialIntervalMs: number; maxIntervalMs: number; maxElapsedMs: number; multiplier?: number; randomization?: number };
  compression?: 'none' | 'gzip';
  /** Called before each retry wait; `attempt` is the number of the attempt that just failed. */
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
  /** Waits between attempts; must reject (or resolve early) once `signal` aborts. For tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface ExportResult {
  /** partial_success.rejected_spans of the response; 0 when the server accepted everything. */
  rejectedSpans: number;
  /** partial_success.error_message; with rejectedSpans 0 it is a warning. */
  errorMessage: string;
  attempts: number;
}

/**
 * The transport half of an OTLP trace exporter: sends encoded ExportTraceServiceRequests over
 * OTLP/gRPC or OTLP/HTTP (protobuf) and retries what the OTLP specification calls retryable (the
 * status table, status.ts, decides). Fails with a RetryableError or a PermanentError whose
 * `reason` is the metric label and `attempts` the attempts made.
 */
export class OtlpClient {
  private readonly grpcClient: grpc.Client | undefined;
  private readonly metadata: grpc.Metadata | undefined;
  private readonly url: URL | undefined;
  private readonly agent: http.Agent | undefined;
  private readonly abort = new AbortController();
  /** Cancels each attempt in flight, for close(). */
  private readonly inflight = new Set<() => void>();
  private closed = false;

  constructor(private readonly opts: OtlpClientOptions) {
    if (!(opts.timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${opts.timeoutMs}`);
    const headers = opts.headers ?? {};
    if (opts.protocol === 'grpc') {
      const m = /^(https?):\/\//i.exec(opts.endpoint);
      const target = opts.endpoint.slice(m ? m[0].length : 0).replace(/\/+$/, '');
      if (!target) throw new Error(`OTLP/gRPC endpoint ${JSON.stringify(opts.endpoint)} has no host:port`);
      const tls = m?.[1]!.toLowerCase() === 'https';
      const channelOptions: grpc.ChannelOptions = {
        'grpc.max_send_message_length': -1,
        'grpc.primary_user_agent': USER_AGENT,
      };
      if (opts.compression === 'gzip') channelOptions['grpc.default_compression_algorithm'] = grpc.compressionAlgorithms.gzip;
      if (tls && opts.tls?.serverName) channelOptions['grpc.ssl_target_name_override'] = opts.tls.serverName;
      this.metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(headers)) {
        const key = k.toLowerCase();
        this.metadata.set(key, key.endsWith('-bin') ? Buffer.from(v, 'base64') : v);
      }
      const t = opts.tls ?? {};
      const credentials = tls
        ? grpc.credentials.createFromSecureContext(
          createSecureContext({ minVersion: 'TLSv1.2', ...(t.ca ? { ca: t.ca } : {}), ...(t.cert ? { cert: t.cert } : {}), ...(t.key ? { key: t.key } : {}) }),
          t.insecureSkipVerify ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : {},
        )
        : grpc.credentials.createInsecure();
      this.grpcClient = new grpc.Client(target, credentials, channelOptions);
    } else {
      const base = /^https?:\/\//i.test(opts.endpoint) ? opts.endpoint : `http://${opts.endpoint}`;
      let url: URL;
      try {
        url = new URL(base);
      } catch {
        throw new Error(`OTLP/HTTP endpoint ${JSON.stringify(opts.endpoint)} is not a URL`);
      }
      if (!url.pathname.endsWith('/v1/traces')) url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/traces`;
      for (const [k, v] of Object.entries(headers)) {
        http.validateHeaderName(k);
        http.validateHeaderValue(k, v);
      }
      this.url = url;
      const t = opts.tls ?? {};
      this.agent = url.protocol === 'https:'
        ? new https.Agent({
          keepAlive: true, minVersion: 'TLSv1.2',
          ...(t.ca ? { ca: t.ca } : {}), ...(t.cert ? { cert: t.cert } : {}), ...(t.key ? { key: t.key } : {}),
          ...(t.serverName ? { servername: t.serverName } : {}),
          ...(t.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
        })
        : new http.Agent({ keepAlive: true });
    }
  }

  /** Encodes the spans and exports them; no spans, no request (attempts 0). */
  async export(spans: readonly Span[]): Promise<ExportResult> {
    if (this.closed) throw shutdownError(0);
    if (spans.length === 0) return { rejectedSpans: 0, errorMessage: '', attempts: 0 };
    let body: Uint8Array;
    try {
      body = encodeTraceRequest(spans);
    } catch (err) {
      throw new PermanentError(`cannot encode spans: ${(err as Error).message}`, { reason: 'invalid_spans', cause: err });
    }
    return this.exportBytes(body);
  }

  /**
   * Sends one encoded ExportTraceServiceRequest, retrying retryable failures with exponential
   * backoff and jitter until success, a permanent error or the retry budget is spent. Rejects with
   * a PipelineError; resolves with the response's partial-success information.
   */
  async exportBytes(body: Uint8Array): Promise<ExportResult> {
    if (this.closed) throw shutdownError(0);
    const started = performance.now();
    const payload = this.opts.protocol === 'http' && this.opts.compression === 'gzip'
      ? await gzipAsync(body)
      : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const { retry } = this.opts;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw shutdownError(attempt - 1);
      let failure: PipelineError;
      try {
        const response = this.grpcClient ? await this.grpcAttempt(payload) : await this.httpAttempt(payload);
        return { ...decodeExportResponse(response), attempts: attempt };
      } catch (err) {
        failure = err instanceof PipelineError ? err : new PermanentError(`OTLP export failed: ${(err as Error).message}`, { reason: 'internal', cause: err });
      }
      failure.attempts = attempt;
      if (!(failure instanceof RetryableError) || !retry.enabled || this.closed) throw failure;
      const waitMs = failure.delayMs ?? this.backoffMs(attempt);
      if (retry.maxElapsedMs > 0 && performance.now() - started + waitMs > retry.maxElapsedMs) throw failure;
      try {
        this.opts.onRetry?.({ attempt, delayMs: waitMs, reason: failure.reason });
      } catch {
        // A failing log or metric hook must not change the outcome of the export.
      }
      try {
        await (this.opts.sleep ?? defaultSleep)(waitMs, this.abort.signal);
      } catch (err) {
        if (!this.closed) throw err;
      }
      if (this.closed) throw shutdownError(attempt);
    }
  }

  /**
   * Stops the client: exports waiting to retry, and attempts in flight, reject with reason
   * 'shutdown' (retryable: the data may not have arrived), later exports reject at once, and the
   * gRPC channel / HTTP sockets are closed. Safe to call twice.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    for (const cancel of [...this.inflight]) cancel();
    this.inflight.clear();
    this.grpcClient?.close();
    this.agent?.destroy();
  }

  private backoffMs(attempt: number): number {
    const { initialIntervalMs, maxIntervalMs, multiplier = 1.5, randomization = 0.5 } = this.opts.retry;
    const base = Math.min(maxIntervalMs, initialIntervalMs * multiplier ** (attempt - 1));
    return Math.max(0, Math.round(base * (1 + randomization * (2 * Math.random() - 1))));
  }

  private grpcAttempt(payload: Buffer): Promise<Uint8Array> {
    const client = this.grpcClient!;
    return new Promise((resolve, reject) => {
      const metadata = this.metadata!.clone();
      if (this.opts.authorization) metadata.set('authorization', this.opts.authorization());
      const call = client.makeUnaryRequest(EXPORT_PATH, passthrough, passthrough, payload, metadata, { deadline: Date.now() + this.opts.timeoutMs }, (err, value) => {
        this.inflight.delete(cancel);
        if (this.closed) reject(shutdownError(0));
        else if (err) reject(grpcError(err));
        else resolve(value ?? new Uint8Array(0));
      });
      const cancel = (): void => {
        reject(shutdownError(0));
        call.cancel();
      };
      this.inflight.add(cancel);
    });
  }

  private httpAttempt(payload: Buffer): Promise<Uint8Array> {
    const url = this.url!;
    const headers: http.OutgoingHttpHeaders = { 'user-agent': USER_AGENT };
    for (const [k, v] of Object.entries(this.opts.headers ?? {})) headers[k.toLowerCase()] = v;
    if (this.opts.authorization) headers['authorization'] = this.opts.authorization();
    headers['content-type'] = 'application/x-protobuf';
    headers['content-length'] = payload.length;
    if (this.opts.compression === 'gzip') headers['content-encoding'] = 'gzip';
    const target = `${url.origin}${url.pathname}`;
    return new Promise((resolve, reject) => {
      let settled = false;
      /** Settles once; `abandon` tears down the request (timeout, close, oversized response). */
      const finish = (err: PipelineError | undefined, body?: Uint8Array, abandon = false): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.inflight.delete(cancel);
        if (abandon) req.destroy();
        if (err) reject(err);
        else resolve(body!);
      };
      const cancel = (): void => finish(shutdownError(0), undefined, true);
      const transport = url.protocol === 'https:' ? https : http;
      const req = transport.request(url, { method: 'POST', headers, agent: this.agent }, (res) => {
        const status = res.statusCode ?? 0;
        const ok = status >= 200 && status < 300;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (ok && size > MAX_RESPONSE_BODY) {
            finish(new PermanentError(`OTLP/HTTP export to ${target}: response larger than ${MAX_RESPONSE_BODY} bytes`, { reason: 'bad_response' }), undefined, true);
          } else if (ok || size - chunk.length < MAX_ERROR_BODY) {
            chunks.push(chunk);
          }
        });
        res.on('error', (err) => finish(connectionError(target, err)));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          if (ok) return finish(undefined, body);
          finish(httpStatusError(target, status, res.statusMessage ?? '', res.headers, body));
        });
      });
      req.on('error', (err) => finish(connectionError(target, err)));
      // Created last: everything that may call finish() runs asynchronously, after this line.
      const timer = setTimeout(
        () => finish(new RetryableError(`OTLP/HTTP export to ${target}: no response within ${this.opts.timeoutMs}ms`, undefined, { reason: 'timeout' }), undefined, true),
        this.opts.timeoutMs,
      );
      this.inflight.add(cancel);
      req.end(payload);
    });
  }
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal });
}

function shutdownError(attempts: number): RetryableError {
  const err = new RetryableError('OTLP export aborted: the client is closed', undefined, { reason: 'shutdown' });
  err.attempts = attempts;
  return err;
}

function connectionError(target: string, err: Error): RetryableError {
  const code = (err as NodeJS.ErrnoException).code;
  return fromConnectionError(`OTLP/HTTP export to ${target} failed: ${code ? `${code} ` : ''}${err.message}`, err);
}

function httpStatusError(target: string, status: number, statusText: string, headers: http.IncomingHttpHeaders, body: Buffer): PipelineError {
  const detail = describeErrorBody(body, String(headers['content-type'] ?? ''));
  return fromHttpStatus(status, headers, `OTLP/HTTP export to ${target} failed: HTTP ${status} ${statusText}${detail ? `: ${detail}` : ''}`);
}

function grpcError(err: grpc.ServiceError): PipelineError {
  return fromGrpcStatus(err.code, err.metadata, `OTLP/gRPC export failed: ${grpcCodeName(err.code)} (${err.code}): ${err.details}`, err);
}

/** First 200 characters of an error body: the google.rpc.Status message when protobuf, else text. */
function describeErrorBody(body: Buffer, contentType: string): string {
  let text: string | undefined;
  if (contentType.includes('protobuf')) {
    try {
      for (const [field, , value] of fields(body)) if (field === 2 && value instanceof Uint8Array) text = utf8(value);
    } catch {
      text = undefined;
    }
  }
  text ??= body.toString('latin1').replace(/[^\x20-\x7e]+/g, ' ');
  text = text.trim();
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/**
 * Reads an ExportTraceServiceResponse: partial_success (1) { rejected_spans (1), error_message (2) }.
 * A body that is not one is accepted as success with a warning in errorMessage: the server answered
 * OK, so the data arrived and sending it again would duplicate it.
 */
function decodeExportResponse(body: Uint8Array): { rejectedSpans: number; errorMessage: string } {
  let rejectedSpans = 0;
  let errorMessage = '';
  try {
    for (const [field, , partial] of fields(body)) {
      if (field !== 1 || !(partial instanceof Uint8Array)) continue;
      for (const [f, , v] of fields(partial)) {
        if (f === 1 && typeof v === 'number') rejectedSpans = v;
        if (f === 2 && v instanceof Uint8Array) errorMessage = utf8(v);
      }
    }
  } catch (err) {
    return { rejectedSpans: 0, errorMessage: `unreadable ExportTraceServiceResponse: ${(err as Error).message}` };
  }
  return { rejectedSpans, errorMessage };
}
