import * as grpc from '@grpc/grpc-js';
import type { IncomingHttpHeaders } from 'node:http';
import { fields, message, utf8 } from '../wire/protobuf.js';
import { PermanentError, PipelineError, RetryableError } from './errors.js';

/**
 * The one status and retryability table. Every receiver answers, and every exporter reads, a
 * failure through this module, so a refusal means the same on OTLP/gRPC, OTLP/HTTP, the audit
 * webhook and Kafka:
 *
 *  - receivers: `statusOf(err)` -> the gRPC code, HTTP status, Retry-After and metric reason to
 *    answer with (`RetryableError` -> UNAVAILABLE + RetryInfo / 503 + Retry-After, reason `busy`,
 *    or `memory_limit` from the memory_limiter processor;
 *    `PermanentError` -> its status, its reason; anything else -> INTERNAL / 500, `internal`);
 *  - exporters: `fromGrpcStatus`, `fromHttpStatus`, `fromConnectionError`, `fromKafkaError` ->
 *    a `RetryableError` (with the delay the backend asked for) or a `PermanentError`, whose
 *    `reason` is the metric label (`kube_correlate_exporter_failed_total{reason}`).
 *
 * What is retryable is the OTLP specification's list
 * (https://opentelemetry.io/docs/specs/otlp/#failures): gRPC CANCELLED, DEADLINE_EXCEEDED,
 * ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and RESOURCE_EXHAUSTED only when the server sent
 * RetryInfo (otherwise, e.g. a message over the server's size limit, retrying cannot help); HTTP
 * 429, 502, 503, 504. Kafka: every produce error (see fromKafkaError).
 */

type Retry = 'yes' | 'no' | 'with_retry_info';

/** Every gRPC code: the HTTP status of the same refusal, whether a sender retries it, the reason an exporter counts it under. */
const GRPC_CODES: Record<grpc.status, { http: number; retry: Retry; reason: string }> = {
  [grpc.status.OK]: { http: 200, retry: 'no', reason: 'ok' },
  [grpc.status.CANCELLED]: { http: 503, retry: 'yes', reason: 'cancelled' },
  [grpc.status.UNKNOWN]: { http: 500, retry: 'no', reason: 'unknown' },
  [grpc.status.INVALID_ARGUMENT]: { http: 400, retry: 'no', reason: 'invalid_argument' },
  [grpc.status.DEADLINE_EXCEEDED]: { http: 503, retry: 'yes', reason: 'timeout' },
  [grpc.status.NOT_FOUND]: { http: 404, retry: 'no', reason: 'not_found' },
  [grpc.status.ALREADY_EXISTS]: { http: 409, retry: 'no', reason: 'already_exists' },
  [grpc.status.PERMISSION_DENIED]: { http: 403, retry: 'no', reason: 'permission_denied' },
  [grpc.status.RESOURCE_EXHAUSTED]: { http: 429, retry: 'with_retry_info', reason: 'throttled' },
  [grpc.status.FAILED_PRECONDITION]: { http: 400, retry: 'no', reason: 'failed_precondition' },
  [grpc.status.ABORTED]: { http: 503, retry: 'yes', reason: 'aborted' },
  [grpc.status.OUT_OF_RANGE]: { http: 503, retry: 'yes', reason: 'out_of_range' },
  [grpc.status.UNIMPLEMENTED]: { http: 404, retry: 'no', reason: 'unimplemented' },
  [grpc.status.INTERNAL]: { http: 500, retry: 'no', reason: 'internal' },
  [grpc.status.UNAVAILABLE]: { http: 503, retry: 'yes', reason: 'unavailable' },
  [grpc.status.DATA_LOSS]: { http: 503, retry: 'yes', reason: 'data_loss' },
  [grpc.status.UNAUTHENTICATED]: { http: 401, retry: 'no', reason: 'unauthenticated' },
};

/**
 * HTTP statuses we answer or read, with the gRPC code of the same refusal and whether a sender
 * retries it. Any other status: gRPC UNKNOWN, not retried. An exporter counts a retryable one as
 * `throttled` (429) or `unavailable`, any other as `http_4xx` / `http_5xx`.
 */
const HTTP_STATUSES: Record<number, { grpc: grpc.status; retry: boolean }> = {
  400: { grpc: grpc.status.INVALID_ARGUMENT, retry: false },
  401: { grpc: grpc.status.UNAUTHENTICATED, retry: false },
  403: { grpc: grpc.status.PERMISSION_DENIED, retry: false },
  404: { grpc: grpc.status.UNIMPLEMENTED, retry: false },
  405: { grpc: grpc.status.UNIMPLEMENTED, retry: false },
  413: { grpc: grpc.status.RESOURCE_EXHAUSTED, retry: false },
  415: { grpc: grpc.status.INVALID_ARGUMENT, retry: false },
  429: { grpc: grpc.status.RESOURCE_EXHAUSTED, retry: true },
  500: { grpc: grpc.status.INTERNAL, retry: false },
  502: { grpc: grpc.status.UNAVAILABLE, retry: true },
  503: { grpc: grpc.status.UNAVAILABLE, retry: true },
  504: { grpc: grpc.status.UNAVAILABLE, retry: true },
};

/** Retry-After / RetryInfo when a RetryableError names no delay. */
export const DEFAULT_RETRY_DELAY_MS = 1000;

// ---------------------------------------------------------------------------------------------
// Receivers: what to answer

