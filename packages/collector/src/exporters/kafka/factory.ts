import { exporterFactory } from '../../component/factory.js';
import { kafkaExporterConfig } from './config.js';
import { KafkaExporter } from './exporter.js';

/** `exporters.kafka`: spans to `otlp_spans`, audit events to `k8s_audit`, acks=all (see README.md). */
export const kafkaExporterFactory = exporterFactory({
  kind: 'exporter',
  type: 'kafka',
  signals: ['traces', 'logs'],
  takes: ['spans', 'audit_events', 'kafka_output'],
  config: kafkaExporterConfig,
  create({ id, metrics, logger }, config) {
    return new KafkaExporter({ name: id, config, metrics, logger: logger.child({ component: 'exporter' }) });
  },
});
