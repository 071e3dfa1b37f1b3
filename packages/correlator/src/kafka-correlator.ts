import { describeRequests, type DescribeRequest } from './api-attributes.js';
import { InputProgress } from './input-progress.js';
import { OrderedOutbox } from './outbox.js';
import { TraceJoin, type JoinOutput, type TraceJoinOptions } from './trace-join.js';
import { auditEventJson, auditIDForSpans, DEFAULT_RULES, readAuditEventJson, readAuditEventValue, type AuditEvent, type ReadAuditEvent, type RedactionRules } from '@kube-correlate/audit';
import { defaultTopicSpecs, messageValueBytes, OffsetTracker, topicSpec, type Admin, type Consumer, type ConsumedMessage, type KafkaClient, type OutgoingMessage, type Producer } from '@kube-correlate/kafka';
import { encodeTraceRequest, OtlpDecodeError, scanTraceRequest, type RawSpan } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger, type Logger } from '@kube-correlate/telemetry';
import { encodeCorrelatedRaw, encodeUnjoinedAudit } from './correlated-format.js';
import { RAW_SPANS } from './span-model.js';

/**
 * The correlator in Kafka mode: a consumer group of any number of instances.
 *
 * Spans arrive keyed by trace id (`otlp_spans`), audit events keyed by auditID (`k8s_audit`). To
 * join them on one instance without any instance reading everything, two internal topics
 * repartition the audit side:
 *
 *   otlp_spans[p] ──span with audit-id X──> kc_audit_trace (key X): "X belongs to trace T, whose
 *                                            spans are in partition p, under span S"
 *   k8s_audit[q] + kc_audit_trace[q] ──────> kc_audit_by_trace, partition p (key T): the event
 *   otlp_spans[p] + kc_audit_by_trace[p] ──> trace T settles ──> otlp_correlated (key T)
 *
 * `kc_audit_trace` has as many partitions as `k8s_audit`, `kc_audit_by_trace` as many as
 * `otlp_spans`, and the group's assignor gives partition number p of every topic to one instance,
 * so each join is local. Events are forwarded to the partition where their trace's spans are, so
 * the join does not depend on how the spans' producer partitioned them.
 *
 * Delivery: a consumed message stays held until its output is durable (acks=all; what batches
 * produce goes through an ordered outbox, outbox.ts, which they do not wait on) and offsets are
 * committed only up to the lowest held one, so a crash or rebalance re-reads what was in flight and
 * rebuilds the state; the output may then repeat, and consumers of `otlp_correlated` deduplicate by
 * (trace id, span id). Audit events whose pairing arrives after the pairing state was lost (restart)
 * wait `pendingAuditTtlMs` and go out unjoined; the store still joins them to their trace.
 *
 * Waiting is decided by how far the input was read, not by wall-clock time alone (input-progress.ts;
 * the admin client's end offsets and the group's committed offsets, refreshed at each settle tick):
 *  - an audit event waiting for its pair goes out unjoined only once every span that was in
 *    `otlp_spans` (any partition, the group's committed offsets) up to `pendingAuditTtlMs` after
 *    the event was read has been processed and the pairs it produced on its `kc_audit_trace`
 *    partition have been read: a span consumer that lags (a starved instance) delays it instead of
 *    splitting the request from its trace;
 *  - an idle trace settles only once what could still bring its audit events was read: this
 *    instance's `k8s_audit` and `kc_audit_trace` partitions up to the trace's last update, then its
 *    `kc_audit_by_trace` partition up to what those forwarded: a catch-up that reads spans faster
 *    than the audit side writes each tree once instead of twice.
 *  Both waits end after `maxLagWaitMs` (counted in kube_correlate_correlator_lag_wait_exceeded_total).
 */
export interface KafkaCorrelatorTopics {
  spans: string;
  audit: string;
  /** Internal: auditID -> trace pairs. */
  auditTrace: string;
  /** Internal: audit events re-keyed by trace id. */
  auditByTrace: string;
  correlated: string;
}

export const DEFAULT_KAFKA_CORRELATOR_TOPICS: KafkaCorrelatorTopics = {
  spans: 'otlp_spans',
  audit: 'k8s_audit',
  auditTrace: 'kc_audit_trace',
  auditByTrace: 'kc_audit_by_trace',
  correlated: 'otlp_correlated',
};

