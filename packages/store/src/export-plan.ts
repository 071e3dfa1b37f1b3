import { auditIDForSpans } from '@kube-correlate/audit';
import { encodeCorrelatedTrace, encodeUnjoinedAudit, groupByAuditId, requestAnchor, treeNodes, type TreeNode } from '@kube-correlate/correlator';
import {
  AUDIT_ATTR, AUDIT_ID, auditSpanId, DERIVED_SCOPE, lateAuditSpanId, OBJECT_ATTR, objectSetChainSpanId, objectSetRootSpanId, objectSetTraceId, objectSetWindowStart, OBJSET_ATTR,
} from '@kube-correlate/semconv';
import { attrString, type Span } from '@kube-correlate/otlp';
import { objectSetChainSpan, objectSetNodeReady, objectSetSpan, type HoldOptions, type ObjectSetTraceContext, type ObjectSetTree } from '@kube-correlate/correlator';
import { objectEntryKey, type ExportQueueEntry, type TraceStore } from './trace-store.js';

/**
 * What the OTLP exporter sends for a batch of export-queue entries, worked out from what the store
 * holds now (so late data merges) and from what was exported before (so no span id goes out twice):
 *
 *  - a trace: its spans in the `otlp_correlated` form (audit attributes on the route span, one audit
 *    span per request), minus spans already exported. When an audit span went out before some of
 *    its stages arrived, the new stages go out as one more span ("late stages"), with its own id;
 *  - an unjoined audit request: its own trace (or, once paired, the trace it joined);
 *  - an object in a window: the spans of its object set's trace of that window not exported yet
 *    (new objects, new requests; see "Object sets in windows" below);
 *  - a release: what an earlier round held back (below), as it is now.
 *
 * A span in Jaeger cannot be changed, so a span whose content may still change is held back, and a
 * `release` entry is queued for later: a request's route span (it carries k8s.audit.*) and audit
 * span until the request's audit record is complete (ResponseComplete or Panic), at most
 * `waitForAuditMs`; in an object set, the root until the root object was seen, owners known only
 * from ownerReferences, requests not complete, and the whole set while its id may still change,
 * at most `waitForOwnersMs` (objectSetNodeReady, @kube-correlate/correlator). Object entries come due once their set has been
 * quiet for a while (the store's objectSetDebounce), so a set usually goes out whole, in one round.
 *
 * Audit spans also carry the request's object set (`k8s.objset.id`, `k8s.objset.trace_id`: the
 * trace of the request's window), so the Jaeger UI can link from a request to its object set.
 *
 * Object sets in windows: a set is exported as one trace per time window (`object_sets.window`,
 * UTC-aligned, by each request's requestReceivedTimestamp), so no trace grows for the object's
 * whole life. A window's trace holds its requests, the objects they touched and their owners up to
 * the root (connected), and a root span named after the set's root object. A window that outgrows
 * `maxSpansPerTrace` continues in further traces ("parts"): a request's part is decided when it is
 * first sent and known afterwards from the span ids recorded as sent, so nothing goes out twice.
 * The traces form a chain: the root of each (when it first goes out) links back to the trace before
 * it (the previous part, or the last part of the nearest earlier window with requests: span link
 * and `k8s.objset.previous_trace_id`), and one small span is added to that trace linking forward
 * (`k8s.objset.next_trace_id`; a new span, never a changed one). Hold rules apply per window.
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
  /** Spans in one object-set trace before a window continues in a further part. Default 2000. */
  maxSpansPerTrace?: number;
  /**
   * Whether this process exports an object set's windows (Kafka mode with object sets partitioned,
   * objset-partition.ts: only the owner of the set's partition does). Default: the scope the store
   * was given (setObjectSetScope), else every set.
   */
  ownsObjectSet?: (setId: string) => boolean;
}

const objectSetScopes = new WeakMap<TraceStore, (setId: string) => boolean>();

