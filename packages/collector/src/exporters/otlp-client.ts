import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import * as https from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { encodeTraceRequest, type Span } from '@kube-correlate/otlp';
import { EXPORT_PATH } from '../receivers/otlp-grpc.js';

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

/** A failed export. `reason` is a short, low-cardinality label for metrics and logs. */
export class OtlpExportError extends Error {
  override readonly name = 'OtlpExportError';
  /** Attempts made before the export gave up (set by OtlpClient). */
  attempts = 0;

  constructor(
    message: string,
    readonly retryable: boolean,
    readonly reason: string,
    /** Delay the server asked for before the next attempt (Retry-After, gRPC RetryInfo). */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
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
 * OTLP/gRPC or OTLP/HTTP (protobuf) and retries what the OTLP specification calls retryable.
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
      this.metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(headers)) {
        const key = k.toLowerCase();
        this.metadata.set(key, key.endsWith('-bin') ? Buffer.from(v, 'base64') : v);
      }
      this.grpcClient = new grpc.Client(target, tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure(), channelOptions);
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
      this.agent = new (url.protocol === 'https:' ? https.Agent : http.Agent)({ keepAlive: true });
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
      throw new OtlpExportError(`cannot encode spans: ${(err as Error).message}`, false, 'invalid_spans', undefined, { cause: err });
    }
    return this.exportBytes(body);
  }

  /**
   * Sends one encoded ExportTraceServiceRequest, retrying retryable failures with exponential
   * backoff and jitter until success, a permanent error or the retry budget is spent. Rejects with
   * OtlpExportError; resolves with the response's partial-success information.
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
      let failure: OtlpExportError;
      try {
        const response = this.grpcClient ? await this.grpcAttempt(payload) : await this.httpAttempt(payload);
        return { ...decodeExportResponse(response), attempts: attempt };
      } catch (err) {
        failure = err instanceof OtlpExportError ? err : new OtlpExportError(`OTLP export failed: ${(err as Error).message}`, false, 'internal', undefined, { cause: err });
      }
      failure.attempts = attempt;
      if (!failure.retryable || !retry.enabled || this.closed) throw failure;
      const waitMs = failure.retryAfterMs ?? this.backoffMs(attempt);
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
      const passthrough = (b: Buffer): Buffer => b;
      const call = client.makeUnaryRequest(EXPORT_PATH, passthrough, passthrough, payload, this.metadata!.clone(), { deadline: Date.now() + this.opts.timeoutMs }, (err, value) => {
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
    headers['content-type'] = 'application/x-protobuf';
    headers['content-length'] = payload.length;
    if (this.opts.compression === 'gzip') headers['content-encoding'] = 'gzip';
    const target = `${url.origin}${url.pathname}`;
    return new Promise((resolve, reject) => {
      let settled = false;
      /** Settles once; `abandon` tears down the request (timeout, close, oversized response). */
      const finish = (err: OtlpExportError | undefined, body?: Uint8Array, abandon = false): void => {
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
            finish(new OtlpExportError(`OTLP/HTTP export to ${target}: response larger than ${MAX_RESPONSE_BODY} bytes`, false, 'bad_response'), undefined, true);
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
        () => finish(new OtlpExportError(`OTLP/HTTP export to ${target}: no response within ${this.opts.timeoutMs}ms`, true, 'timeout'), undefined, true),
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

function shutdownError(attempts: number): OtlpExportError {
  const err = new OtlpExportError('OTLP export aborted: the client is closed', true, 'shutdown');
  err.attempts = attempts;
  return err;
}

function connectionError(target: string, err: Error): OtlpExportError {
  const code = (err as NodeJS.ErrnoException).code;
  return new OtlpExportError(`OTLP/HTTP export to ${target} failed: ${code ? `${code} ` : ''}${err.message}`, true, 'unavailable', undefined, { cause: err });
}

/** OTLP/HTTP: 429, 502, 503 and 504 are retryable (honouring Retry-After); any other status is permanent. */
function httpStatusError(target: string, status: number, statusText: string, headers: http.IncomingHttpHeaders, body: Buffer): OtlpExportError {
  const retryable = status === 429 || status === 502 || status === 503 || status === 504;
  const reason = status === 429 ? 'throttled' : retryable ? 'unavailable' : `http_${Math.floor(status / 100)}xx`;
  const retryAfter = retryable ? parseRetryAfter(headers['retry-after']) : undefined;
  const detail = describeErrorBody(body, String(headers['content-type'] ?? ''));
  return new OtlpExportError(`OTLP/HTTP export to ${target} failed: HTTP ${status} ${statusText}${detail ? `: ${detail}` : ''}`, retryable, reason, retryAfter);
}

/** Retry-After as delay-seconds or an HTTP date; undefined when absent or unreadable. */
function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
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
 * OTLP/gRPC codes the specification calls retryable. RESOURCE_EXHAUSTED is retryable only when the
 * server sends RetryInfo in the status details (otherwise, e.g. a message over the server's size
 * limit, retrying cannot help).
 */
const RETRYABLE_GRPC = new Set<grpc.status>([
  grpc.status.CANCELLED, grpc.status.DEADLINE_EXCEEDED, grpc.status.ABORTED,
  grpc.status.OUT_OF_RANGE, grpc.status.UNAVAILABLE, grpc.status.DATA_LOSS,
]);

function grpcError(err: grpc.ServiceError): OtlpExportError {
  const code = err.code;
  const name = grpc.status[code] ?? `CODE_${code}`;
  const retryInfoMs = err.metadata ? retryInfoDelayMs(err.metadata) : undefined;
  const retryable = RETRYABLE_GRPC.has(code) || (code === grpc.status.RESOURCE_EXHAUSTED && retryInfoMs !== undefined);
  // The repo's own receiver also sends a plain `retry-after: <seconds>` with UNAVAILABLE.
  const hinted = err.metadata?.get('retry-after')[0];
  const retryAfterMs = retryable ? (retryInfoMs ?? (typeof hinted === 'string' ? parseRetryAfter(hinted) : undefined)) : undefined;
  const reason = code === grpc.status.DEADLINE_EXCEEDED ? 'timeout' : code === grpc.status.RESOURCE_EXHAUSTED ? 'throttled' : name.toLowerCase();
  return new OtlpExportError(`OTLP/gRPC export failed: ${name} (${code}): ${err.details}`, retryable, reason, retryAfterMs, { cause: err });
}

const RETRY_INFO_TYPE = 'type.googleapis.com/google.rpc.RetryInfo';

/** RetryInfo.retry_delay from `grpc-status-details-bin` (google.rpc.Status.details), in ms. */
function retryInfoDelayMs(metadata: grpc.Metadata): number | undefined {
  const raw = metadata.get('grpc-status-details-bin')[0];
  if (!(raw instanceof Uint8Array)) return undefined;
  try {
    for (const [field, , any] of fields(raw)) {
      if (field !== 3 || !(any instanceof Uint8Array)) continue;
      let typeUrl = '';
      let value: Uint8Array | undefined;
      for (const [f, , v] of fields(any)) {
        if (f === 1 && v instanceof Uint8Array) typeUrl = utf8(v);
        if (f === 2 && v instanceof Uint8Array) value = v;
      }
      if (typeUrl !== RETRY_INFO_TYPE || !value) continue;
      let seconds = 0;
      let nanos = 0;
      for (const [f, , v] of fields(value)) {
        if (f !== 1 || !(v instanceof Uint8Array)) continue;
        for (const [df, , dv] of fields(v)) {
          if (df === 1 && typeof dv === 'number') seconds = dv;
          if (df === 2 && typeof dv === 'number') nanos = dv;
        }
      }
      return Math.max(0, Math.round(seconds * 1000 + nanos / 1e6));
    }
  } catch {
    // Unreadable details: no RetryInfo.
  }
  return undefined;
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

const decoder = new TextDecoder();
const utf8 = (b: Uint8Array): string => decoder.decode(b);

/**
 * The top-level fields of one protobuf message, as [field number, wire type, value]: a number for
 * varints (exact below 2^53), the bytes for length-delimited fields, undefined for fixed32/64.
 * Throws on truncated input and on groups.
 */
function* fields(buf: Uint8Array): Generator<[number, number, number | Uint8Array | undefined]> {
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
    throw new Error('varint longer than 10 bytes');
  };
  const skip = (n: number): void => {
    if (pos + n > buf.length) throw new Error('truncated field');
    pos += n;
  };
  while (pos < buf.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (wireType === 0) {
      yield [field, wireType, varint()];
    } else if (wireType === 2) {
      const len = varint();
      const start = pos;
      skip(len);
      yield [field, wireType, buf.subarray(start, pos)];
    } else if (wireType === 1 || wireType === 5) {
      skip(wireType === 1 ? 8 : 4);
      yield [field, wireType, undefined];
    } else {
      throw new Error(`unsupported wire type ${wireType} for field ${field}`);
    }
  }
}
