export { Correlator, StoreUnavailableError, retryableStoreError } from './correlator.js';
export type { CorrelatorOptions, InboxStore } from './correlator.js';
export { TraceJoin } from './trace-join.js';
export type { TraceJoinOptions, CorrelatorOutput, JoinOutput, TraceUpdate, SettleReason } from './trace-join.js';
/** Where settled output goes (the store). */
export interface CorrelatorSink {
  write(output: import('./trace-join.js').CorrelatorOutput): Promise<void>;
}
export { buildRequestTree, durationNanos, requestAnchor, toTreeAudit } from './request-tree.js';
export type { RequestTree, TreeNode, TreeLink, TreeAudit, BuildTreeOptions } from './request-tree.js';
export { encodeCorrelatedTrace, encodeUnjoinedAudit, decodeCorrelated, groupByAuditId, auditSpan, auditAttributes, auditSpanId, lateAuditSpanId, unjoinedTraceId, DERIVED_SCOPE, OBJSET_SCOPE } from './correlated-format.js';
export type { DecodedCorrelated } from './correlated-format.js';
export { KafkaCorrelator, DEFAULT_KAFKA_CORRELATOR_TOPICS } from './kafka-correlator.js';
export type { KafkaCorrelatorOptions, KafkaCorrelatorTopics } from './kafka-correlator.js';
export { objectsOfAudit, objectSetTraceId, objectSetSpanId, ANNOTATION_OBJSETID, ANNOTATION_SPAN } from './object-sets.js';
export type { ObjectRecord, ObjectRef } from './object-sets.js';
export { describeRequests, apiAttributes, API_OPERATION_ID, API_STABILITY } from './api-attributes.js';
export type { DescribeRequest, ApiOperation } from './api-attributes.js';
export { isLoneAuthentication, isAuthenticationOnly, RecentTraces, AUTHENTICATION_SPAN, FILTER_LATENCY_SCOPE } from './lone-spans.js';
export { httpRequestInfo, rpcInfo, SEMCONV } from './semconv.js';
export type { HttpRequestInfo } from './semconv.js';