export interface KafkaCorrelatorOptions {
  /** Reads the input topics and creates the topics. */
  client: KafkaClient;
  /** Writes the internal topics and otlp_correlated (another connection's settings); default `client`. */
  producerClient?: KafkaClient;
  groupId?: string;
  topics?: Partial<KafkaCorrelatorTopics>;
  settleAfterMs?: number;
  pendingAuditTtlMs?: number;
  maxTracesInFlight?: number;
  /** The join's other caps (trace-join.ts): the same as in embedded mode. */
  maxSpansPerTrace?: TraceJoinOptions['maxSpansPerTrace'];
  maxSpansInFlight?: TraceJoinOptions['maxSpansInFlight'];
  maxBytesPerTrace?: TraceJoinOptions['maxBytesPerTrace'];
  maxBytesInFlight?: TraceJoinOptions['maxBytesInFlight'];
  /** auditID -> trace pairs remembered. */
  pairCacheSize?: number;
  /**
   * Longest an idle trace (beyond settleAfterMs) or a pending audit event (beyond pendingAuditTtlMs)
   * waits for a lagging input to be read. Default 10 x pendingAuditTtlMs.
   */
  maxLagWaitMs?: number;
  /** Partitions of otlp_spans and k8s_audit when this instance is the one creating them. Default 8. */
  defaultPartitions?: number;
  /** Retention of the internal topics. Default 1 day. */
  internalRetentionMs?: number;
  metrics?: PipelineMetrics;
  logger?: Logger;
  /** Names each audit request's API operation: adds k8s.api.operation_id / k8s.api.stability to its route span. */
  describeRequest?: DescribeRequest;
  /** Time and timers; default the real ones (tests pass a manual clock). */
  clock?: CorrelatorClock;
  /**
   * Applied to every audit event read from the audit topic (and from kc_audit_by_trace) before it is
   * held, forwarded or written out: the collector redacts before producing, this covers whatever
   * else produced to the topic. Default: the default rules (Secret data/stringData, TokenReview and
   * TokenRequest tokens).
   */
  redactionRules?: RedactionRules;
}

type Held = [topic: string, partition: number, offset: number];

/** What the driver reads the time from and sets its timers with. */
export interface CorrelatorClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock; its timers do not keep the process alive (the consumer does). */
export const SYSTEM_CLOCK: CorrelatorClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

interface PendingAudit {
  events: Map<string, AuditEvent>;
  held: Held[];
  partition: number;
  lastUpdate: number;
}

interface Pair {
  traceId: string;
  partition: number;
  spanId: string;
}

const MAX_MESSAGES_PER_SEND = 500;
/** The due timer fires at most this often (traces due within it settle together, at most this late). */
const DUE_GAP_MS = 20;
/**
 * Bytes of message values per produce call. Both client libraries make one record batch per partition of a call,
 * and the broker refuses a batch over the topic's max.message.bytes (1 MiB by default) whole, with
 * a non-retriable MESSAGE_TOO_LARGE: a catch-up that settles hundreds of trees at once must not
 * gather them into one call.
 */
const MAX_BYTES_PER_SEND = 512 * 1024;

function isTooLarge(err: unknown): boolean {
  const e = err as { type?: string; cause?: { type?: string }; message?: string } | undefined;
  return e?.type === 'MESSAGE_TOO_LARGE' || e?.cause?.type === 'MESSAGE_TOO_LARGE' || /larger than the max message size/.test(e?.message ?? '');
}

