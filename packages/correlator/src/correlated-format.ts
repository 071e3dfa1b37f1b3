import { auditEventJson, auditIDForSpans, parseAuditTimestamp, summarizeAudit, type AuditEvent } from '@kube-correlate/audit';
import { attrString, encodeKeyValueFields, encodeTraceRequest, SpanKind, spliceTraceRequest, type KeyValue, type RawSpan, type Resource, type Scope, type Span } from '@kube-correlate/otlp';
import { requestAnchorBy, type AnchorSpan } from './request-tree.js';
import { DECODED_SPANS, RAW_SPANS } from './span-model.js';
import { apiAttributes, type ApiOperation } from './api-attributes.js';
import { ADDED_PREFIXES, API_ATTR, AUDIT_ATTR, AUDIT_SERVICE, auditSpanId, auditStageAttr, DERIVED_SCOPE, OBJECT_ATTR, OBJSET_SCOPE, SERVICE_NAME, unjoinedTraceId } from '@kube-correlate/semconv';

/**
 * The `otlp_correlated` format: a settled trace as OTLP spans, readable by any OTLP consumer
 * (Jaeger v2's kafka receiver among them), from which `correlate store` gets back exactly what the
 * correlator had.
 *
 *  - The trace's own spans, as received. The route span of each audit request additionally carries
 *    `k8s.audit.*` attributes (id, verb, user, user_agent, code, request_uri, stage timestamps) and
 *    `k8s.object.*` (resource, namespace, name, uid, api_group, api_version).
 *  - One derived **audit span** per auditID, in the request's trace, child of the span that stands
 *    for the request (the route span when present), from RequestReceived to the last stage. It has
 *    one span event per stage (name = stage, time = stageTimestamp) whose attribute
 *    `k8s.audit.event` holds that stage's audit Event as JSON: the lossless copy (in Kafka mode the
 *    text it was read as when redaction changed nothing, auditEventJson in @kube-correlate/audit).
 *  - Audit events whose trace never came get a trace of their own: trace id derived from the
 *    auditID, the audit span as its root, attribute `k8s.audit.unjoined` = true.
 *
 * Derived spans have deterministic ids (a hash of the auditID), so a replay exports byte-identical
 * spans, and are marked by their instrumentation scope `kube-correlate`. Attributes we add are
 * namespaced (`k8s.audit.*`, `k8s.object.*`); the store drops them from received spans, so trees
 * read back are the same in embedded and Kafka mode.
 */

// DERIVED_SCOPE, OBJSET_SCOPE, ADDED_PREFIXES (k8s.api.* among them: data of the audit request too,
// on the route span and the audit span, read back from the audit span) and the derived ids are in
// @kube-correlate/semconv.

const derivedResource: Resource = { attributes: [{ key: SERVICE_NAME, value: { stringValue: AUDIT_SERVICE } }], droppedAttributesCount: 0, schemaUrl: '' };
const derivedScope: Scope = { name: DERIVED_SCOPE, version: '', attributes: [], droppedAttributesCount: 0, schemaUrl: '' };

const str = (key: string, v: string | undefined): KeyValue[] => (v === undefined || v === '' ? [] : [{ key, value: { stringValue: v } }]);
const int = (key: string, v: number | undefined): KeyValue[] => (v === undefined ? [] : [{ key, value: { intValue: String(v) } }]);

const toNanos = (ts: string | undefined): string | undefined => (ts ? parseAuditTimestamp(ts)?.toString() : undefined);

/** `k8s.audit.*` and `k8s.object.*` attributes of one audit request. */
export function auditAttributes(events: readonly AuditEvent[]): KeyValue[] {
  const a = summarizeAudit(events);
  const ref = a.objectRef ?? {};
  return [
    ...str(AUDIT_ATTR.id, a.auditID),
    ...str(AUDIT_ATTR.verb, a.verb),
    ...str(AUDIT_ATTR.user, a.user),
    ...str(AUDIT_ATTR.userAgent, a.userAgent),
    ...int(AUDIT_ATTR.code, a.code),
    ...str(AUDIT_ATTR.requestUri, a.requestURI),
    ...str(AUDIT_ATTR.level, a.level),
    ...Object.entries(a.stages).flatMap(([stage, ts]) => str(auditStageAttr(stage), ts)),
    ...str(OBJECT_ATTR.resource, ref.resource),
    ...str(OBJECT_ATTR.subresource, ref.subresource),
    ...str(OBJECT_ATTR.namespace, ref.namespace),
    ...str(OBJECT_ATTR.name, ref.name),
    ...str(OBJECT_ATTR.uid, ref.uid),
    ...str(OBJECT_ATTR.apiGroup, ref.apiGroup),
    ...str(OBJECT_ATTR.apiVersion, ref.apiVersion),
  ];
}

