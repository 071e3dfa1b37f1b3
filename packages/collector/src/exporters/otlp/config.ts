import { z } from 'zod';
import { authSettings, certWithKey, duration, parseDuration, positiveInt, tlsClientFields } from '../../confmap/schema.js';

export const OTLP_EXPORTER_DEFAULTS = {
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

/**
 * `tls`, as the OpenTelemetry Collector's configtls client settings: `insecure` (plaintext) and
 * the client keys shared with the kafka components (confmap/schema.ts). `insecure` has no default
 * of its own: unset, the connection is plaintext unless another `tls` key is set or the endpoint
 * says https:// (otlpTls below).
 */
const tlsClient = z.strictObject({ insecure: z.boolean().optional(), ...tlsClientFields }).refine(...certWithKey);

/** Settings shared by `otlp` (gRPC) and `otlphttp`: what the store holds, exported to an OTLP backend such as Jaeger. */
const common = {
  tls: tlsClient.optional(),
  /** An authenticator extension whose token goes with every export (bearertokenauth). */
  auth: authSettings.optional(),
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

type TlsClient = z.output<typeof tlsClient>;
/** The tls keys that mean "use TLS". */
const TLS_KEYS = ['ca_file', 'cert_file', 'key_file', 'server_name_override', 'insecure_skip_verify'] as const;
const tlsKeysSet = (t: TlsClient | undefined) => TLS_KEYS.filter((k) => t !== undefined && t[k] !== undefined && t[k] !== false);

/**
 * Whether an exporter speaks TLS, from its endpoint and `tls`: https:// or `insecure: false` or any
 * other tls key means TLS; http://, `insecure: true` or nothing set means plaintext (the default,
 * for a backend in the cluster on a trusted network; anything else should use TLS).
 */
export function usesTls(endpoint: string, tls: TlsClient | undefined): boolean {
  if (/^https:\/\//i.test(endpoint)) return true;
  if (/^http:\/\//i.test(endpoint)) return false;
  if (tls?.insecure !== undefined) return !tls.insecure;
  return tlsKeysSet(tls).length > 0;
}

/** Settings that contradict each other: an endpoint's scheme and `tls.insecure`, or TLS keys that would be ignored. */
function consistentTls(c: { endpoint: string; tls?: TlsClient | undefined }, ctx: z.RefinementCtx): void {
  const scheme = /^(https?):\/\//i.exec(c.endpoint)?.[1]?.toLowerCase();
  const set = tlsKeysSet(c.tls);
  if (scheme === 'https' && c.tls?.insecure === true) {
    ctx.addIssue({ code: 'custom', path: ['tls', 'insecure'], message: 'insecure: true contradicts the https:// endpoint (drop one of them)' });
  }
  if (scheme === 'http' && c.tls?.insecure === false) {
    ctx.addIssue({ code: 'custom', path: ['tls', 'insecure'], message: 'insecure: false asks for TLS but the endpoint says http:// (use https://)' });
  }
  const plaintext = scheme === 'http' || c.tls?.insecure === true;
  if (plaintext) {
    for (const k of set) ctx.addIssue({ code: 'custom', path: ['tls', k], message: `has no effect on a plaintext connection (${scheme === 'http' ? 'the endpoint says http://: use https://' : 'tls.insecure is true'})` });
  }
}

/** `exporters.otlp[/name]`: OTLP/gRPC. */
export const otlpExporterConfig = z.strictObject({
  /** host:port, or http(s)://host:port (https: TLS). */
  endpoint: z.string().regex(/^(https?:\/\/)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d{1,5}\/?$/, 'expected host:port or http(s)://host:port, e.g. "jaeger-collector:4317"'),
  ...common,
}).superRefine(consistentTls);

/** `exporters.otlphttp[/name]`: OTLP/HTTP, protobuf. */
export const otlphttpExporterConfig = z.strictObject({
  /** Base URL; traces go to <endpoint>/v1/traces. */
  endpoint: z.string().regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, 'expected a URL such as "http://jaeger-collector:4318"'),
  ...common,
}).superRefine(consistentTls);

export type OtlpExporterConfig = z.output<typeof otlpExporterConfig>;
export type OtlpHttpExporterConfig = z.output<typeof otlphttpExporterConfig>;