export class KafkaCorrelator {
  readonly topics: KafkaCorrelatorTopics;
  private readonly metrics: PipelineMetrics;
  private readonly logger: Logger;
  private readonly settleAfterMs: number;
  private readonly pendingTtlMs: number;
  private readonly pairCacheSize: number;
  private readonly maxLagWaitMs: number;
  private readonly groupId: string;
  private readonly tracker = new OffsetTracker();
  /** How far the input was read, as times: what the waits are decided by. */
  private readonly progress = new InputProgress();
  /** For end and committed offsets; opened by the first refresh, and again after a failure. */
  private admin: Admin | undefined;
  private spansPartitions = 0;
  private owned: Record<string, number[]> = {};
  private refreshFailing = false;
  /** When the batch being applied started (its spans' last update); undefined between batches. */
  private batchStartedAt: number | undefined;
  /**
   * What the batches produce (pairs, forwarded audit events), queued while a produce call is in
   * flight and sent together in the next one (outbox.ts's OrderedOutbox): a batch goes on without
   * waiting for its produce's round trip, and its offsets count as read (committable, and for the
   * input's progress) only once what it produced is durable, in the order the batches came.
   */
  private readonly outbox: OrderedOutbox;
  /** A settle tick (offsets refresh, then settle) is running: the timer skips. */
  private ticking = false;
  /** The trace side: spans of otlp_spans[p] and audit events forwarded to kc_audit_by_trace[p]. Tokens are offsets. */
  private readonly join: TraceJoin<Held, RawSpan>;
  /** The audit side: events of k8s_audit[q] waiting for their auditID's pair (kc_audit_trace[q]). */
  private readonly pending = new Map<string, PendingAudit>();
  private readonly pairs = new Map<string, Pair & { sourcePartition: number }>();
  /** Settled output whose produce failed: produced again, first, at the next settle. */
  private unsent: Array<{ messages: OutgoingMessage[]; released: Held[] }> = [];
  /** (trace id, auditID) pairs already announced on kc_audit_trace (an LRU): each is sent once, not per span. */
  private readonly announced = new Set<string>();
  private producer: Producer | undefined;
  private consumer: Consumer | undefined;
  private readonly clock: CorrelatorClock;
  /** The input-progress tick (refresh, then settle): every settleAfterMs / 4, within 20..1000 ms. */
  private tickTimer: unknown;
  private tickMs = 1000;
  private tickRun: Promise<void> = Promise.resolve();
  /** The timer set to the join's next due time (nextDue), and the time it fires. */
  private dueTimer: unknown;
  private dueAt = Infinity;
  /**
   * When the due timer last fired, and how long its settle took: it fires at most every
   * DUE_GAP_MS, or twice that settle's time when longer (a slow broker), so traces due close
   * together settle in one write and the batches, which wait for the same lock, keep most of it.
   */
  private lastDueFire = -Infinity;
  private lastDueCost = 0;
  private dueRun: Promise<void> = Promise.resolve();
  /** One settle at a time, and none while a batch is being applied. */
  private lock: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(private readonly opts: KafkaCorrelatorOptions) {
    this.topics = { ...DEFAULT_KAFKA_CORRELATOR_TOPICS, ...opts.topics };
    this.metrics = opts.metrics ?? new PipelineMetrics();
    this.logger = opts.logger ?? silentLogger();
    this.settleAfterMs = opts.settleAfterMs ?? 5000;
    this.pendingTtlMs = opts.pendingAuditTtlMs ?? 30000;
    this.pairCacheSize = opts.pairCacheSize ?? 200000;
    this.maxLagWaitMs = opts.maxLagWaitMs ?? 10 * this.pendingTtlMs;
    this.groupId = opts.groupId ?? 'kube-correlate-correlator';
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.outbox = new OrderedOutbox({
      send: (messages) => this.send(messages),
      onRetry: (err, attempt, delayMs) => {
        this.metrics.exporterFailed.inc({ exporter: 'kafka/correlator_repartition', reason: 'retried' });
        if (attempt === 1 || attempt % 10 === 0) this.logger.warn({ err, attempt, delayMs }, 'producing pairs or forwarded audit events failed; retrying (the batches behind it wait, nothing is committed past them)');
      },
    });
    this.join = new TraceJoin<Held, RawSpan>({
      // Spans are held as their bytes plus what the join reads (scanTraceRequest), and written out by splicing.
      spanModel: RAW_SPANS,
      settleAfterMs: this.settleAfterMs,
      // Pairing waits on the audit side (pendingTtlMs); the trace side never waits for audit by auditID.
      pendingAuditTtlMs: this.pendingTtlMs,
      ...(opts.maxTracesInFlight !== undefined ? { maxTracesInFlight: opts.maxTracesInFlight } : {}),
      ...(opts.maxSpansPerTrace !== undefined ? { maxSpansPerTrace: opts.maxSpansPerTrace } : {}),
      ...(opts.maxSpansInFlight !== undefined ? { maxSpansInFlight: opts.maxSpansInFlight } : {}),
      ...(opts.maxBytesPerTrace !== undefined ? { maxBytesPerTrace: opts.maxBytesPerTrace } : {}),
      ...(opts.maxBytesInFlight !== undefined ? { maxBytesInFlight: opts.maxBytesInFlight } : {}),
      auditIndexSize: this.pairCacheSize,
      maxLagWaitMs: this.maxLagWaitMs,
      metrics: this.metrics,
      ...(opts.describeRequest ? { describeRequest: opts.describeRequest } : {}),
      onHold: (([t, p, o]: Held) => this.tracker.hold(t, p, o)) as (t: never) => void,
    });
  }

