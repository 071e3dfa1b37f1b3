import { AssignerProtocol, CompressionTypes, Kafka, logLevel, Partitioners, type Admin as KjsAdmin, type PartitionAssigner, type Consumer as KjsConsumer, type LogEntry, type Producer as KjsProducer } from 'kafkajs';

/**
 * The Kafka client behind one small interface, so the library can be swapped (kafkajs is the
 * brief's choice and unmaintained since 2023). Nothing outside this package imports kafkajs.
 */

/** The subset of a pino logger this module logs to. */
export interface KafkaLogger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface KafkaClientOptions {
  /** host:port list. */
  brokers: string[];
  clientId: string;
  logger?: KafkaLogger;
  /** TCP connect timeout. Default 3000 ms. */
  connectionTimeoutMs?: number;
  /** Per-request timeout. Default 10000 ms. */
  requestTimeoutMs?: number;
}

export type Compression = 'none' | 'gzip';

export interface OutgoingMessage {
  topic: string;
  /** Explicit partition; default: murmur2 of the key, as the Java client does. */
  partition?: number;
  key: string;
  value: Uint8Array | string;
  headers?: Record<string, string>;
}

export interface ProducerOptions {
  compression?: Compression;
  /** Retries of one send inside the client before it fails. Default 2. */
  retries?: number;
  /** Broker-side ack timeout. Default 10000 ms. */
  ackTimeoutMs?: number;
}

export interface Producer {
  /** Resolves once every message is acknowledged by all in-sync replicas (acks=all). */
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
  /** Creates the topics that do not exist; leaves existing ones as they are. Returns the names created. */
  ensureTopics(specs: TopicSpec[]): Promise<string[]>;
  partitionCount(topic: string): Promise<number>;
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
}

export interface Consumer {
  /**
   * Delivers batches (one topic-partition at a time, in offset order). Offsets are never
   * committed automatically: the caller commits what is durable with `commit`.
   */
  run(onBatch: (messages: ConsumedMessage[]) => Promise<void>): Promise<void>;
  commit(offsets: CommitOffset[]): Promise<void>;
  /** Called after each rebalance with this member's partitions. */
  onAssignment(cb: (assignment: Record<string, number[]>) => void): void;
  disconnect(): Promise<void>;
}

export interface KafkaClient {
  producer(opts?: ProducerOptions): Promise<Producer>;
  admin(): Promise<Admin>;
  consumer(opts: ConsumerOptions): Promise<Consumer>;
}

