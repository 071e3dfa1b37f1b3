import { z } from 'zod';
import { duration, positiveInt } from '../../confmap/schema.js';
import { correlatorSettings } from '../../internal/correlator-settings.js';

export const CORRELATOR_PROCESSOR_DEFAULTS = {
  pairCacheSize: 200000,
  internalTopics: { auditTrace: 'kc_audit_trace', auditByTrace: 'kc_audit_by_trace', retention: '24h' },
} as const;

const T = CORRELATOR_PROCESSOR_DEFAULTS.internalTopics;

/** `processors.correlator`: the join as a stage between Kafka topics (Kafka mode). */
export const correlatorProcessorConfig = z.strictObject({
  ...correlatorSettings,
  /** auditID -> trace pairs remembered. */
  pair_cache_size: positiveInt.default(CORRELATOR_PROCESSOR_DEFAULTS.pairCacheSize),
  /**
   * Longest an idle trace or a pending audit event waits for a lagging input to be read (see
   * @kube-correlate/correlator's README). Absent: 10 x pending_audit_ttl.
   */
  max_lag_wait: duration.optional(),
  /** The repartition topics (see @kube-correlate/correlator's README). */
  internal_topics: z.strictObject({
    audit_trace: z.string().min(1).default(T.auditTrace),
    audit_by_trace: z.string().min(1).default(T.auditByTrace),
    retention: duration.default(T.retention),
  }).default({ audit_trace: T.auditTrace, audit_by_trace: T.auditByTrace, retention: T.retention }),
});

export type CorrelatorProcessorConfig = z.output<typeof correlatorProcessorConfig>;
