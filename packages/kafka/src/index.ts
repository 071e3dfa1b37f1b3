export { createKafkaClient } from './client.js';
export type {
  KafkaClient, KafkaClientOptions, KafkaLogger, Producer, ProducerOptions, OutgoingMessage, Compression,
  Admin, TopicSpec, Consumer, ConsumerOptions, ConsumedMessage, CommitOffset,
} from './client.js';
export { TOPICS, DEFAULT_PARTITIONS, defaultTopicSpecs, topicSpec } from './topics.js';
export { OffsetTracker } from './offsets.js';
export { InMemoryKafka, partitionOf } from './memory.js';
