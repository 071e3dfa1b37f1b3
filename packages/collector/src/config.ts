import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/**
 * Collector configuration, in the OpenTelemetry Collector's schema: `receivers`, `processors`,
 * `exporters`, `extensions`, `service.pipelines`, components named `type[/name]`, and
 * `${env:NAME}` / `${env:NAME:-default}` substitution. Unknown keys are errors that name the key
 * and the file; values are validated where they are read, with the expected and the actual value.
 */

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const MiB = 1024 * 1024;
export const DEFAULTS = {
  grpcEndpoint: '127.0.0.1:4317',
  httpEndpoint: '127.0.0.1:4318',
  auditWebhookEndpoint: '127.0.0.1:4319',
  queryEndpoint: '127.0.0.1:4320',
  grpcMaxRecvMiB: 4,
  httpMaxBodyBytes: 20 * MiB,
  auditMaxBodyBytes: 64 * MiB,
  storeDirectory: './data',
  settleAfter: '5s',
  pendingAuditTtl: '30s',
  maxTracesInFlight: 50000,
  maxSpansPerTrace: 10000,
  maxSpansInFlight: 1_000_000,
  maxPendingAudits: 50000,
  auditLogPollInterval: '250ms',
} as const;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60000, h: 3600000 };

/** '250ms', '5s', '1.5m', '1h' -> milliseconds. */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration (expected a number with ms, s, m or h, e.g. "5s")`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

const duration = z.string().refine((s) => DURATION.test(s.trim()), { message: 'expected a duration such as "250ms", "5s" or "1m"' });
const endpoint = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]*):\d{1,5}$/, 'expected host:port, e.g. "0.0.0.0:4317"');
const positiveInt = z.number().int().positive();

/** `grpc:` with no value enables the protocol with its defaults, as in the OpenTelemetry Collector. */
const enabled = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === null ? {} : v), schema).optional();

const otlpReceiver = z.strictObject({
  protocols: z.strictObject({
    grpc: enabled(z.strictObject({
      endpoint: endpoint.default(DEFAULTS.grpcEndpoint),
      max_recv_msg_size_mib: z.number().positive().default(DEFAULTS.grpcMaxRecvMiB),
    })),
    http: enabled(z.strictObject({
      endpoint: endpoint.default(DEFAULTS.httpEndpoint),
      max_request_body_size: positiveInt.default(DEFAULTS.httpMaxBodyBytes),
    })),
  }),
});

const k8sauditReceiver = z.strictObject({
  endpoint: endpoint.default(DEFAULTS.auditWebhookEndpoint),
  max_request_body_size: positiveInt.default(DEFAULTS.auditMaxBodyBytes),
});

const auditlogReceiver = z.strictObject({
  include: z.array(z.string().min(1)).min(1),
  start_at: z.enum(['beginning', 'end']).default('beginning'),
  follow: z.boolean().default(true),
  poll_interval: duration.default(DEFAULTS.auditLogPollInterval),
});

/**
 * A Kubernetes OpenAPI v2 document (the cluster's /openapi/v2): when set, each request's route span
 * gets k8s.api.operation_id and k8s.api.stability. '' (the default) leaves them out.
 */
// `api_spec: ${env:KC_API_SPEC:-}` with the variable unset is YAML null: the same as not set.
const apiSpec = z.preprocess((v) => v ?? '', z.string());

const correlatorExporter = z.strictObject({
  api_spec: apiSpec,
  settle_after: duration.default(DEFAULTS.settleAfter),
  pending_audit_ttl: duration.default(DEFAULTS.pendingAuditTtl),
  max_traces_in_flight: positiveInt.default(DEFAULTS.maxTracesInFlight),
  max_spans_per_trace: positiveInt.default(DEFAULTS.maxSpansPerTrace),
  max_spans_in_flight: positiveInt.default(DEFAULTS.maxSpansInFlight),
  max_pending_audits: positiveInt.default(DEFAULTS.maxPendingAudits),
});

/** `brokers: "a:9092,b:9092"` (as ${env:KAFKA_BROKERS} gives it) or a list. */
const brokers = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  const list = (Array.isArray(v) ? v : [v]).flatMap((b) => b.split(',')).map((b) => b.trim()).filter(Boolean);
  for (const b of list) {
    if (!/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/.test(b)) ctx.addIssue({ code: 'custom', message: `broker "${b}" is not host:port` });
  }
  if (list.length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one broker host:port' });
  return list;
});

/** The topics of spans and audit events, as both the kafka exporter and receiver name them. */
const tracesTopic = z.strictObject({
  topic: z.string().min(1).default('otlp_spans'),
  encoding: z.literal('otlp_proto').default('otlp_proto'),
}).default({ topic: 'otlp_spans', encoding: 'otlp_proto' });
const logsTopic = z.strictObject({
  topic: z.string().min(1).default('k8s_audit'),
  encoding: z.literal('k8s_audit_json').default('k8s_audit_json'),
}).default({ topic: 'k8s_audit', encoding: 'k8s_audit_json' });

const kafkaExporter = z.strictObject({
  brokers,
  client_id: z.string().min(1).default('kube-correlate-collector'),
  traces: tracesTopic,
  logs: logsTopic,
  /** One trace per message, keyed by trace id: required by the correlator's partitioning. */
  partition_traces_by_id: z.literal(true).default(true),
  producer: z.strictObject({
    required_acks: z.literal(-1, { message: 'must be -1 (all in-sync replicas): receivers acknowledge only what is durable' }).default(-1),
    compression: z.enum(['none', 'gzip']).default('none'),
    /** Wait this long to gather concurrent requests into one produce call ("0ms": send each at once). */
    linger: duration.default('0ms'),
    /** A gathered batch is sent as soon as it holds this many messages. */
    max_batch_messages: positiveInt.default(500),
  }).default({ required_acks: -1, compression: 'none', linger: '0ms', max_batch_messages: 500 }),
  client: z.strictObject({
    connect_timeout: duration.default('3s'),
    request_timeout: duration.default('10s'),
  }).default({ connect_timeout: '3s', request_timeout: '10s' }),
  /** Requests waiting on Kafka at once; beyond it receivers refuse with retryable codes. */
  sending_queue: z.strictObject({ queue_size: positiveInt.default(1000) }).default({ queue_size: 1000 }),
  /** How long one request may wait for Kafka before its sender is told to retry. */
  timeout: duration.default('5s'),
  topics: z.strictObject({
    create: z.boolean().default(true),
    partitions: positiveInt.default(8),
  }).default({ create: true, partitions: 8 }),
});

const kafkaReceiver = z.strictObject({
  brokers,
  client_id: z.string().min(1).default('kube-correlate'),
  group_id: z.string().min(1),
  traces: tracesTopic,
  logs: logsTopic,
});

/** The correlator as a stage between Kafka topics (Kafka mode). */
const correlatorProcessor = z.strictObject({
  api_spec: apiSpec,
  settle_after: duration.default(DEFAULTS.settleAfter),
  pending_audit_ttl: duration.default(DEFAULTS.pendingAuditTtl),
  max_traces_in_flight: positiveInt.default(DEFAULTS.maxTracesInFlight),
  pair_cache_size: positiveInt.default(200000),
  internal_topics: z.strictObject({
    audit_trace: z.string().min(1).default('kc_audit_trace'),
    audit_by_trace: z.string().min(1).default('kc_audit_by_trace'),
    retention: duration.default('24h'),
  }).default({ audit_trace: 'kc_audit_trace', audit_by_trace: 'kc_audit_by_trace', retention: '24h' }),
});

/** The OTLP exporter's retry settings, as the OpenTelemetry Collector's exporterhelper names them. */
const retryOnFailure = z.strictObject({
  enabled: z.boolean().default(true),
  initial_interval: duration.default('1s'),
  max_interval: duration.default('30s'),
  /** Give up a send after this long; its queue entries stay queued and are tried again. */
  max_elapsed_time: duration.default('300s'),
  multiplier: z.number().min(1).default(1.5),
  randomization_factor: z.number().min(0).max(1).default(0.5),
}).default({ enabled: true, initial_interval: '1s', max_interval: '30s', max_elapsed_time: '300s', multiplier: 1.5, randomization_factor: 0.5 });

/** Settings shared by `otlp` (gRPC) and `otlphttp`: what the store holds, exported to an OTLP backend such as Jaeger. */
const otlpCommon = {
  headers: z.record(z.string(), z.string()).default({}),
  compression: z.enum(['none', 'gzip']).default('none'),
  /** Deadline of one send attempt. */
  timeout: duration.default('10s'),
  retry_on_failure: retryOnFailure,
  /** The export queue lives in the store (durable); beyond this many entries the oldest are dropped and counted. */
  sending_queue: z.strictObject({ queue_size: positiveInt.default(100000) }).default({ queue_size: 100000 }),
  /** Wait this long after new data before exporting, so a burst (a trace, its audit, its owners) goes out together. */
  flush_interval: duration.default('1s'),
  /** Queue entries (traces, objects) looked at per round. */
  batch_size: positiveInt.default(200),
  /** Spans per ExportTraceServiceRequest; requests are also split to stay under 3 MiB. */
  max_spans_per_request: positiveInt.default(2000),
  /** On shutdown, keep exporting for at most this long; what is left stays queued in the store. */
  shutdown_timeout: duration.default('5s'),
  /**
   * A span sent to Jaeger cannot be changed: a request's route span (which carries k8s.audit.*) and
   * its audit span wait until its audit record is complete (ResponseComplete or Panic), at most this.
   */
  wait_for_audit: duration.default('1m'),
  /**
   * Object-set traces: a span sent to Jaeger cannot be changed, so a set goes out once it was quiet
   * for `settle_after` (at the latest `max_delay` after its first new data); spans that may still
   * change (the root until the root object was seen, owners known only from ownerReferences,
   * requests whose audit is not complete) wait at most `wait_for_owners` more, then go as they are.
   * One trace per set per `window` (UTC-aligned, by each request's requestReceivedTimestamp); a
   * window's trace that would pass `max_spans_per_trace` continues in a further trace of the chain.
   */
  object_sets: z.strictObject({
    settle_after: duration.default('5s'),
    max_delay: duration.default('1m'),
    wait_for_owners: duration.default('2m'),
    window: duration.refine((d) => !DURATION.test(d.trim()) || parseDuration(d) >= 1000, 'object_sets.window must be at least 1s').default('1h'),
    max_spans_per_trace: z.number().int().min(10, 'object_sets.max_spans_per_trace must be at least 10').default(2000),
  }).default({ settle_after: '5s', max_delay: '1m', wait_for_owners: '2m', window: '1h', max_spans_per_trace: 2000 }),
};
const otlpExporter = z.strictObject({
  /** host:port, or http(s)://host:port (https: TLS). */
  endpoint: z.string().regex(/^(https?:\/\/)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d{1,5}\/?$/, 'expected host:port or http(s)://host:port, e.g. "jaeger-collector:4317"'),
  tls: z.strictObject({ insecure: z.boolean().default(true) }).default({ insecure: true }),
  ...otlpCommon,
});
const otlphttpExporter = z.strictObject({
  /** Base URL; traces go to <endpoint>/v1/traces. */
  endpoint: z.string().regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, 'expected a URL such as "http://jaeger-collector:4318"'),
  ...otlpCommon,
});

/** Writes correlated traces read from Kafka into the store extension. */
const storeExporter = z.strictObject({});

const storeExtension = z.strictObject({
  directory: z.string().min(1).default(DEFAULTS.storeDirectory),
  endpoint: endpoint.default(DEFAULTS.queryEndpoint),
});

/** Component schemas by type; the YAML key is `type` or `type/name`. */
const RECEIVERS = { otlp: otlpReceiver, k8saudit: k8sauditReceiver, auditlog: auditlogReceiver, kafka: kafkaReceiver };
const EXPORTERS = { correlator: correlatorExporter, kafka: kafkaExporter, store: storeExporter, otlp: otlpExporter, otlphttp: otlphttpExporter };
const EXTENSIONS = { store: storeExtension };
const PROCESSORS = { correlator: correlatorProcessor };
/** Which receiver types feed which pipeline type. */
const SIGNAL_OF_RECEIVER: Record<keyof typeof RECEIVERS, 'traces' | 'logs'> = { otlp: 'traces', k8saudit: 'logs', auditlog: 'logs', kafka: 'traces' };

const pipeline = z.strictObject({
  receivers: z.array(z.string()).min(1),
  processors: z.array(z.string()).default([]),
  exporters: z.array(z.string()).min(1),
});

const root = z.strictObject({
  receivers: z.record(z.string(), z.unknown()).default({}),
  processors: z.record(z.string(), z.unknown()).nullable().default({}),
  exporters: z.record(z.string(), z.unknown()).default({}),
  extensions: z.record(z.string(), z.unknown()).nullable().default({}),
  service: z.strictObject({
    extensions: z.array(z.string()).default([]),
    pipelines: z.record(z.string(), pipeline),
    telemetry: z.strictObject({
      logs: z.strictObject({ level: z.enum(['debug', 'info', 'warn', 'error']).default('info') }).optional(),
      /** A listener for /metrics and /healthz of a process without the store's query API. */
      metrics: z.strictObject({ address: endpoint }).optional(),
    }).optional(),
  }),
});

export type OtlpReceiverConfig = z.output<typeof otlpReceiver>;
export type K8sAuditReceiverConfig = z.output<typeof k8sauditReceiver>;
export type AuditLogReceiverConfig = z.output<typeof auditlogReceiver>;
export type CorrelatorExporterConfig = z.output<typeof correlatorExporter>;
export type KafkaExporterConfig = z.output<typeof kafkaExporter>;
export type OtlpExporterConfig = z.output<typeof otlpExporter>;
export type OtlpHttpExporterConfig = z.output<typeof otlphttpExporter>;
export type StoreExtensionConfig = z.output<typeof storeExtension>;

export type KafkaReceiverConfig = z.output<typeof kafkaReceiver>;
export type CorrelatorProcessorConfig = z.output<typeof correlatorProcessor>;

export type ReceiverConfig =
  | { type: 'kafka'; name: string; config: KafkaReceiverConfig }
  | { type: 'otlp'; name: string; config: OtlpReceiverConfig }
  | { type: 'k8saudit'; name: string; config: K8sAuditReceiverConfig }
  | { type: 'auditlog'; name: string; config: AuditLogReceiverConfig };

export type ExporterConfig =
  | { type: 'store'; name: string; config: Record<string, never> }
  | { type: 'correlator'; name: string; config: CorrelatorExporterConfig }
  | { type: 'kafka'; name: string; config: KafkaExporterConfig }
  | { type: 'otlp'; name: string; config: OtlpExporterConfig }
  | { type: 'otlphttp'; name: string; config: OtlpHttpExporterConfig };

export interface CollectorConfig {
  /** The file it came from, for messages. */
  source: string;
  /** Receivers used by a pipeline, each with the exporters its pipelines send to. */
  receivers: Array<ReceiverConfig & { exporters: string[] }>;
  /** Exporters used by a pipeline. */
  exporters: ExporterConfig[];
  /** The correlator exporter's settings, when one is configured (at most one). */
  correlator?: CorrelatorExporterConfig;
  /** The correlator processor (Kafka mode), when a pipeline lists it. */
  correlatorProcessor?: CorrelatorProcessorConfig;
  store?: StoreExtensionConfig;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** service.telemetry.metrics.address */
  metricsAddress?: string;
}

/** Replaces `${env:NAME}` and `${env:NAME:-default}`; an unset variable without default is an error. */
export function substituteEnv(text: string, env: NodeJS.ProcessEnv, source: string): string {
  return text.replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, def: string | undefined) => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (def !== undefined) return def;
    throw new ConfigError(`${source}: environment variable ${name} is not set (referenced as \${env:${name}})`);
  });
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): CollectorConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as Error).message}`);
  }
  return parseConfig(text, path, env);
}