  /** Creates the internal and output topics when missing, joins the group and starts consuming. */
  async start(): Promise<void> {
    const { client } = this.opts;
    const t = this.topics;
    const admin = await client.admin();
    try {
      // Whichever process starts first creates the shared topics, so start order does not matter.
      await admin.ensureTopics(defaultTopicSpecs({ spans: t.spans, audit: t.audit }, this.opts.defaultPartitions ?? 8));
      const spansPartitions = await admin.partitionCount(t.spans);
      this.spansPartitions = spansPartitions;
      const auditPartitions = await admin.partitionCount(t.audit);
      const retention = this.opts.internalRetentionMs ?? 24 * 3600 * 1000;
      const created = await admin.ensureTopics([
        topicSpec(t.auditTrace, auditPartitions, retention),
        topicSpec(t.auditByTrace, spansPartitions, retention),
        topicSpec(t.correlated, spansPartitions),
      ]);
      if (created.length) this.logger.info({ topics: created }, 'created correlator topics');
      for (const [name, want] of [[t.auditTrace, auditPartitions], [t.auditByTrace, spansPartitions]] as const) {
        const have = await admin.partitionCount(name);
        if (have !== want) throw new Error(`topic ${name} has ${have} partitions but must have ${want}, as many as ${name === t.auditTrace ? t.audit : t.spans}: recreate it`);
      }
    } finally {
      await admin.disconnect();
    }
    this.producer = await (this.opts.producerClient ?? client).producer();
    this.consumer = await client.consumer({
      groupId: this.groupId,
      topics: [t.spans, t.audit, t.auditTrace, t.auditByTrace],
      coPartitioned: true,
    });
    this.consumer.onAssignment((a) => this.onAssignment(a));
    await this.consumer.run((batch) => this.serialize(() => this.onBatch(batch)));
    this.tickMs = Math.max(20, Math.min(1000, Math.floor(this.settleAfterMs / 4)));
    this.scheduleTick();
  }

  /**
   * Two timers settle. The tick reads the input's progress (admin round trips) and settles: what
   * waits for lagging input (and the audit side's pending events) is let go by it. The due timer
   * is set to the join's next due time and settles then, so an idle trace whose input is read goes
   * out at its due time, not up to a tick later.
   */
  private scheduleTick(): void {
    if (this.stopping) return;
    this.tickTimer = this.clock.setTimeout(() => {
      this.scheduleTick();
      if (this.ticking) return;
      this.ticking = true;
      // The offsets are read outside the lock, so batches are not held up by the admin's round trips.
      this.tickRun = this.refreshProgress()
        .then(() => this.serialize(() => this.settle(false)))
        .catch((err: unknown) => this.logger.error({ err }, 'settle failed; will retry'))
        .finally(() => { this.ticking = false; });
    }, this.tickMs);
  }

  /**
   * Sets the due timer to the join's next due time (at most every DUE_GAP_MS), unless one as early
   * is set. Its settle does not commit (the tick does): with hundreds of traces due per second, a
   * commit round trip each would hold the batches up.
   */
  private armDue(): void {
    if (this.stopping) return;
    const next = this.join.nextDue();
    if (next === undefined) return;
    const at = Math.max(next, this.lastDueFire + Math.max(DUE_GAP_MS, 2 * this.lastDueCost));
    if (at >= this.dueAt) return;
    if (this.dueTimer !== undefined) this.clock.clearTimeout(this.dueTimer);
    this.dueAt = at;
    this.dueTimer = this.clock.setTimeout(() => {
      this.dueTimer = undefined;
      this.dueAt = Infinity;
      this.lastDueFire = this.clock.now();
      // settle() sets the timer again; after a failure the tick retries (no tight loop while the broker is away).
      this.dueRun = this.serialize(async () => {
        const started = this.clock.now();
        try {
          await this.settle(false, false);
        } finally {
          this.lastDueCost = this.clock.now() - started;
        }
      }).catch((err: unknown) => this.logger.error({ err }, 'settle failed; will retry'));
    }, Math.max(0, at - this.clock.now()));
  }

  /** For tests: resolves once the settles and offset reads started so far are done and their output is written. */
  async idle(): Promise<void> {
    await Promise.all([this.tickRun, this.dueRun]);
    await this.lock;
    await this.outbox.drain();
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.then(() => undefined, () => undefined);
    return run;
  }

  private async onBatch(batch: ConsumedMessage[]): Promise<void> {
    if (batch.length === 0) return;
    const { topic, partition } = batch[0]!;
    const now = this.clock.now();
    this.batchStartedAt = now;
    try {
      await this.applyBatch(batch, topic, partition, now);
    } finally {
      this.batchStartedAt = undefined;
    }
  }

