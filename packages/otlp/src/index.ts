export { SpanKind, StatusCode, OtlpDecodeError, MAX_ANY_VALUE_DEPTH, attrString, serviceName, plainValue, plainAttributes } from './model.js';
export type {
  AnyValue, KeyValue, Resource, Scope, Span, SpanEvent, SpanLink, RejectedSpan, DecodedTraces,
  SpanKindValue, StatusCodeValue,
} from './model.js';
export { encodeTracesJson } from './encode-json.js';
export type { ExportTraceServiceRequestJson } from './encode-json.js';
export { decodeTraceRequest } from './decode-protobuf.js';
export { splitTraceRequest } from './split-protobuf.js';
export type { TraceRequest } from './split-protobuf.js';
export { decodeTraceRequestJson } from './decode-json.js';
export { encodeTraceRequest, encodeTraceResponse, encodeRpcStatus, encodeKeyValueFields } from './encode-protobuf.js';
export { scanTraceRequest, spliceTraceRequest, detachRawSpans } from './scan-protobuf.js';
export type { RawSpan, RawScope, ScannedTraces } from './scan-protobuf.js';
