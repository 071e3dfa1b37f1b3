export { TraceStore } from './trace-store.js';
export type { TraceStoreOptions, TraceSummary } from './trace-store.js';
export { createQueryApi } from './query-api.js';
export type { QueryApiOptions } from './query-api.js';
export { KafkaStoreLoader } from './kafka-store.js';
export type { KafkaStoreLoaderOptions } from './kafka-store.js';
export { buildObjectSetTree } from './object-set-tree.js';
export type { ObjectSetTree, ObjectRow, RefRow } from './object-set-tree.js';