  /** When the oldest batch whose output is not durable yet started (in progress or in the outbox). */
  private oldestUnwritten(): number {
    return Math.min(this.batchStartedAt ?? Infinity, this.outbox.oldest());
  }

  private async applyBatch(batch: ConsumedMessage[], topic: string, partition: number, now: number): Promise<void> {
    const out: OutgoingMessage[] = [];
    const afterSend: Held[] = [];
    for (const m of batch) {
      const offset = Number(m.offset);
      if (topic === this.topics.spans) this.onSpans(m, offset, now, out);
      else if (topic === this.topics.audit) this.onAudit(m, offset, now, out);
      else if (topic === this.topics.auditTrace) this.onPair(m, out, afterSend);
      else if (topic === this.topics.auditByTrace) this.onForwarded(m, offset, now);
    }
    const last = Number(batch[batch.length - 1]!.offset);
    await this.outbox.add(out, now, {
      written: () => {
        for (const [t, p, o] of afterSend) this.tracker.release(t, p, o);
        // A partition given away meanwhile (a rebalance while this was in flight) is the new owner's to commit.
        if (!this.owned[topic]?.includes(partition)) return;
        this.tracker.seen(topic, partition, last);
        this.progress.seen(topic, partition, last + 1);
      },
      // Never `written` when dropped (the correlator stopped while the broker refused it): its
      // offsets stay uncommitted, and the next owner reads the batch again.
    });
    // A cap settled data early: write it now rather than at the next tick.
    if (this.join.earlyCount() >= 500) await this.settle(false);
    this.armDue();
    this.updateGauges();
  }

  private onSpans(m: ConsumedMessage, offset: number, now: number, out: OutgoingMessage[]): void {
    let spans: RawSpan[];
    try {
      const decoded = scanTraceRequest(ownBytes(m.value));
      spans = decoded.spans;
      if (decoded.rejected.length) this.metrics.receiverRefused.inc({ receiver: 'kafka', reason: 'invalid_span' }, decoded.rejected.length);
    } catch (err) {
      if (!(err instanceof OtlpDecodeError)) throw err;
      this.metrics.receiverRefused.inc({ receiver: 'kafka', reason: 'malformed_protobuf' });
      this.logger.warn({ topic: m.topic, partition: m.partition, offset: m.offset }, `skipping undecodable message: ${err.message}`);
      return;
    }
    this.metrics.receiverItems.inc({ receiver: 'kafka', signal: 'spans' }, spans.length);
    // Each auditID seen here for the first time is paired with this trace, on the audit side.
    for (const s of spans) {
      const auditId = s.auditId;
      if (!auditId) continue;
      const key = `${s.traceId}/${auditId}`;
      if (this.announced.has(key)) continue;
      this.announced.add(key);
      if (this.announced.size > this.pairCacheSize) this.announced.delete(this.announced.values().next().value as string);
      const pair: Pair = { traceId: s.traceId, partition: m.partition, spanId: s.spanId };
      out.push({ topic: this.topics.auditTrace, key: auditId, value: JSON.stringify(pair) });
    }
    this.join.addSpans(spans, now, [m.topic, m.partition, offset], m.value?.byteLength ?? 0, m.partition);
  }

  private onAudit(m: ConsumedMessage, offset: number, now: number, out: OutgoingMessage[]): void {
    const event = this.parseAudit(m);
    if (!event) return;
    this.metrics.receiverItems.inc({ receiver: 'kafka', signal: 'audit_events' });
    const id = auditIDForSpans(event.auditID);
    const pair = this.pairs.get(id);
    if (pair) {
      out.push(forward(this.topics.auditByTrace, pair, event));
      return;
    }
    let p = this.pending.get(id);
    if (!p) this.pending.set(id, (p = { events: new Map(), held: [], partition: m.partition, lastUpdate: now }));
    p.lastUpdate = now;
    const key = `${event.auditID}/${event.stage}`;
    if (p.events.has(key)) this.metrics.duplicates.inc({ kind: 'audit_event' });
    else p.events.set(key, event);
    p.held.push([m.topic, m.partition, offset]);
    this.tracker.hold(m.topic, m.partition, offset);
  }

