export { Correlator, StoreUnavailableError, retryableStoreError } from './correlator.js';
export type { CorrelatorOptions, InboxStore } from './correlator.js';
export { TraceJoin } from './trace-join.js';
export type { TraceJoinOptions, CorrelatorOutput, JoinOutput, TraceUpdate, SettleReason } from './trace-join.js';
export type { CorrelatorSink } from './trace-join.js';
export { buildRequestTree, durationNanos, requestAnchor, requestAnchorBy, toTreeAudit, treeAuditStages, treeNodes } from './request-tree.js';
export type { RequestTree, TreeNode, TreeLink, TreeAudit, BuildTreeOptions, AnchorSpan } from './request-tree.js';
export { encodeCorrelatedTrace, encodeCorrelatedRaw, encodeUnjoinedAudit, decodeCorrelated, groupByAuditId, auditSpan, auditAttributes } from './correlated-format.js';
export type { DecodedCorrelated } from './correlated-format.js';
export { KafkaCorrelator, DEFAULT_KAFKA_CORRELATOR_TOPICS, SYSTEM_CLOCK } from './kafka-correlator.js';
export type { CorrelatorClock, KafkaCorrelatorOptions, KafkaCorrelatorTopics } from './kafka-correlator.js';
export { objectsOfAudit, DEFAULT_OBJSET_WINDOW_MS } from './object-sets.js';
export type { ObjectRecord, ObjectRef } from './object-sets.js';
export { refMs } from './object-index.js';
export type { ObjectIndex, ObjectRow, RefRow } from './object-index.js';
export { ObjectSets, objectUidOfRef } from './object-set-resolution.js';
export type { ObjectSetMembers, ObjectSetTreeData, ObjectSetWindowCount } from './object-set-resolution.js';
export { buildObjectSetTree, objectSetSpans, objectSetSpan, objectSetChainSpan, objectSetNodeReady } from './object-set-tree.js';
export type {
  ObjectSetTree, ObjectSetWindow, ObjectSetChainEntry, ObjectSetSource, ObjectSetSpans, HoldOptions, ObjectSetTraceContext,
} from './object-set-tree.js';
export { describeRequests, apiAttributes } from './api-attributes.js';
export type { DescribeRequest, ApiOperation } from './api-attributes.js';
export { DECODED_SPANS, RAW_SPANS, isRawAuthenticationOnly } from './span-model.js';
export type { JoinSpan, JoinSpanModel } from './span-model.js';
export { isLoneAuthentication, isAuthenticationOnly, RecentTraces, AUTHENTICATION_SPAN, FILTER_LATENCY_SCOPE } from './lone-spans.js';
// Names and derived ids live in @kube-correlate/semconv; these re-exports keep the correlator's
// public API (tests, the bench) as it was. New code imports them from @kube-correlate/semconv.
export {
  auditSpanId, lateAuditSpanId, unjoinedTraceId, DERIVED_SCOPE, OBJSET_SCOPE,
  objectSetTraceId, objectSetSpanId, objectSetRootSpanId, objectSetWindowStart, ANNOTATION_OBJSETID, ANNOTATION_SPAN,
  httpRequestInfo, rpcInfo, SEMCONV,
} from '@kube-correlate/semconv';
export type { HttpRequestInfo } from '@kube-correlate/semconv';
