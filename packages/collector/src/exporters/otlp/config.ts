import { z } from 'zod';
import { duration, parseDuration, positiveInt } from '../../confmap/schema.js';

export const OTLP_EXPORTER_DEFAULTS = {
  insecure: true,
  compression: 'none',
  timeout: '10s',
  retry: { enabled: true, initialInterval: '1s', maxInterval: '30s', maxElapsedTime: '300s', multiplier: 1.5, randomizationFactor: 0.5 },
  queueSize: 100000,
  flushInterval: '1s',
  batchSize: 200,
  maxSpansPerRequest: 2000,
  shutdownTimeout: '5s',
  waitForAudit: '1m',
  objectSets: { settleAfter: '5s', maxDelay: '1m', waitForOwners: '2m', window: '1h', maxSpansPerTrace: 2000 },
} as const;

const D = OTLP_EXPORTER_DEFAULTS;

/** The retry settings, as the OpenTelemetry Collector's exporterhelper names them. */
const retryOnFailure = z.strictObject({
  enabled: z.boolean().default(D.retry.enabled),
  initial_interval: duration.default(D.retry.initialInterval),
  max_interval: duration.default(D.retry.maxInterval),
  /** Give up a send after this long; its queue entries stay queued and are tried again. */
  max_elapsed_time: duration.default(D.retry.maxElapsedTime),
  multiplier: z.number().min(1).default(D.retry.multiplier),
  randomization_factor: z.number().min(0).max(1).default(D.retry.randomizationFactor),
}).default({
  enabled: D.retry.enabled, initial_interval: D.retry.initialInterval, max_interval: D.retry.maxInterval,
  max_elapsed_time: D.retry.maxElapsedTime, multiplier: D.retry.multiplier, randomization_factor: D.retry.randomizationFactor,
});

/** Settings shared by `otlp` (gRPC) and `otlphttp`: what the store holds, exported to an OTLP backend such as Jaeger. */
const common = {
  headers: z.record(z.string(), z.string()).default({}),
  compression: z.enum(['none', 'gzip']).default(D.compression),
  /** Deadline of one send attempt. */
  timeout: duration.default(D.timeout),
  retry_on_failure: retryOnFailure,
  /** The export queue lives in the store (durable); beyond this many entries the oldest are dropped and counted. */
  sending_queue: z.strictObject({ queue_size: positiveInt.default(D.queueSize) }).default({ queue_size: D.queueSize }),
  /** Wait this long after new data before exporting, so a burst (a trace, its audit, its owners) goes out together. */
  flush_interval: duration.default(D.flushInterval),
  /** Queue entries (traces, objects) looked at per round. */
  batch_size: positiveInt.default(D.batchSize),
  /** Spans per ExportTraceServiceRequest; requests are also split to stay under 3 MiB. */
  max_spans_per_request: positiveInt.default(D.maxSpansPerRequest),
  /** On shutdown, keep exporting for at most this long; what is left stays queued in the store. */
  shutdown_timeout: duration.default(D.shutdownTimeout),
  /**
   * A span sent to Jaeger cannot be changed: a request's route span (which carries k8s.audit.*) and
   * its audit span wait until its audit record is complete (ResponseComplete or Panic), at most this.
   */
  wait_for_audit: duration.default(D.waitForAudit),
  /**
   * Object-set traces: a span sent to Jaeger cannot be changed, so a set goes out once it was quiet
   * for `settle_after` (at the latest `max_delay` after its first new data); spans that may still
   * change (the root until the root object was seen, owners known only from ownerReferences,
   * requests whose audit is not complete) wait at most `wait_for_owners` more, then go as they are.
   * One trace per set per `window` (UTC-aligned, by each request's requestReceivedTimestamp); a
   * window's trace that would pass `max_spans_per_trace` continues in a further trace of the chain.
   */
  object_sets: z.strictObject({
    settle_after: duration.default(D.objectSets.settleAfter),
    max_delay: duration.default(D.objectSets.maxDelay),
    wait_for_owners: duration.default(D.objectSets.waitForOwners),
    window: duration.refine((d) => { try { return parseDuration(d) >= 1000; } catch { return true; } }, 'object_sets.window must be at least 1s').default(D.objectSets.window),
    max_spans_per_trace: z.number().int().min(10, 'object_sets.max_spans_per_trace must be at least 10').default(D.objectSets.maxSpansPerTrace),
  }).default({
    settle_after: D.objectSets.settleAfter, max_delay: D.objectSets.maxDelay, wait_for_owners: D.objectSets.waitForOwners,
    window: D.objectSets.window, max_spans_per_trace: D.objectSets.maxSpansPerTrace,
  }),
};

/** `exporters.otlp[/name]`: OTLP/gRPC. */
export const otlpExporterConfig = z.strictObject({
  /** host:port, or http(s)://host:port (https: TLS). */
  endpoint: z.string().regex(/^(https?:\/\/)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d{1,5}\/?$/, 'expected host:port or http(s)://host:port, e.g. "jaeger-collector:4317"'),
  tls: z.strictObject({ insecure: z.boolean().default(D.insecure) }).default({ insecure: D.insecure }),
  ...common,
});

/** `exporters.otlphttp[/name]`: OTLP/HTTP, protobuf. */
export const otlphttpExporterConfig = z.strictObject({
  /** Base URL; traces go to <endpoint>/v1/traces. */
  endpoint: z.string().regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, 'expected a URL such as "http://jaeger-collector:4318"'),
  ...common,
});

export type OtlpExporterConfig = z.output<typeof otlpExporterConfig>;
export type OtlpHttpExporterConfig = z.output<typeof otlphttpExporterConfig>;
