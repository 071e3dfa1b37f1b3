import {
  Admin as PAdmin, Consumer as PConsumer, Producer as PProducer, CompressionAlgorithms, ListOffsetTimestamps, MessagesStreamFallbackModes, MessagesStreamModes,
  ProduceAcks, compatibilityPartitioner,
  type BaseOptions, type ClusterMetadata, type GroupPartitionsAssigner, type GroupPartitionsAssignments, type Message, type MessagesStream,
} from '@platformatic/kafka';
import { CO_PARTITIONED_PROTOCOL, ROUND_ROBIN_PROTOCOL, coPartitionedAssignment } from './assignor.js';
import type { Admin, ConsumedMessage, Consumer, ConsumerOptions, KafkaClient, KafkaClientOptions, KafkaLogger, OutgoingMessage, Producer, ProducerOptions, TopicSpec } from './client.js';
import { kafkaErrorTypes, toKafkaError } from './errors.js';
import { tlsConnectionOptions } from './security.js';
import { SerialProducer, type ProduceEngine } from './serial-producer.js';
import { SupervisedConsumer, type ConsumerSession, type SessionHooks } from './supervisor.js';

/**
 * The @platformatic/kafka 1.35.0 implementation, the default (`client: platformatic`). Settings
 * that differ from the library's defaults, each on purpose:
 * - producer: `idempotent` (which also means acks=all), `compatibilityPartitioner` (the library's
 *   default partitioner is `murmur2 >>> 0`, unsigned, which differs from the Java client's
 *   `murmur2 & 0x7fffffff` whenever the hash is negative and the partition count is not a power of
 *   two), bounded retries (idempotent otherwise means retrying forever), no topic auto-creation;
 * - consumer: no autocommit (the library's default is on), session timeout 10 s (default 60 s),
 *   fetch wait 1 s (default 5 s, which is also how long a close can wait), the group protocol
 *   names kafkajs uses, so a group may mix both clients.
 */
