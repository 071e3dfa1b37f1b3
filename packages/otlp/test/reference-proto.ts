/**
 * An independent protobuf path to check our codec against: protobufjs with the OTLP trace
 * .proto definitions written out here from opentelemetry-proto (field numbers and types as in
 * opentelemetry/proto/{common,resource,trace,collector/trace}/v1 and google/rpc/status.proto).
 *
 * @opentelemetry/otlp-transformer 0.219 no longer ships protobufjs-generated code: its
 * serializer is hand-written and it can only decode the Export *response*, so requests are
 * decoded here with protobufjs.
 */
import protobuf from 'protobufjs';
import type { AnyValue, KeyValue, Resource, Scope, Span } from '../src/index.js';

const COMMON = `
syntax = "proto3";
package opentelemetry.proto.common.v1;
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope {
  string name = 1;
  string version = 2;
  repeated KeyValue attributes = 3;
  uint32 dropped_attributes_count = 4;
}
`;

const RESOURCE = `
syntax = "proto3";
package opentelemetry.proto.resource.v1;
message Resource {
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 1;
  uint32 dropped_attributes_count = 2;
}
`;

const TRACE = `
syntax = "proto3";
package opentelemetry.proto.trace.v1;
message ResourceSpans {
  opentelemetry.proto.resource.v1.Resource resource = 1;
  repeated ScopeSpans scope_spans = 2;
  string schema_url = 3;
}
message ScopeSpans {
  opentelemetry.proto.common.v1.InstrumentationScope scope = 1;
  repeated Span spans = 2;
  string schema_url = 3;
}
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  fixed32 flags = 16;
  string name = 5;
  enum SpanKind {
    SPAN_KIND_UNSPECIFIED = 0;
    SPAN_KIND_INTERNAL = 1;
    SPAN_KIND_SERVER = 2;
    SPAN_KIND_CLIENT = 3;
    SPAN_KIND_PRODUCER = 4;
    SPAN_KIND_CONSUMER = 5;
  }
  SpanKind kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 9;
  uint32 dropped_attributes_count = 10;
  message Event {
    fixed64 time_unix_nano = 1;
    string name = 2;
    repeated opentelemetry.proto.common.v1.KeyValue attributes = 3;
    uint32 dropped_attributes_count = 4;
  }
  repeated Event events = 11;
  uint32 dropped_events_count = 12;
  message Link {
    bytes trace_id = 1;
    bytes span_id = 2;
    string trace_state = 3;
    repeated opentelemetry.proto.common.v1.KeyValue attributes = 4;
    uint32 dropped_attributes_count = 5;
    fixed32 flags = 6;
  }
  repeated Link links = 13;
  uint32 dropped_links_count = 14;
  Status status = 15;
}
message Status {
  reserved 1;
  string message = 2;
  enum StatusCode {
    STATUS_CODE_UNSET = 0;
    STATUS_CODE_OK = 1;
    STATUS_CODE_ERROR = 2;
  }
  StatusCode code = 3;
}
`;

const TRACE_SERVICE = `
syntax = "proto3";
package opentelemetry.proto.collector.trace.v1;
message ExportTraceServiceRequest {
  repeated opentelemetry.proto.trace.v1.ResourceSpans resource_spans = 1;
}
message ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1; }
message ExportTracePartialSuccess {
  int64 rejected_spans = 1;
  string error_message = 2;
}
`;

const RPC_STATUS = `
syntax = "proto3";
package google.rpc;
message Status {
  int32 code = 1;
  string message = 2;
  repeated google.protobuf.Any details = 3;
}
`;

const ANY = `
syntax = "proto3";
package google.protobuf;
message Any { string type_url = 1; bytes value = 2; }
`;

export const referenceRoot = new protobuf.Root();
for (const source of [COMMON, RESOURCE, TRACE, TRACE_SERVICE, ANY, RPC_STATUS]) {
  protobuf.parse(source, referenceRoot, { keepCase: true });
}
referenceRoot.resolveAll();

export const RequestType = referenceRoot.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
export const ResponseType = referenceRoot.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse');
export const RpcStatusType = referenceRoot.lookupType('google.rpc.Status');

