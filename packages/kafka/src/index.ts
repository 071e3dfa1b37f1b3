export { createKafkaClient, DEFAULT_KAFKA_CLIENT, KAFKA_CLIENT_LIBRARIES, messageValueBytes } from './client.js';
export { kafkajsApiVersionTable } from './kafkajs.js';
export type {
  KafkaClient, KafkaClientLibrary, KafkaClientOptions, KafkaLogger, Producer, ProducerOptions, OutgoingMessage, Compression,
  Admin, TopicSpec, Consumer, ConsumerOptions, ConsumedMessage, CommitOffset,
} from './client.js';
export { KafkaError, kafkaErrorTypes, toKafkaError } from './errors.js';
export { SASL_MECHANISMS, type KafkaSaslOptions, type KafkaTlsOptions, type SaslMechanism } from './security.js';
export { javaPartition, murmur2 } from './partitioner.js';
export { CO_PARTITIONED_PROTOCOL, coPartitionedAssignment } from './assignor.js';
export { SerialProducer, type ProduceEngine } from './serial-producer.js';
export { SupervisedConsumer, type ConsumerSession, type SessionHooks } from './supervisor.js';
export { TOPICS, DEFAULT_PARTITIONS, defaultTopicSpecs, topicSpec } from './topics.js';
export { OffsetTracker } from './offsets.js';
export { InMemoryKafka, partitionOf } from './memory.js';
