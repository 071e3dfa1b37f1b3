export { Correlator } from './correlator.js';
export type { CorrelatorOptions, CorrelatorOutput, CorrelatorSink, TraceUpdate, SettleReason } from './correlator.js';
export { buildRequestTree, durationNanos } from './request-tree.js';
export type { RequestTree, TreeNode, TreeLink, TreeAudit, BuildTreeOptions } from './request-tree.js';