/** toObject options giving data comparable to our model (decimal int64, base64 bytes, defaults). */
export const TO_OBJECT: protobuf.IConversionOptions = {
  longs: String,
  enums: Number,
  bytes: String,
  defaults: true,
  arrays: true,
};

type Plain = Record<string, unknown>;

const b64hex = (b64: unknown): string => Buffer.from(String(b64), 'base64').toString('hex');

function anyValue(v: Plain | null | undefined): AnyValue {
  if (!v) return {};
  if (v.string_value !== undefined) return { stringValue: v.string_value as string };
  if (v.bool_value !== undefined) return { boolValue: v.bool_value as boolean };
  if (v.int_value !== undefined) return { intValue: v.int_value as string };
  if (v.double_value !== undefined) return { doubleValue: v.double_value as number };
  if (v.array_value !== undefined) {
    return { arrayValue: { values: ((v.array_value as Plain).values as Plain[]).map(anyValue) } };
  }
  if (v.kvlist_value !== undefined) {
    return { kvlistValue: { values: keyValues((v.kvlist_value as Plain).values as Plain[]) } };
  }
  if (v.bytes_value !== undefined) return { bytesValue: v.bytes_value as string };
  return {};
}

function keyValues(list: Plain[]): KeyValue[] {
  return list.map((kv) => ({ key: kv.key as string, value: anyValue(kv.value as Plain | null) }));
}

/**
 * Decodes request bytes with protobufjs and maps the result to our span model, knowing nothing
 * of our decoder. Ids are not validated: feed it valid requests only.
 */
export function referenceDecode(bytes: Uint8Array): Span[] {
  const req = RequestType.toObject(RequestType.decode(bytes), TO_OBJECT) as Plain;
  const spans: Span[] = [];
  for (const rs of req.resource_spans as Plain[]) {
    const r = (rs.resource ?? {}) as Plain;
    const resource: Resource = {
      attributes: keyValues((r.attributes ?? []) as Plain[]),
      droppedAttributesCount: (r.dropped_attributes_count ?? 0) as number,
      schemaUrl: rs.schema_url as string,
    };
    for (const ss of rs.scope_spans as Plain[]) {
      const s = (ss.scope ?? {}) as Plain;
      const scope: Scope = {
        name: (s.name ?? '') as string,
        version: (s.version ?? '') as string,
        attributes: keyValues((s.attributes ?? []) as Plain[]),
        droppedAttributesCount: (s.dropped_attributes_count ?? 0) as number,
        schemaUrl: ss.schema_url as string,
      };
      for (const sp of ss.spans as Plain[]) {
        const parent = b64hex(sp.parent_span_id);
        const status = (sp.status ?? {}) as Plain;
        spans.push({
          traceId: b64hex(sp.trace_id),
          spanId: b64hex(sp.span_id),
          parentSpanId: /^0*$/.test(parent) ? '' : parent,
          traceState: sp.trace_state as string,
          flags: sp.flags as number,
          name: sp.name as string,
          kind: sp.kind as number,
          startTimeUnixNano: sp.start_time_unix_nano as string,
          endTimeUnixNano: sp.end_time_unix_nano as string,
          attributes: keyValues(sp.attributes as Plain[]),
          droppedAttributesCount: sp.dropped_attributes_count as number,
          events: (sp.events as Plain[]).map((e) => ({
            timeUnixNano: e.time_unix_nano as string,
            name: e.name as string,
            attributes: keyValues(e.attributes as Plain[]),
            droppedAttributesCount: e.dropped_attributes_count as number,
          })),
          droppedEventsCount: sp.dropped_events_count as number,
          links: (sp.links as Plain[]).map((l) => ({
            traceId: b64hex(l.trace_id),
            spanId: b64hex(l.span_id),
            traceState: l.trace_state as string,
            attributes: keyValues(l.attributes as Plain[]),
            droppedAttributesCount: l.dropped_attributes_count as number,
            flags: l.flags as number,
          })),
          droppedLinksCount: sp.dropped_links_count as number,
          status: { code: (status.code ?? 0) as number, message: (status.message ?? '') as string },
          resource,
          scope,
        });
      }
    }
  }
  return spans;
}