  private onPair(m: ConsumedMessage, out: OutgoingMessage[], afterSend: Held[]): void {
    let pair: Pair;
    try {
      pair = JSON.parse(m.value?.toString('utf8') ?? '') as Pair;
    } catch {
      this.logger.warn({ topic: m.topic, offset: m.offset }, 'skipping unreadable pair message');
      return;
    }
    const id = m.key?.toString('utf8') ?? '';
    if (!this.pairs.has(id)) this.metrics.joined.inc();
    this.pairs.delete(id);
    this.pairs.set(id, { ...pair, sourcePartition: m.partition });
    if (this.pairs.size > this.pairCacheSize) this.pairs.delete(this.pairs.keys().next().value as string);
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    for (const e of p.events.values()) out.push(forward(this.topics.auditByTrace, pair, e));
    afterSend.push(...p.held); // released once the forwarded copies are durable
  }

  private onForwarded(m: ConsumedMessage, offset: number, now: number): void {
    const text = m.value?.toString('utf8') ?? '';
    let read: ReadAuditEvent;
    let anchor: string;
    const fast = FORWARDED_HEAD.exec(text);
    const inner = fast && text.endsWith('}') ? readAuditEventJson(text.slice(fast[0].length, -1), this.rules) : undefined;
    if (fast && inner && !('error' in inner && inner.error === 'invalid_json')) {
      // As forward() writes it: the event's text is the message's tail, read (and redacted) on its own.
      anchor = fast[1]!;
      read = inner;
    } else {
      // Any other layout (another writer, an older version): the message parsed whole, the event re-serialized.
      let msg: { event?: unknown; anchor?: unknown };
      try {
        msg = JSON.parse(text) as { event?: unknown; anchor?: unknown };
      } catch {
        this.logger.warn({ topic: m.topic, offset: m.offset }, 'skipping unreadable forwarded audit message');
        return;
      }
      anchor = typeof msg?.anchor === 'string' ? msg.anchor : '';
      read = readAuditEventValue(msg?.event, this.rules);
    }
    if ('error' in read) return;
    this.countRedactions(read);
    const traceId = m.key?.toString('utf8') ?? '';
    this.join.addTraceAudit(traceId, [read.event], anchor, now, [m.topic, m.partition, offset], m.value?.byteLength ?? 0, m.partition);
  }

  /** An audit event of k8s_audit: validated, redacted and held as its text (readAuditEventJson). */
  private parseAudit(m: ConsumedMessage): AuditEvent | undefined {
    const read = readAuditEventJson(m.value?.toString('utf8') ?? '', this.rules);
    if ('error' in read) {
      this.metrics.receiverRefused.inc({ receiver: 'kafka', reason: read.error });
      this.logger.warn({ topic: m.topic, partition: m.partition, offset: m.offset }, `skipping audit message: ${read.message}`);
      return undefined;
    }
    this.countRedactions(read);
    return read.event;
  }

  private get rules(): RedactionRules {
    return this.opts.redactionRules ?? DEFAULT_RULES;
  }

  private countRedactions(read: { redactions: ReadonlyArray<{ rule: string }> }): void {
    for (const x of read.redactions) this.metrics.auditRedactions.inc({ rule: x.rule });
  }

  /**
   * Writes idle traces (all, when `all`) and expired pending audits to otlp_correlated, then commits
   * (not when `commit` is false: the due timer's settles leave that to the tick).
   * Output whose produce failed is kept and produced first next time (its input stays held, so
   * uncommitted, until it is durable); the sinks deduplicate what a retry repeats. A settle's
   * produce call goes beside the outbox's (not through it: waiting behind the batches' output
   * would delay every tree by a round trip).
   */
  private async settle(all: boolean, commit = true): Promise<void> {
    while (this.unsent.length) {
      const first = this.unsent[0]!;
      await this.send(first.messages);
      this.unsent.shift();
      for (const [t, p, o] of first.released) this.tracker.release(t, p, o);
    }
    const now = this.clock.now();
    // An idle trace waits while its audit side lags (see the header).
    const ready = (partition: number, lastUpdate: number) => this.progress.covered('byTrace', partition) >= lastUpdate;
    const joined: JoinOutput<Held, RawSpan> = this.join.settle(now, all, ready);
    const released: Held[] = [...joined.released];
    const expired: PendingAudit[] = [];
    for (const [id, p] of [...this.pending]) {
      const waited = now - p.lastUpdate;
      if (!all && waited < this.pendingTtlMs) break;
      // Out unjoined only once the spans that could still pair it were read (see the header).
      if (!all && this.progress.covered('pairs', p.partition) < p.lastUpdate + this.pendingTtlMs) {
        if (waited < this.pendingTtlMs + this.maxLagWaitMs) continue;
        this.metrics.lagWaitExceeded.inc({ kind: 'pending_audit' });
      }
      this.pending.delete(id);
      expired.push(p);
      released.push(...p.held);
    }
    const messages: OutgoingMessage[] = joined.traces.map((t) => ({
      topic: this.topics.correlated,
      key: t.traceId,
      value: encodeCorrelatedRaw(t.traceId, t.spans, t.auditEvents, t.anchors, joined.apiOperations),
    }));
    if (expired.length) {
      const events = expired.flatMap((p) => [...p.events.values()]);
      for (const s of encodeUnjoinedAudit(events, describeRequests(events, this.opts.describeRequest))) {
        messages.push({ topic: this.topics.correlated, key: s.traceId, value: encodeTraceRequest([s]) });
      }
    }
    try {
      await this.send(messages);
    } catch (err) {
      this.unsent.push({ messages, released });
      throw err;
    }
    for (const [t, p, o] of released) this.tracker.release(t, p, o);
    if (commit) await this.commit();
    this.armDue();
    this.updateGauges();
  }

