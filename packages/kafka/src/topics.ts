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

export const DEFAULT_PARTITIONS = 8;
const WEEK_MS = 7 * 24 * 3600 * 1000;

/** A topic with delete cleanup and the given retention (default 7 days). */
export function topicSpec(name: string, partitions = DEFAULT_PARTITIONS, retentionMs = WEEK_MS): TopicSpec {
  return { name, partitions, configs: { 'retention.ms': String(retentionMs), 'cleanup.policy': 'delete' } };
}

/** The input topics, as whichever process starts first creates them. */
export function defaultTopicSpecs(names: { spans: string; audit: string }, partitions = DEFAULT_PARTITIONS): TopicSpec[] {
  return [topicSpec(names.spans, partitions), topicSpec(names.audit, partitions)];
}