/** How a receiver answers a failed request. */
export interface Refusal {
  grpc: grpc.status;
  http: number;
  retryable: boolean;
  /** Retryable only: the delay to put in Retry-After (whole seconds, rounded up) and RetryInfo. */
  delayMs?: number;
  /** `kube_correlate_receiver_refused_total{reason}`. */
  reason: string;
  message: string;
  /** Not a refusal but a bug or an unforeseen failure: log it. */
  internal: boolean;
}

/** Retryable refusals receivers count under their own reason; every other one is `busy`. */
const OWN_REFUSAL_REASONS: ReadonlySet<string> = new Set(['memory_limit']);

export function statusOf(err: unknown): Refusal {
  if (err instanceof RetryableError) {
    const reason = OWN_REFUSAL_REASONS.has(err.reason) ? err.reason : 'busy';
    return { grpc: grpc.status.UNAVAILABLE, http: 503, retryable: true, delayMs: err.delayMs ?? DEFAULT_RETRY_DELAY_MS, reason, message: err.message, internal: false };
  }
  if (err instanceof PermanentError) {
    return { grpc: HTTP_STATUSES[err.http]?.grpc ?? grpc.status.UNKNOWN, http: err.http, retryable: false, reason: err.reason, message: err.message, internal: false };
  }
  return { grpc: grpc.status.INTERNAL, http: 500, retryable: false, reason: 'internal', message: `internal error: ${(err as Error).message}`, internal: true };
}

/** `Retry-After` for a retryable refusal, in whole seconds. */
export function retryAfterHeaders(r: Refusal): Record<string, string> {
  return r.retryable ? { 'retry-after': String(Math.ceil((r.delayMs ?? DEFAULT_RETRY_DELAY_MS) / 1000)) } : {};
}

/**
 * The gRPC error for a refusal. A retryable one carries `google.rpc.RetryInfo` in
 * `grpc-status-details-bin` (what the OTLP specification asks senders to honour) and, as before,
 * a plain `retry-after` in seconds.
 */
export function grpcError(r: Refusal): Partial<grpc.ServiceError> {
  const metadata = new grpc.Metadata();
  if (r.retryable) {
    const delayMs = r.delayMs ?? DEFAULT_RETRY_DELAY_MS;
    metadata.set('retry-after', retryAfterHeaders(r)['retry-after']!);
    metadata.set('grpc-status-details-bin', statusWithRetryInfo(r.grpc, r.message, delayMs));
  }
  return { code: r.grpc, details: r.message, message: r.message, metadata };
}

const RETRY_INFO_TYPE = 'type.googleapis.com/google.rpc.RetryInfo';

/** google.rpc.Status { code, message, details: [Any { RetryInfo { retry_delay: Duration } }] }. */
function statusWithRetryInfo(code: number, text: string, delayMs: number): Buffer {
  const duration = message([1, Math.floor(delayMs / 1000)], [2, (delayMs % 1000) * 1e6]);
  const any = message([1, RETRY_INFO_TYPE], [2, message([1, duration])]);
  return message([1, code], [2, text], [3, any]);
}

// ---------------------------------------------------------------------------------------------
// Exporters: what a backend's answer means

/** The name of a gRPC code, e.g. UNAVAILABLE. */
export function grpcCodeName(code: number): string {
  return grpc.status[code] ?? `CODE_${code}`;
}

/** A gRPC status a backend answered (not OK): retryable by the table, with RetryInfo's (or retry-after's) delay. */
export function fromGrpcStatus(code: number, metadata: grpc.Metadata | undefined, text: string, cause?: unknown): PipelineError {
  const row = GRPC_CODES[code as grpc.status] ?? { retry: 'no' as const, reason: grpcCodeName(code).toLowerCase() };
  const retryInfoMs = metadata ? retryInfoDelayMs(metadata) : undefined;
  const retryable = row.retry === 'yes' || (row.retry === 'with_retry_info' && retryInfoMs !== undefined);
  if (!retryable) return new PermanentError(text, { reason: row.reason, cause });
  // Our own receivers also send a plain `retry-after: <seconds>`.
  const hinted = metadata?.get('retry-after')[0];
  return new RetryableError(text, retryInfoMs ?? (typeof hinted === 'string' ? parseRetryAfter(hinted) : undefined), { reason: row.reason, cause });
}

/** An HTTP status a backend answered (not 2xx): 429, 502, 503, 504 are retryable, honouring Retry-After. */
export function fromHttpStatus(status: number, headers: IncomingHttpHeaders, text: string): PipelineError {
  if (!HTTP_STATUSES[status]?.retry) return new PermanentError(text, { reason: `http_${Math.floor(status / 100)}xx`, http: status });
  return new RetryableError(text, parseRetryAfter(headers['retry-after']), { reason: status === 429 ? 'throttled' : 'unavailable' });
}

/** The connection failed (refused, reset, DNS): retryable. */
export function fromConnectionError(text: string, cause: unknown): RetryableError {
  return new RetryableError(text, undefined, { reason: 'unavailable', cause });
}

/**
 * A Kafka produce that failed. Every one is retryable (reason `unavailable`, 1 s): the client has
 * already retried what the broker called retriable, and what still fails (brokers down, a leader
 * moving, a request timing out) is answered retryable to the sender, so it sends again later and
 * nothing is dropped silently. A PipelineError passes through as it is.
 */
export function fromKafkaError(err: unknown): PipelineError {
  if (err instanceof PipelineError) return err;
  return new RetryableError(`Kafka unavailable: ${(err as Error).message}`, DEFAULT_RETRY_DELAY_MS, { reason: 'unavailable', cause: err });
}

/** Retry-After as delay-seconds or an HTTP date, in ms; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

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
