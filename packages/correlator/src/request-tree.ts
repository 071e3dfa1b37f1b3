import { auditIDForSpans, summarizeAudit, type AuditEvent, type AuditSummary } from '@kube-correlate/audit';
import { attrString, plainAttributes, serviceName, SpanKind, type Span } from '@kube-correlate/otlp';
import { API_ATTR, AUDIT_ID, httpRequestInfo, type HttpRequestInfo } from '@kube-correlate/semconv';
import { DECODED_SPANS } from './span-model.js';

/**
 * The per-request tree, in the JSON shape `correlate --trace <id> --json` prints (DESIGN.md,
 * "Contracts"). Fields beyond the contract (kind, status, events, links, missingParent) are
 * additions; the contract's fields are always present.
 */
export interface TreeNode {
  spanId: string;
  parentSpanId: string;
  name: string;
  service: string;
  kind: string;
  startTimeUnixNano: string;
  durationNanos: number;
  status: { code: 'UNSET' | 'OK' | 'ERROR'; message?: string };
  attributes: Record<string, unknown>;
  events?: Array<{ name: string; timeUnixNano: string; attributes: Record<string, unknown> }>;
  links?: TreeLink[];
  /** Spans of other traces that link to this one (a request whose caller this span is), each with the linking span as `target`. */
  linkedFrom?: TreeLink[];
  audit?: TreeAudit;
  /** What an HTTP span (a route span, a webhook call) says of its request, old or new semantic conventions (semconv.ts). */
  http?: HttpRequestInfo;
  /** The span names a parent that never arrived: kept, shown under the root. */
  missingParent?: true;
  /** A node made up to hold a trace whose root span did not arrive (or that has several roots). */
  synthetic?: true;
  children: TreeNode[];
}

export interface TreeLink {
  traceId: string;
  spanId: string;
  attributes: Record<string, unknown>;
  /** Present when the linked span (the caller's) is known: the link was followed. */
  target?: { name: string; service: string; startTimeUnixNano: string; durationNanos: number };
}

export interface TreeAudit {
  auditID: string;
  verb: string;
  user: string;
  userAgent?: string;
  objectRef?: AuditSummary['objectRef'];
  code?: number;
  requestURI: string;
  /** stageTimestamp per stage seen. */
  stages: AuditSummary['stages'];
}

export interface RequestTree {
  traceId: string;
  root: TreeNode;
  spanCount: number;
  auditIds: string[];
}

const KIND_NAMES = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUS_NAMES = ['UNSET', 'OK', 'ERROR'] as const;

export interface BuildTreeOptions {
  /** Looks up a linked span (the caller's trace) to follow a link. */
  resolveLink?: (traceId: string, spanId: string) => Span | undefined;
  /** The spans of other traces whose links name (traceId, spanId): followed backwards ("linked from"). */
  linkedFrom?: (traceId: string, spanId: string) => Span[];
  /** The API operation of an audit request (auditID's 64-character form), added to its node as k8s.api.*. */
  apiOperation?: (auditId: string) => { operationId: string; stability: string } | undefined;
}

/**
 * Builds the tree of one trace from its spans (deduplicated by span id, any order) and the audit
 * events of the auditIDs its spans carry. Deterministic: the same inputs in any order give the
 * same tree.
 */
