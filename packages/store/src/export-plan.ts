import { auditIDForSpans } from '@kube-correlate/audit';
import { DERIVED_SCOPE, encodeCorrelatedTrace, encodeUnjoinedAudit, lateAuditSpanId, objectSetTraceId } from '@kube-correlate/correlator';
import { attrString, type Span } from '@kube-correlate/otlp';
import { objectSetSpans } from './object-set-tree.js';
import type { ExportQueueEntry, TraceStore } from './trace-store.js';

/**
 * What the OTLP exporter sends for a batch of export-queue entries, worked out from what the store
 * holds now (so late data merges) and from what was exported before (so no span id goes out twice):
 *
 *  - a trace: its spans in the `otlp_correlated` form (audit attributes on the route span, one audit
 *    span per request), minus spans already exported. When an audit span went out before some of
 *    its stages arrived, the new stages go out as one more span ("late stages"), with its own id;
 *  - an unjoined audit request: its own trace (or, once paired, the trace it joined);
 *  - an object: the spans of its object-set trace not exported yet (new objects, new requests).
 *
 * Audit spans also carry the request's object set (`k8s.objset.id`, `k8s.objset.trace_id`), so
 * the Jaeger UI can link from a request to its object set.
 */
export interface ExportPlan {
  spans: Span[];
  /** Audit stages each planned span carries, by `traceId/spanId`, recorded as exported with it. */
  stages: Map<string, Array<{ auditId: string; stage: string }>>;
}

const key = (s: { traceId: string; spanId: string }) => `${s.traceId}/${s.spanId}`;

export function planExport(store: TraceStore, entries: readonly ExportQueueEntry[]): ExportPlan {
  const plan: ExportPlan = { spans: [], stages: new Map() };
  const planned = new Set<string>();
  const traces = new Set<string>();
  const unjoined = new Set<string>();
  const sets = new Set<string>();
  for (const e of entries) {
    if (e.kind === 'trace') traces.add(e.key);
    else if (e.kind === 'object') sets.add(store.objectSetOf(e.key));
    else {
      const paired = store.tracesOfAudit(e.key);
      if (paired.length) paired.forEach((t) => traces.add(t));
      else unjoined.add(e.key);
    }
  }

  /** Plans a span known not to be exported yet (once per plan). */
  const push = (s: Span, stages: Array<{ auditId: string; stage: string }> = []) => {
    if (planned.has(key(s))) return;
    planned.add(key(s));
    plan.spans.push(s);
    if (stages.length) plan.stages.set(key(s), stages);
  };
  const add = (s: Span) => {
    if (!store.isExported(s.traceId, s.spanId)) push(s);
  };
  /** The request's object set on its audit span, looked up only for spans that go out. */
  const withObjectSet = (s: Span, auditId: string): Span => {
    const setId = store.objectSetOfAudit(auditId);
    return setId
      ? { ...s, attributes: [...s.attributes, { key: 'k8s.objset.id', value: { stringValue: setId } }, { key: 'k8s.objset.trace_id', value: { stringValue: objectSetTraceId(setId) } }] }
      : s;
  };

  const consider = (s: Span) => {
    if (s.scope.name !== DERIVED_SCOPE) return add(s);
    const auditId = auditIDForSpans(attrString(s.attributes, 'k8s.audit.id') ?? '');
    if (!store.isExported(s.traceId, s.spanId)) return push(withObjectSet(s, auditId), s.events.map((e) => ({ auditId, stage: e.name })));
    const done = store.exportedStages(auditId);
    const late = s.events.filter((e) => !done.has(e.name));
    if (late.length === 0) return;
    const names = late.map((e) => e.name);
    const times = late.map((e) => BigInt(e.timeUnixNano));
    const min = times.reduce((a, b) => (b < a ? b : a)).toString();
    const max = times.reduce((a, b) => (b > a ? b : a)).toString();
    // The late span's id comes from the auditID and the stages it carries: new stages, new id.
    const spanId = lateAuditSpanId(auditId, names);
    if (store.isExported(s.traceId, spanId)) return;
    push(
      withObjectSet({ ...s, spanId, name: `${s.name} (late: ${names.join(', ')})`, startTimeUnixNano: min, endTimeUnixNano: max, events: late }, auditId),
      names.map((stage) => ({ auditId, stage })),
    );
  };

  for (const t of traces) {
    const { spans, auditEvents } = store.traceData(t);
    if (spans.length) encodeCorrelatedTrace(t, spans, auditEvents).forEach(consider);
  }
  for (const id of unjoined) encodeUnjoinedAudit(store.auditEvents(id)).forEach(consider);
  for (const setId of sets) {
    const tree = store.getObjectSet(setId);
    if (tree) objectSetSpans(tree).forEach((s) => add(s));
  }
  return plan;
}
