import { createRequire } from 'node:module';
import {
  AssignerProtocol, CompressionTypes, Kafka, logLevel, Partitioners,
  type Admin as KjsAdmin, type Consumer as KjsConsumer, type KafkaConfig, type LogEntry, type PartitionAssigner, type Producer as KjsProducer, type SASLOptions,
} from 'kafkajs';
import { CO_PARTITIONED_PROTOCOL, coPartitionedAssignment } from './assignor.js';
import type { Admin, ConsumedMessage, Consumer, ConsumerOptions, KafkaClient, KafkaClientOptions, Producer, ProducerOptions, TopicSpec } from './client.js';
import { toKafkaError } from './errors.js';
import { tlsConnectionOptions } from './security.js';
import { SerialProducer, type ProduceEngine } from './serial-producer.js';
import { SupervisedConsumer, type ConsumerSession, type SessionHooks } from './supervisor.js';

/**
 * The kafkajs 2.2.4 implementation (the brief's choice, unmaintained since 2023), selected with
 * `client: kafkajs`. kafkajs negotiates the protocol versions it knows (Produce v7, Fetch v11, ...),
 * all still accepted by Kafka 4.x (KIP-896 removed only older ones).
 */
export function createKafkajsClient(opts: KafkaClientOptions): KafkaClient {
  const log = opts.logger;
  const security = { tls: opts.tls !== undefined, sasl: opts.sasl !== undefined };
  const config: KafkaConfig = {
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
      // Our own restart policy replaces kafkajs's (see the consumer below); its warning about
      // bounded idempotent retries is the intended setting (SerialProducer resets the producer id).
      if (message === 'Limiting retries for the idempotent producer may invalidate EoS guarantees') return;
      const obj = { kafka: entry.namespace, client: 'kafkajs', ...rest };
      if (entry.level <= logLevel.ERROR) log.error(obj, message);
      else if (entry.level === logLevel.WARN) log.warn(obj, message);
      else log.debug(obj, message);
    },
  };
  if (opts.tls) config.ssl = tlsConnectionOptions(opts.tls);
  if (opts.sasl) {
    const { mechanism, username, password } = opts.sasl;
    config.sasl = { mechanism: mechanism.toLowerCase(), username, password } as SASLOptions;
  }
  const kafka = new Kafka(config);

  return {
    async producer(p: ProducerOptions = {}): Promise<Producer> {
      const compression = p.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
      let producer: KjsProducer | undefined;
      let connecting: Promise<KjsProducer> | undefined;
      const connect = (): Promise<KjsProducer> => {
        if (producer) return Promise.resolve(producer);
        connecting ??= (async () => {
          // Idempotent (acks=all, sequence numbers: the broker writes a retried batch once), and the
          // default partitioner, murmur2 of the key bytes as the Java client's, passed explicitly
          // (kafkajs warns otherwise).
          const pr = kafka.producer({
            allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1,
            createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: p.retries ?? 2, initialRetryTime: 100, maxRetryTime: 1000 },
          });
          try {
            await pr.connect();
          } catch (err) {
            await pr.disconnect().catch(() => undefined);
            throw err;
          }
          producer = pr;
          return pr;
        })().finally(() => { connecting = undefined; });
        return connecting;
      };
      await connect().catch((err: unknown) => { throw toKafkaError(err, 'connecting the Kafka producer failed', security); });
      const engine: ProduceEngine = {
        async send(messages) {
          const pr = await connect();
          const byTopic = new Map<string, Array<{ key: Buffer; partition?: number; value: Buffer; headers?: Record<string, string> }>>();
          for (const m of messages) {
            let list = byTopic.get(m.topic);
            if (!list) byTopic.set(m.topic, (list = []));
            list.push({ key: keyBuffer(m.key), ...(m.partition !== undefined ? { partition: m.partition } : {}), value: valueBuffer(m.value), ...(m.headers ? { headers: m.headers } : {}) });
          }
          await pr.sendBatch({ acks: -1, timeout: p.ackTimeoutMs ?? 10000, compression, topicMessages: [...byTopic].map(([topic, msgs]) => ({ topic, messages: msgs })) });
        },
        reset() {
          // A new kafkajs producer gets a new producer id on connect.
          const old = producer;
          producer = undefined;
          void old?.disconnect().catch(() => undefined);
        },
        async close() {
          const pr = producer ?? (await connecting?.catch(() => undefined));
          producer = undefined;
          await pr?.disconnect();
        },
      };
      return new SerialProducer(engine, log, security);
    },

    async admin(): Promise<Admin> {
      // Topic creation propagates to the metadata cache after a moment: admin calls wait longer.
      const admin: KjsAdmin = kafka.admin({ retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 2000 } });
      try {
        await admin.connect();
      } catch (err) {
        await admin.disconnect().catch(() => undefined);
        throw toKafkaError(err, 'connecting the Kafka admin client failed', security);
      }
      return {
        async ensureTopics(specs: TopicSpec[]) {
          try {
            const existing = new Set(await admin.listTopics());
            const missing = specs.filter((s) => !existing.has(s.name));
            let created: string[] = [];
            if (missing.length) {
              // kafkajs's own wait gives up on the UNKNOWN_TOPIC_OR_PARTITION that KRaft brokers
              // answer for a moment after creation; wait for the partitions to serve here instead.
              const made = await admin.createTopics({
                waitForLeaders: false,
                topics: missing.map((s) => ({
                  topic: s.name,
                  numPartitions: s.partitions,
                  replicationFactor: s.replicationFactor ?? -1,
                  configEntries: Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value })),
                })),
              });
              // false: another process created all of them in between.
              created = made ? missing.map((s) => s.name) : [];
            }
            // Also when they existed: another process (the collector, a second correlator) may have
            // created them a moment ago, and a consumer that subscribes before they serve can stay
            // without data (kafkajs #815).
            await waitUntilServing(admin, specs.map((s) => s.name));
            return created;
          } catch (err) {
            throw toKafkaError(err, `creating topics ${specs.map((s) => s.name).join(', ')} failed`, security);
          }
        },
        async partitionCount(topic) {
          const md = await admin.fetchTopicMetadata({ topics: [topic] });
          return md.topics[0]?.partitions.length ?? 0;
        },
        async endOffsets(topic) {
          const out: number[] = [];
          for (const p of await admin.fetchTopicOffsets(topic)) out[p.partition] = Number(p.high);
          return out;
        },
        async committedOffsets(groupId, topic) {
          const res = await admin.fetchOffsets({ groupId, topics: [topic] });
          const out: number[] = [];
          for (const p of res.find((t) => t.topic === topic)?.partitions ?? []) out[p.partition] = Number(p.offset);
          return out;
        },
        disconnect: () => admin.disconnect(),
      };
    },

    async consumer(c: ConsumerOptions): Promise<Consumer> {
      return new SupervisedConsumer(() => kafkajsSession(kafka, c), {
        groupId: c.groupId, library: 'kafkajs', security, ...(log ? { logger: log } : {}), ...(c.restartBackoffMs ? { backoffMs: c.restartBackoffMs } : {}),
      });
    },
  };
}

