import { parseAuditTimestamp, summarizeAudit, type AuditEvent } from '@kube-correlate/audit';
import { requestAnchor, toTreeAudit, type RequestTree, type TreeLink, type TreeNode } from './request-tree.js';
import type { ObjectRow, RefRow } from './object-index.js';
import {
  APISERVER_SERVICE, AUDIT_ATTR, AUDIT_SERVICE, auditSpanId, OBJECT_ATTR, objectRequestSpanId, objectSetChainSpanId, objectSetRootSpanId, objectSetTraceId, objectSpanId,
  OBJSET_ATTR, OBJSET_SCOPE, OBJSET_SERVICE, SERVICE_NAME, unjoinedTraceId,
} from '@kube-correlate/semconv';
import { SpanKind, type KeyValue, type Span } from '@kube-correlate/otlp';

/** A time window of an object set: `[start, end)`, RFC 3339 UTC (e.g. `2026-12-02T16:00:00.000Z`). */
export interface ObjectSetWindow {
  start: string;
  end: string;
}

/** One window of an object set's chain: its requests and its trace(s) in Jaeger, oldest part first. */
export interface ObjectSetChainEntry extends ObjectSetWindow {
  requests: number;
  traceIds: string[];
}

export interface ObjectSetTree extends RequestTree {
  objectSetId: string;
  /**
   * The window this tree shows (the requests received in it, the objects they touched and those
   * objects' owners up to the root), or null for every window at once (`--window all`). `traceId`
   * is the window's trace (its first part); '' for every window.
   */
  window: ObjectSetWindow | null;
  /** Every window of the set with requests, oldest first (on trees read through getObjectSet). */
  chain?: ObjectSetChainEntry[];
}

/** What the tree needs from where the objects and requests are stored. */
export interface ObjectSetSource {
  /** Members known only from an ownerReference: no audit event showed them yet. */
  referencedOnly?: ReadonlySet<string>;
  /** The requests that touched an object (in the window, when the tree has one), in time order. */
  refsOf(o: ObjectRow): RefRow[];
  auditEvents(auditId: string): AuditEvent[];
  /** The trace(s) of an audit request, with their spans. */
  tracesOf(auditId: string): Array<{ traceId: string; spans: Span[] }>;
}

const nanos = (ts: string | undefined): bigint | undefined => (ts ? parseAuditTimestamp(ts) : undefined);

const objectLabel = (o: Pick<ObjectRow, 'kind' | 'namespace' | 'name'>) => `${o.kind} ${o.namespace ? `${o.namespace}/` : ''}${o.name}`;

/** Attribute of an object node known only from an ownerReference (no audit event showed it yet). */
const OBSERVED = OBJECT_ATTR.observed;

/**
 * The object-set tree: a root node for the set, a node per object nested by ownership, and under
 * each object the requests that touched it in time order, each linked to its request trace. Ids
 * are deterministic and depend on nothing but the data of the node itself: an object's span id on
 * the set and its uid, its parent's on its controller ownerReference's uid (known from the object
 * alone), a request's on the object and the auditID. So the tree exported to Jaeger has the same
 * shape whatever order objects arrive in (children before owners is normal), and it is the tree the
 * store and `correlate --objset` show (built through ObjectSets, object-set-resolution.ts).
 *
 * The set is named after its root object: the top of the ownership chain when an audit event showed
 * it; else the top owner its children's ownerReferences name; else the set id.
 *
 * With a `window` (`src.refsOf` then gives the requests received in it), the tree holds the objects
 * those requests touched and their owners up to the root, so it stays connected; the other objects
 * are left out. Its trace id is the window's (objectSetTraceId). Without one, it is every window.
 */
