import { auditIDForSpans } from '@kube-correlate/audit';
import { auditSpanId, DERIVED_SCOPE, encodeCorrelatedTrace, encodeUnjoinedAudit, groupByAuditId, lateAuditSpanId, objectSetTraceId, requestAnchor, type TreeNode } from '@kube-correlate/correlator';
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
 *  - an object: the spans of its object-set trace not exported yet (new objects, new requests);
 *  - a release: what an earlier round held back (below), as it is now.
 *
 * A span in Jaeger cannot be changed, so a span whose content may still change is held back, and a
 * `release` entry is queued for later: a request's route span (it carries k8s.audit.*) and audit
 * span until the request's audit record is complete (ResponseComplete or Panic), at most
 * `waitForAuditMs`; in an object set, the root until the root object was seen, owners known only
 * from ownerReferences, requests not complete, and the whole set while its id may still change,
 * at most `waitForOwnersMs` (object-set-tree.ts). Object entries come due once their set has been
 * quiet for a while (the store's objectSetDebounce), so a set usually goes out whole, in one round.
 *
 * Audit spans also carry the request's object set (`k8s.objset.id`, `k8s.objset.trace_id`), so
 * the Jaeger UI can link from a request to its object set.
 */
export interface ExportPlan {
  spans: Span[];
  /** Audit stages each planned span carries, by `traceId/spanId`, recorded as exported with it. */
  stages: Map<string, Array<{ auditId: string; stage: string }>>;
  /** What holds spans back, and when to let them go as they are (`release` entries to queue once this plan went out). */
  releases: Array<{ key: string; atMs: number }>;
  /** Release keys of what holds nothing any more: a queued release of theirs can go. */
  complete: string[];
}

export interface PlanOptions {
  /** Clock, ms. Default Date.now. */
  now?: number;
  /** How long a request's route and audit spans wait for its audit record to complete. Default 1 minute. */
  waitForAuditMs?: number;
  /** How long an object set's spans that may still change wait (see above). Default 2 minutes. */
  waitForOwnersMs?: number;
}

/** Key of a `release` queue entry: what it releases. */
export const releaseKey = {
  trace: (traceId: string) => `trace/${traceId}`,
  unjoined: (auditId: string) => `unjoined/${auditId}`,
  objset: (setId: string) => `objset/${setId}`,
};

const key = (s: { traceId: string; spanId: string }) => `${s.traceId}/${s.spanId}`;

/** Stages after which an audit record is complete: its code and duration are known. */
const FINAL_STAGES = new Set(['ResponseComplete', 'Panic']);
const complete = (events: ReadonlyArray<{ stage: string }>) => events.some((e) => FINAL_STAGES.has(e.stage));

export function planExport(store: TraceStore, entries: readonly ExportQueueEntry[], opts: PlanOptions = {}): ExportPlan {
  const plan: ExportPlan = { spans: [], stages: new Map(), releases: [], complete: [] };
  const now = opts.now ?? Date.now();
  const planned = new Set<string>();
  const traces = new Set<string>();
  const unjoined = new Set<string>();
  const sets = new Set<string>();
  const released = new Set<string>();
  for (const e of entries) {
    if (e.kind === 'trace') traces.add(e.key);
    else if (e.kind === 'object') sets.add(store.objectSetOf(e.key));
    else if (e.kind === 'release') {
      released.add(e.key);
      const [what, ...rest] = e.key.split('/');
      const id = rest.join('/');
      if (what === 'trace') traces.add(id);
      else if (what === 'objset') sets.add(id);
      else if (what === 'unjoined') unjoined.add(id);
    } else {
      const paired = store.tracesOfAudit(e.key);
      if (paired.length) paired.forEach((t) => traces.add(t));
      else unjoined.add(e.key);
    }
  }
  for (const id of [...unjoined]) {
    // Paired since it was queued: it goes out with its trace.
    const paired = store.tracesOfAudit(id);
    if (paired.length) {
      unjoined.delete(id);
      paired.forEach((t) => traces.add(t));
    }
  }
  /** After the plan: hold what `held` counted until `waitMs` from now, or forget an earlier hold. */
  const settle = (releaseKeyOf: string, held: number, waitMs: number, alsoComplete: string[] = []) => {
    if (held) plan.releases.push({ key: releaseKeyOf, atMs: now + waitMs });
    else plan.complete.push(releaseKeyOf, ...alsoComplete);
  };

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

  const waitForAudit = opts.waitForAuditMs ?? 60_000;
  for (const t of traces) {
    const { spans, auditEvents } = store.traceData(t);
    if (!spans.length) continue;
    // A request's route span carries its audit (k8s.audit.*) and its audit span every stage: a span
    // sent cannot change, so both wait until the request's audit record is complete.
    const hold = new Set<string>();
    if (!released.has(releaseKey.trace(t))) {
      const byId = new Map(spans.map((s) => [s.spanId, s]));
      const events = groupByAuditId(auditEvents);
      const ids = new Set(spans.map((s) => attrString(s.attributes, 'audit-id')).filter((x): x is string => !!x));
      for (const id of ids) {
        if (complete(events.get(id) ?? [])) continue;
        const anchor = requestAnchor(id, byId);
        if (anchor) hold.add(anchor.spanId);
        hold.add(auditSpanId(id));
      }
    }
    let held = 0;
    const api = store.apiOperationsOf(new Set(auditEvents.map((e) => e.auditID)));
    for (const s of encodeCorrelatedTrace(t, spans, auditEvents, undefined, api)) {
      if (hold.has(s.spanId) && !store.isExported(s.traceId, s.spanId)) held++;
      else consider(s);
    }
    settle(releaseKey.trace(t), held, waitForAudit);
  }
  for (const id of unjoined) {
    const events = store.auditEvents(id);
    const wait = !complete(events) && !released.has(releaseKey.unjoined(id));
    if (!wait) encodeUnjoinedAudit(events, store.apiOperationsOf([id])).forEach(consider);
    settle(releaseKey.unjoined(id), wait ? 1 : 0, waitForAudit);
  }
  for (const setId of sets) {
    const tree = store.getObjectSet(setId);
    // A release names the set it was queued for: if the set's id changed since (an owner came),
    // the set it is now part of goes out by its own rules.
    if (!tree || tree.objectSetId !== setId) continue;
    // Until its id is final (owners to come may name another set), the whole set waits.
    const release = released.has(releaseKey.objset(setId));
    const { spans, held } = objectSetSpans(tree, { release, tentative: !release && !store.objectSetIsFinal(setId) });
    spans.forEach((s) => add(s));
    // Releases queued while the set's id was still one of its objects' uids are done with too.
    settle(releaseKey.objset(setId), held, opts.waitForOwnersMs ?? 120_000, objectUids(tree.root).map(releaseKey.objset));
  }
  return plan;
}

function objectUids(n: TreeNode, out: string[] = []): string[] {
  const uid = n.attributes['k8s.object.uid'];
  if (typeof uid === 'string' && !n.audit) out.push(uid);
  for (const c of n.children) objectUids(c, out);
  return out;
}
