import type { KeyValue, Resource, Scope, Span } from './model.js';

/** OTLP/JSON `ExportTraceServiceRequest`, as the OpenTelemetry Collector's file exporter writes it. */
export interface ExportTraceServiceRequestJson {
  resourceSpans: Array<{
    resource: { attributes: KeyValue[]; droppedAttributesCount?: number };
    schemaUrl?: string;
    scopeSpans: Array<{
      scope: { name: string; version?: string; attributes?: KeyValue[]; droppedAttributesCount?: number };
      schemaUrl?: string;
      spans: Array<Record<string, unknown>>;
    }>;
  }>;
}

/**
 * Encodes spans as one OTLP/JSON request. Spans sharing a Resource (or Scope) object are grouped
 * under it, in first-seen order, so decode(encode(spans)) gives the spans back in order.
 */
export function encodeTracesJson(spans: readonly Span[]): ExportTraceServiceRequestJson {
  const byResource = new Map<Resource, Map<Scope, Span[]>>();
  for (const span of spans) {
    let scopes = byResource.get(span.resource);
    if (!scopes) byResource.set(span.resource, (scopes = new Map()));
    let list = scopes.get(span.scope);
    if (!list) scopes.set(span.scope, (list = []));
    list.push(span);
  }
  const out: ExportTraceServiceRequestJson = { resourceSpans: [] };
  for (const [resource, scopes] of byResource) {
    out.resourceSpans.push({
      resource: { attributes: resource.attributes, droppedAttributesCount: resource.droppedAttributesCount },
      ...(resource.schemaUrl ? { schemaUrl: resource.schemaUrl } : {}),
      scopeSpans: [...scopes].map(([scope, list]) => ({
        // droppedAttributesCount only when set (it was left out: found by the fuzzer).
        scope: { name: scope.name, version: scope.version, attributes: scope.attributes, ...(scope.droppedAttributesCount ? { droppedAttributesCount: scope.droppedAttributesCount } : {}) },
        ...(scope.schemaUrl ? { schemaUrl: scope.schemaUrl } : {}),
        spans: list.map(spanJson),
      })),
    });
  }
  return out;
}

function spanJson(s: Span): Record<string, unknown> {
  return {
    traceId: s.traceId,
    spanId: s.spanId,
    ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
    ...(s.traceState ? { traceState: s.traceState } : {}),
    ...(s.flags ? { flags: s.flags } : {}),
    name: s.name,
    kind: s.kind,
    startTimeUnixNano: s.startTimeUnixNano,
    endTimeUnixNano: s.endTimeUnixNano,
    attributes: s.attributes,
    droppedAttributesCount: s.droppedAttributesCount,
    events: s.events,
    droppedEventsCount: s.droppedEventsCount,
    links: s.links,
    droppedLinksCount: s.droppedLinksCount,
    status: s.status,
  };
}
