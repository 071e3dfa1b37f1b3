import { messageValueBytes, type KafkaLogger, type OutgoingMessage, type Producer } from './client.js';
import { KafkaError, kafkaErrorTypes, toKafkaError, type ConnectionSecurity } from './errors.js';

/**
 * What a client library must provide to SerialProducer: one produce call (acks=all, idempotent,
 * Java-compatible partitioning) and a way to start over with a new producer identity.
 */
export interface ProduceEngine {
  /** One produce request per broker for these messages; resolves when all are acknowledged. */
  send(messages: OutgoingMessage[]): Promise<void>;
  /**
   * After a failed send: the next send must run under a new producer id. A send that failed may
   * still have been written (the answer was lost), and the library did not advance its sequence
   * numbers: the next batch with the same numbers would be taken by the broker for a retry of it
   * and acknowledged without being written.
   */
  reset(): void;
  close(): Promise<void>;
}

/** Messages of concurrent send calls merged into one produce call stay under this many value bytes. */
export const MERGE_MAX_BYTES = 512 * 1024;
const MERGE_MAX_MESSAGES = 2000;

interface Pending {
  messages: OutgoingMessage[];
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * The idempotent producer behind `Producer`, for either library: one produce call in flight at a
 * time, and the send calls that arrive meanwhile merged into the next one.
 *
 * Why one at a time: an idempotent producer numbers each partition's batches, and both libraries
 * read the next number when a request is built but advance it only when the answer comes. Two
 * concurrent sends to one partition would carry the same sequence number, and the broker takes a
 * batch with a known (producer id, first sequence, last sequence) for a retry of the earlier one:
 * it answers OK and drops it (seen with @platformatic/kafka 1.35.0, whose send() has no lock;
 * kafkajs locks per broker). Merging keeps the throughput that concurrent calls had: everything
 * waiting goes out in the next request, up to MERGE_MAX_BYTES so a merged batch stays under the
 * brokers' default max.message.bytes (1 MiB).
 *
 * After a failed call the engine is reset (a new producer id, see ProduceEngine.reset). A merged
 * call refused as MESSAGE_TOO_LARGE is retried call by call, so one caller's large messages do not
 * fail the others'.
 */
export class SerialProducer implements Producer {
  private readonly queue: Pending[] = [];
  /** The pump while it runs. */
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly engine: ProduceEngine, private readonly logger?: KafkaLogger, private readonly security?: ConnectionSecurity) {}

  send(messages: OutgoingMessage[]): Promise<void> {
    if (this.closed) return Promise.reject(new KafkaError('the producer was disconnected', { retriable: true }));
    if (messages.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let bytes = 0;
      for (const m of messages) bytes += messageValueBytes(m);
      this.queue.push({ messages, bytes, resolve, reject });
      // The pump clears `running` itself, in the step where it finds the queue empty: a
      // `.finally(() => running = undefined)` would run microtasks later, after a caller resumed by
      // the last resolve() had queued a send that no pump would take.
      this.running ??= this.pump();
    });
  }

  private async pump(): Promise<void> {
    for (;;) {
      if (this.queue.length === 0) {
        // Synchronously with the last resolve() above: a caller it resumed sees no pump and starts one.
        this.running = undefined;
        return;
      }
      const group: Pending[] = [this.queue.shift()!];
      let bytes = group[0]!.bytes;
      let count = group[0]!.messages.length;
      while (this.queue.length) {
        const next = this.queue[0]!;
        if (bytes + next.bytes > MERGE_MAX_BYTES || count + next.messages.length > MERGE_MAX_MESSAGES) break;
        group.push(this.queue.shift()!);
        bytes += next.bytes;
        count += next.messages.length;
      }
      const err = await this.attempt(group.length === 1 ? group[0]!.messages : group.flatMap((p) => p.messages));
      if (!err) {
        for (const p of group) p.resolve();
        continue;
      }
      if (group.length > 1 && err.type === 'MESSAGE_TOO_LARGE') {
        // Merged, the batch per partition may be over a topic's limit that each call is under.
        for (const p of group) {
          const e = await this.attempt(p.messages);
          if (e) p.reject(e);
          else p.resolve();
        }
        continue;
      }
      for (const p of group) p.reject(err);
    }
  }

  /** One produce call; undefined on success, the error (after resetting the engine) on failure. */
  private async attempt(messages: OutgoingMessage[]): Promise<KafkaError | undefined> {
    try {
      await this.engine.send(messages);
      return undefined;
    } catch (raw) {
      const err = toKafkaError(raw, `producing ${messages.length} message(s) to ${[...new Set(messages.map((m) => m.topic))].join(', ')} failed`, this.security);
      this.engine.reset();
      this.logger?.debug({ err: err.message, types: kafkaErrorTypes(raw) }, 'produce failed; the next produce runs under a new producer id');
      return err;
    }
  }

  /** Waits for the sends already queued (each ends in success or error), then closes. Safe twice. */
  async disconnect(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.running?.catch(() => undefined);
    await this.engine.close();
  }
}