/** The derived audit span of one audit request. */
export function auditSpan(traceId: string, parentSpanId: string, events: readonly AuditEvent[], unjoined = false, api?: ApiOperation): Span {
  const a = summarizeAudit(events);
  const sorted = [...events].sort((x, y) => (x.stageTimestamp < y.stageTimestamp ? -1 : x.stageTimestamp > y.stageTimestamp ? 1 : x.stage < y.stage ? -1 : 1));
  const start = toNanos(a.requestReceivedTimestamp) ?? toNanos(sorted[0]?.stageTimestamp) ?? '0';
  const end = sorted.reduce((m, e) => {
    const t = toNanos(e.stageTimestamp);
    return t !== undefined && BigInt(t) > BigInt(m) ? t : m;
  }, start);
  const resource = a.objectRef?.resource ? `${a.objectRef.resource}${a.objectRef.subresource ? `/${a.objectRef.subresource}` : ''}` : a.requestURI;
  return {
    traceId, spanId: auditSpanId(a.auditID), parentSpanId, traceState: '', flags: 0,
    name: `audit ${a.verb} ${resource}`, kind: SpanKind.INTERNAL,
    startTimeUnixNano: start, endTimeUnixNano: end,
    attributes: [...auditAttributes(events), ...apiAttributes(api), ...(unjoined ? [{ key: AUDIT_ATTR.unjoined, value: { boolValue: true } }] : [])],
    droppedAttributesCount: 0,
    events: sorted.map((e) => ({ timeUnixNano: toNanos(e.stageTimestamp) ?? start, name: e.stage, attributes: [{ key: AUDIT_ATTR.event, value: { stringValue: auditEventJson(e) } }], droppedAttributesCount: 0 })),
    droppedEventsCount: 0, links: [], droppedLinksCount: 0,
    status: { code: (a.code ?? 0) >= 500 ? 2 : 0, message: '' },
    resource: derivedResource, scope: derivedScope,
  };
}

/** Audit events by request: the 64-byte auditID spans carry, in arrival order. */
export function groupByAuditId(events: readonly AuditEvent[]): Map<string, AuditEvent[]> {
  const byAudit = new Map<string, AuditEvent[]>();
  for (const e of events) {
    const id = auditIDForSpans(e.auditID);
    const list = byAudit.get(id);
    if (list) list.push(e);
    else byAudit.set(id, [e]);
  }
  return byAudit;
}

/** What encodeCorrelatedTrace adds to a trace: attributes per span id (route spans), and the derived audit spans. */
interface CorrelatedPlan {
  extra: Map<string, KeyValue[]>;
  derived: Span[];
}

function planCorrelated<S extends AnchorSpan>(traceId: string, spans: readonly S[], auditIdOf: (s: S) => string | undefined, auditEvents: readonly AuditEvent[], anchors: ReadonlyMap<string, string>, api: ReadonlyMap<string, ApiOperation>): CorrelatedPlan {
  const byAudit = groupByAuditId(auditEvents);
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const anchorOf = new Map<string, string>();
  for (const id of byAudit.keys()) {
    const anchor = requestAnchorBy(id, byId, auditIdOf)?.spanId ?? anchors.get(id);
    if (anchor) anchorOf.set(id, anchor);
  }
  const extra = new Map<string, KeyValue[]>();
  for (const [id, spanId] of anchorOf) if (byId.has(spanId)) extra.set(spanId, [...(extra.get(spanId) ?? []), ...auditAttributes(byAudit.get(id)!), ...apiAttributes(api.get(id))]);
  const derived: Span[] = [];
  for (const [id, events] of byAudit) derived.push(auditSpan(traceId, anchorOf.get(id) ?? '', events, false, api.get(id)));
  return { extra, derived };
}


/**
 * One settled trace as `otlp_correlated` spans. `auditEvents` are the events of auditIDs carried by
 * the spans, or, for an update without spans (late audit events), of the auditIDs in `anchors`,
 * which name the span each audit request hangs under.
 */
