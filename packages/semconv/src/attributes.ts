/**
 * Span attribute names: the ones kube-apiserver writes and kube-correlate reads, and the ones
 * kube-correlate adds (README.md has the table: meaning, writer, readers).
 */

/** kube-apiserver's span attribute holding the request's audit ID (its first 64 bytes: auditIDForSpans). */
export const AUDIT_ID = 'audit-id';

/** The resource attribute naming a span's service. */
export const SERVICE_NAME = 'service.name';

/** Audit request attributes, on the route span and the derived audit span (correlated-format.ts). */
export const AUDIT_ATTR = {
  id: 'k8s.audit.id',
  verb: 'k8s.audit.verb',
  user: 'k8s.audit.user',
  userAgent: 'k8s.audit.user_agent',
  code: 'k8s.audit.code',
  requestUri: 'k8s.audit.request_uri',
  level: 'k8s.audit.level',
  /** One attribute per stage, `k8s.audit.stage.<stage>` = stageTimestamp: see auditStageAttr. */
  stagePrefix: 'k8s.audit.stage.',
  /** On each span event of an audit span: that stage's audit Event as JSON (the lossless copy). */
  event: 'k8s.audit.event',
  /** true on the audit span of a request whose spans never came (its trace is unjoinedTraceId). */
  unjoined: 'k8s.audit.unjoined',
  /** On a request span of an object-set trace: the request's own trace (Jaeger UI link patterns use it). */
  traceId: 'k8s.audit.trace_id',
} as const;

/** `k8s.audit.stage.<stage>`: the stage's stageTimestamp. */
export const auditStageAttr = (stage: string): string => `${AUDIT_ATTR.stagePrefix}${stage}`;

/** The object a request addressed (audit objectRef), and object nodes of object-set trees. */
export const OBJECT_ATTR = {
  resource: 'k8s.object.resource',
  subresource: 'k8s.object.subresource',
  namespace: 'k8s.object.namespace',
  name: 'k8s.object.name',
  uid: 'k8s.object.uid',
  apiGroup: 'k8s.object.api_group',
  apiVersion: 'k8s.object.api_version',
  kind: 'k8s.object.kind',
  /** true on an object deleted by a successful request. */
  deleted: 'k8s.object.deleted',
  /** false on an object known only from an ownerReference (no audit event showed it yet). */
  observed: 'k8s.object.observed',
} as const;

/** Attributes of object-set traces and of the chain of a set's traces (one per window, further parts). */
export const OBJSET_ATTR = {
  id: 'k8s.objset.id',
  traceId: 'k8s.objset.trace_id',
  windowStart: 'k8s.objset.window.start',
  windowEnd: 'k8s.objset.window.end',
  part: 'k8s.objset.part',
  previous: 'k8s.objset.previous_trace_id',
  next: 'k8s.objset.next_trace_id',
} as const;

/** The API operation of an audit request, from the OpenAPI spec (@kube-correlate/apicoverage). */
export const API_ATTR = {
  operationId: 'k8s.api.operation_id',
  stability: 'k8s.api.stability',
} as const;

/**
 * Prefixes of every attribute kube-correlate adds to a received span. The store drops them from
 * received spans read back from `otlp_correlated`, so trees are the same in embedded and Kafka mode.
 */
export const ADDED_PREFIXES: readonly string[] = ['k8s.audit.', 'k8s.object.', 'k8s.objset.', 'k8s.api.'];
