import type { AuditEvent } from '@kube-correlate/audit';
import type { Span } from '@kube-correlate/otlp';
import { objectSetWindowStart } from '@kube-correlate/semconv';
import { refMs, type ObjectIndex, type ObjectRow, type RefRow } from './object-index.js';
import { buildObjectSetTree, type ObjectSetChainEntry, type ObjectSetTree } from './object-set-tree.js';

/** How deep an owner chain is followed (a cycle of ownerReferences ends there too). */
const MAX_OWNER_DEPTH = 64;

/** The objects of a set, and the owners they name that no audit event showed yet. */
export interface ObjectSetMembers {
  members: ObjectRow[];
  /** Named from the ownerReference (kind, name, apiVersion); `k8s.object.observed=false` in the tree. */
  referenced: ObjectRow[];
}

/** The requests of one window of a set. */
export interface ObjectSetWindowCount {
  startMs: number;
  requests: number;
}

/** What a tree shows beyond the index: the requests' audit events and their traces, and each window's traces in Jaeger. */
export interface ObjectSetTreeData {
  auditEvents(auditId: string): AuditEvent[];
  /** The trace(s) of an audit request, with their spans. */
  tracesOf(auditId: string): Array<{ traceId: string; spans: Span[] }>;
  /** The trace ids of one window of a set: its own, then each further part, oldest first. */
  windowTraceIds(setId: string, windowStartMs: number): string[];
}

/** The uid of the object a request is on: the uid it names, else the newest object its resource, namespace and name name. */
export function objectUidOfRef(index: ObjectIndex, ref: Pick<RefRow, 'uid' | 'resource' | 'namespace' | 'name'>): string | undefined {
  return ref.uid || (ref.resource && ref.name ? index.byRefName(ref.resource, ref.namespace, ref.name)?.uid : undefined);
}

/**
 * Object-set resolution over an ObjectIndex: the rules of object-sets.ts, resolved when read (an
 * owner seen after its children, or an annotation that comes later, changes the answer for
 * everything already indexed), and the trees of sets and of their time windows (`windowMs`).
 */
export class ObjectSets {
  constructor(private readonly index: ObjectIndex, readonly windowMs: number) {}

  /**
   * The set an object names itself (rules 1 and 2): its objset annotation, else an object-set id
   * from the audit annotations of a request on it; undefined when it names none.
   */
  ownSetOf(o: ObjectRow): string | undefined {
    return o.objset_id || this.index.auditObjsetOf(o);
  }

  /** The object set an object belongs to: its own set id, else its controller's set (up any number of levels), else its uid. */
  setOf(uid: string): string {
    let cur = uid;
    for (let depth = 0; depth < MAX_OWNER_DEPTH; depth++) {
      const o = this.index.object(cur);
      if (!o) return cur; // an owner never seen: its uid is the set
      const own = this.ownSetOf(o);
      if (own) return own;
      if (!o.owner_uid) return o.uid;
      cur = o.owner_uid;
    }
    return cur;
  }

  /**
   * The uids a set id is resolved through from `uid`: the object, then its controller owners up to
   * the first that names a set, has no owner, or was never seen (that one included).
   */
  pathOf(uid: string): string[] {
    const out: string[] = [];
    for (let cur = uid; cur && out.length < MAX_OWNER_DEPTH && !out.includes(cur); ) {
      out.push(cur);
      const o = this.index.object(cur);
      if (!o || this.ownSetOf(o)) break;
      cur = o.owner_uid;
    }
    return out;
  }

  /**
   * Whether a set's id can no longer change: an object of it names it (annotation, or audit
   * annotation of a request), or it is the uid of an object seen with no controller owner. Otherwise
   * the id is the uid of an owner no audit event showed yet, which may turn out to have an owner or
   * a set of its own (children arrive before owners).
   */
  isFinal(setId: string): boolean {
    const o = this.index.object(setId);
    if (o && !o.owner_uid) return true;
    return this.index.namesObjset(setId);
  }

  /** The set id of a set id, or of the uid of any object of a set; undefined when no indexed object belongs to it. */
  resolve(id: string): string | undefined {
    if (this.members(id).members.length) return id;
    if (!this.index.object(id)) return undefined;
    const setId = this.setOf(id);
    return setId !== id && this.members(setId).members.length ? setId : undefined;
  }

  /**
   * The objects of a set, and the owners its objects name that no audit event showed yet (named
   * from the reference, so the tree has the same shape whichever arrives first).
   */
  members(setId: string): ObjectSetMembers {
    const candidates = new Map<string, ObjectRow>();
    const add = (o: ObjectRow | undefined) => {
      if (!o || candidates.has(o.uid)) return;
      candidates.set(o.uid, o);
      for (const c of this.index.children(o.uid)) add(c);
    };
    add(this.index.object(setId));
    for (const o of this.index.withObjset(setId)) add(o);
    for (const r of this.index.refsWithObjset(setId)) add(r.uid ? this.index.object(r.uid) : this.index.byRefName(r.resource, r.namespace, r.name));
    for (const c of this.index.children(setId)) add(c); // children of an owner never seen
    const members = [...candidates.values()].filter((o) => this.setOf(o.uid) === setId);
    const inSet = new Set(members.map((o) => o.uid));
    const referenced = new Map<string, ObjectRow>();
    for (const o of members) {
      if (!o.owner_uid || inSet.has(o.owner_uid) || referenced.has(o.owner_uid) || this.index.object(o.owner_uid)) continue;
      referenced.set(o.owner_uid, {
        uid: o.owner_uid, kind: o.owner_kind, api_version: o.owner_api_version, resource: '', namespace: o.namespace, name: o.owner_name,
        owner_uid: '', objset_id: '', first_seen: o.first_seen, deleted: 0, owner_kind: '', owner_name: '', owner_api_version: '',
      });
    }
    return { members, referenced: [...referenced.values()] };
  }

