import { z } from 'zod';

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
