import { auditIDForSpans } from '@kube-correlate/audit';
import { decodeCorrelated, type CorrelatorOutput, type TraceUpdate } from '@kube-correlate/correlator';
import { topicSpec, type Consumer, type ConsumedMessage, type KafkaClient } from '@kube-correlate/kafka';
import { attrString, decodeTraceRequest, OtlpDecodeError, type Span } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger, type Logger } from '@kube-correlate/telemetry';
import { AUDIT_ID } from '@kube-correlate/semconv';
import { ObjectSetSharing, type ObjectSetSharingOptions } from './objset-partition.js';
import type { TraceStore } from './trace-store.js';

export interface KafkaStoreLoaderOptions {
  client: KafkaClient;
  store: TraceStore;
  topic?: string;
  groupId?: string;
  metrics?: PipelineMetrics;
  logger?: Logger;
  /**
   * Object sets partitioned over the store instances (objset-partition.ts): the objects table and
   * the object-set requests topics. Absent: this instance derives and exports every object set
   * from what it reads (one instance per cluster).
   */
  objectSets?: Omit<ObjectSetSharingOptions, 'client' | 'store' | 'groupId' | 'metrics' | 'logger'>;
}

/**
 * `correlate store`: fills the embedded store from `otlp_correlated`. Each batch is written in
 * one transaction and its offsets committed after, so a crash re-reads at most the batch in
 * flight, which the store's keys deduplicate. The derived audit spans become audit events again
 * and the attributes the correlator added are dropped, so trees read back are the embedded mode's.
 * With `objectSets`, object sets are shared with the other instances (objset-partition.ts): each
 * batch's objects and requests are published, and acknowledged, before its offsets are committed.
 */
export class KafkaStoreLoader {
  private consumer: Consumer | undefined;
  private sharing: ObjectSetSharing | undefined;
  private stopped = false;

  constructor(private readonly opts: KafkaStoreLoaderOptions) {}

  /** The object-set sharing of this instance (with `objectSets`, once started). */
  get objectSets(): ObjectSetSharing | undefined {
    return this.sharing;
  }

  async start(): Promise<void> {
    const topic = this.opts.topic ?? 'otlp_correlated';
    // Created here too when missing, so the store may start before the correlators.
    const admin = await this.opts.client.admin();
    try {
      await admin.ensureTopics([topicSpec(topic)]);
    } finally {
      await admin.disconnect();
    }
    const groupId = this.opts.groupId ?? 'kube-correlate-store';
    if (this.opts.objectSets) {
      const { client, store, metrics, logger } = this.opts;
      this.sharing = new ObjectSetSharing({ ...this.opts.objectSets, client, store, groupId, ...(metrics ? { metrics } : {}), ...(logger ? { logger: logger.child({ component: 'objset-sharing' }) } : {}) });
      await this.sharing.start();
    }
    this.consumer = await this.opts.client.consumer({ groupId, topics: [topic] });
    await this.consumer.run((batch) => this.onBatch(batch));
  }

  private async onBatch(batch: ConsumedMessage[]): Promise<void> {
    const metrics = this.opts.metrics ?? new PipelineMetrics();
    const logger = this.opts.logger ?? silentLogger();
    const spans: Span[] = [];
    for (const m of batch) {
      try {
        spans.push(...decodeTraceRequest(m.value ?? new Uint8Array()).spans);
      } catch (err) {
        if (!(err instanceof OtlpDecodeError)) throw err;
        metrics.receiverRefused.inc({ receiver: 'kafka', reason: 'malformed_protobuf' });
        logger.warn({ topic: m.topic, partition: m.partition, offset: m.offset }, `skipping undecodable message: ${err.message}`);
      }
    }
    const output = correlatedToOutput(spans);
    const traces = output.traces;
    const unjoined = output.unjoinedAuditEvents;
    this.opts.store.writeSync(output);
    // The objects and requests this batch brought, to the shared topics: acknowledged before the offsets are committed.
    await this.sharing?.publish(output);
    metrics.receiverItems.inc({ receiver: 'kafka', signal: 'traces' }, traces.length);
    // How many audit events the correlators joined to their trace, and how many they could not.
    metrics.receiverItems.inc({ receiver: 'kafka', signal: 'audit_events_joined' }, traces.reduce((n, t) => n + t.auditEvents.length, 0));
    metrics.receiverItems.inc({ receiver: 'kafka', signal: 'audit_events_unjoined' }, unjoined.length);
    const last = batch[batch.length - 1];
    if (last && !this.stopped) await this.consumer!.commit([{ topic: last.topic, partition: last.partition, offset: String(Number(last.offset) + 1) }]);
  }

  /** Safe twice. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.consumer?.disconnect().catch(() => undefined);
    await this.sharing?.stop();
  }
}

/**
 * Spans in the `otlp_correlated` form (from Kafka, or read back from Jaeger) as the correlator
 * output they came from: received spans and joined audit events per trace, unjoined audit events.
 * Object-set spans are dropped: object sets are rebuilt from the audit events.
 */
export function correlatedToOutput(spans: readonly Span[]): CorrelatorOutput {
  const d = decodeCorrelated(spans);
  const traces = new Map<string, TraceUpdate>();
  const update = (traceId: string) => {
    let t = traces.get(traceId);
    if (!t) traces.set(traceId, (t = { traceId, spans: [], auditEvents: [], auditIds: [], reason: 'idle' }));
    return t;
  };
  for (const s of d.spans) {
    const t = update(s.traceId);
    t.spans.push(s);
    const id = attrString(s.attributes, AUDIT_ID);
    if (id && !t.auditIds.includes(id)) t.auditIds.push(id);
  }
  for (const [traceId, events] of d.joined) {
    const t = update(traceId);
    t.auditEvents.push(...events);
    for (const e of events) {
      const id = auditIDForSpans(e.auditID);
      if (!t.auditIds.includes(id)) t.auditIds.push(id);
    }
  }
  return { traces: [...traces.values()], unjoinedAuditEvents: d.unjoined, apiOperations: d.apiOperations };
}
