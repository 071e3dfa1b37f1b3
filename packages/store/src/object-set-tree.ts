import { parseAuditTimestamp, summarizeAudit, type AuditEvent } from '@kube-correlate/audit';
import { auditSpanId, objectSetSpanId, objectSetTraceId, OBJSET_SCOPE, requestAnchor, toTreeAudit, unjoinedTraceId, type RequestTree, type TreeLink, type TreeNode } from '@kube-correlate/correlator';
import { SpanKind, type KeyValue, type Span } from '@kube-correlate/otlp';

/** A row of the `objects` table. */
export interface ObjectRow {
  uid: string;
  kind: string;
  api_version: string;
  resource: string;
  namespace: string;
  name: string;
  owner_uid: string;
  objset_id: string;
  first_seen: string;
  deleted: number;
  owner_kind: string;
  owner_name: string;
  owner_api_version: string;
}

/** A row of the `object_refs` table: one audit request and what it touched. */
export interface RefRow {
  audit_id: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  uid: string;
  objset_id: string;
  request_received: string;
}

export interface ObjectSetTree extends RequestTree {
  objectSetId: string;
}

/** What the tree needs from the store. */
export interface ObjectSetSource {
  /** Members known only from an ownerReference: no audit event showed them yet. */
  referencedOnly?: ReadonlySet<string>;
  refsOf(o: ObjectRow): RefRow[];
  auditEvents(auditId: string): AuditEvent[];
  /** The trace(s) of an audit request, with their spans. */
  tracesOf(auditId: string): Array<{ traceId: string; spans: Span[] }>;
}

const nanos = (ts: string | undefined): bigint | undefined => (ts ? parseAuditTimestamp(ts) : undefined);

const objectLabel = (o: Pick<ObjectRow, 'kind' | 'namespace' | 'name'>) => `${o.kind} ${o.namespace ? `${o.namespace}/` : ''}${o.name}`;

/** Attribute of an object node known only from an ownerReference (no audit event showed it yet). */
export const OBSERVED = 'k8s.object.observed';

/**
 * The object-set tree: a root node for the set, a node per object nested by ownership, and under
 * each object the requests that touched it in time order, each linked to its request trace. Ids
 * are deterministic and depend on nothing but the data of the node itself: an object's span id on
 * the set and its uid, its parent's on its controller ownerReference's uid (known from the object
 * alone), a request's on the object and the auditID. So the tree exported to Jaeger has the same
 * shape whatever order objects arrive in (children before owners is normal), and it is the tree the
 * store and `correlate --objset` show.
 *
 * The set is named after its root object: the top of the ownership chain when an audit event showed
 * it; else the top owner its children's ownerReferences name; else the set id.
 */
export function buildObjectSetTree(setId: string, members: ObjectRow[], src: ObjectSetSource): ObjectSetTree {
  const traceId = objectSetTraceId(setId);
  const rootId = objectSetSpanId(setId, 'set');
  const byUid = new Map(members.map((o) => [o.uid, o]));
  const nodes = new Map<string, TreeNode>();
  const auditIds = new Set<string>();
  let count = 1;

  for (const o of members) {
    const node: TreeNode = {
      spanId: objectSetSpanId(setId, 'object', o.uid), parentSpanId: '', name: objectLabel(o), service: 'kube-correlate',
      kind: 'INTERNAL', startTimeUnixNano: '0', durationNanos: 0, status: { code: 'UNSET' },
      attributes: {
        'k8s.object.uid': o.uid, 'k8s.object.kind': o.kind, 'k8s.object.namespace': o.namespace, 'k8s.object.name': o.name, 'k8s.objset.id': setId,
        ...(o.deleted ? { 'k8s.object.deleted': true } : {}), ...(src.referencedOnly?.has(o.uid) ? { [OBSERVED]: false } : {}),
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
        return { traceId: t, spanId: anchor?.spanId ?? '', attributes: { 'k8s.audit.id': a.auditID }, ...(anchor ? { target: { name: anchor.name, service: 'apiserver', startTimeUnixNano: anchor.startTimeUnixNano, durationNanos: Number(BigInt(anchor.endTimeUnixNano) - BigInt(anchor.startTimeUnixNano)) } } : {}) };
      });
      // A request whose spans never came (not sampled): its audit span has a trace of its own.
      if (links.length === 0) links.push({ traceId: unjoinedTraceId(ref.audit_id), spanId: auditSpanId(ref.audit_id), attributes: { 'k8s.audit.id': a.auditID } });
      node.children.push({
        spanId: objectSetSpanId(setId, 'request', o.uid, ref.audit_id), parentSpanId: node.spanId,
        name: `${a.verb} ${ref.resource}${ref.subresource ? `/${ref.subresource}` : ''}`, service: 'kube-apiserver-audit', kind: 'INTERNAL',
        startTimeUnixNano: start.toString(), durationNanos: Number(end - start), status: { code: (a.code ?? 0) >= 500 ? 'ERROR' : 'UNSET' },
        attributes: { 'k8s.audit.id': a.auditID, 'k8s.object.uid': o.uid },
        audit: toTreeAudit(a),
        links,
        children: [],
      });
      count++;
    }
    nodes.set(o.uid, node);
  }

  const root: TreeNode = {
    spanId: rootId, parentSpanId: '', name: '', service: 'kube-correlate', kind: 'INTERNAL', startTimeUnixNano: '0', durationNanos: 0,
    status: { code: 'UNSET' }, attributes: { 'k8s.objset.id': setId }, children: [],
  };
  for (const o of members) {
    const node = nodes.get(o.uid)!;
    const parent = o.owner_uid && byUid.has(o.owner_uid) ? nodes.get(o.owner_uid)! : root;
    node.parentSpanId = parent.spanId;
    parent.children.push(node);
  }
  span(root);
  // The top objects, the observed ones first, each group oldest first: the first is the set's root object.
  const tops = root.children.filter((c) => c.attributes['k8s.object.uid'] !== undefined);
  const observed = (n: TreeNode) => n.attributes[OBSERVED] !== false;
  const top = [...tops.filter(observed), ...tops.filter((n) => !observed(n))][0];
  root.name = top ? `object set of ${top.name}` : `object set ${setId}`;
  return { traceId, objectSetId: setId, root, spanCount: count, auditIds: [...auditIds].sort() };
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