export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): CollectorConfig {
  let raw: unknown;
  try {
    raw = parseYaml(substituteEnv(text, env, source));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${source}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const top = check(root, raw ?? {}, source, '');
  const out: CollectorConfig = { source, receivers: [], exporters: [], logLevel: top.service.telemetry?.logs?.level ?? 'info' };
  if (top.service.telemetry?.metrics) out.metricsAddress = top.service.telemetry.metrics.address;

  const parsedReceivers = new Map<string, ReceiverConfig>();
  for (const [key, value] of Object.entries(top.receivers)) {
    const type = componentType(key) as keyof typeof RECEIVERS;
    const schema = RECEIVERS[type];
    if (!schema) throw new ConfigError(`${source}: receivers.${key}: unknown receiver type "${type}" (known: ${Object.keys(RECEIVERS).join(', ')})`);
    const config = check(schema as z.ZodType, value ?? {}, source, `receivers.${key}`);
    parsedReceivers.set(key, { type, name: key, config } as ReceiverConfig);
  }
  const parsedExporters = new Map<string, ExporterConfig>();
  for (const [key, value] of Object.entries(top.exporters)) {
    const type = componentType(key) as keyof typeof EXPORTERS;
    const schema = EXPORTERS[type];
    if (!schema) throw new ConfigError(`${source}: exporters.${key}: unknown exporter type "${type}" (known: ${Object.keys(EXPORTERS).join(', ')})`);
    const config = check(schema as z.ZodType, value ?? {}, source, `exporters.${key}`);
    if (type === 'correlator') {
      if (out.correlator) throw new ConfigError(`${source}: exporters.${key}: only one correlator exporter may be configured`);
      out.correlator = config as CorrelatorExporterConfig;
    }
    parsedExporters.set(key, { type, name: key, config } as ExporterConfig);
  }
  const parsedProcessors = new Map<string, CorrelatorProcessorConfig>();
  for (const [key, value] of Object.entries(top.processors ?? {})) {
    const type = componentType(key);
    if (!(type in PROCESSORS)) throw new ConfigError(`${source}: processors.${key}: unknown processor type "${type}" (known: ${Object.keys(PROCESSORS).join(', ')})`);
    parsedProcessors.set(key, check(PROCESSORS.correlator, value ?? {}, source, `processors.${key}`));
  }
  const extensions = new Map<string, StoreExtensionConfig>();
  for (const [key, value] of Object.entries(top.extensions ?? {})) {
    const type = componentType(key);
    if (!(type in EXTENSIONS)) throw new ConfigError(`${source}: extensions.${key}: unknown extension type "${type}" (known: ${Object.keys(EXTENSIONS).join(', ')})`);
    extensions.set(key, check(EXTENSIONS.store, value ?? {}, source, `extensions.${key}`));
  }
  for (const [i, name] of top.service.extensions.entries()) {
    const ext = extensions.get(name);
    if (!ext) throw new ConfigError(`${source}: service.extensions[${i}]: extension "${name}" is not defined under extensions`);
    out.store = ext;
  }

  const routes = new Map<string, Set<string>>();
  const usedExporters = new Set<string>();
  for (const [pname, p] of Object.entries(top.service.pipelines)) {
    const signal = componentType(pname);
    if (signal !== 'traces' && signal !== 'logs') throw new ConfigError(`${source}: service.pipelines.${pname}: pipeline type must be traces or logs, got "${signal}"`);
    for (const [i, r] of p.receivers.entries()) {
      const rc = parsedReceivers.get(r);
      if (!rc) throw new ConfigError(`${source}: service.pipelines.${pname}.receivers[${i}]: receiver "${r}" is not defined under receivers`);
      if (SIGNAL_OF_RECEIVER[rc.type] !== signal) throw new ConfigError(`${source}: service.pipelines.${pname}.receivers[${i}]: receiver "${r}" produces ${SIGNAL_OF_RECEIVER[rc.type]}, not ${signal}`);
      let set = routes.get(r);
      if (!set) routes.set(r, (set = new Set()));
      for (const e of p.exporters) set.add(e);
    }
    for (const [i, proc] of p.processors.entries()) {
      const pc = parsedProcessors.get(proc);
      if (!pc) throw new ConfigError(`${source}: service.pipelines.${pname}.processors[${i}]: processor "${proc}" is not defined under processors`);
      out.correlatorProcessor = pc;
    }
    for (const [i, e] of p.exporters.entries()) {
      if (!(e in top.exporters)) throw new ConfigError(`${source}: service.pipelines.${pname}.exporters[${i}]: exporter "${e}" is not defined under exporters`);
      usedExporters.add(e);
    }
  }
  out.receivers = [...parsedReceivers.values()].filter((r) => routes.has(r.name)).map((r) => ({ ...r, exporters: [...routes.get(r.name)!] }));
  out.exporters = [...parsedExporters.values()].filter((e) => usedExporters.has(e.name));
  if ((out.correlator || out.exporters.some((e) => e.type === 'store')) && !out.store) throw new ConfigError(`${source}: exporters.correlator writes to the embedded store: add a store extension and list it in service.extensions`);
  const otlp = out.exporters.filter((e) => e.type === 'otlp' || e.type === 'otlphttp');
  if (otlp.length > 1) throw new ConfigError(`${source}: exporters.${otlp[1]!.name}: only one otlp/otlphttp exporter may be used (they share the store's export queue)`);
  if (otlp[0] && !(out.correlator || out.exporters.some((e) => e.type === 'store'))) {
    throw new ConfigError(`${source}: exporters.${otlp[0].name}: the otlp exporter sends correlated trees: list it in a pipeline with the correlator exporter (embedded) or the store exporter (Kafka mode)`);
  }
  return out;
}

function componentType(key: string): string {
  const slash = key.indexOf('/');
  return slash < 0 ? key : key.slice(0, slash);
}

function check<T extends z.ZodType>(schema: T, value: unknown, source: string, at: string): z.output<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = [at, ...issue.path.map(String)].filter(Boolean).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys;
    const base = path ? `${path}.` : '';
    throw new ConfigError(`${source}: ${keys.map((k) => base + k).join(', ')}: unknown key${keys.length > 1 ? 's' : ''}`);
  }
  throw new ConfigError(`${source}: ${path || '(top level)'}: ${issue.message}`);
}

export { MiB };
