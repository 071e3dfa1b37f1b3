export { Correlator } from './correlator.js';
export type { CorrelatorOptions, CorrelatorOutput, CorrelatorSink, TraceUpdate, SettleReason } from './correlator.js';
export { buildRequestTree, durationNanos } from './request-tree.js';
export type { RequestTree, TreeNode, TreeLink, TreeAudit, BuildTreeOptions } from './request-tree.js';
export { encodeCorrelatedTrace, encodeUnjoinedAudit, decodeCorrelated, auditSpan, auditAttributes, auditSpanId, unjoinedTraceId, DERIVED_SCOPE } from './correlated-format.js';
export type { DecodedCorrelated } from './correlated-format.js';
export { KafkaCorrelator, DEFAULT_KAFKA_CORRELATOR_TOPICS } from './kafka-correlator.js';
export type { KafkaCorrelatorOptions, KafkaCorrelatorTopics } from './kafka-correlator.js';