export function encodeCorrelatedTrace(traceId: string, spans: readonly Span[], auditEvents: readonly AuditEvent[], anchors: ReadonlyMap<string, string> = new Map(), api: ReadonlyMap<string, ApiOperation> = new Map()): Span[] {
  const { extra, derived } = planCorrelated(traceId, spans, DECODED_SPANS.auditId, auditEvents, anchors, api);
  const out: Span[] = [];
  for (const s of spans) {
    const add = extra.get(s.spanId);
    out.push(add ? { ...s, attributes: [...s.attributes, ...add] } : s);
  }
  out.push(...derived);
  return out;
}

/**
 * encodeCorrelatedTrace for the Kafka correlator's RawSpans, encoded: the spans' bytes are copied as
 * they came (grouped by resource and scope), a route span's added attributes are appended to its
 * bytes (Span.attributes is a repeated field), and the derived audit spans are encoded. Decodes to
 * the spans of encodeTraceRequest(encodeCorrelatedTrace(...)) of the same spans decoded, up to
 * their order.
 */
export function encodeCorrelatedRaw(traceId: string, spans: readonly RawSpan[], auditEvents: readonly AuditEvent[], anchors: ReadonlyMap<string, string> = new Map(), api: ReadonlyMap<string, ApiOperation> = new Map()): Uint8Array {
  const { extra, derived } = planCorrelated(traceId, spans, RAW_SPANS.auditId, auditEvents, anchors, api);
  const appended = new Map<string, Uint8Array>();
  for (const [spanId, kvs] of extra) appended.set(spanId, encodeKeyValueFields(9, kvs)); // Span.attributes = 9
  return spliceTraceRequest(spans, appended.size ? (s) => appended.get(s.spanId) : undefined, derived.length ? encodeTraceRequest(derived) : undefined);
}

/** Spans for audit events whose trace never came: one trace per auditID. */
export function encodeUnjoinedAudit(events: readonly AuditEvent[], api: ReadonlyMap<string, ApiOperation> = new Map()): Span[] {
  return [...groupByAuditId(events)].map(([id, list]) => auditSpan(unjoinedTraceId(id), '', list, true, api.get(id)));
}

export interface DecodedCorrelated {
  /** Received spans, with the attributes the correlator added removed. */
  spans: Span[];
  /** Audit events of requests joined to a trace, by trace id. */
  joined: Map<string, AuditEvent[]>;
  /** Audit events whose trace never came. */
  unjoined: AuditEvent[];
  /** Spans of object-set traces, as exported to Jaeger. */
  objectSetSpans: Span[];
  /** API operations the audit spans name, by auditID (64-character form). */
  apiOperations: Map<string, ApiOperation>;
}

/** The inverse of encodeCorrelatedTrace / encodeUnjoinedAudit, for `correlate store`. */
export function decodeCorrelated(spans: readonly Span[]): DecodedCorrelated {
  const out: DecodedCorrelated = { spans: [], joined: new Map(), unjoined: [], objectSetSpans: [], apiOperations: new Map() };
  for (const s of spans) {
    if (s.scope.name === OBJSET_SCOPE) {
      out.objectSetSpans.push(s);
      continue;
    }
    if (s.scope.name !== DERIVED_SCOPE) {
      const kept = s.attributes.filter((kv) => !ADDED_PREFIXES.some((p) => kv.key.startsWith(p)));
      out.spans.push(kept.length === s.attributes.length ? s : { ...s, attributes: kept });
      continue;
    }
    const events: AuditEvent[] = [];
    for (const e of s.events) {
      const json = attrString(e.attributes, AUDIT_ATTR.event);
      if (json) events.push(JSON.parse(json) as AuditEvent);
    }
    const operationId = attrString(s.attributes, API_ATTR.operationId);
    const auditId = attrString(s.attributes, AUDIT_ATTR.id);
    if (operationId && auditId) out.apiOperations.set(auditIDForSpans(auditId), { operationId, stability: attrString(s.attributes, API_ATTR.stability) ?? '' });
    const unjoined = s.attributes.some((kv) => kv.key === AUDIT_ATTR.unjoined);
    if (unjoined) out.unjoined.push(...events);
    else out.joined.set(s.traceId, [...(out.joined.get(s.traceId) ?? []), ...events]);
  }
  return out;
}
