import { auditIDForSpans, type AuditEvent } from '@kube-correlate/audit';
import { createKafkaClient, defaultTopicSpecs, KafkaError, type KafkaClient, type OutgoingMessage, type Producer } from '@kube-correlate/kafka';
import { encodeTraceRequest, spliceTraceRequest, splitTraceRequest, type RawSpan, type Span } from '@kube-correlate/otlp';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import { RAW_OTLP_REQUEST, type AuditConsumer, type KafkaTopicSink, type SpanConsumer } from '../../component/component.js';
import { RetryableError } from '../../component/errors.js';
import { DEFAULT_RETRY_DELAY_MS, fromKafkaError } from '../../component/status.js';
import { parseDuration } from '../../confmap/schema.js';
import type { KafkaExporterConfig } from './config.js';
import { kafkaClientOptions } from '../../internal/kafka-settings.js';

export interface KafkaExporterOptions {
  name: string;
  config: KafkaExporterConfig;
  metrics: PipelineMetrics;
  logger: Logger;
  /** For tests: a client other than the configured library's. */
  client?: KafkaClient;
}

/**
 * Spans to `otlp_spans` (OTLP ExportTraceServiceRequest protobuf, one trace per message, key =
 * trace id; the OpenTelemetry Collector's kafka exporter with `partition_traces_by_id` writes the
 * same key, in one message per trace per resource and scope, which the correlator reads alike)
 * and audit events to `k8s_audit` (one Event as JSON, key = auditID), acks=all.
 *
 * `consume*` resolves only when Kafka acknowledged every message, so receivers answer their
 * senders after the data is durable. When Kafka is slow or down, at most `sending_queue.queue_size`
 * requests wait (up to `timeout` each); past that, or past the timeout, the sender gets a
 * RetryableError (gRPC UNAVAILABLE, HTTP 503 + Retry-After) and retries: nothing is dropped
 * silently, and a retry after a timed-out send that did land is deduplicated downstream. What a
 * failed produce means is status.ts's `fromKafkaError`.
 *
 * In a pipeline of the correlator processor it only names the topic the Kafka correlator writes
 * (`claimTracesTopic`): it then opens no producer and creates no topics of its own.
 */
export class KafkaExporter implements SpanConsumer, AuditConsumer, KafkaTopicSink {
  private producer: Producer | undefined;
  private connecting: Promise<Producer> | undefined;
  private readonly client: KafkaClient;
  private readonly timeoutMs: number;
  private waiting = 0;
  private stopped = false;
  private readonly lingerMs: number;
  /** Messages of concurrent requests gathered for one produce call (producer.linger). */
  private batch: { messages: OutgoingMessage[]; waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> } | undefined;
  private batchTimer: NodeJS.Timeout | undefined;
  private claimed = false;

  constructor(private readonly opts: KafkaExporterOptions) {
    this.client = opts.client ?? createKafkaClient(kafkaClientOptions(opts.config, opts.logger));
    this.timeoutMs = parseDuration(opts.config.timeout);
    this.lingerMs = parseDuration(opts.config.producer.linger);
  }

  claimTracesTopic(): string {
    this.claimed = true;
    return this.opts.config.traces.topic;
  }

  producerClient(): KafkaClient {
    return this.client;
  }

  /** Creates missing topics and connects; a broker that is down at start is not fatal (sends retry the connection). */
  async start(): Promise<void> {
    const { config, logger, name } = this.opts;
    if (this.claimed) return;
    try {
      if (config.topics.create) {
        const admin = await this.client.admin();
        try {
          const created = await admin.ensureTopics(defaultTopicSpecs({ spans: config.traces.topic, audit: config.logs.topic }, config.topics.partitions));
          if (created.length) logger.info({ exporter: name, topics: created, partitions: config.topics.partitions }, 'created Kafka topics');
        } finally {
          await admin.disconnect();
        }
      }
      await this.connect();
      logger.info({ exporter: name, brokers: config.brokers }, 'Kafka exporter connected');
    } catch (err) {
      // Refused for good (SASL credentials, a TLS certificate, ACLs): a configuration error, not an outage.
      if (err instanceof KafkaError && !err.retriable) {
        logger.error({ exporter: name, err: err.message }, 'Kafka refused the connection');
        throw new Error(`exporters.${name}: ${err.message}`);
      }
      logger.warn({ exporter: name, err: (err as Error).message }, 'Kafka not reachable at start; receivers will refuse with retryable codes until it is');
    }
  }

  consumeSpans(spans: Span[]): Promise<void> {
    const topic = this.opts.config.traces.topic;
    // Straight from the OTLP/protobuf request when there is one: its bytes split by trace, a copy
    // of what the sender wrote, and no re-encode (see RAW_OTLP_REQUEST; measured in the otlp-decode
    // and ingest benchmarks, npm run bench).
    const raw = RAW_OTLP_REQUEST.get(spans);
    if (raw) {
      const messages: OutgoingMessage[] = splitTraceRequest(raw).map((t) => ({ topic, key: t.traceId, value: t.request }));
      return this.send(messages, 'spans', spans.length);
    }
    const messages: OutgoingMessage[] = [...byTraceId(spans)].map(([traceId, list]) => ({ topic, key: traceId, value: encodeTraceRequest(list) }));
    return this.send(messages, 'spans', spans.length);
  }

