import type { TopicSpec } from './client.js';

/**
 * The topics of kube-correlate (DESIGN.md, "Contracts"). Names are configurable; these are the
 * defaults and the settings the application creates them with when they are missing.
 */
export const TOPICS = {
  /** OTLP ExportTraceServiceRequest protobuf, one trace per message, key = trace id (hex). */
  spans: 'otlp_spans',
  /** One audit.k8s.io Event as JSON, key = auditID. */
  audit: 'k8s_audit',
  /** Settled trees as OTLP protobuf, key = trace id. */
  correlated: 'otlp_correlated',
} as const;

const DAY_MS = 24 * 3600 * 1000;

/** Default partition count and retention of the topics the pipeline creates. */
export function defaultTopicSpecs(names: { spans: string; audit: string; correlated?: string }, partitions = 8): TopicSpec[] {
  const specs: TopicSpec[] = [
    { name: names.spans, partitions, configs: { 'retention.ms': String(7 * DAY_MS), 'cleanup.policy': 'delete' } },
    { name: names.audit, partitions, configs: { 'retention.ms': String(7 * DAY_MS), 'cleanup.policy': 'delete' } },
  ];
  if (names.correlated) specs.push({ name: names.correlated, partitions, configs: { 'retention.ms': String(7 * DAY_MS), 'cleanup.policy': 'delete' } });
  return specs;
}
