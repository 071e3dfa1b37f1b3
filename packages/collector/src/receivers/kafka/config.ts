import { z } from 'zod';
import { brokers, kafkaAuth, kafkaClient, logsTopic, tracesTopic } from '../../internal/kafka-settings.js';

export const KAFKA_RECEIVER_DEFAULTS = {
  clientId: 'kube-correlate',
} as const;

/** `receivers.kafka` (Kafka mode): a consumer group over the spans and audit topics. */
export const kafkaReceiverConfig = z.strictObject({
  brokers,
  client_id: z.string().min(1).default(KAFKA_RECEIVER_DEFAULTS.clientId),
  client: kafkaClient,
  auth: kafkaAuth,
  /** Consumer group; correlator instances share one. */
  group_id: z.string().min(1),
  traces: tracesTopic,
  logs: logsTopic,
});

export type KafkaReceiverConfig = z.output<typeof kafkaReceiverConfig>;
