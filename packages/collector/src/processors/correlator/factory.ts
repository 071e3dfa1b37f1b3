import { KafkaCorrelator } from '@kube-correlate/correlator';
import type { Component, KafkaSource } from '../../component/component.js';
import { processorFactory } from '../../component/factory.js';
import { parseDuration } from '../../confmap/schema.js';
import { describeFromSpec } from '../../internal/correlator-settings.js';
import { correlatorProcessorConfig } from './config.js';

/**
 * `processors.correlator` (Kafka mode, `correlate correlator`, see README.md): takes the kafka
 * receiver's topics over and runs `KafkaCorrelator` on them, with the receiver's client, writing
 * settled trees to the topic its pipeline's kafka exporter names (`traces.topic`). It commits
 * input offsets only once its output is acknowledged.
 */
export const correlatorProcessorFactory = processorFactory({
  kind: 'processor',
  type: 'correlator',
  signals: ['traces'],
  takes: ['kafka_topics'],
  emits: 'kafka_output',
  config: correlatorProcessorConfig,
  create({ id, source, metrics, logger }, p, next) {
    const describeRequest = describeFromSpec(p.api_spec, source, `processors.${id}`, logger);
    // Checked at load: the pipeline has one kafka exporter.
    const correlated = next.kafkaOutput!.claimTracesTopic();
    // Reads with the receiver's connection settings, writes with the exporter's.
    const producerClient = next.kafkaOutput!.producerClient();
    return {
      async start() {},
      async shutdown() {},
      consumeKafkaTopics(src: KafkaSource): Component {
        const kc = new KafkaCorrelator({
          client: src.client, producerClient, groupId: src.groupId, metrics, logger: logger.child({ component: 'correlator' }),
          topics: { spans: src.topics.traces, audit: src.topics.logs, auditTrace: p.internal_topics.audit_trace, auditByTrace: p.internal_topics.audit_by_trace, correlated },
          settleAfterMs: parseDuration(p.settle_after), pendingAuditTtlMs: parseDuration(p.pending_audit_ttl),
          maxTracesInFlight: p.max_traces_in_flight, pairCacheSize: p.pair_cache_size,
          ...(p.max_lag_wait !== undefined ? { maxLagWaitMs: parseDuration(p.max_lag_wait) } : {}), internalRetentionMs: parseDuration(p.internal_topics.retention),
          describeRequest,
        });
        let started = false;
        return {
          start: () => {
            started = true;
            return kc.start();
          },
          // Not started: nothing joined, nothing to settle or commit.
          shutdown: async () => (started ? kc.stop() : undefined),
        };
      },
    };
  },
});
