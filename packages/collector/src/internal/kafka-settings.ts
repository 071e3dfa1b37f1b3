import { z } from 'zod';
import type { KafkaClientOptions } from '@kube-correlate/kafka';
import type { Logger } from '@kube-correlate/telemetry';
import { certWithKey, duration, enabled, parseDuration, tlsClientFields } from '../confmap/schema.js';

/** Settings the kafka receiver and the kafka exporter share, as the OpenTelemetry Collector's kafka components name them. */

/** `brokers: "a:9092,b:9092"` (as ${env:KAFKA_BROKERS} gives it) or a list. */
export const brokers = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  const list = (Array.isArray(v) ? v : [v]).flatMap((b) => b.split(',')).map((b) => b.trim()).filter(Boolean);
  for (const b of list) {
    if (!/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/.test(b)) ctx.addIssue({ code: 'custom', message: `broker "${b}" is not host:port` });
  }
  if (list.length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one broker host:port' });
  return list;
});

export const TOPIC_DEFAULTS = { traces: 'otlp_spans', logs: 'k8s_audit' } as const;

/** The topic of spans: OTLP ExportTraceServiceRequest protobuf, one trace per message, key = trace id. */
export const tracesTopic = z.strictObject({
  topic: z.string().min(1).default(TOPIC_DEFAULTS.traces),
  encoding: z.literal('otlp_proto').default('otlp_proto'),
}).default({ topic: TOPIC_DEFAULTS.traces, encoding: 'otlp_proto' });

/** The topic of audit events: one Event as JSON per message, key = auditID. */
export const logsTopic = z.strictObject({
  topic: z.string().min(1).default(TOPIC_DEFAULTS.logs),
  encoding: z.literal('k8s_audit_json').default('k8s_audit_json'),
}).default({ topic: TOPIC_DEFAULTS.logs, encoding: 'k8s_audit_json' });

export const KAFKA_CLIENT_DEFAULTS = { library: 'platformatic', connect_timeout: '3s', request_timeout: '10s' } as const;

/**
 * The client library, as `client: kafkajs`, or with the connection timeouts as
 * `client: { library: kafkajs, connect_timeout: 3s, request_timeout: 10s }`.
 */
export const kafkaClient = z.preprocess((v) => (typeof v === 'string' ? { library: v } : v), z.strictObject({
  library: z.enum(['platformatic', 'kafkajs'], { message: 'expected platformatic (@platformatic/kafka, the default) or kafkajs' }).default(KAFKA_CLIENT_DEFAULTS.library),
  connect_timeout: duration.default(KAFKA_CLIENT_DEFAULTS.connect_timeout),
  request_timeout: duration.default(KAFKA_CLIENT_DEFAULTS.request_timeout),
}).default(KAFKA_CLIENT_DEFAULTS));

/**
 * TLS and SASL to the brokers, as the OpenTelemetry Collector's kafka exporter and receiver name
 * them (`auth.tls` is configtls's client settings, `auth.sasl` sarama's mechanisms). `tls:` with no
 * value enables TLS with the system's root CAs.
 */
export const kafkaAuth = z.strictObject({
  tls: enabled(z.strictObject(tlsClientFields).refine(...certWithKey)),
  sasl: z.strictObject({
    mechanism: z.enum(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'], { message: 'expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512' }),
    username: z.string().min(1),
    password: z.string().min(1),
  }).optional(),
}).optional();

type KafkaConnection = {
  brokers: string[];
  client_id: string;
  client: z.output<typeof kafkaClient>;
  auth?: z.output<typeof kafkaAuth>;
};

/** The Kafka client settings of a kafka exporter or receiver: library, timeouts, TLS and SASL. */
export function kafkaClientOptions(c: KafkaConnection, logger: Logger): KafkaClientOptions {
  const out: KafkaClientOptions = {
    brokers: c.brokers,
    clientId: c.client_id,
    client: c.client.library,
    connectionTimeoutMs: parseDuration(c.client.connect_timeout),
    requestTimeoutMs: parseDuration(c.client.request_timeout),
    logger: logger.child({ component: 'kafka', client: c.client.library }),
  };
  const tls = c.auth?.tls;
  if (tls) {
    out.tls = {
      ...(tls.ca_file ? { caFile: tls.ca_file } : {}),
      ...(tls.cert_file ? { certFile: tls.cert_file } : {}),
      ...(tls.key_file ? { keyFile: tls.key_file } : {}),
      insecureSkipVerify: tls.insecure_skip_verify,
      ...(tls.server_name_override ? { serverNameOverride: tls.server_name_override } : {}),
    };
  }
  const sasl = c.auth?.sasl;
  if (sasl) out.sasl = { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password };
  return out;
}
