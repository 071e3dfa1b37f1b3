import { z } from 'zod';
import { positiveInt } from '../../confmap/schema.js';
import { correlatorSettings } from '../../internal/correlator-settings.js';

export const CORRELATOR_EXPORTER_DEFAULTS = {
  maxSpansPerTrace: 10000,
  maxSpansInFlight: 1_000_000,
  maxPendingAudits: 50000,
} as const;

/** `exporters.correlator`: the in-process join (embedded mode), writing to the store extension. */
export const correlatorExporterConfig = z.strictObject({
  ...correlatorSettings,
  /** Cap; the trace is stored in parts, merged by the store. */
  max_spans_per_trace: positiveInt.default(CORRELATOR_EXPORTER_DEFAULTS.maxSpansPerTrace),
  /** Cap on buffered spans in all; least recently updated traces are stored early. */
  max_spans_in_flight: positiveInt.default(CORRELATOR_EXPORTER_DEFAULTS.maxSpansInFlight),
  /** Cap; the oldest are stored alone. */
  max_pending_audits: positiveInt.default(CORRELATOR_EXPORTER_DEFAULTS.maxPendingAudits),
});

export type CorrelatorExporterConfig = z.output<typeof correlatorExporterConfig>;
