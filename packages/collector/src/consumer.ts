import type { AuditEvent } from '@kube-correlate/audit';
import type { Span } from '@kube-correlate/otlp';

/**
 * What receivers hand data to. A receiver acknowledges its sender only after `consume*` resolved:
 * the data is then the next stage's responsibility (in-process correlator, or Kafka with acks=all).
 * A `RetryableError` means "not now" and becomes gRPC UNAVAILABLE / HTTP 503 with Retry-After.
 */
export interface SpanConsumer {
  consumeSpans(spans: Span[]): void | Promise<void>;
}
/**
 * The OTLP protobuf request a span array was decoded from, when the array is all of it (no span was
 * rejected): the Kafka exporter then splits these bytes by trace (splitTraceRequest) instead of
 * re-encoding the spans. Receivers set it; the array is passed unchanged to every exporter.
 */
export const RAW_OTLP_REQUEST = new WeakMap<readonly Span[], Uint8Array>();

export interface AuditConsumer {
  consumeAuditEvents(events: AuditEvent[]): void | Promise<void>;
}

export class RetryableError extends Error {
  override readonly name = 'RetryableError';
  constructor(message: string, readonly retryAfterSeconds = 1) {
    super(message);
  }
}

/** A started component; `shutdown` is safe twice and safe without `start`. */
export interface Component {
  start(): Promise<void>;
  shutdown(): Promise<void>;
}