export function buildRequestTree(traceId: string, spans: readonly Span[], auditEvents: readonly AuditEvent[], opts: BuildTreeOptions = {}): RequestTree {
  const byId = new Map<string, Span>();
  for (const s of spans) if (s.traceId === traceId && !byId.has(s.spanId)) byId.set(s.spanId, s);

  const nodes = new Map<string, TreeNode>();
  for (const s of byId.values()) nodes.set(s.spanId, toNode(s, opts));

  const roots: TreeNode[] = [];
  const orphans: TreeNode[] = [];
  for (const s of byId.values()) {
    const node = nodes.get(s.spanId)!;
    if (!s.parentSpanId) roots.push(node);
    else {
      const parent = nodes.get(s.parentSpanId);
      if (parent) parent.children.push(node);
      else {
        node.missingParent = true;
        orphans.push(node);
      }
    }
  }

  // Attach each auditID's merged stages to the node that stands for its request.
  const eventsById = new Map<string, AuditEvent[]>();
  for (const e of auditEvents) {
    const id = auditIDForSpans(e.auditID); // the form spans carry
    const list = eventsById.get(id);
    if (list) list.push(e);
    else eventsById.set(id, [e]);
  }
  const auditIds: string[] = [];
  for (const s of byId.values()) {
    const id = attrString(s.attributes, AUDIT_ID);
    if (id && !auditIds.includes(id)) auditIds.push(id);
  }
  auditIds.sort();
  for (const id of auditIds) {
    const events = eventsById.get(id);
    if (!events) continue;
    const anchor = requestAnchor(id, byId);
    if (!anchor) continue;
    const node = nodes.get(anchor.spanId)!;
    node.audit = toTreeAudit(summarizeAudit(events));
    const op = opts.apiOperation?.(id);
    if (op && node.attributes[API_ATTR.operationId] === undefined) {
      node.attributes[API_ATTR.operationId] = op.operationId;
      node.attributes[API_ATTR.stability] = op.stability;
    }
  }

  for (const n of nodes.values()) n.children.sort(compareNodes);
  roots.sort(compareNodes);
  orphans.sort(compareNodes);

  let root: TreeNode;
  if (roots.length === 1) {
    root = roots[0]!;
    if (orphans.length) root.children = [...root.children, ...orphans].sort(compareNodes);
  } else {
    const all = [...roots, ...orphans].sort(compareNodes);
    const start = all.length ? all[0]!.startTimeUnixNano : '0';
    const end = all.reduce((m, n) => (BigInt(n.startTimeUnixNano) + BigInt(n.durationNanos) > m ? BigInt(n.startTimeUnixNano) + BigInt(n.durationNanos) : m), BigInt(start));
    root = {
      spanId: '',
      parentSpanId: '',
      name: roots.length === 0 ? '(root span not received)' : `(${roots.length} root spans)`,
      service: all[0]?.service ?? 'unknown_service',
      kind: 'UNSPECIFIED',
      startTimeUnixNano: start,
      durationNanos: Number(end - BigInt(start)),
      status: { code: 'UNSET' },
      attributes: {},
      synthetic: true,
      children: all,
    };
  }
  return { traceId, root, spanCount: byId.size, auditIds };
}

/**
 * The span that stands for audit request `auditId`: walk up from each span carrying it, through
 * ancestors that carry no other audit-id, and take the highest SERVER span on the way (the route
 * span, which before 1.34 has no audit-id of its own); without one, the highest span carrying it.
 */
export function requestAnchor(auditId: string, byId: ReadonlyMap<string, Span>): Span | undefined {
  return requestAnchorBy(auditId, byId, DECODED_SPANS.auditId);
}


/** What requestAnchor reads of a span (a decoded Span, or the Kafka correlator's RawSpan). */
export interface AnchorSpan {
  spanId: string;
  parentSpanId: string;
  kind: number;
}

/** requestAnchor over any span representation; `auditIdOf` reads a span's `audit-id`. */
export function requestAnchorBy<S extends AnchorSpan>(auditId: string, byId: ReadonlyMap<string, S>, auditIdOf: (s: S) => string | undefined): S | undefined {
  let best: S | undefined;
  let bestDepth = Infinity;
  let fallback: S | undefined;
  let fallbackDepth = Infinity;
  for (const s of byId.values()) {
    if (auditIdOf(s) !== auditId) continue;
    let cur: S | undefined = s;
    for (let steps = 0; cur && steps <= byId.size; steps++) {
      const own = auditIdOf(cur);
      if (own !== undefined && own !== auditId) break; // another request's span: ours ends below it
      const depth = depthOf(cur, byId);
      if (cur.kind === SpanKind.SERVER && depth < bestDepth) [best, bestDepth] = [cur, depth];
      if (own === auditId && depth < fallbackDepth) [fallback, fallbackDepth] = [cur, depth];
      cur = cur.parentSpanId ? byId.get(cur.parentSpanId) : undefined;
    }
  }
  return best ?? fallback;
}

