export { TraceStore } from './trace-store.js';
export type { TraceStoreOptions, TraceSummary } from './trace-store.js';
export { createQueryApi } from './query-api.js';
export type { QueryApiOptions } from './query-api.js';