export function buildObjectSetTree(setId: string, members: ObjectRow[], src: ObjectSetSource, window?: { startMs: number; endMs: number }): ObjectSetTree {
  const traceId = window ? objectSetTraceId(setId, window.startMs) : '';
  const rootId = objectSetRootSpanId(setId, window?.startMs);
  const byUid = new Map(members.map((o) => [o.uid, o]));
  const nodes = new Map<string, TreeNode>();
  const auditIds = new Set<string>();
  let count = 1;

  for (const o of members) {
    const node: TreeNode = {
      spanId: objectSpanId(setId, o.uid), parentSpanId: '', name: objectLabel(o), service: OBJSET_SERVICE,
      kind: 'INTERNAL', startTimeUnixNano: '0', durationNanos: 0, status: { code: 'UNSET' },
      attributes: {
        [OBJECT_ATTR.uid]: o.uid, [OBJECT_ATTR.kind]: o.kind, [OBJECT_ATTR.namespace]: o.namespace, [OBJECT_ATTR.name]: o.name, [OBJSET_ATTR.id]: setId,
        ...(o.deleted ? { [OBJECT_ATTR.deleted]: true } : {}), ...(src.referencedOnly?.has(o.uid) ? { [OBSERVED]: false } : {}),
      },
      children: [],
    };
    count++;
    for (const ref of src.referencedOnly?.has(o.uid) ? [] : src.refsOf(o)) {
      const events = src.auditEvents(ref.audit_id);
      if (events.length === 0) continue;
      const a = summarizeAudit(events);
      auditIds.add(ref.audit_id);
      const start = nanos(a.requestReceivedTimestamp) ?? 0n;
      const end = Object.values(a.stages).reduce((m, ts) => {
        const t = nanos(ts);
        return t !== undefined && t > m ? t : m;
      }, start);
      const links: TreeLink[] = src.tracesOf(ref.audit_id).map(({ traceId: t, spans }) => {
        const byId = new Map(spans.map((s) => [s.spanId, s]));
        const anchor = requestAnchor(ref.audit_id, byId) ?? spans.find((s) => !s.parentSpanId);
        return { traceId: t, spanId: anchor?.spanId ?? '', attributes: { [AUDIT_ATTR.id]: a.auditID }, ...(anchor ? { target: { name: anchor.name, service: APISERVER_SERVICE, startTimeUnixNano: anchor.startTimeUnixNano, durationNanos: Number(BigInt(anchor.endTimeUnixNano) - BigInt(anchor.startTimeUnixNano)) } } : {}) };
      });
      // A request whose spans never came (not sampled): its audit span has a trace of its own.
      if (links.length === 0) links.push({ traceId: unjoinedTraceId(ref.audit_id), spanId: auditSpanId(ref.audit_id), attributes: { [AUDIT_ATTR.id]: a.auditID } });
      node.children.push({
        spanId: objectRequestSpanId(setId, o.uid, ref.audit_id), parentSpanId: node.spanId,
        name: `${a.verb} ${ref.resource}${ref.subresource ? `/${ref.subresource}` : ''}`, service: AUDIT_SERVICE, kind: 'INTERNAL',
        startTimeUnixNano: start.toString(), durationNanos: Number(end - start), status: { code: (a.code ?? 0) >= 500 ? 'ERROR' : 'UNSET' },
        attributes: { [AUDIT_ATTR.id]: a.auditID, [OBJECT_ATTR.uid]: o.uid },
        audit: toTreeAudit(a),
        links,
        children: [],
      });
      count++;
    }
    nodes.set(o.uid, node);
  }

  const root: TreeNode = {
    spanId: rootId, parentSpanId: '', name: '', service: OBJSET_SERVICE, kind: 'INTERNAL', startTimeUnixNano: '0', durationNanos: 0,
    status: { code: 'UNSET' }, attributes: { [OBJSET_ATTR.id]: setId }, children: [],
  };
  for (const o of members) {
    const node = nodes.get(o.uid)!;
    const parent = o.owner_uid && byUid.has(o.owner_uid) ? nodes.get(o.owner_uid)! : root;
    node.parentSpanId = parent.spanId;
    parent.children.push(node);
  }
  span(root);
  // The top objects, the observed ones first, each group oldest first: the first is the set's root
  // object. Named before a window leaves objects out, so every window's trace has the same name.
  const tops = root.children.filter((c) => c.attributes[OBJECT_ATTR.uid] !== undefined);
  const observed = (n: TreeNode) => n.attributes[OBSERVED] !== false;
  const top = [...tops.filter(observed), ...tops.filter((n) => !observed(n))][0];
  root.name = top ? `object set of ${top.name}` : `object set ${setId}`;
  if (window) {
    prune(root);
    count = countNodes(root);
    span(root);
  }
  return {
    traceId, objectSetId: setId, root, spanCount: count, auditIds: [...auditIds].sort(),
    window: window ? { start: new Date(window.startMs).toISOString(), end: new Date(window.endMs).toISOString() } : null,
  };
}