/**
 * Which object sets the export plans of `store` cover from now on (the exporter and the Kafka
 * driver that knows the partitions meet at the store); undefined: every set again.
 */
export function setObjectSetScope(store: TraceStore, owns: ((setId: string) => boolean) | undefined): void {
  if (owns) objectSetScopes.set(store, owns);
  else objectSetScopes.delete(store);
}

/** Key of a `release` queue entry: what it releases. */
export const releaseKey = {
  trace: (traceId: string) => `trace/${traceId}`,
  unjoined: (auditId: string) => `unjoined/${auditId}`,
  objset: (setId: string, windowStartMs: number) => `objset/${setId}/${windowStartMs}`,
};

/** What an `objset/...` release names: a set's window (before windows, schema v4: the set's newest). */
function parseObjsetRelease(id: string): { setId: string; windowStartMs?: number } {
  const m = /^(.*)\/(\d+)$/.exec(id);
  return m ? { setId: m[1]!, windowStartMs: Number(m[2]) } : { setId: id };
}

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
  /** Object-set windows to plan, by set id as named then ('newest': a queue entry written before windows). */
  const windows: Array<{ setId: string; windowStartMs: number | 'newest'; release: boolean }> = [];
  const released = new Set<string>();
  for (const e of entries) {
    if (e.kind === 'trace') traces.add(e.key);
    else if (e.kind === 'object') {
      const { uid, windowStartMs } = objectEntryKey.parse(e.key);
      windows.push({ setId: store.objectSetOf(uid), windowStartMs: windowStartMs ?? 'newest', release: false });
    } else if (e.kind === 'release') {
      released.add(e.key);
      const [what, ...rest] = e.key.split('/');
      const id = rest.join('/');
      if (what === 'trace') traces.add(id);
      else if (what === 'objset') {
        const r = parseObjsetRelease(id);
        windows.push({ setId: r.setId, windowStartMs: r.windowStartMs ?? 'newest', release: true });
      } else if (what === 'unjoined') unjoined.add(id);
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
  /** The request's object set and the trace of its window on its audit span, looked up only for spans that go out. */
  const withObjectSet = (s: Span, auditId: string): Span => {
    const set = store.objectSetTraceOfAudit(auditId);
    return set
      ? { ...s, attributes: [...s.attributes, { key: OBJSET_ATTR.id, value: { stringValue: set.setId } }, { key: OBJSET_ATTR.traceId, value: { stringValue: set.traceId } }] }
      : s;
  };

  const consider = (s: Span) => {
    if (s.scope.name !== DERIVED_SCOPE) return add(s);
    const auditId = auditIDForSpans(attrString(s.attributes, AUDIT_ATTR.id) ?? '');
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
      const ids = new Set(spans.map((s) => attrString(s.attributes, AUDIT_ID)).filter((x): x is string => !!x));
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
  // Object sets, window by window. A set's id may have changed since an entry was queued (an
  // owner came with a set of its own): the entry is for the same window of the set it is now part of.
  const byWindow = new Map<string, { setId: string; windowStartMs: number; release: boolean; asQueued: Set<string> }>();
  const newest = new Map<string, number | undefined>();
  for (const w of windows) {
    const setId = store.resolveObjectSet(w.setId);
    if (setId === undefined) continue;
    let start = w.windowStartMs;
    if (start === 'newest') {
      if (!newest.has(setId)) {
        const chain = store.objectSetChain(setId);
        newest.set(setId, chain.length ? Date.parse(chain[chain.length - 1]!.start) : undefined);
      }
      const n = newest.get(setId);
      if (n === undefined) continue;
      start = n;
    }
    const k = `${setId}\u0000${start}`;
    const entry = byWindow.get(k) ?? { setId, windowStartMs: start, release: false, asQueued: new Set<string>() };
    entry.release ||= w.release;
    entry.asQueued.add(w.setId);
    byWindow.set(k, entry);
  }
  // An owner seen now may free what waits in other windows of its set (the root waits for the root
  // object): those windows are looked at too, as they are (their releases stay queued if still needed).
  for (const { setId } of [...byWindow.values()]) {
    for (const key of store.queuedReleases(`objset/${setId}/`)) {
      const r = parseObjsetRelease(key.slice('objset/'.length));
      if (r.windowStartMs === undefined || r.setId !== setId || byWindow.has(`${setId}\u0000${r.windowStartMs}`)) continue;
      byWindow.set(`${setId}\u0000${r.windowStartMs}`, { setId, windowStartMs: r.windowStartMs, release: released.has(key), asQueued: new Set([setId]) });
    }
  }
  const waitForOwners = opts.waitForOwnersMs ?? 120_000;
  const owns = opts.ownsObjectSet ?? objectSetScopes.get(store);
  for (const w of byWindow.values()) {
    // Another process owns this set: it exports it (from the requests it was sent); a release held
    // here for it is done with.
    if (owns && !owns(w.setId)) {
      plan.complete.push(releaseKey.objset(w.setId, w.windowStartMs));
      continue;
    }
    const tree = store.objectSetWindowTree(w.setId, w.windowStartMs);
    const release = w.release || released.has(releaseKey.objset(w.setId, w.windowStartMs));
    const held = tree ? planObjectSetWindow(store, tree, w.windowStartMs, { release, tentative: !release && !store.objectSetIsFinal(w.setId) }, opts.maxSpansPerTrace ?? 2000, plan.spans, planned) : 0;
    // Releases queued under the ids this set had (one of its objects' uids, before its owner came),
    // and in the form before windows, are done with too.
    const olderKeys = new Set<string>([`objset/${w.setId}`]);
    for (const id of [...w.asQueued, ...(tree ? objectUids(tree.root) : [])]) {
      if (id === w.setId) continue;
      olderKeys.add(releaseKey.objset(id, w.windowStartMs));
      olderKeys.add(`objset/${id}`);
    }
    settle(releaseKey.objset(w.setId, w.windowStartMs), held, waitForOwners, [...olderKeys]);
  }
  return plan;
}

/** A trace of a window of an object set, as the plan fills it. */
interface PlannedPart {
  part: number;
  traceId: string;
  /** Spans sent to it before. */
  sent: number;
  /** Span ids planned into it now. */
  planned: Set<string>;
  /** Its request nodes (sent before or planned now). */
  requests: TreeNode[];
}

/**
 * Plans one window of an object set into `out` (see "Object sets in windows" above): every request
 * of the window not sent yet and free to go goes to the window's newest part, or to a new part when
 * that one would pass `maxSpans`; each part then gets the objects above its requests and its root,
 * minus what it has. A root that first goes out links back to the trace before it, and that trace
 * gets its forward-link span. Returns how many spans were held.
 */
function planObjectSetWindow(store: TraceStore, tree: ObjectSetTree, windowStartMs: number, hold: HoldOptions, maxSpans: number, out: Span[], planned: Set<string>): number {
  const setId = tree.objectSetId;
  const window = tree.window!;
  const parts: PlannedPart[] = store.objectSetParts(setId, windowStartMs).map((p) => ({ part: p.part, traceId: p.traceId, sent: p.spans, planned: new Set(), requests: [] }));
  const parentOf = new Map<TreeNode, TreeNode>();
  const requests: TreeNode[] = [];
  const index = (n: TreeNode) => {
    for (const c of n.children) {
      parentOf.set(c, n);
      if (c.audit) requests.push(c);
      else index(c);
    }
  };
  index(tree.root);
  const ancestors = (n: TreeNode): TreeNode[] => {
    const up: TreeNode[] = [];
    for (let p = parentOf.get(n); p; p = parentOf.get(p)) up.unshift(p);
    return up;
  };
  /** A node's span id in part `p` (each part's root has its own). */
  const idIn = (p: PlannedPart, n: TreeNode) => (n === tree.root ? objectSetRootSpanId(setId, windowStartMs, p.part) : n.spanId);
  const has = (p: PlannedPart, n: TreeNode) => p.planned.has(idIn(p, n)) || store.isExported(p.traceId, idIn(p, n));
  const ready = (n: TreeNode) => objectSetNodeReady(tree, n, hold);

  let held = 0;
  const pending: TreeNode[] = [];
  for (const r of requests) {
    const p = parts.find((x) => store.isExported(x.traceId, r.spanId));
    if (p) p.requests.push(r);
    else if (ready(r)) pending.push(r);
    else held++;
  }
  pending.sort((a, b) => {
    const d = BigInt(a.startTimeUnixNano) - BigInt(b.startTimeUnixNano);
    return d < 0n ? -1 : d > 0n ? 1 : a.spanId < b.spanId ? -1 : 1;
  });
  for (const r of pending) {
    let cur = parts[parts.length - 1]!;
    const need = (p: PlannedPart) => 1 + ancestors(r).filter((a) => !has(p, a)).length;
    // A part takes at least one request, so a window always makes progress.
    if (cur.requests.length > 0 && cur.sent + cur.planned.size + need(cur) > maxSpans) {
      cur = { part: cur.part + 1, traceId: objectSetTraceId(setId, windowStartMs, cur.part + 1), sent: 0, planned: new Set(), requests: [] };
      parts.push(cur);
    }
    cur.requests.push(r);
    cur.planned.add(r.spanId);
    for (const a of ancestors(r)) if (!has(cur, a) && ready(a)) cur.planned.add(idIn(cur, a));
  }

  const end = (n: TreeNode) => BigInt(n.startTimeUnixNano) + BigInt(n.durationNanos);
  const push = (s: Span) => {
    const k = `${s.traceId}/${s.spanId}`;
    if (planned.has(k)) return;
    planned.add(k);
    out.push(s);
  };
  for (const p of parts) {
    if (p.requests.length === 0) continue;
    const ctx: ObjectSetTraceContext = { traceId: p.traceId, part: p.part, window };
    // Objects' and the root's times: the requests of this part under them.
    const times = new Map<TreeNode, { start: bigint; end: bigint }>();
    for (const r of p.requests) {
      for (const a of ancestors(r)) {
        const t = times.get(a);
        const s = BigInt(r.startTimeUnixNano);
        times.set(a, { start: t && t.start < s ? t.start : s, end: t && t.end > end(r) ? t.end : end(r) });
      }
    }
    for (const r of p.requests) if (p.planned.has(r.spanId)) push(objectSetSpan(tree, r, ctx));
    for (const [a, t] of times) {
      if (store.isExported(p.traceId, idIn(p, a))) continue;
      if (!ready(a)) {
        held++;
        continue;
      }
      if (a !== tree.root) {
        push(objectSetSpan(tree, a, { ...ctx, times: t }));
        continue;
      }
      // The root goes out now: the chain. The trace before this one, and where its earliest sent request is.
      const before = previousTrace(store, setId, windowStartMs, parts, p);
      push(objectSetSpan(tree, a, { ...ctx, times: t, ...(before ? { previous: { traceId: before.traceId, spanId: objectSetRootSpanId(setId, Date.parse(before.window.start), before.part) } } : {}) }));
      if (before && !store.isExported(before.traceId, objectSetChainSpanId(setId, 'next', p.traceId))) {
        push(objectSetChainSpan(setId, 'next', before, { traceId: p.traceId, window, part: p.part }, before.at));
      }
      // A window that first goes out after a later one did (its requests came late): it links
      // forward to that one, which gets a span linking back (its root was sent without).
      const after = p.part === 0 ? laterTrace(store, setId, windowStartMs) : undefined;
      if (after) {
        const last = parts[parts.length - 1]!;
        const at = earliestStart(last.requests) ?? 0n;
        const from = { traceId: last.traceId, part: last.part, window };
        if (!store.isExported(last.traceId, objectSetChainSpanId(setId, 'next', after.traceId))) push(objectSetChainSpan(setId, 'next', from, after, at));
        if (!store.isExported(after.traceId, objectSetChainSpanId(setId, 'previous', last.traceId))) push(objectSetChainSpan(setId, 'previous', after, from, after.at));
      }
    }
  }
  return held;
}

/** The trace before part `p` of a window in its set's chain: the window's previous part, or the last part of the nearest earlier window with requests. */
function previousTrace(store: TraceStore, setId: string, windowStartMs: number, parts: PlannedPart[], p: PlannedPart): (Pick<ObjectSetTraceContext, 'traceId' | 'part' | 'window'> & { at: bigint }) | undefined {
  const windowMs = store.objectSetWindowMs;
  if (p.part > 0) {
    const prev = parts[p.part - 1]!;
    const at = earliestStart(prev.requests) ?? 0n;
    return { traceId: prev.traceId, part: prev.part, window: { start: new Date(windowStartMs).toISOString(), end: new Date(windowStartMs + windowMs).toISOString() }, at };
  }
  const last = store.lastObjectSetRequestBefore(setId, windowStartMs);
  if (last === undefined) return undefined;
  const start = objectSetWindowStart(last, windowMs);
  const lastPart = store.objectSetParts(setId, start).at(-1)!;
  const at = earliestSentRequest(store, setId, start, lastPart.traceId) ?? BigInt(last) * 1_000_000n;
  return { traceId: lastPart.traceId, part: lastPart.part, window: { start: new Date(start).toISOString(), end: new Date(start + windowMs).toISOString() }, at };
}

/** The earliest start (ns) of these request nodes, or undefined. */
function earliestStart(requests: readonly TreeNode[]): bigint | undefined {
  let at: bigint | undefined;
  for (const r of requests) {
    const t = BigInt(r.startTimeUnixNano);
    if (t > 0n && (at === undefined || t < at)) at = t;
  }
  return at;
}

/**
 * Where a chain span goes in a trace that was sent before (its root cannot change): at the earliest
 * request sent in it. The root's times were those of the requests it went out with; requests of its
 * window that came after it may lie past its end, and Jaeger flags a child outside its parent (its
 * clock-skew adjuster compares them), so the last request is no place for it. The earliest one was
 * there when the root went out unless an even earlier one came late.
 */
function earliestSentRequest(store: TraceStore, setId: string, windowStartMs: number, traceId: string): bigint | undefined {
  const tree = store.objectSetWindowTree(setId, windowStartMs);
  // Request nodes (the leaves with an audit line) sent in that trace.
  return tree && earliestStart(treeNodes(tree.root).filter((n) => n.audit && store.isExported(traceId, n.spanId)));
}

/** The first trace of the nearest later window with requests, when its root went out already (else it links back to this one itself). */
function laterTrace(store: TraceStore, setId: string, windowStartMs: number): (Pick<ObjectSetTraceContext, 'traceId' | 'part' | 'window'> & { at: bigint }) | undefined {
  const windowMs = store.objectSetWindowMs;
  const first = store.firstObjectSetRequestFrom(setId, windowStartMs + windowMs);
  if (first === undefined) return undefined;
  const start = objectSetWindowStart(first, windowMs);
  const traceId = objectSetTraceId(setId, start);
  if (!store.isExported(traceId, objectSetRootSpanId(setId, start))) return undefined;
  const at = earliestSentRequest(store, setId, start, traceId) ?? BigInt(first) * 1_000_000n;
  return { traceId, part: 0, window: { start: new Date(start).toISOString(), end: new Date(start + windowMs).toISOString() }, at };
}

function objectUids(n: TreeNode, out: string[] = []): string[] {
  const uid = n.attributes[OBJECT_ATTR.uid];
  if (typeof uid === 'string' && !n.audit) out.push(uid);
  for (const c of n.children) objectUids(c, out);
  return out;
}
