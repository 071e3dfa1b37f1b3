import { parseAuditTimestamp } from '@kube-correlate/audit';

/** An object as an index holds it: what audit events (or object facts) showed of it, merged. */
export interface ObjectRow {
  uid: string;
  kind: string;
  api_version: string;
  resource: string;
  namespace: string;
  name: string;
  /** uid of the controller owner, or ''. */
  owner_uid: string;
  /** From the object's trace.kubernetes.io/objsetid annotation (or, in an object fact, an audit annotation's set id), or ''. */
  objset_id: string;
  first_seen: string;
  deleted: number;
  owner_kind: string;
  owner_name: string;
  owner_api_version: string;
}

/** One audit request and what it touched. */
export interface RefRow {
  audit_id: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  /** uid when the request named it, else '' (then it is on the object its resource, namespace and name name). */
  uid: string;
  /** An object-set id from the request's audit annotations, or ''. */
  objset_id: string;
  request_received: string;
}

/**
 * The lookups object-set resolution needs (object-set-resolution.ts) and nothing more: the store
 * implements it over its tables, a test over a few Maps. "The requests on an object" are those
 * naming its uid, and those naming no uid but its resource, namespace and name.
 */
export interface ObjectIndex {
  /** The object with this uid, or undefined when none was seen. */
  object(uid: string): ObjectRow | undefined;
  /** The objects whose controller owner is `ownerUid`. */
  children(ownerUid: string): Iterable<ObjectRow>;
  /** The objects whose objset annotation is `setId`. */
  withObjset(setId: string): Iterable<ObjectRow>;
  /** The requests whose audit annotations name `setId`. */
  refsWithObjset(setId: string): Iterable<RefRow>;
  /** Whether some object's annotation or some request's audit annotation names `setId`. */
  namesObjset(setId: string): boolean;
  /** The object-set id of some request on `o` whose audit annotations name one, or undefined. */
  auditObjsetOf(o: ObjectRow): string | undefined;
  /** The newest object (by first seen) with this resource, namespace and name, or undefined. */
  byRefName(resource: string, namespace: string, name: string): ObjectRow | undefined;
  /**
   * The requests on `o`, oldest first (request_received, then audit_id). With a range: at least
   * those received in `[fromMs, toMs)` (an index may give more; the caller filters exactly).
   */
  refsOf(o: ObjectRow, range?: { fromMs: number; toMs: number }): Iterable<RefRow>;
  /** The requests on `o`, newest first: at least every one received before `beforeMs` (the caller skips later ones). */
  refsNewestFirst(o: ObjectRow, beforeMs: number): Iterable<RefRow>;
  /** The requests on `o`, oldest first: at least every one received at or after `fromMs` (the caller skips earlier ones). */
  refsOldestFirst(o: ObjectRow, fromMs: number): Iterable<RefRow>;
}

/** When a request was received (ms), from its RFC 3339 text; undefined when it has none or it does not parse. */
export function refMs(r: Pick<RefRow, 'request_received'>): number | undefined {
  const ns = r.request_received ? parseAuditTimestamp(r.request_received) : undefined;
  return ns === undefined ? undefined : Number(ns / 1_000_000n);
}