  /** An object's requests received in `[fromMs, toMs)`, in time order (all of them without a range). */
  requestsOf(o: ObjectRow, range?: { fromMs: number; toMs: number }): RefRow[] {
    if (!range) return [...this.index.refsOf(o)];
    const out: RefRow[] = [];
    for (const r of this.index.refsOf(o, range)) {
      const ms = refMs(r);
      if (ms !== undefined && ms >= range.fromMs && ms < range.toMs) out.push(r);
    }
    return out;
  }

  /** The windows of a set (of its members, when given) with requests, oldest first, and how many requests each has. */
  windows(setId: string, members: readonly ObjectRow[] = this.members(setId).members): ObjectSetWindowCount[] {
    const byStart = new Map<number, number>();
    for (const o of members) {
      for (const r of this.index.refsOf(o)) {
        const ms = refMs(r);
        if (ms === undefined) continue;
        const start = objectSetWindowStart(ms, this.windowMs);
        byStart.set(start, (byStart.get(start) ?? 0) + 1);
      }
    }
    return [...byStart].sort((a, b) => a[0] - b[0]).map(([startMs, requests]) => ({ startMs, requests }));
  }

  /** The chain of a set's traces: each window with requests, oldest first, with its traces (`traceIdsOf`). */
  chain(setId: string, traceIdsOf: (windowStartMs: number) => string[], members?: readonly ObjectRow[]): ObjectSetChainEntry[] {
    return this.windows(setId, members).map((w) => ({
      start: new Date(w.startMs).toISOString(), end: new Date(w.startMs + this.windowMs).toISOString(), requests: w.requests,
      traceIds: traceIdsOf(w.startMs),
    }));
  }

  /**
   * When the last request of a set received before `beforeMs` was received (ms), or undefined:
   * the nearest earlier window with activity, which the first trace of a window links back to.
   */
  lastRequestBefore(setId: string, beforeMs: number): number | undefined {
    let last: number | undefined;
    for (const o of this.members(setId).members) {
      for (const r of this.index.refsNewestFirst(o, beforeMs)) {
        const ms = refMs(r);
        if (ms === undefined || ms >= beforeMs) continue;
        if (last === undefined || ms > last) last = ms;
        break; // newest first: the first one before the bound is this object's last
      }
    }
    return last;
  }

  /** When the first request of a set received at or after `fromMs` was received (ms), or undefined. */
  firstRequestFrom(setId: string, fromMs: number): number | undefined {
    let first: number | undefined;
    for (const o of this.members(setId).members) {
      for (const r of this.index.refsOldestFirst(o, fromMs)) {
        const ms = refMs(r);
        if (ms === undefined || ms < fromMs) continue;
        if (first === undefined || ms < first) first = ms;
        break; // oldest first: the first one from the bound is this object's first
      }
    }
    return first;
  }

  /** The tree of a set's members: of one window (its requests, the objects they touched and their owners up to the root), or of every window. */
  tree(setId: string, members: ObjectSetMembers, data: Omit<ObjectSetTreeData, 'windowTraceIds'>, windowStartMs?: number): ObjectSetTree {
    const range = windowStartMs === undefined ? undefined : { fromMs: windowStartMs, toMs: windowStartMs + this.windowMs };
    return buildObjectSetTree(setId, [...members.members, ...members.referenced], {
      referencedOnly: new Set(members.referenced.map((o) => o.uid)),
      refsOf: (o) => this.requestsOf(o, range),
      auditEvents: (id) => data.auditEvents(id),
      tracesOf: (id) => data.tracesOf(id),
    }, range ? { startMs: range.fromMs, endMs: range.toMs } : undefined);
  }

  /** The tree of one window of a set; undefined when no indexed object belongs to the set. */
  windowTree(setId: string, windowStartMs: number, data: Omit<ObjectSetTreeData, 'windowTraceIds'>): ObjectSetTree | undefined {
    const members = this.members(setId);
    return members.members.length ? this.tree(setId, members, data, windowStartMs) : undefined;
  }

  /**
   * The tree of a set id, or of an object uid (users know their Deployment's uid, not the id a
   * webhook gave its set); undefined when no indexed object belongs to it. One window at a time,
   * as they are exported: by default the newest window with requests, or the window holding
   * `window` (ms), or every window (`'all'`). The tree carries the set's chain of windows either way.
   */
  get(id: string, data: ObjectSetTreeData, opts: { window?: number | 'all' } = {}): ObjectSetTree | undefined {
    const setId = this.resolve(id);
    if (setId === undefined) return undefined;
    const members = this.members(setId);
    const chain = this.chain(setId, (start) => data.windowTraceIds(setId, start), members.members);
    const newest = chain.length ? Date.parse(chain[chain.length - 1]!.start) : undefined;
    const start = opts.window === 'all' ? undefined : opts.window !== undefined ? objectSetWindowStart(opts.window, this.windowMs) : newest;
    return { ...this.tree(setId, members, data, start), chain };
  }
}