/** Leaves out objects with no request under them; true when `n` keeps some. */
function prune(n: TreeNode): boolean {
  n.children = n.children.filter((c) => c.audit !== undefined || prune(c));
  return n.children.length > 0;
}

function countNodes(n: TreeNode): number {
  return 1 + n.children.reduce((s, c) => s + countNodes(c), 0);
}

/** Sets start and duration of nodes from their children, and sorts children by time. */
function span(n: TreeNode): void {
  for (const c of n.children) if (c.children.length) span(c);
  n.children.sort((a, b) => {
    const d = BigInt(a.startTimeUnixNano) - BigInt(b.startTimeUnixNano);
    return d < 0n ? -1 : d > 0n ? 1 : a.spanId < b.spanId ? -1 : 1;
  });
  if (n.children.length === 0) return;
  let start: bigint | undefined;
  let end = 0n;
  for (const c of n.children) {
    const s = BigInt(c.startTimeUnixNano);
    if (s === 0n) continue;
    if (start === undefined || s < start) start = s;
    const e = s + BigInt(c.durationNanos);
    if (e > end) end = e;
  }
  if (start !== undefined) {
    n.startTimeUnixNano = start.toString();
    n.durationNanos = Number(end - start);
  }
}

function toKeyValues(attrs: Record<string, unknown>): KeyValue[] {
  const out: KeyValue[] = [];
  for (const [key, v] of Object.entries(attrs)) {
    if (typeof v === 'string') out.push({ key, value: { stringValue: v } });
    else if (typeof v === 'boolean') out.push({ key, value: { boolValue: v } });
    else if (typeof v === 'number' && Number.isInteger(v)) out.push({ key, value: { intValue: String(v) } });
    else if (typeof v === 'number') out.push({ key, value: { doubleValue: v } });
  }
  return out;
}

const STATUS = { UNSET: 0, OK: 1, ERROR: 2 } as const;

/** Stages after which an audit request's record is complete. */
const FINAL_STAGES = ['ResponseComplete', 'Panic'];

export interface ObjectSetSpans {
  spans: Span[];
  /** Spans left out for now (release: false): the root, owners not seen yet, unfinished requests. */
  held: number;
}

// Attribute names of the chain of an object set's traces: OBJSET_ATTR in @kube-correlate/semconv.

export interface HoldOptions {
  /** Everything goes as it is (the hold's deadline passed). */
  release?: boolean;
  /** The set's id may still change (its root is an owner not seen yet): everything waits. */
  tentative?: boolean;
}

/**
 * Whether a node's span may go out now (a span in Jaeger cannot be changed once sent): the root
 * once the set's root object was seen (its name), an owner once an audit event showed it (not only
 * an ownerReference: its own owner and name), a request once its audit record is complete
 * (ResponseComplete or Panic: its code and duration). See objectSetSpans.
 */
export function objectSetNodeReady(tree: ObjectSetTree, n: TreeNode, opts: HoldOptions = {}): boolean {
  if (opts.release) return true;
  if (opts.tentative) return false;
  if (n === tree.root) return tree.root.children.some((c) => c.attributes[OBJECT_ATTR.uid] !== undefined && c.attributes[OBSERVED] !== false);
  if (n.attributes[OBSERVED] === false) return false;
  if (n.audit) return FINAL_STAGES.some((st) => (n.audit!.stages as Record<string, string | undefined>)[st] !== undefined);
  return true;
}

