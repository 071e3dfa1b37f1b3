import type { Admin, CommitOffset, ConsumedMessage, Consumer, ConsumerOptions, KafkaClient, OutgoingMessage, Producer, TopicSpec } from './client.js';

/**
 * An in-process Kafka behind the same interface, for unit tests of what drives Kafka (the
 * correlator's Kafka driver): topics of partitions of messages, producers that append (partition
 * by key with a stable hash, or the explicit partition), consumer groups that remember committed
 * offsets, one member per group holding every partition. Faults can be injected: `failNextSends`
 * makes the next produce calls fail; `paused` topics are not delivered (a consumer that lags on
 * them: their end offsets still grow). Not a model of Kafka's timing or rebalancing: real brokers are
 * what the end-to-end tests use.
 */
export class InMemoryKafka implements KafkaClient {
  readonly topics = new Map<string, ConsumedMessage[][]>();
  readonly committed = new Map<string, Map<string, number>>();
  /** The next this many produce calls throw (a broker that is down). */
  failNextSends = 0;
  /** Topics whose messages consumers do not get until removed from the set (then they read on). */
  readonly paused = new Set<string>();
  private readonly consumers = new Set<MemoryConsumer>();

  async producer(): Promise<Producer> {
    return {
      send: async (messages: OutgoingMessage[]) => {
        if (this.failNextSends > 0) {
          this.failNextSends--;
          throw Object.assign(new Error('in-memory Kafka: the broker is down (injected)'), { retriable: true });
        }
        for (const m of messages) this.append(m);
        for (const c of this.consumers) c.wake();
      },
      disconnect: async () => undefined,
    };
  }

  async admin(): Promise<Admin> {
    return {
      ensureTopics: async (specs: TopicSpec[]) => {
        const created: string[] = [];
        for (const s of specs) {
          if (this.topics.has(s.name)) continue;
          this.topics.set(s.name, Array.from({ length: s.partitions }, () => []));
          created.push(s.name);
        }
        return created;
      },
      partitionCount: async (topic: string) => this.topics.get(topic)?.length ?? 0,
      endOffsets: async (topic: string) => (this.topics.get(topic) ?? []).map((list) => list.length),
      committedOffsets: async (groupId: string, topic: string) => (this.topics.get(topic) ?? []).map((_, p) => this.committed.get(groupId)?.get(`${topic}\u0000${p}`) ?? -1),
      disconnect: async () => undefined,
    };
  }

  async consumer(opts: ConsumerOptions): Promise<Consumer> {
    const c = new MemoryConsumer(this, opts);
    this.consumers.add(c);
    return c;
  }

  /** Appends a message as a producer would. */
  append(m: OutgoingMessage): ConsumedMessage {
    const parts = this.topics.get(m.topic);
    if (!parts) throw new Error(`in-memory Kafka: no topic ${m.topic}`);
    const key = typeof m.key === 'string' ? m.key : Buffer.from(m.key).toString('latin1');
    const partition = m.partition ?? partitionOf(key, parts.length);
    const list = parts[partition]!;
    const msg: ConsumedMessage = {
      topic: m.topic, partition, offset: String(list.length), key: typeof m.key === 'string' ? Buffer.from(m.key) : Buffer.from(m.key),
      value: Buffer.from(typeof m.value === 'string' ? m.value : m.value), timestamp: String(Date.now()),
    };
    list.push(msg);
    return msg;
  }

  /** Messages of a topic, every partition. */
  messages(topic: string): ConsumedMessage[] {
    return (this.topics.get(topic) ?? []).flat();
  }

  end(topic: string): number {
    return this.messages(topic).length;
  }

  forget(c: MemoryConsumer): void {
    this.consumers.delete(c);
  }
}

/** A stable hash of the key (FNV-1a), mod the partitions: consistent within this fake, like murmur2 is within Kafka. */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h % partitions;
}

class MemoryConsumer implements Consumer {
  private readonly positions = new Map<string, number>();
  private readonly listeners: Array<(a: Record<string, number[]>) => void> = [];
  private running = false;
  private waker: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  /** What the batch handler threw (each batch is then delivered again). */
  readonly errors: unknown[] = [];

  /** Restarts: each failed batch counts as one (the batch is delivered again). */
  get restarts(): number {
    return this.errors.length;
  }

  constructor(private readonly kafka: InMemoryKafka, private readonly opts: ConsumerOptions) {}

  async run(onBatch: (messages: ConsumedMessage[]) => Promise<void>): Promise<void> {
    this.running = true;
    const committed = this.kafka.committed.get(this.opts.groupId) ?? new Map<string, number>();
    this.kafka.committed.set(this.opts.groupId, committed);
    const assignment: Record<string, number[]> = {};
    for (const t of this.opts.topics) {
      const parts = this.kafka.topics.get(t) ?? [];
      assignment[t] = parts.map((_, p) => p);
      parts.forEach((_, p) => this.positions.set(`${t}\u0000${p}`, committed.get(`${t}\u0000${p}`) ?? 0));
    }
    for (const l of this.listeners) l(assignment);
    this.loop = (async () => {
      while (this.running) {
        let delivered = false;
        for (const [key, pos] of this.positions) {
          const [topic, p] = key.split('\u0000') as [string, string];
          if (this.kafka.paused.has(topic)) continue;
          const list = this.kafka.topics.get(topic)![Number(p)]!;
          if (pos >= list.length) continue;
          const batch = list.slice(pos, pos + 100);
          this.positions.set(key, pos + batch.length);
          try {
            await onBatch(batch);
          } catch (err) {
            // As a client does: the batch is delivered again (after a pause), nothing is skipped.
            this.errors.push(err);
            this.positions.set(key, pos);
            await new Promise((r) => setTimeout(r, 20));
          }
          delivered = true;
          if (!this.running) return;
        }
        if (!delivered) await new Promise<void>((r) => { this.waker = r; setTimeout(r, 20); });
      }
    })();
  }

  wake(): void {
    this.waker?.();
  }

  async commit(offsets: CommitOffset[]): Promise<void> {
    const committed = this.kafka.committed.get(this.opts.groupId)!;
    for (const o of offsets) committed.set(`${o.topic}\u0000${o.partition}`, Number(o.offset));
  }

  onAssignment(cb: (assignment: Record<string, number[]>) => void): void {
    this.listeners.push(cb);
  }

  async disconnect(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loop;
    this.kafka.forget(this);
  }
}
