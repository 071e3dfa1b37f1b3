/**
 * Annotation keys, baggage members, service names and instrumentation scopes (README.md has the
 * table: meaning, writer, readers).
 */

/** Object annotation: the W3C traceparent of the request that last changed the object's desired state (log-tracking KEP). */
export const ANNOTATION_SPAN = 'trace.kubernetes.io/span';
/** Object annotation: the object's object-set id (log-tracking KEP). */
export const ANNOTATION_OBJSETID = 'trace.kubernetes.io/objsetid';
/** The baggage member carrying the object-set id (log-tracking KEP). */
export const BAGGAGE_OBJSETID = 'objectSetID';
/**
 * Audit annotation keys our admission webhook returns (qualified names: kube-apiserver records them
 * as `<webhook name>/<key>`, e.g. `objset.kube-correlate.io/objectSetID`).
 */
export const AUDIT_ANNOTATION_TRACEPARENT = 'traceparent';
export const AUDIT_ANNOTATION_OBJSETID = 'objectSetID';

/**
 * Whether an audit annotation key names a request's object-set id: the object annotation's key, any
 * webhook's `<name>/objectSetID`, or the bare key.
 */
export function isObjsetIdAuditAnnotation(key: string): boolean {
  return key === ANNOTATION_OBJSETID || key.endsWith(`/${AUDIT_ANNOTATION_OBJSETID}`) || key === AUDIT_ANNOTATION_OBJSETID;
}

/** kube-apiserver's service.name. */
export const APISERVER_SERVICE = 'apiserver';
/** service.name of derived audit spans (and of request spans in object-set trees). */
export const AUDIT_SERVICE = 'kube-apiserver-audit';
/** service.name of object-set spans (the root, objects, chain spans). */
export const OBJSET_SERVICE = 'kube-correlate';

/** Instrumentation scope of derived spans (audit spans) in `otlp_correlated`. */
export const DERIVED_SCOPE = 'kube-correlate';
/** Instrumentation scope of object-set trace spans (exported to Jaeger; rebuilt from audit events when read back). */
export const OBJSET_SCOPE = 'kube-correlate/objset';
