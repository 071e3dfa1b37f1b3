import { createKafkajsClient } from './kafkajs.js';
import { createPlatformaticClient } from './platformatic.js';
import type { KafkaSaslOptions, KafkaTlsOptions } from './security.js';

/**
 * The Kafka client behind one small interface, so the library can be swapped: @platformatic/kafka
 * by default, kafkajs (the brief's choice, unmaintained since 2023) by config. Nothing outside this
 * package imports either library.
 */

/** The subset of a pino logger this module logs to. */
export interface KafkaLogger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** The client libraries `createKafkaClient` can use. */
export type KafkaClientLibrary = 'platformatic' | 'kafkajs';
export const KAFKA_CLIENT_LIBRARIES: readonly KafkaClientLibrary[] = ['platformatic', 'kafkajs'];
export const DEFAULT_KAFKA_CLIENT: KafkaClientLibrary = 'platformatic';

export interface KafkaClientOptions {
  /** host:port list. */
  brokers: string[];
  clientId: string;
  /** Which library speaks to Kafka. Default platformatic (@platformatic/kafka). */
  client?: KafkaClientLibrary;
  /** TLS to the brokers (SSL or SASL_SSL listeners); absent: plaintext. */
  tls?: KafkaTlsOptions;
  /** SASL authentication (SASL_PLAINTEXT, or SASL_SSL with `tls`). */
  sasl?: KafkaSaslOptions;
  logger?: KafkaLogger;
  /** TCP connect timeout. Default 3000 ms. */
  connectionTimeoutMs?: number;
  /** Per-request timeout. Default 10000 ms. */
  requestTimeoutMs?: number;
}

export type Compression = 'none' | 'gzip';

export interface OutgoingMessage {
  topic: string;
  /** Explicit partition; default: murmur2 of the key bytes, as the Java client does. */
  partition?: number;
  /** Sent as its UTF-8 bytes when a string. */
  key: string | Uint8Array;
  value: Uint8Array | string;
  headers?: Record<string, string>;
}

/** The size of a message's value in bytes (a string's as UTF-8). */
export const messageValueBytes = (m: OutgoingMessage): number => (typeof m.value === 'string' ? Buffer.byteLength(m.value) : m.value.byteLength);

export interface ProducerOptions {
  compression?: Compression;
  /** Retries of one send inside the client before it fails. Default 2. */
  retries?: number;
  /** Broker-side ack timeout. Default 10000 ms. */
  ackTimeoutMs?: number;
}

export interface Producer {
  /**
   * Resolves once every message is acknowledged by all in-sync replicas (acks=all), written once
   * (idempotent producer: the client's own retries write nothing twice). Rejects with a KafkaError;
   * the caller may send again (at-least-once: a message whose first send did land is then written
   * twice, and deduplicated downstream).
   */
  send(messages: OutgoingMessage[]): Promise<void>;
  disconnect(): Promise<void>;
}

export interface TopicSpec {
  name: string;
  partitions: number;
  replicationFactor?: number;
  /** Topic-level configs, e.g. { 'retention.ms': '604800000', 'cleanup.policy': 'delete' }. */
  configs?: Record<string, string>;
}

export interface Admin {
  /**
   * Creates the topics that do not exist and leaves existing ones as they are; then waits until
   * every partition of every named topic serves (a leader, and ListOffsets answered), also when
   * another process created them a moment before. Returns the names this call created.
   */
  ensureTopics(specs: TopicSpec[]): Promise<string[]>;
  partitionCount(topic: string): Promise<number>;
  /** The end offset (high watermark) of each partition, by partition number. */
  endOffsets(topic: string): Promise<number[]>;
  /** The group's committed offset of each partition of `topic` (-1: none), by partition number. */
  committedOffsets(groupId: string, topic: string): Promise<number[]>;
  disconnect(): Promise<void>;
}

export interface ConsumedMessage {
  topic: string;
  partition: number;
  /** Decimal string (int64). */
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  /** Milliseconds since the epoch, decimal string. */
  timestamp: string;
}

export interface CommitOffset {
  topic: string;
  partition: number;
  /** The next offset to read (last processed + 1), decimal string. */
  offset: string;
}

export interface ConsumerOptions {
  groupId: string;
  topics: string[];
  /** Where a group without committed offsets starts. Default earliest. */
  fromBeginning?: boolean;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /**
   * Give partition p of every subscribed topic to the same member, so topics partitioned alike
   * (a topic and its repartition topic) are joined on one instance.
   */
  coPartitioned?: boolean;
  /** Longest wait of one fetch for new data. Default 1000 ms. */
  maxWaitMs?: number;
  /** Backoff before the consumer rejoins after a failure: first, then doubled up to max. Default 1 s .. 30 s. */
  restartBackoffMs?: { initial: number; max: number };
}

export interface Consumer {
  /**
   * Joins the group and delivers batches (one topic-partition at a time, in offset order, one
   * batch at a time). Offsets are never committed automatically: the caller commits what is durable
   * with `commit`. Resolves after the first join attempt.
   *
   * The consumer never stops on its own: when `onBatch` throws, or the library's consumer fails
   * (any error, retriable or not), the failure is logged at error level with what happens next, the
   * consumer is closed, and after a backoff a new one rejoins the group and reads on from the
   * committed offsets (what was delivered but not committed is delivered again).
   */
  run(onBatch: (messages: ConsumedMessage[]) => Promise<void>): Promise<void>;
  /** Commits through the current member; rejects while the consumer is between two members. */
  commit(offsets: CommitOffset[]): Promise<void>;
  /** Called after each rebalance with this member's partitions. */
  onAssignment(cb: (assignment: Record<string, number[]>) => void): void;
  /** Restarts so far (failures recovered from), for tests and metrics. */
  readonly restarts: number;
  /** Leaves the group and closes. Waits for a batch in progress. Safe twice. */
  disconnect(): Promise<void>;
}

export interface KafkaClient {
  producer(opts?: ProducerOptions): Promise<Producer>;
  admin(): Promise<Admin>;
  consumer(opts: ConsumerOptions): Promise<Consumer>;
}

/** A client of the library `opts.client` names (default @platformatic/kafka). */
export function createKafkaClient(opts: KafkaClientOptions): KafkaClient {
  const lib = opts.client ?? DEFAULT_KAFKA_CLIENT;
  if (lib === 'kafkajs') return createKafkajsClient(opts);
  if (lib === 'platformatic') return createPlatformaticClient(opts);
  throw new Error(`unknown Kafka client "${String(lib)}": expected ${KAFKA_CLIENT_LIBRARIES.join(' or ')}`);
}