export function createPlatformaticClient(opts: KafkaClientOptions): KafkaClient {
  const log = opts.logger;
  const security = { tls: opts.tls !== undefined, sasl: opts.sasl !== undefined };
  const base: BaseOptions = {
    clientId: opts.clientId,
    bootstrapBrokers: opts.brokers,
    connectTimeout: opts.connectionTimeoutMs ?? 3000,
    requestTimeout: opts.requestTimeoutMs ?? 10000,
    retries: 2,
    retryDelay: 250,
    autocreateTopics: false,
  };
  if (opts.tls) base.tls = tlsConnectionOptions(opts.tls);
  if (opts.sasl) base.sasl = { mechanism: opts.sasl.mechanism, username: opts.sasl.username, password: opts.sasl.password };

  return {
    async producer(p: ProducerOptions = {}): Promise<Producer> {
      const producer = new PProducer<Buffer, Buffer, string, string>({
        ...base,
        retries: p.retries ?? 2,
        timeout: p.ackTimeoutMs ?? 10000,
        idempotent: true,
        acks: ProduceAcks.ALL,
        partitioner: compatibilityPartitioner,
        compression: p.compression === 'gzip' ? CompressionAlgorithms.GZIP : CompressionAlgorithms.NONE,
      });
      let needsNewId = false;
      try {
        // Connects and gets the producer id now, so a broker that is down shows at start.
        await producer.initIdempotentProducer({});
      } catch (err) {
        await producer.close().catch(() => undefined);
        throw toKafkaError(err, 'connecting the Kafka producer failed', security);
      }
      const engine: ProduceEngine = {
        async send(messages) {
          if (needsNewId) {
            // InitProducerId without a transactional id always gives a new producer id, and the
            // library starts its sequence numbers over.
            await producer.initIdempotentProducer({});
            needsNewId = false;
          }
          await producer.send({ messages: messages.map(toProduced) });
        },
        reset() {
          needsNewId = true;
        },
        async close() {
          await producer.close();
        },
      };
      return new SerialProducer(engine, log, security);
    },

    async admin(): Promise<Admin> {
            const admin = new PAdmin({ ...base, retries: 3, retryDelay: 300 });
      try {
        await admin.metadata({ topics: [] });
      } catch (err) {
        await admin.close().catch(() => undefined);
        throw toKafkaError(err, 'connecting the Kafka admin client failed', security);
      }
      const endOffsets = async (topic: string, partitions: number): Promise<number[]> => {
        const res = await admin.listOffsets({
          topics: [{ name: topic, partitions: Array.from({ length: partitions }, (_, i) => ({ partitionIndex: i, timestamp: ListOffsetTimestamps.LATEST })) }],
        });
        const out: number[] = [];
        for (const t of res) for (const p of t.partitions) out[p.partitionIndex] = Number(p.offset);
        return out;
      };
      const partitionCount = async (topic: string): Promise<number> => {
        const md = await admin.metadata({ topics: [topic], forceUpdate: true });
        return md.topics.get(topic)?.partitionsCount ?? 0;
      };
      /** As kafkajs.ts's: every partition has a leader and answers ListOffsets (30 s at most). */
      const waitUntilServing = async (topics: string[]): Promise<void> => {
        const deadline = Date.now() + 30_000;
        let last = 'no answer yet';
        for (;;) {
          try {
            const md = await admin.metadata({ topics, forceUpdate: true });
            const ready = topics.every((t) => {
              const tm = md.topics.get(t);
              return tm !== undefined && tm.partitionsCount > 0 && tm.partitions.length === tm.partitionsCount && tm.partitions.every((p) => p !== undefined && p.leader >= 0);
            });
            if (ready) {
              for (const t of topics) await endOffsets(t, md.topics.get(t)!.partitionsCount);
              return;
            }
            last = 'a partition has no leader';
          } catch (err) {
            const e = toKafkaError(err, 'waiting for the topics');
            if (!e.retriable && !isStaleMetadata(err)) throw err;
            last = e.message;
          }
          if (Date.now() > deadline) throw new Error(`topics ${topics.join(', ')} do not serve 30 s after creation (last: ${last})`);
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      return {
        async ensureTopics(specs: TopicSpec[]) {
          try {
            const existing = new Set(await admin.listTopics());
            const created: string[] = [];
            for (const s of specs) {
              if (existing.has(s.name)) continue;
              try {
                await admin.createTopics({
                  topics: [s.name], partitions: s.partitions, replicas: s.replicationFactor ?? -1,
                  configs: Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value })),
                });
                created.push(s.name);
              } catch (err) {
                // Another process created it in between.
                if (!kafkaErrorTypes(err).includes('TOPIC_ALREADY_EXISTS')) throw err;
              }
            }
            // Also when they existed: another process may have created them a moment ago (kafkajs.ts).
            await waitUntilServing(specs.map((s) => s.name));
            return created;
          } catch (err) {
            throw toKafkaError(err, `creating topics ${specs.map((s) => s.name).join(', ')} failed`, security);
          }
        },
        partitionCount,
        async endOffsets(topic) {
          return endOffsets(topic, await partitionCount(topic));
        },
        async committedOffsets(groupId, topic) {
          const n = await partitionCount(topic);
          const out: number[] = Array.from({ length: n }, () => -1);
          const groups = await admin.listConsumerGroupOffsets({ groups: [{ groupId, topics: [{ name: topic, partitionIndexes: Array.from({ length: n }, (_, i) => i) }] }] });
          for (const g of groups) for (const t of g.topics) if (t.name === topic) for (const p of t.partitions) out[p.partitionIndex] = Number(p.committedOffset);
          return out;
        },
        disconnect: () => admin.close(),
      };
    },

    async consumer(c: ConsumerOptions): Promise<Consumer> {
      return new SupervisedConsumer(() => platformaticSession(base, c, log), {
        groupId: c.groupId, library: 'platformatic', security, ...(log ? { logger: log } : {}), ...(c.restartBackoffMs ? { backoffMs: c.restartBackoffMs } : {}),
      });
    },
  };
}

function isStaleMetadata(err: unknown): boolean {
  return kafkaErrorTypes(err).some((t) => t === 'UNKNOWN_TOPIC_OR_PARTITION' || t === 'LEADER_NOT_AVAILABLE' || t === 'NOT_LEADER_OR_FOLLOWER');
}

const asBuffer = (v: string | Uint8Array): Buffer => (typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));

function toProduced(m: OutgoingMessage) {
  return {
    topic: m.topic,
    key: asBuffer(m.key),
    value: asBuffer(m.value),
    ...(m.partition !== undefined ? { partition: m.partition } : {}),
    ...(m.headers ? { headers: new Map(Object.entries(m.headers)) } : {}),
  };
}

/** coPartitionedAssignment (assignor.ts) as a @platformatic/kafka assigner. */
const coPartitionedAssigner: GroupPartitionsAssigner = (_current, members, topics, metadata: ClusterMetadata): GroupPartitionsAssignments[] => {
  const counts = new Map<string, number>();
  for (const t of topics) counts.set(t, metadata.topics.get(t)?.partitionsCount ?? 0);
  return [...coPartitionedAssignment([...members.keys()], counts)].map(([memberId, a]) => ({
    memberId,
    assignments: new Map(Object.entries(a).map(([topic, partitions]) => [topic, { topic, partitions }])),
  }));
};

/**
 * One @platformatic/kafka consumer and its message stream as a session of SupervisedConsumer.
 *
 * The stream pushes each fetch response's records in order (per topic-partition, in offset order);
 * the pump takes whatever is buffered, splits it into one batch per topic-partition and awaits the
 * handler for each before reading on (the stream stops fetching while its buffer is full).
 * Records of partitions this member no longer owns (buffered before a rebalance) are dropped: the
 * new owner reads them from the committed offsets.
 *
 * The library ends the stream on any fetch or metadata error, and emits `error` on the consumer
 * when a rejoin fails (after which it is no longer in the group): both end the session.
 */