/** Where an object-set span goes: a trace of the set's chain (a window, or a further part of one). */
export interface ObjectSetTraceContext {
  traceId: string;
  /** 0 for the window's own trace, 1.. for further parts (object_sets.max_spans_per_trace). */
  part: number;
  window: ObjectSetWindow;
  /** Start and end (ns) of an object's or the root's span: its requests in this trace. Default: the node's own. */
  times?: { start: bigint; end: bigint };
  /** For the root: the trace before this one in the set's chain (span link and k8s.objset.previous_trace_id). */
  previous?: { traceId: string; spanId: string };
}

const chainAttrs = (setId: string, ctx: Pick<ObjectSetTraceContext, 'traceId' | 'part' | 'window'>): Record<string, unknown> => ({
  [OBJSET_ATTR.id]: setId, [OBJSET_ATTR.traceId]: ctx.traceId,
  [OBJSET_ATTR.windowStart]: ctx.window.start, [OBJSET_ATTR.windowEnd]: ctx.window.end,
  ...(ctx.part > 0 ? { [OBJSET_ATTR.part]: ctx.part } : {}),
});

const objsetResource = (service: string) => ({ attributes: [{ key: SERVICE_NAME, value: { stringValue: service } }], droppedAttributesCount: 0, schemaUrl: '' });
const objsetScope = { name: OBJSET_SCOPE, version: '', attributes: [], droppedAttributesCount: 0, schemaUrl: '' };

/**
 * One node of an object-set tree as an OTLP span of the trace `ctx` names. Every span carries
 * `k8s.objset.id`, `k8s.objset.trace_id` (its own trace), `k8s.objset.window.start`/`.end` and, in a
 * further part of a window, `k8s.objset.part`; request spans carry `k8s.audit.*` and
 * `k8s.audit.trace_id` (the linked request trace), which the Jaeger UI link patterns in
 * deploy/components/jaeger use; the root of a trace after the first of its set carries
 * `k8s.objset.previous_trace_id` and a span link to that trace's root.
 */
export function objectSetSpan(tree: ObjectSetTree, n: TreeNode, ctx: ObjectSetTraceContext): Span {
  const a = n.audit;
  const extra: Record<string, unknown> = a
    ? { [AUDIT_ATTR.verb]: a.verb, [AUDIT_ATTR.user]: a.user, ...(a.userAgent ? { [AUDIT_ATTR.userAgent]: a.userAgent } : {}), ...(a.code !== undefined ? { [AUDIT_ATTR.code]: a.code } : {}), ...(n.links?.[0] ? { [AUDIT_ATTR.traceId]: n.links[0].traceId } : {}) }
    : {};
  const isRoot = n === tree.root;
  const previous = isRoot ? ctx.previous : undefined;
  // The root of a further part of a window has an id of its own (objectSetRootSpanId); the objects under it follow.
  const rootId = objectSetRootSpanId(tree.objectSetId, Date.parse(ctx.window.start), ctx.part);
  const start = ctx.times?.start ?? BigInt(n.startTimeUnixNano);
  const end = ctx.times?.end ?? BigInt(n.startTimeUnixNano) + BigInt(n.durationNanos);
  const links = (n.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId, traceState: '', flags: 0, attributes: toKeyValues(l.attributes), droppedAttributesCount: 0 }));
  if (previous) links.push({ traceId: previous.traceId, spanId: previous.spanId, traceState: '', flags: 0, attributes: toKeyValues({ [OBJSET_ATTR.previous]: previous.traceId }), droppedAttributesCount: 0 });
  return {
    traceId: ctx.traceId, spanId: isRoot ? rootId : n.spanId, parentSpanId: n.parentSpanId === tree.root.spanId ? rootId : n.parentSpanId, traceState: '', flags: 0,
    name: isRoot && ctx.part > 0 ? `${n.name} (part ${ctx.part + 1})` : n.name, kind: SpanKind.INTERNAL,
    startTimeUnixNano: start.toString(), endTimeUnixNano: end.toString(),
    attributes: toKeyValues({ ...n.attributes, ...chainAttrs(tree.objectSetId, ctx), ...extra, ...(previous ? { [OBJSET_ATTR.previous]: previous.traceId } : {}) }), droppedAttributesCount: 0,
    events: [], droppedEventsCount: 0, links, droppedLinksCount: 0,
    status: { code: STATUS[n.status.code], message: n.status.message ?? '' },
    resource: objsetResource(n.service),
    scope: objsetScope,
  };
}

