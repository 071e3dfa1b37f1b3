import type { CommitOffset, ConsumedMessage, Consumer, KafkaLogger } from './client.js';
import { toKafkaError, type ConnectionSecurity } from './errors.js';

/**
 * One member of the group, as a client library provides it: it joins, delivers batches until it
 * fails, commits, and closes. SupervisedConsumer makes a new one after each failure.
 */
export interface ConsumerSession {
  /**
   * Joins the group and starts delivering. Resolves once joined (delivery goes on in the
   * background); rejects when the join fails. `deliver` is awaited before the next batch. After
   * start resolved, any failure of the library's consumer is reported with `fail`.
   */
  start(hooks: SessionHooks): Promise<void>;
  commit(offsets: CommitOffset[]): Promise<void>;
  /** Leaves the group and closes the connections; bounded in time by the session. */
  close(): Promise<void>;
}

export interface SessionHooks {
  deliver(batch: ConsumedMessage[]): Promise<void>;
  fail(err: unknown): void;
  assigned(assignment: Record<string, number[]>): void;
}

export interface SupervisorOptions {
  groupId: string;
  /** 'kafkajs' or 'platformatic', for the logs. */
  library: string;
  logger?: KafkaLogger;
  backoffMs?: { initial: number; max: number };
  /** For hints in connection errors. */
  security?: ConnectionSecurity;
  /** Longest wait for a session's close before starting the next one. Default 15 s. */
  closeTimeoutMs?: number;
}

const sleep = (ms: number, signal: { wake?: () => void }) => new Promise<void>((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.wake = () => { clearTimeout(t); resolve(); };
});

/**
 * The consumer loop both libraries run under, so that a consumer never stops silently.
 *
 * kafkajs restarts its consumer only after retriable errors: an `eachBatch` that throws a TypeError,
 * or a broker error kafkajs deems final, leaves the process alive and the consumer gone for good (a
 * 2-correlator run against Kafka 4.2.0 stalled so for minutes). @platformatic/kafka ends its
 * message stream on any fetch error and leaves the group when a rejoin fails. Here every such end
 * — a handler error, a library crash, a stream that ends — is logged at error level with what
 * happens next, the session is closed, and after a backoff (doubling up to `max`, back to `initial`
 * once a batch was handled) a new session rejoins the group and reads on from the committed offsets.
 */
export class SupervisedConsumer implements Consumer {
  private onBatch: ((messages: ConsumedMessage[]) => Promise<void>) | undefined;
  private session: ConsumerSession | undefined;
  private readonly listeners: Array<(a: Record<string, number[]>) => void> = [];
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly napper: { wake?: () => void } = {};
  private wakeFailure: ((err: unknown) => void) | undefined;
  private delivering: Promise<void> | undefined;
  private restartCount = 0;
  private readonly backoff: { initial: number; max: number };
  private nextBackoff: number;

  constructor(private readonly makeSession: () => ConsumerSession, private readonly opts: SupervisorOptions) {
    this.backoff = opts.backoffMs ?? { initial: 1000, max: 30_000 };
    this.nextBackoff = this.backoff.initial;
  }

  get restarts(): number {
    return this.restartCount;
  }

  run(onBatch: (messages: ConsumedMessage[]) => Promise<void>): Promise<void> {
    if (this.onBatch) return Promise.reject(new Error('consumer.run was called twice'));
    this.onBatch = onBatch;
    let firstAttempt!: () => void;
    const attempted = new Promise<void>((r) => { firstAttempt = r; });
    this.loop = this.supervise(firstAttempt);
    return attempted;
  }

  private async supervise(firstAttempt: () => void): Promise<void> {
    const { logger, groupId, library } = this.opts;
    while (!this.stopped) {
      const session = this.makeSession();
      this.session = session;
      let failed = false;
      const failure = new Promise<unknown>((resolve) => {
        this.wakeFailure = (err) => {
          if (failed) return;
          failed = true;
          resolve(err);
        };
      });
      const fail = (err: unknown) => this.wakeFailure?.(err);
      let err: unknown;
      try {
        await session.start({
          deliver: async (batch) => {
            // Nothing more reaches the handler from a session that failed: its successor re-reads.
            if (failed || this.stopped || batch.length === 0) return;
            const run = (async () => {
              try {
                await this.onBatch!(batch);
                this.nextBackoff = this.backoff.initial;
              } catch (e) {
                const first = batch[0]!;
                fail(Object.assign(toKafkaError(e, `handling a batch of ${batch.length} message(s) from ${first.topic}[${first.partition}] at offset ${first.offset} failed`), { handler: true }));
              }
            })();
            this.delivering = run;
            await run;
          },
          fail,
          assigned: (a) => {
            if (failed || this.stopped) return;
            for (const cb of this.listeners) {
              try {
                cb(a);
              } catch (e) {
                logger?.error({ err: (e as Error).message, groupId }, 'Kafka consumer: an assignment listener threw');
              }
            }
          },
        });
        firstAttempt();
        err = await failure;
      } catch (e) {
        firstAttempt();
        err = e;
      }
      this.wakeFailure = undefined;
      if (this.stopped) break;
      const delay = this.nextBackoff;
      this.nextBackoff = Math.min(this.backoff.max, this.nextBackoff * 2);
      this.restartCount++;
      const e = toKafkaError(err, `Kafka consumer of group ${groupId} (${library}) failed`, this.opts.security);
      logger?.error(
        { groupId, client: library, err: e.message, type: e.type, restarts: this.restartCount, restartInMs: delay },
        `Kafka consumer of group ${groupId} stopped: ${e.message}; closing it and rejoining the group in ${delay} ms (uncommitted messages are read again)`,
      );
      await this.closeSession(session);
      if (this.stopped) break;
      await sleep(delay, this.napper);
      if (!this.stopped) logger?.info({ groupId, client: library, restarts: this.restartCount }, `Kafka consumer of group ${groupId}: rejoining the group`);
    }
  }

  private async closeSession(session: ConsumerSession): Promise<void> {
    const timeoutMs = this.opts.closeTimeoutMs ?? 15_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        session.close(),
        new Promise<void>((_, reject) => { timer = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms`)), timeoutMs); }),
      ]);
    } catch (err) {
      this.opts.logger?.warn({ groupId: this.opts.groupId, err: (err as Error).message }, 'Kafka consumer: closing the failed consumer did not finish cleanly');
    } finally {
      clearTimeout(timer);
      if (this.session === session) this.session = undefined;
    }
  }

  async commit(offsets: CommitOffset[]): Promise<void> {
    if (offsets.length === 0) return;
    const s = this.session;
    if (!s) {
      throw new Error(this.stopped
        ? `Kafka consumer of group ${this.opts.groupId} was disconnected`
        : `Kafka consumer of group ${this.opts.groupId} is rejoining the group; commit again after the next batch`);
    }
    try {
      await s.commit(offsets);
    } catch (err) {
      throw toKafkaError(err, `committing offsets of group ${this.opts.groupId} failed`);
    }
  }

  onAssignment(cb: (assignment: Record<string, number[]>) => void): void {
    this.listeners.push(cb);
  }

  async disconnect(): Promise<void> {
    if (this.stopped) {
      await this.loop;
      return;
    }
    this.stopped = true;
    this.wakeFailure?.(new Error('disconnect'));
    this.napper.wake?.();
    // The batch in progress ends first: its commit must go through the member that read it.
    await this.delivering?.catch(() => undefined);
    const s = this.session;
    if (s) await this.closeSession(s);
    await this.loop;
  }
}