function platformaticSession(base: BaseOptions, c: ConsumerOptions, log: KafkaLogger | undefined): ConsumerSession {
  const maxWait = c.maxWaitMs ?? 1000;
  const consumer = new PConsumer<Buffer, Buffer, Buffer, Buffer>({
    ...base,
    // Above the fetch wait: a long-polling fetch is not a timed-out request.
    requestTimeout: Math.max(base.requestTimeout ?? 10000, maxWait + 5000),
    groupId: c.groupId,
    autocommit: false,
    sessionTimeout: c.sessionTimeoutMs ?? 10000,
    heartbeatInterval: c.heartbeatIntervalMs ?? 1000,
    rebalanceTimeout: 60000,
    maxWaitTime: maxWait,
    protocols: [{ name: c.coPartitioned ? CO_PARTITIONED_PROTOCOL : ROUND_ROBIN_PROTOCOL, version: 1 }],
    ...(c.coPartitioned ? { partitionAssigner: coPartitionedAssigner } : {}),
  });
  let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  let closing: Promise<void> | undefined;
  const owned = new Map<string, Set<number>>();

  let wake: (() => void) | undefined;
  const wakeUp = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };

  const pump = async (s: MessagesStream<Buffer, Buffer, Buffer, Buffer>, hooks: SessionHooks): Promise<void> => {
    for (;;) {
      const buffered: Array<Message<Buffer, Buffer, Buffer, Buffer>> = [];
      for (let m = s.read() as Message<Buffer, Buffer, Buffer, Buffer> | null; m !== null; m = s.read() as Message<Buffer, Buffer, Buffer, Buffer> | null) buffered.push(m);
      if (buffered.length === 0) {
        if (closing || s.destroyed || s.readableEnded) return;
        // read() returned null, so the stream emits 'readable' on its next push (a later tick).
        await new Promise<void>((resolve) => { wake = resolve; });
        continue;
      }
      const batches = new Map<string, ConsumedMessage[]>();
      for (const m of buffered) {
        if (!owned.get(m.topic)?.has(m.partition)) continue;
        const key = `${m.topic}\u0000${m.partition}`;
        let b = batches.get(key);
        if (!b) batches.set(key, (b = []));
        b.push({ topic: m.topic, partition: m.partition, offset: m.offset.toString(), key: m.key ?? null, value: m.value ?? null, timestamp: m.timestamp.toString() });
      }
      for (const b of batches.values()) {
        if (closing) return;
        await hooks.deliver(b);
      }
    }
  };

  return {
    async start(hooks: SessionHooks) {
      consumer.on('consumer:group:join', (e: { assignments?: Array<{ topic: string; partitions: number[] }> }) => {
        owned.clear();
        const a: Record<string, number[]> = {};
        for (const { topic, partitions } of e.assignments ?? []) {
          owned.set(topic, new Set(partitions));
          a[topic] = [...partitions];
        }
        hooks.assigned(a);
      });
      // A rejoin that failed for good: the member is out of the group.
      consumer.on('error', (err: unknown) => hooks.fail(err));
      consumer.on('consumer:heartbeat:error', (e: { error?: unknown }) => {
        log?.warn({ groupId: c.groupId, client: 'platformatic', err: toKafkaError(e.error, 'heartbeat failed').message }, 'Kafka consumer heartbeat failed; retrying');
      });
      const s = await consumer.consume({
        topics: c.topics,
        mode: MessagesStreamModes.COMMITTED,
        fallbackMode: (c.fromBeginning ?? true) ? MessagesStreamFallbackModes.EARLIEST : MessagesStreamFallbackModes.LATEST,
        autocommit: false,
        maxWaitTime: maxWait,
        maxBytesPerPartition: 1024 * 1024,
      });
      stream = s;
      // A 'readable' listener for good: the library fetches only while someone listens (it checks
      // readableFlowing), and read() in the pump then pulls the records.
      s.on('readable', wakeUp);
      s.on('error', (err: unknown) => hooks.fail(err));
      s.on('close', () => {
        wakeUp();
        if (!closing) hooks.fail(new Error('the message stream ended'));
      });
      pump(s, hooks).catch((err: unknown) => hooks.fail(err));
    },
    async commit(offsets) {
      const md = consumer.currentMetadata;
      await consumer.commit({
        offsets: offsets.map((o) => ({
          topic: o.topic, partition: o.partition, offset: BigInt(o.offset),
          leaderEpoch: md?.topics.get(o.topic)?.partitions[o.partition]?.leaderEpoch ?? -1,
        })),
      });
    },
    close() {
      closing ??= (async () => {
        wakeUp();
        if (stream && !stream.destroyed) await stream.close().catch(() => undefined);
        // force: leaves the group even if a stream is still open.
        await consumer.close(true);
      })();
      return closing;
    },
  };
}
