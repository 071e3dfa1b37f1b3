import { messageValueBytes, type OutgoingMessage } from '@kube-correlate/kafka';

/** What becomes of one batch's output. */
export interface OutboxCallbacks {
  /** Its messages are durable (and those of every batch added before it). */
  written(): void;
  /** Its messages were given up (the outbox closed while the broker refused them). */
  dropped?(): void;
}

export interface OrderedOutboxOptions {
  /** One produce call (the Kafka driver's, which splits large ones). */
  send(messages: OutgoingMessage[]): Promise<void>;
  /** A produce call failed and is retried after `delayMs`. */
  onRetry(err: unknown, attempt: number, delayMs: number): void;
  /**
   * Above this many queued bytes, add() waits for the queue to drain. Default 1 MiB: in a catch-up
   * the consumer stays about one produce call ahead of what is durable; live traffic queues far less
   * than that between two calls.
   */
  maxQueuedBytes?: number;
  /** Retry delays: first, then doubled up to max. Default 100 ms .. 5 s. */
  retryMs?: { initial: number; max: number };
}

interface Entry extends OutboxCallbacks {
  messages: OutgoingMessage[];
  startedAt: number;
}

/**
 * The output of consumed batches, produced in order without the consumer waiting on each produce's
 * round trip. A batch's messages are queued; while one produce call is in flight, what is added
 * meanwhile waits and goes out together in the next call (so a fetch response of many
 * topic-partitions costs one or two round trips, not one each). Each batch is reported `written`
 * once its messages are durable, in the order the batches were added, so a consumer that counts a
 * batch as read only then never commits past output that is not durable. A failed produce is
 * retried (with backoff) before anything after it; while the queue holds more than
 * `maxQueuedBytes`, add() waits, so a broker that is away stops the consumer instead of filling memory.
 */
export class OrderedOutbox {
  private queued: Entry[] = [];
  private queuedBytes = 0;
  private inFlight: Entry[] = [];
  private flushing: Promise<void> | undefined;
  private closing = false;
  private wakeRetry: (() => void) | undefined;
  private readonly maxQueuedBytes: number;
  private readonly retryMs: { initial: number; max: number };

  constructor(private readonly opts: OrderedOutboxOptions) {
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 1024 * 1024;
    this.retryMs = opts.retryMs ?? { initial: 100, max: 5000 };
  }

  /**
   * Queues one batch's output. With nothing queued or in flight and no messages, the batch is
   * written at once. Resolves once queued (after waiting while the queue is over its limit).
   */
  async add(messages: OutgoingMessage[], startedAt: number, cb: OutboxCallbacks): Promise<void> {
    if (messages.length === 0 && !this.flushing) {
      cb.written();
      return;
    }
    if (this.closing) {
      cb.dropped?.();
      return;
    }
    this.queued.push({ messages, startedAt, ...cb });
    for (const m of messages) this.queuedBytes += messageValueBytes(m);
    this.flushing ??= this.flush();
    while (this.queuedBytes > this.maxQueuedBytes && this.flushing) await this.flushing;
  }

  /** When the oldest batch not written yet started, or Infinity. */
  oldest(): number {
    const first = this.inFlight[0] ?? this.queued[0];
    return first ? first.startedAt : Infinity;
  }

  /** Batches not written yet (queued or in flight). */
  pending(): number {
    return this.inFlight.length + this.queued.length;
  }

  /** Resolves once nothing is queued or in flight (what is added meanwhile included). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  /** Sends what is queued; a produce that fails from now on drops what is left instead of retrying. */
  async close(): Promise<void> {
    this.closing = true;
    this.wakeRetry?.();
    await this.flushing;
  }

  private async flush(): Promise<void> {
    try {
      while (this.queued.length) {
        this.inFlight = this.queued;
        this.queued = [];
        this.queuedBytes = 0;
        const messages = this.inFlight.length === 1 ? this.inFlight[0]!.messages : this.inFlight.flatMap((e) => e.messages);
        if (!(await this.sendWithRetry(messages))) {
          for (const e of [...this.inFlight, ...this.queued]) e.dropped?.();
          this.inFlight = [];
          this.queued = [];
          this.queuedBytes = 0;
          return;
        }
        const done = this.inFlight;
        this.inFlight = [];
        for (const e of done) e.written();
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** True once sent; false when it failed while closing. */
  private async sendWithRetry(messages: OutgoingMessage[]): Promise<boolean> {
    let delay = this.retryMs.initial;
    for (let attempt = 1; ; attempt++) {
      try {
        if (messages.length) await this.opts.send(messages);
        return true;
      } catch (err) {
        if (this.closing) return false;
        this.opts.onRetry(err, attempt, delay);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          this.wakeRetry = () => { clearTimeout(t); resolve(); };
        });
        this.wakeRetry = undefined;
        if (this.closing) return false;
        delay = Math.min(delay * 2, this.retryMs.max);
      }
    }
  }
}
