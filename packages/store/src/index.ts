export { TraceStore, objectEntryKey } from './trace-store.js';
export type { TraceStoreOptions, TraceSummary, ExportQueueEntry } from './trace-store.js';
export { createQueryApi, parseWindowParam, queryApiHandler } from './query-api.js';
export type { QueryApiOptions, QueryRefusal } from './query-api.js';
export { KafkaStoreLoader, correlatedToOutput } from './kafka-store.js';
export type { KafkaStoreLoaderOptions } from './kafka-store.js';
// Object-set trees live in @kube-correlate/correlator; re-exported for the store's users (CLI, tests).
export { buildObjectSetTree, objectSetSpans, objectSetSpan, objectSetChainSpan, objectSetNodeReady } from '@kube-correlate/correlator';
// Re-exported for the store's users; the names live in @kube-correlate/semconv.
export { OBJSET_ATTR } from '@kube-correlate/semconv';
export { planExport, releaseKey, setObjectSetScope } from './export-plan.js';
export type { ExportPlan } from './export-plan.js';
export type { ObjectSetTree, ObjectSetWindow, ObjectSetChainEntry, ObjectRow, RefRow } from '@kube-correlate/correlator';
export { JaegerSource, JaegerSourceError } from './jaeger-source.js';
export type { JaegerSourceOptions } from './jaeger-source.js';
export { StoreMaintenance } from './maintenance.js';
export type { StoreMaintenanceOptions } from './maintenance.js';
export { ObjectSetSharing, anchorSpans, objectsTopicSpec } from './objset-partition.js';
export type { ObjectSetSharingOptions, ObjectFact, RequestSummary } from './objset-partition.js';
