/**
 * The kube-correlate span model: one flat record per span, with its resource and scope.
 *
 * Values follow the OTLP/JSON mapping (hex ids, int64 and fixed64 as decimal strings, bytes as
 * base64) so a span is lossless, JSON-serializable and comparable with what the reference
 * `@opentelemetry/otlp-transformer` serializes.
 */

/** OTLP `AnyValue`, in the OTLP/JSON shape. An empty object is an unset value. */
export type AnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  /** int64 as a decimal string: JS numbers lose precision past 2^53. */
  | { intValue: string }
  | { doubleValue: number }
  /** bytes, base64 (standard alphabet, padded). */
  | { bytesValue: string }
  | { arrayValue: { values: AnyValue[] } }
  | { kvlistValue: { values: KeyValue[] } }
  | Record<string, never>;

export interface KeyValue {
  key: string;
  value: AnyValue;
}

/** OTLP SpanKind numbers. */
export const SpanKind = {
  UNSPECIFIED: 0,
  INTERNAL: 1,
  SERVER: 2,
  CLIENT: 3,
  PRODUCER: 4,
  CONSUMER: 5,
} as const;
export type SpanKindValue = (typeof SpanKind)[keyof typeof SpanKind];

/** OTLP Status.code numbers. */
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;
export type StatusCodeValue = (typeof StatusCode)[keyof typeof StatusCode];

export interface Resource {
  attributes: KeyValue[];
  droppedAttributesCount: number;
  schemaUrl: string;
}

export interface Scope {
  name: string;
  version: string;
  attributes: KeyValue[];
  droppedAttributesCount: number;
  schemaUrl: string;
}

export interface SpanEvent {
  /** fixed64 nanoseconds since the epoch, decimal string. */
  timeUnixNano: string;
  name: string;
  attributes: KeyValue[];
  droppedAttributesCount: number;
}

export interface SpanLink {
  /** 32 lowercase hex characters. */
  traceId: string;
  /** 16 lowercase hex characters. */
  spanId: string;
  traceState: string;
  attributes: KeyValue[];
  droppedAttributesCount: number;
  flags: number;
}

export interface Span {
  /** 32 lowercase hex characters, never all zero. */
  traceId: string;
  /** 16 lowercase hex characters, never all zero. */
  spanId: string;
  /** 16 lowercase hex characters, or '' for a root span. */
  parentSpanId: string;
  traceState: string;
  flags: number;
  name: string;
  kind: number;
  /** fixed64 nanoseconds since the epoch, decimal string. */
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: KeyValue[];
  droppedAttributesCount: number;
  events: SpanEvent[];
  droppedEventsCount: number;
  links: SpanLink[];
  droppedLinksCount: number;
  status: { code: number; message: string };
  /** Shared by every span of one ResourceSpans. */
  resource: Resource;
  /** Shared by every span of one ScopeSpans. */
  scope: Scope;
}

/** A span the decoder refused, with its position in the request and why. */
export interface RejectedSpan {
  /** Index of the span in request order (across all resource and scope spans). */
  index: number;
  reason: string;
}

export interface DecodedTraces {
  spans: Span[];
  rejected: RejectedSpan[];
}

/**
 * The deepest an array or kvlist AnyValue may sit. An attribute's value is at depth 1 and the
 * members of an array or kvlist at depth d are at depth d + 1; an array or kvlist at a depth above
 * this is refused (a scalar may sit one level deeper). The OpenTelemetry specification's
 * AttributeValueDepthLimit counts the same way and defaults to 64, so nothing an SDK with default
 * limits sends is refused, while what the pipeline later does recursively (JSON.stringify in the
 * store, the protobuf encoder, plainValue) stays a few hundred frames deep at most. Spans holding a
 * deeper value are rejected (OTLP partial success), not the whole request; a resource or scope
 * holding one rejects every span under it.
 */
export const MAX_ANY_VALUE_DEPTH = 64;

/** Why a span, resource or scope was refused for nesting: `attribute "key": ...`. */
export function tooDeepReason(key: string): string {
  const shown = key.length > 100 ? `${key.slice(0, 97)}...` : key;
  return `attribute ${JSON.stringify(shown)}: array or kvlist nested deeper than ${MAX_ANY_VALUE_DEPTH} levels`;
}

/** The whole request could not be read (malformed protobuf, JSON of the wrong shape). */
export class OtlpDecodeError extends Error {
  override readonly name = 'OtlpDecodeError';
}

/** Returns the attribute's string value, or undefined when absent or not a string. */
export function attrString(attributes: readonly KeyValue[], key: string): string | undefined {
  for (const kv of attributes) {
    if (kv.key === key) {
      const v = kv.value as { stringValue?: unknown };
      return typeof v.stringValue === 'string' ? v.stringValue : undefined;
    }
  }
  return undefined;
}

/** The resource's `service.name`, or 'unknown_service' as the SDKs default it. */
export function serviceName(span: Pick<Span, 'resource'>): string {
  return attrString(span.resource.attributes, 'service.name') ?? 'unknown_service';
}

/** Plain JSON value of an AnyValue, for display: ints stay exact (number when safe, else string). */
export function plainValue(value: AnyValue): unknown {
  const v = value as Record<string, unknown>;
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('intValue' in v) {
    const n = Number(v.intValue);
    return Number.isSafeInteger(n) ? n : String(v.intValue);
  }
  if ('doubleValue' in v) return v.doubleValue;
  if ('bytesValue' in v) return v.bytesValue;
  if ('arrayValue' in v) return (v.arrayValue as { values: AnyValue[] }).values.map(plainValue);
  if ('kvlistValue' in v) return plainAttributes((v.kvlistValue as { values: KeyValue[] }).values);
  return null;
}

/** Attributes as a plain object (later keys win, as in the SDKs). */
export function plainAttributes(attributes: readonly KeyValue[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of attributes) out[kv.key] = plainValue(kv.value);
  return out;
}