  /**
   * Spans as the receiver scanned them (no span model): grouped by trace and written with their
   * own bytes (spliceTraceRequest), one message per trace, as consumeSpans writes a raw request.
   */
  consumeRawSpans(spans: RawSpan[]): Promise<void> {
    const topic = this.opts.config.traces.topic;
    const messages: OutgoingMessage[] = [...byTraceId(spans)].map(([traceId, list]) => ({ topic, key: traceId, value: spliceTraceRequest(list) }));
    return this.send(messages, 'spans', spans.length);
  }

  consumeAuditEvents(events: AuditEvent[]): Promise<void> {
    const topic = this.opts.config.logs.topic;
    // Keyed by the auditID as spans carry it (its first 64 bytes; the same for any ID kube-apiserver
    // makes), so the correlator's repartition topic, keyed from spans, lines up with this one.
    return this.send(events.map((e) => ({ topic, key: auditIDForSpans(e.auditID), value: JSON.stringify(e) })), 'audit_events', events.length);
  }

  private async send(messages: OutgoingMessage[], signal: string, items: number): Promise<void> {
    const { metrics, name } = this.opts;
    if (this.stopped) throw new RetryableError('collector is shutting down');
    if (this.waiting >= this.opts.config.sending_queue.queue_size) {
      metrics.exporterFailed.inc({ exporter: name, reason: 'queue_full' });
      throw new RetryableError(`Kafka exporter queue is full (${this.waiting} requests waiting on Kafka)`, 2 * DEFAULT_RETRY_DELAY_MS, { reason: 'queue_full' });
    }
    this.waiting++;
    metrics.exporterQueue.set({ exporter: name }, this.waiting);
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new RetryableError(`Kafka did not acknowledge within ${this.opts.config.timeout}`, DEFAULT_RETRY_DELAY_MS, { reason: 'timeout' })), this.timeoutMs);
      });
      await Promise.race([this.produce(messages), timeout]);
      metrics.exporterSent.inc({ exporter: name, signal }, items);
    } catch (err) {
      const failure = fromKafkaError(err);
      metrics.exporterFailed.inc({ exporter: name, reason: failure.reason });
      if (failure !== err) {
        this.opts.logger.warn({ exporter: name, err: (err as Error).message }, 'Kafka send failed');
        // A broken connection is rebuilt on the next send.
        this.producer = undefined;
      }
      throw failure;
    } finally {
      clearTimeout(timer);
      this.waiting--;
      metrics.exporterQueue.set({ exporter: name }, this.waiting);
    }
  }

  /** One produce call per request, or per gathered batch when producer.linger is set. */
  private produce(messages: OutgoingMessage[]): Promise<void> {
    if (this.lingerMs <= 0) return this.connect().then((p) => p.send(messages));
    return new Promise((resolve, reject) => {
      if (!this.batch) {
        this.batch = { messages: [], waiters: [] };
        this.batchTimer = setTimeout(() => this.flushBatch(), this.lingerMs);
      }
      this.batch.messages.push(...messages);
      this.batch.waiters.push({ resolve, reject });
      if (this.batch.messages.length >= this.opts.config.producer.max_batch_messages) this.flushBatch();
    });
  }

  private flushBatch(): void {
    const b = this.batch;
    this.batch = undefined;
    clearTimeout(this.batchTimer);
    if (!b) return;
    this.connect()
      .then((p) => p.send(b.messages))
      .then(
        () => b.waiters.forEach((w) => w.resolve()),
        (err: unknown) => b.waiters.forEach((w) => w.reject(err)),
      );
  }

  private connect(): Promise<Producer> {
    if (this.producer) return Promise.resolve(this.producer);
    this.connecting ??= this.client.producer({ compression: this.opts.config.producer.compression }).then(
      (p) => {
        this.producer = p;
        this.connecting = undefined;
        return p;
      },
      (err: unknown) => {
        this.connecting = undefined;
        throw err;
      },
    );
    return this.connecting;
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    const p = this.producer ?? (await this.connecting?.catch(() => undefined));
    this.producer = undefined;
    await p?.disconnect().catch(() => undefined);
  }
}

/** Spans (decoded or scanned) grouped by trace id, in the order each trace first appears. */
function byTraceId<T extends { traceId: string }>(spans: readonly T[]): Map<string, T[]> {
  const byTrace = new Map<string, T[]>();
  for (const s of spans) {
    const list = byTrace.get(s.traceId);
    if (list) list.push(s);
    else byTrace.set(s.traceId, [s]);
  }
  return byTrace;
}
