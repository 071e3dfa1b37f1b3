import { createKafkaClient } from '@kube-correlate/kafka';
import { receiverFactory } from '../../component/factory.js';
import { kafkaClientOptions } from '../../internal/kafka-settings.js';
import { kafkaReceiverConfig } from './config.js';

/**
 * `receivers.kafka` (Kafka mode, see README.md). It reads nothing itself: it hands its consumer
 * group and topics to the one stage of its pipeline that takes Kafka topics (the correlator
 * processor, the store exporter), which commits offsets only once its own output is durable, and
 * runs that stage as its own component.
 */
export const kafkaReceiverFactory = receiverFactory({
  kind: 'receiver',
  type: 'kafka',
  signal: 'traces',
  emits: 'kafka_topics',
  config: kafkaReceiverConfig,
  create({ logger }, config, next) {
    const client = createKafkaClient(kafkaClientOptions(config, logger));
    // Checked at load: a pipeline of a kafka receiver has one stage that takes Kafka topics.
    return next.kafkaTopics!.consumeKafkaTopics({ client, groupId: config.group_id, topics: { traces: config.traces.topic, logs: config.logs.topic } });
  },
});
