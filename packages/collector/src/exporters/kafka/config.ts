import { z } from 'zod';
import { duration, positiveInt } from '../../confmap/schema.js';
import { brokers, kafkaAuth, kafkaClient, logsTopic, tracesTopic } from '../../internal/kafka-settings.js';

export const KAFKA_EXPORTER_DEFAULTS = {
  clientId: 'kube-correlate-collector',
  compression: 'none',
  linger: '0ms',
  maxBatchMessages: 500,
  queueSize: 1000,
  timeout: '5s',
  createTopics: true,
  partitions: 8,
} as const;

const D = KAFKA_EXPORTER_DEFAULTS;

/** `exporters.kafka`: spans and audit events to Kafka, acknowledged once all in-sync replicas have them. */
export const kafkaExporterConfig = z.strictObject({
  brokers,
  client_id: z.string().min(1).default(D.clientId),
  auth: kafkaAuth,
  traces: tracesTopic,
  logs: logsTopic,
  /** One trace per message, keyed by trace id: required by the correlator's partitioning. */
  partition_traces_by_id: z.literal(true).default(true),
  producer: z.strictObject({
    required_acks: z.literal(-1, { message: 'must be -1 (all in-sync replicas): receivers acknowledge only what is durable' }).default(-1),
    compression: z.enum(['none', 'gzip']).default(D.compression),
    /** Wait this long to gather concurrent requests into one produce call ("0ms": send each at once). */
    linger: duration.default(D.linger),
    /** A gathered batch is sent as soon as it holds this many messages. */
    max_batch_messages: positiveInt.default(D.maxBatchMessages),
  }).default({ required_acks: -1, compression: D.compression, linger: D.linger, max_batch_messages: D.maxBatchMessages }),
  client: kafkaClient,
  /** Requests waiting on Kafka at once; beyond it receivers refuse with retryable codes. */
  sending_queue: z.strictObject({ queue_size: positiveInt.default(D.queueSize) }).default({ queue_size: D.queueSize }),
  /** How long one request may wait for Kafka before its sender is told to retry. */
  timeout: duration.default(D.timeout),
  topics: z.strictObject({
    create: z.boolean().default(D.createTopics),
    partitions: positiveInt.default(D.partitions),
  }).default({ create: D.createTopics, partitions: D.partitions }),
});

export type KafkaExporterConfig = z.output<typeof kafkaExporterConfig>;