const keyBuffer = (k: string | Uint8Array): Buffer => (typeof k === 'string' ? Buffer.from(k, 'utf8') : Buffer.from(k.buffer, k.byteOffset, k.byteLength));
const valueBuffer = (v: string | Uint8Array): Buffer => (typeof v === 'string' ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength));

/**
 * One kafkajs consumer as a session of SupervisedConsumer. kafkajs's own restarts are off
 * (`restartOnFailure` answers false): every crash, retriable or not, ends the session, and the
 * supervisor logs it and starts a new consumer after its backoff.
 */
function kafkajsSession(kafka: Kafka, c: ConsumerOptions): ConsumerSession {
  const consumer: KjsConsumer = kafka.consumer({
    groupId: c.groupId,
    allowAutoTopicCreation: false,
    sessionTimeout: c.sessionTimeoutMs ?? 10000,
    heartbeatInterval: c.heartbeatIntervalMs ?? 1000,
    maxWaitTimeInMs: c.maxWaitMs ?? 1000,
    retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 3000, restartOnFailure: async () => false },
    ...(c.coPartitioned ? { partitionAssigners: [coPartitionedAssigner] } : {}),
  });
  let closing: Promise<void> | undefined;
  return {
    async start(hooks: SessionHooks) {
      consumer.on(consumer.events.CRASH, (e) => hooks.fail(e.payload.error));
      consumer.on(consumer.events.GROUP_JOIN, (e) => hooks.assigned(e.payload.memberAssignment));
      await consumer.connect();
      for (const topic of c.topics) await consumer.subscribe({ topic, fromBeginning: c.fromBeginning ?? true });
      let joined!: () => void;
      const join = new Promise<void>((r) => { joined = r; });
      const offJoin = consumer.on(consumer.events.GROUP_JOIN, () => joined());
      const offCrash = consumer.on(consumer.events.CRASH, () => joined());
      // run() resolves after the first join, or after a crash while joining (reported by CRASH).
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: true,
        eachBatch: async ({ batch, heartbeat, isRunning, isStale }) => {
          if (!isRunning() || isStale() || batch.messages.length === 0) return;
          const messages: ConsumedMessage[] = batch.messages.map((m) => ({
            topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key, value: m.value, timestamp: m.timestamp,
          }));
          await hooks.deliver(messages);
          // Not caught: a rebalance (REBALANCE_IN_PROGRESS) thrown here is how kafkajs rejoins at once;
          // swallowed, the member kept fetching while the group waited for it, up to the rebalance timeout.
          await heartbeat();
        },
      });
      await join;
      offJoin();
      offCrash();
    },
    async commit(offsets) {
      await consumer.commitOffsets(offsets);
    },
    close() {
      closing ??= consumer.disconnect();
      return closing;
    },
  };
}