/**
 * A small span added to a trace of an object set to link it to another trace of its chain (a span
 * sent cannot be changed, so a link added later is a span of its own): `next` when the trace after
 * it first goes out (`k8s.objset.next_trace_id`), `previous` when a trace for an earlier window
 * first goes out after this one did (late data; `k8s.objset.previous_trace_id`). A child of the
 * trace's root with a span link to the other trace's root; its id comes from the other trace's id,
 * so it is added once. `at` (ns) is the earliest request sent in the trace, where the root (sent
 * before, unchangeable) starts: the span starts 1 µs after it and lasts 1 µs, so it lies within the
 * root (Jaeger flags a child outside its parent), does not stretch the timeline, and comes right
 * after the sibling that starts with the root (Jaeger orders siblings by start).
 */
export function objectSetChainSpan(setId: string, direction: 'next' | 'previous', from: Pick<ObjectSetTraceContext, 'traceId' | 'part' | 'window'>, to: { traceId: string; window: ObjectSetWindow; part: number }, at: bigint): Span {
  const rootId = objectSetRootSpanId(setId, Date.parse(from.window.start), from.part);
  const toRootId = objectSetRootSpanId(setId, Date.parse(to.window.start), to.part);
  const what = to.window.start === from.window.start ? `part ${to.part + 1}` : `window ${to.window.start}`;
  const key = direction === 'next' ? OBJSET_ATTR.next : OBJSET_ATTR.previous;
  return {
    traceId: from.traceId, spanId: objectSetChainSpanId(setId, direction, to.traceId), parentSpanId: rootId, traceState: '', flags: 0,
    // One microsecond long: Jaeger flags a span that ends when it starts ("negative duration").
    name: direction === 'next' ? `continued in ${what}` : `continued from ${what}`, kind: SpanKind.INTERNAL, startTimeUnixNano: (at + 1000n).toString(), endTimeUnixNano: (at + 2000n).toString(),
    attributes: toKeyValues({ ...chainAttrs(setId, from), [key]: to.traceId }), droppedAttributesCount: 0,
    events: [], droppedEventsCount: 0,
    links: [{ traceId: to.traceId, spanId: toRootId, traceState: '', flags: 0, attributes: toKeyValues({ [key]: to.traceId }), droppedAttributesCount: 0 }],
    droppedLinksCount: 0, status: { code: 0, message: '' }, resource: objsetResource(OBJSET_SERVICE), scope: objsetScope,
  };
}

/**
 * A windowed object-set tree as the OTLP spans of its window's first trace, for Jaeger (the store's
 * export plan, export-plan.ts in @kube-correlate/store, also splits a window that outgrows
 * object_sets.max_spans_per_trace into further parts and links the chain). Nodes without a time
 * yet are left out.
 *
 * A span in Jaeger cannot be changed once sent, so unless `release` is set, spans whose content
 * may still change are held (objectSetNodeReady): the root span until the set's root object was
 * seen, the span of an owner known only from an ownerReference, a request span until its audit
 * record is complete. With `tentative` (the set's id may still change) all of it is held.
 */
export function objectSetSpans(tree: ObjectSetTree, opts: HoldOptions & { previous?: { traceId: string; spanId: string } } = {}): ObjectSetSpans {
  if (!tree.window) throw new Error('objectSetSpans: the tree of one window is exported, not every window at once');
  const out: Span[] = [];
  let held = 0;
  const ctx: ObjectSetTraceContext = { traceId: tree.traceId, part: 0, window: tree.window, ...(opts.previous ? { previous: opts.previous } : {}) };
  const visit = (n: TreeNode) => {
    if (n.startTimeUnixNano !== '0' && !objectSetNodeReady(tree, n, opts)) held++;
    else if (n.startTimeUnixNano !== '0') out.push(objectSetSpan(tree, n, ctx));
    n.children.forEach(visit);
  };
  visit(tree.root);
  return { spans: out, held };
}