  private async commit(): Promise<void> {
    const offsets = this.tracker.commitable();
    if (offsets.length) await this.consumer?.commit(offsets);
  }

  /** Produces in calls of at most MAX_MESSAGES_PER_SEND messages and MAX_BYTES_PER_SEND bytes. */
  private async send(messages: OutgoingMessage[]): Promise<void> {
    let chunk: OutgoingMessage[] = [];
    let bytes = 0;
    for (const m of messages) {
      const size = messageValueBytes(m);
      if (chunk.length && (chunk.length >= MAX_MESSAGES_PER_SEND || bytes + size > MAX_BYTES_PER_SEND)) {
        await this.sendChunk(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(m);
      bytes += size;
    }
    if (chunk.length) await this.sendChunk(chunk);
  }

  /**
   * One produce call. A MESSAGE_TOO_LARGE is retried message by message (the topic's limit may be
   * below our chunk size); a single message the broker will never take is dropped, logged and
   * counted (exporter_failed_total{reason="message_too_large"}): retrying it would stall the
   * partition's commits for good, and every other trace with them.
   */
  private async sendChunk(chunk: OutgoingMessage[]): Promise<void> {
    try {
      await this.producer!.send(chunk);
    } catch (err) {
      if (!isTooLarge(err)) throw err;
      if (chunk.length > 1) {
        for (const m of chunk) await this.sendChunk([m]);
        return;
      }
      const m = chunk[0]!;
      this.metrics.exporterFailed.inc({ exporter: `kafka/${m.topic}`, reason: 'message_too_large' });
      this.logger.error({ topic: m.topic, key: m.key, bytes: messageValueBytes(m) }, 'Kafka refused a message as too large (the topic\'s max.message.bytes); dropped it');
    }
  }

  private onAssignment(owned: Record<string, number[]>): void {
    const t = this.topics;
    const keep = (topic: string, p: number) => owned[topic]?.includes(p) ?? false;
    // Traces are grouped by their partition number (spans and forwarded audit alike: co-partitioned).
    const dropped = this.join.forget((partition) => keep(t.spans, partition));
    for (const [id, p] of this.pending) if (!keep(t.audit, p.partition)) this.pending.delete(id);
    for (const [id, p] of this.pairs) if (!keep(t.auditTrace, p.sourcePartition)) this.pairs.delete(id);
    this.tracker.retain(owned);
    this.owned = owned;
    this.progress.retain(owned, ['spans']);
    this.logger.info({ assignment: owned, droppedTraces: dropped }, 'partitions assigned');
    this.updateGauges();
  }

  /**
   * Takes end-offset snapshots of the inputs and learns how far they were read (input-progress.ts),
   * in stages: each stage's snapshot is taken after what feeds it was found read, so reaching it
   * means what that read produced was read too. Runs beside the batches (positions only grow, and
   * a batch records its position once its output is sent); a snapshot standing for "now" stands
   * for the start of a batch in progress instead, as that batch's pairs may not be written yet. A failure
   * (the broker unreachable) leaves the progress where it was: nothing waiting is let go early, and
   * `maxLagWaitMs` still bounds the waits.
   */
  private async refreshProgress(): Promise<void> {
    if (this.stopping || !this.consumer) return;
    const t = this.topics;
    const p = this.progress;
    const now = Math.min(this.clock.now(), this.oldestUnwritten() - 1);
    try {
      // After a failure the admin client is made anew (its connections may be gone for good).
      let admin = this.admin;
      if (!admin) {
        admin = await this.opts.client.admin();
        if (this.stopping) {
          await admin.disconnect().catch(() => undefined);
          return;
        }
        this.admin = admin;
      }
      // Spans: every partition, through the group's committed offsets (another instance may own it).
      p.setCommitted(t.spans, await admin.committedOffsets(this.groupId, t.spans));
      for (const topic of [t.audit, t.auditTrace, t.auditByTrace]) {
        if ((this.owned[topic] ?? []).some((q) => !p.knows(topic, q))) p.setCommitted(topic, await admin.committedOffsets(this.groupId, topic));
      }
      const all = Array.from({ length: this.spansPartitions }, (_, i) => i);
      p.snapshot('spans', t.spans, await admin.endOffsets(t.spans), all, now);
      p.advance();
      const spansCovered = p.coveredAll('spans', all);
      const pairEnds = await admin.endOffsets(t.auditTrace);
      p.snapshot('pairs', t.auditTrace, pairEnds, this.owned[t.auditTrace] ?? [], spansCovered);
      p.snapshot('auditTrace', t.auditTrace, pairEnds, this.owned[t.auditTrace] ?? [], now);
      p.snapshot('audit', t.audit, await admin.endOffsets(t.audit), this.owned[t.audit] ?? [], now);
      p.advance();
      const auditCovered = Math.min(p.coveredAll('audit', this.owned[t.audit] ?? []), p.coveredAll('auditTrace', this.owned[t.auditTrace] ?? []));
      p.snapshot('byTrace', t.auditByTrace, await admin.endOffsets(t.auditByTrace), this.owned[t.auditByTrace] ?? [], auditCovered);
      p.advance();
      if (this.refreshFailing) this.logger.info({}, 'reading input offsets works again');
      this.refreshFailing = false;
    } catch (err) {
      const broken = this.admin;
      this.admin = undefined;
      void broken?.disconnect().catch(() => undefined);
      if (!this.refreshFailing) this.logger.warn({ err }, `reading input offsets failed: idle traces and pending audit events wait (at most max_lag_wait, ${this.maxLagWaitMs} ms)`);
      this.refreshFailing = true;
    }
  }

  private updateGauges(): void {
    // The join keeps its own gauges (traces, spans, bytes); pending audits here are the audit side's.
    this.metrics.pendingAudits.set(this.pending.size);
  }

  /** Settles and writes everything in flight, commits, leaves the group. Safe twice. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.tickTimer !== undefined) this.clock.clearTimeout(this.tickTimer);
    if (this.dueTimer !== undefined) this.clock.clearTimeout(this.dueTimer);
    // What the batches produced goes out first (a produce refused now is given up: those batches
    // stay uncommitted and are read again by the next owner); then everything settles and commits.
    await this.serialize(async () => {
      await this.outbox.close();
      await this.settle(true);
    }).catch((err: unknown) => this.logger.error({ err }, 'final settle failed; the next owner re-reads it'));
    await this.consumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
  }

  /** For tests and metrics. */
  stats(): { traces: number; pending: number; pairs: number; held: number } {
    return { traces: this.join.stats().tracesInFlight, pending: this.pending.size, pairs: this.pairs.size, held: this.tracker.heldCount() };
  }
}

/**
 * The message's bytes, in a buffer of their own: the spans held point into them, and a client's
 * message value is often a view into a whole fetch response, which they would otherwise keep alive.
 * One copy per message (its spans are one trace's, held and released together) costs less than a
 * copy per span: packages/correlator/bench/raw-spans.ts measures both.
 */
function ownBytes(value: Buffer | null): Uint8Array {
  if (!value) return new Uint8Array();
  if (value.byteOffset === 0 && value.byteLength === value.buffer.byteLength) return value;
  return new Uint8Array(value); // a copy into a new ArrayBuffer (not Node's shared Buffer pool)
}

/**
 * A kc_audit_by_trace message: `{"anchor":"<span id>","event":<the event's held text>}`, built
 * around the text instead of stringifying the event again (onForwarded reads the tail back as it is).
 */
function forward(topic: string, pair: Pair, event: AuditEvent): OutgoingMessage {
  return { topic, partition: pair.partition, key: pair.traceId, value: `{"anchor":${JSON.stringify(pair.spanId)},"event":${auditEventJson(event)}}` };
}

/** The head of a message forward() wrote (span ids are hex); what follows, up to the closing brace, is the event. */
const FORWARDED_HEAD = /^\{"anchor":"([0-9a-f]*)","event":/;
