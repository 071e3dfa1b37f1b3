export { createLogger, silentLogger } from './logger.js';
export type { Logger, LoggerOptions } from './logger.js';
export { PipelineMetrics } from './metrics.js';
export { MemoryLimiter } from './memory-limiter.js';
export type { MemoryLimiterOptions } from './memory-limiter.js';
export {
  ServerTls, TlsFileError, TLS_MIN_VERSION, TLS_CIPHERS, tlsErrorReason, parseCaBundle, describeCert, serverContextOptions,
} from './tls.js';
export type { TlsMinVersion, TlsErrorReason, TlsFiles, ServerTlsOptions, TlsReloadOutcome, TlsFileErrorCode } from './tls.js';