/** coPartitionedAssignment (assignor.ts) as a kafkajs assigner. */
const coPartitionedAssigner: PartitionAssigner = ({ cluster }) => ({
  name: CO_PARTITIONED_PROTOCOL,
  version: 1,
  async assign({ members, topics }) {
    const counts = new Map(topics.map((t) => [t, cluster.findTopicPartitionMetadata(t).length]));
    const assignment = coPartitionedAssignment(members.map((m) => m.memberId), counts);
    return [...assignment].map(([memberId, a]) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: a, userData: Buffer.alloc(0) }),
    }));
  },
  protocol({ topics }) {
    return { name: CO_PARTITIONED_PROTOCOL, metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }) };
  },
});

/**
 * Polls until every partition of every topic has a leader that serves it (30 s at most): metadata
 * names a leader a moment before the broker stops answering NOT_LEADER_OR_FOLLOWER for a new
 * partition (KRaft), so readiness is a ListOffsets that succeeds on every partition.
 */
async function waitUntilServing(admin: KjsAdmin, topics: string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  let last = 'no answer yet';
  for (;;) {
    try {
      const md = await admin.fetchTopicMetadata({ topics });
      if (md.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) {
        for (const topic of topics) await admin.fetchTopicOffsets(topic);
        return;
      }
      last = 'a partition has no leader';
    } catch (err) {
      if ((err as { retriable?: boolean }).retriable === false) throw err;
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`topics ${topics.join(', ')} do not serve 30 s after creation (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The protocol versions kafkajs implements, per API (from its own request table, an internal
 * module: a diagnostic for the client benchmark, which compares them with a broker's ApiVersions).
 */
export function kafkajsApiVersionTable(): Array<{ name: string; apiKey: number; versions: number[] }> {
  const req = createRequire(import.meta.url);
  const { requests } = req('kafkajs/src/protocol/requests/index.js') as { requests: Record<string, { versions: string[] }> };
  const apiKeys = req('kafkajs/src/protocol/requests/apiKeys.js') as Record<string, number>;
  return Object.entries(apiKeys).map(([name, apiKey]) => ({ name, apiKey, versions: (requests[name]?.versions ?? []).map(Number) }));
}