/** The kafkajs implementation. */
export function createKafkaClient(opts: KafkaClientOptions): KafkaClient {
  const log = opts.logger;
  const kafka = new Kafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    connectionTimeout: opts.connectionTimeoutMs ?? 3000,
    requestTimeout: opts.requestTimeoutMs ?? 10000,
    // Short client-side retries: the caller (receiver or consumer loop) owns retry policy, and a
    // sender must hear "unavailable" rather than wait on an unbounded retry loop.
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      if (!log) return;
      const { message, ...rest } = entry.log;
      const obj = { kafka: entry.namespace, ...rest };
      if (entry.level <= logLevel.ERROR) log.error(obj, message);
      else if (entry.level === logLevel.WARN) log.warn(obj, message);
      else log.debug(obj, message);
    },
  });

  return {
    async producer(p: ProducerOptions = {}): Promise<Producer> {
      // The default partitioner is murmur2 of the key, as the Java client's: topics written by any
      // Kafka-compatible producer keyed alike partition alike.
      const producer: KjsProducer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: p.retries ?? 2 } });
      await producer.connect();
      const compression = p.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
      return {
        async send(messages) {
          const byTopic = new Map<string, Array<{ key: string; partition?: number; value: Buffer; headers?: Record<string, string> }>>();
          for (const m of messages) {
            let list = byTopic.get(m.topic);
            if (!list) byTopic.set(m.topic, (list = []));
            list.push({ key: m.key, ...(m.partition !== undefined ? { partition: m.partition } : {}), value: typeof m.value === 'string' ? Buffer.from(m.value) : Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength), ...(m.headers ? { headers: m.headers } : {}) });
          }
          await producer.sendBatch({
            acks: -1,
            timeout: p.ackTimeoutMs ?? 10000,
            compression,
            topicMessages: [...byTopic].map(([topic, msgs]) => ({ topic, messages: msgs })),
          });
        },
        disconnect: () => producer.disconnect(),
      };
    },

    async admin(): Promise<Admin> {
      // Topic creation propagates to the metadata cache after a moment: admin calls wait longer.
      const admin: KjsAdmin = kafka.admin({ retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 2000 } });
      await admin.connect();
      return {
        async ensureTopics(specs) {
          const existing = new Set(await admin.listTopics());
          const missing = specs.filter((s) => !existing.has(s.name));
          if (missing.length === 0) {
            // Another process may have just created them (the collector, a second correlator):
            // a consumer that subscribes before they serve can stay without data (kafkajs #815).
            await waitForLeaders(admin, specs.map((s) => s.name));
            return [];
          }
          await admin.createTopics({
            // kafkajs's own wait gives up on UNKNOWN_TOPIC_OR_PARTITION, which KRaft brokers answer
            // for a moment after creation; wait for the leaders here instead.
            waitForLeaders: false,
            topics: missing.map((s) => ({
              topic: s.name,
              numPartitions: s.partitions,
              replicationFactor: s.replicationFactor ?? -1,
              configEntries: Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value })),
            })),
          });
          await waitForLeaders(admin, missing.map((s) => s.name));
          return missing.map((s) => s.name);
        },
        async partitionCount(topic) {
          const md = await admin.fetchTopicMetadata({ topics: [topic] });
          return md.topics[0]?.partitions.length ?? 0;
        },
        disconnect: () => admin.disconnect(),
      };
    },

    async consumer(c: ConsumerOptions): Promise<Consumer> {
      const consumer: KjsConsumer = kafka.consumer({
        groupId: c.groupId,
        allowAutoTopicCreation: false,
        sessionTimeout: c.sessionTimeoutMs ?? 10000,
        heartbeatInterval: c.heartbeatIntervalMs ?? 1000,
        ...(c.coPartitioned ? { partitionAssigners: [coPartitionedAssigner] } : {}),
      });
      await consumer.connect();
      for (const topic of c.topics) await consumer.subscribe({ topic, fromBeginning: c.fromBeginning ?? true });
      const assignmentListeners: Array<(a: Record<string, number[]>) => void> = [];
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        for (const cb of assignmentListeners) cb(e.payload.memberAssignment);
      });
      return {
        async run(onBatch) {
          await consumer.run({
            autoCommit: false,
            eachBatchAutoResolve: true,
            eachBatch: async ({ batch, heartbeat }) => {
              const messages: ConsumedMessage[] = batch.messages.map((m) => ({
                topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key, value: m.value, timestamp: m.timestamp,
              }));
              await onBatch(messages);
              await heartbeat();
            },
          });
        },
        async commit(offsets) {
          if (offsets.length) await consumer.commitOffsets(offsets);
        },
        onAssignment(cb) {
          assignmentListeners.push(cb);
        },
        disconnect: () => consumer.disconnect(),
      };
    },
  };
}

/**
 * Assigns partition number p of every subscribed topic to the same member: members sorted by id,
 * partition p to member p mod N. Topics with fewer partitions simply have no p past their count.
 */
const coPartitionedAssigner: PartitionAssigner = ({ cluster }) => ({
  name: 'KubeCorrelateCoPartitioned',
  version: 1,
  async assign({ members, topics }) {
    const ids = members.map((m) => m.memberId).sort();
    const assignment = new Map<string, Record<string, number[]>>(ids.map((id) => [id, {}]));
    for (const topic of topics) {
      for (const { partitionId } of cluster.findTopicPartitionMetadata(topic)) {
        const member = assignment.get(ids[partitionId % ids.length]!)!;
        (member[topic] ??= []).push(partitionId);
      }
    }
    return ids.map((memberId) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: assignment.get(memberId)!, userData: Buffer.alloc(0) }),
    }));
  },
  protocol({ topics }) {
    return { name: 'KubeCorrelateCoPartitioned', metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }) };
  },
});

/**
 * Polls until every partition of every topic has a leader that serves it (30 s at most): metadata
 * names a leader a moment before the broker stops answering NOT_LEADER_OR_FOLLOWER for a new
 * partition (KRaft), so readiness is a ListOffsets that succeeds on every partition.
 */
async function waitForLeaders(admin: KjsAdmin, topics: string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const md = await admin.fetchTopicMetadata({ topics });
      if (md.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) {
        for (const topic of topics) await admin.fetchTopicOffsets(topic);
        return;
      }
    } catch (err) {
      if (!(err as { retriable?: boolean }).retriable) throw err;
    }
    if (Date.now() > deadline) throw new Error(`topics ${topics.join(', ')} have no leader 30 s after creation`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