/**
 * The object-set tree as OTLP spans, for Jaeger: trace id from the set id, a root span, a span per
 * object and a span per request, each request span linked to its request trace. Every span carries
 * `k8s.objset.id` and `k8s.objset.trace_id`; request spans carry `k8s.audit.*` and
 * `k8s.audit.trace_id` (the linked trace), which the Jaeger UI link patterns in deploy/components/jaeger use.
 * Nodes without a time yet (an object no stored request has touched) are left out until they have one.
 *
 * A span in Jaeger cannot be changed once sent, so unless `release` is set, spans whose content
 * may still change are held: the root span until the set's root object was seen (its name), the
 * span of an owner known only from an ownerReference (its own owner and name), and a request span
 * until its audit record is complete (ResponseComplete or Panic: its code and duration). With
 * `tentative` (the set's id may still change: its root is an owner not seen yet) all of it is held.
 */
export function objectSetSpans(tree: ObjectSetTree, opts: { release?: boolean; tentative?: boolean } = {}): ObjectSetSpans {
  const out: Span[] = [];
  let held = 0;
  const setAttrs: Record<string, unknown> = { 'k8s.objset.id': tree.objectSetId, 'k8s.objset.trace_id': tree.traceId };
  const rootKnown = tree.root.children.some((c) => c.attributes['k8s.object.uid'] !== undefined && c.attributes[OBSERVED] !== false);
  const ready = (n: TreeNode): boolean => {
    if (opts.release) return true;
    if (opts.tentative) return false;
    if (n === tree.root) return rootKnown;
    if (n.attributes[OBSERVED] === false) return false;
    if (n.audit) return FINAL_STAGES.some((st) => (n.audit!.stages as Record<string, string | undefined>)[st] !== undefined);
    return true;
  };
  const visit = (n: TreeNode) => {
    if (n.startTimeUnixNano !== '0' && !ready(n)) held++;
    else if (n.startTimeUnixNano !== '0') {
      const a = n.audit;
      const extra: Record<string, unknown> = a
        ? { 'k8s.audit.verb': a.verb, 'k8s.audit.user': a.user, ...(a.userAgent ? { 'k8s.audit.user_agent': a.userAgent } : {}), ...(a.code !== undefined ? { 'k8s.audit.code': a.code } : {}), ...(n.links?.[0] ? { 'k8s.audit.trace_id': n.links[0].traceId } : {}) }
        : {};
      out.push({
        traceId: tree.traceId, spanId: n.spanId, parentSpanId: n.parentSpanId, traceState: '', flags: 0,
        name: n.name, kind: SpanKind.INTERNAL,
        startTimeUnixNano: n.startTimeUnixNano, endTimeUnixNano: (BigInt(n.startTimeUnixNano) + BigInt(n.durationNanos)).toString(),
        attributes: toKeyValues({ ...n.attributes, ...setAttrs, ...extra }), droppedAttributesCount: 0,
        events: [], droppedEventsCount: 0,
        links: (n.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId, traceState: '', flags: 0, attributes: toKeyValues(l.attributes), droppedAttributesCount: 0 })),
        droppedLinksCount: 0,
        status: { code: STATUS[n.status.code], message: n.status.message ?? '' },
        resource: { attributes: [{ key: 'service.name', value: { stringValue: n.service } }], droppedAttributesCount: 0, schemaUrl: '' },
        scope: { name: OBJSET_SCOPE, version: '', attributes: [], droppedAttributesCount: 0, schemaUrl: '' },
      });
    }
    n.children.forEach(visit);
  };
  visit(tree.root);
  return { spans: out, held };
}
