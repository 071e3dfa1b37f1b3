export { AUDIT_ID, SERVICE_NAME, AUDIT_ATTR, auditStageAttr, OBJECT_ATTR, OBJSET_ATTR, API_ATTR, ADDED_PREFIXES } from './attributes.js';
export {
  ANNOTATION_SPAN, ANNOTATION_OBJSETID, BAGGAGE_OBJSETID, AUDIT_ANNOTATION_TRACEPARENT, AUDIT_ANNOTATION_OBJSETID, isObjsetIdAuditAnnotation,
  APISERVER_SERVICE, AUDIT_SERVICE, OBJSET_SERVICE, DERIVED_SCOPE, OBJSET_SCOPE,
} from './names.js';
export {
  auditIDForSpans, auditSpanId, lateAuditSpanId, unjoinedTraceId,
  objectSetWindowStart, objectSetTraceId, objectSetSpanId, objectSetRootSpanId, objectSpanId, objectRequestSpanId, objectSetChainSpanId,
} from './ids.js';
export { SEMCONV, httpRequestInfo, rpcInfo, type HttpRequestInfo } from './http.js';
