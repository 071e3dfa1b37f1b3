export { createLogger, silentLogger } from './logger.js';
export type { Logger, LoggerOptions } from './logger.js';
export { PipelineMetrics } from './metrics.js';
export { MemoryLimiter } from './memory-limiter.js';
export type { MemoryLimiterOptions } from './memory-limiter.js';
