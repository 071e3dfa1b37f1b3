import { createHash } from 'node:crypto';
import { auditIDForSpans, type AuditEvent } from '@kube-correlate/audit';

/**
 * Objects and object sets, from what audit events carry (DESIGN.md, "Contracts"; issue 4).
 *
 * An object is known by its uid from a Request/RequestResponse-level `responseObject` (or
 * `requestObject`). Its object set is, in order of precedence:
 *  1. its `trace.kubernetes.io/objsetid` annotation (the log-tracking KEP's webhook writes it);
 *  2. an object-set id in the audit annotations of a request that touched it (our admission
 *     webhook records one there: `trace.kubernetes.io/objsetid`, or any key ending `/objectSetID`);
 *  3. the set of its controller (`ownerReferences` with `controller: true`), up any number of
 *     levels, so a ReplicaSet and its Pods join their Deployment's set with no webhook installed;
 *     an owner never seen is still the set (its uid), so children seen first group correctly;
 *  4. its own uid: a root object starts its own set.
 * These are resolved when read, so an owner seen after its children, or an annotation that comes
 * later, changes the answer for everything already stored.
 */

export const ANNOTATION_OBJSETID = 'trace.kubernetes.io/objsetid';
export const ANNOTATION_SPAN = 'trace.kubernetes.io/span';

export interface ObjectRecord {
  uid: string;
  kind: string;
  apiVersion: string;
  /** Resource (plural) from the audit event's objectRef. */
  resource: string;
  namespace: string;
  name: string;
  /** uid of the controller owner, or ''. */
  ownerUid: string;
  /** From the object's trace.kubernetes.io/objsetid annotation, or ''. */
  objsetId: string;
  /** stageTimestamp of the first event that showed it. */
  firstSeen: string;
  deleted: boolean;
}

/** What one audit request touched. */
export interface ObjectRef {
  /** The 64-byte form, as stored. */
  auditId: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  /** uid when the event names it (objectRef.uid or the object it carries), else ''. */
  uid: string;
  /** An object-set id from the event's audit annotations, or ''. */
  objsetId: string;
  requestReceived: string;
}

type Meta = { uid?: string; name?: string; namespace?: string; annotations?: Record<string, string>; ownerReferences?: Array<{ uid?: string; controller?: boolean }> };
type K8sObject = { kind?: string; apiVersion?: string; metadata?: Meta };

function carried(e: AuditEvent): K8sObject | undefined {
  for (const o of [e.responseObject, e.requestObject] as unknown[]) {
    const obj = o as K8sObject | undefined;
    if (obj && typeof obj === 'object' && obj.kind !== 'Status' && typeof obj.metadata?.uid === 'string' && obj.metadata.uid) return obj;
  }
  return undefined;
}

function auditObjsetId(e: AuditEvent): string {
  for (const [k, v] of Object.entries(e.annotations ?? {})) {
    if (k === ANNOTATION_OBJSETID || k.endsWith('/objectSetID') || k === 'objectSetID') return v;
  }
  return '';
}

/** The object an audit event carries (if any) and what the request touched. */
export function objectsOfAudit(e: AuditEvent): { object?: ObjectRecord; ref: ObjectRef } {
  const obj = carried(e);
  const ref = e.objectRef ?? {};
  const code = e.responseStatus?.code ?? 0;
  const out: { object?: ObjectRecord; ref: ObjectRef } = {
    ref: {
      auditId: auditIDForSpans(e.auditID),
      resource: ref.resource ?? '',
      subresource: ref.subresource ?? '',
      namespace: ref.namespace ?? obj?.metadata?.namespace ?? '',
      name: ref.name ?? obj?.metadata?.name ?? '',
      uid: ref.uid ?? (ref.subresource ? '' : (obj?.metadata?.uid ?? '')),
      objsetId: auditObjsetId(e),
      requestReceived: e.requestReceivedTimestamp,
    },
  };
  if (obj && !ref.subresource) {
    const m = obj.metadata!;
    out.object = {
      uid: m.uid!,
      kind: obj.kind ?? '',
      apiVersion: obj.apiVersion ?? '',
      resource: ref.resource ?? '',
      namespace: m.namespace ?? ref.namespace ?? '',
      name: m.name ?? ref.name ?? '',
      ownerUid: m.ownerReferences?.find((o) => o.controller === true)?.uid ?? '',
      objsetId: m.annotations?.[ANNOTATION_OBJSETID] ?? '',
      firstSeen: e.stageTimestamp,
      deleted: e.verb === 'delete' && code >= 200 && code < 300,
    };
  }
  return out;
}

/** Trace id of an object set in Jaeger: a UUID's 16 bytes as they are, anything else hashed. */
export function objectSetTraceId(setId: string): string {
  const hex = setId.replace(/-/g, '').toLowerCase();
  if (/^[0-9a-f]{32}$/.test(hex) && !/^0+$/.test(hex)) return hex;
  return createHash('sha256').update(`objset/${setId}`).digest('hex').slice(0, 32);
}

/** Deterministic span id for a node of an object-set trace. */
export function objectSetSpanId(...parts: string[]): string {
  const hex = createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 16);
  return /^0+$/.test(hex) ? '0000000000000001' : hex;
}