function depthOf<S extends AnchorSpan>(span: S, byId: ReadonlyMap<string, S>): number {
  let d = 0;
  let cur: S | undefined = span;
  while (cur?.parentSpanId && d <= byId.size) {
    cur = byId.get(cur.parentSpanId);
    d++;
  }
  return d;
}

function toNode(s: Span, opts: BuildTreeOptions): TreeNode {
  const node: TreeNode = {
    spanId: s.spanId,
    parentSpanId: s.parentSpanId,
    name: s.name,
    service: serviceName(s),
    kind: KIND_NAMES[s.kind] ?? String(s.kind),
    startTimeUnixNano: s.startTimeUnixNano,
    durationNanos: durationNanos(s.startTimeUnixNano, s.endTimeUnixNano),
    status: { code: STATUS_NAMES[s.status.code] ?? 'UNSET', ...(s.status.message ? { message: s.status.message } : {}) },
    attributes: plainAttributes(s.attributes),
    children: [],
  };
  const http = httpRequestInfo(node.attributes);
  if (http) node.http = http;
  if (s.events.length) {
    node.events = s.events.map((e) => ({ name: e.name, timeUnixNano: e.timeUnixNano, attributes: plainAttributes(e.attributes) }));
  }
  if (s.links.length) {
    node.links = s.links.map((l) => {
      const link: TreeLink = { traceId: l.traceId, spanId: l.spanId, attributes: plainAttributes(l.attributes) };
      const target = opts.resolveLink?.(l.traceId, l.spanId);
      if (target) {
        link.target = { name: target.name, service: serviceName(target), startTimeUnixNano: target.startTimeUnixNano, durationNanos: durationNanos(target.startTimeUnixNano, target.endTimeUnixNano) };
      }
      return link;
    });
  }
  const from = opts.linkedFrom?.(s.traceId, s.spanId).filter((x) => x.traceId !== s.traceId) ?? [];
  if (from.length) {
    node.linkedFrom = from
      .map((x) => ({
        traceId: x.traceId, spanId: x.spanId,
        attributes: plainAttributes(x.links.find((l) => l.traceId === s.traceId && l.spanId === s.spanId)?.attributes ?? []),
        target: { name: x.name, service: serviceName(x), startTimeUnixNano: x.startTimeUnixNano, durationNanos: durationNanos(x.startTimeUnixNano, x.endTimeUnixNano) },
      }))
      .sort((a, b) => (BigInt(a.target.startTimeUnixNano) < BigInt(b.target.startTimeUnixNano) ? -1 : BigInt(a.target.startTimeUnixNano) > BigInt(b.target.startTimeUnixNano) ? 1 : a.traceId < b.traceId ? -1 : 1));
  }
  return node;
}

/** The audit line of a tree node, from the merged stages. */
/** Every node of a tree, the node first, depth first. */
export function treeNodes(n: TreeNode): TreeNode[] {
  return [n, ...n.children.flatMap(treeNodes)];
}

/** `<auditID> <stage>` of every audit stage joined to the nodes of a tree. */
export function treeAuditStages(root: TreeNode): Set<string> {
  const out = new Set<string>();
  for (const n of treeNodes(root)) if (n.audit) for (const stage of Object.keys(n.audit.stages)) out.add(`${n.audit.auditID} ${stage}`);
  return out;
}

export function toTreeAudit(a: AuditSummary): TreeAudit {
  return {
    auditID: a.auditID,
    verb: a.verb,
    user: a.user,
    ...(a.userAgent !== undefined ? { userAgent: a.userAgent } : {}),
    ...(a.objectRef !== undefined ? { objectRef: a.objectRef } : {}),
    ...(a.code !== undefined ? { code: a.code } : {}),
    requestURI: a.requestURI,
    stages: a.stages,
  };
}

export function durationNanos(start: string, end: string): number {
  const d = BigInt(end) - BigInt(start);
  return d > 0n ? Number(d) : 0;
}

function compareNodes(a: TreeNode, b: TreeNode): number {
  const sa = BigInt(a.startTimeUnixNano);
  const sb = BigInt(b.startTimeUnixNano);
  if (sa !== sb) return sa < sb ? -1 : 1;
  return a.spanId < b.spanId ? -1 : a.spanId > b.spanId ? 1 : 0;
}

