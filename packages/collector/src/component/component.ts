import type { AuditEvent } from '@kube-correlate/audit';
import type { KafkaClient } from '@kube-correlate/kafka';
import type { RawSpan, Span } from '@kube-correlate/otlp';

/**
 * A running part of a pipeline: a receiver, processor, exporter or extension. `start` returns
 * once it is ready (listening; connected, or not fatally unconnected); `shutdown` stops it and
 * releases what it holds. The pipeline starts components downstream first and shuts them down
 * upstream first, each through `guarded` (lifecycle.ts): `start` and `shutdown` are safe to call
 * twice, and `shutdown` is safe without `start` (it releases what creating the component took).
 */
export interface Component {
  start(host: Host): Promise<void>;
  shutdown(): Promise<void>;
}

/** What a started component may ask of the pipeline. */
export interface Host {
  /** The extension listed in `service.extensions` under this id (`type[/name]`), or the only one of this type. */
  getExtension(idOrType: string): Component | undefined;
  /** A listener's bound address (the port the OS chose for `:0`), e.g. `reportAddress('otlpGrpc', '127.0.0.1:43117')`; the first of each name is kept. */
  reportAddress(name: string, address: string): void;
  /** Every address reported so far (listeners that start later appear once they started). */
  addresses(): Readonly<Record<string, string>>;
}

// ---------------------------------------------------------------------------------------------
// What flows between components. A receiver hands its data on only through these; it
// acknowledges its sender once `consume*` resolved: the data is then the next stage's
// responsibility (the in-process correlator, or Kafka with acks=all). A `RetryableError` means
// "not now" and a `PermanentError` "never" (errors.ts); status.ts says what each becomes.

/** What a component takes from upstream and hands on: in-process data, or Kafka topics handed over whole. */
export type DataForm = 'spans' | 'audit_events' | 'kafka_topics' | 'kafka_output';

export interface SpanConsumer {
  consumeSpans(spans: Span[]): void | Promise<void>;
  /**
   * The same spans, scanned from an OTLP/protobuf request instead of decoded (scanTraceRequest:
   * the same validation, the span's bytes and the ids instead of the span model). A consumer that
   * has it takes either form; when every span consumer downstream of a receiver has it, the
   * receiver scans and hands these on, so no span is decoded into objects on the way to Kafka.
   */
  consumeRawSpans?(spans: RawSpan[]): void | Promise<void>;
}

export interface AuditConsumer {
  consumeAuditEvents(events: AuditEvent[]): void | Promise<void>;
}

/**
 * The OTLP protobuf request a span array was decoded from, when the array is all of it (no span was
 * rejected): the Kafka exporter then splits these bytes by trace (splitTraceRequest) instead of
 * re-encoding the spans. Receivers set it; the array is passed unchanged to every exporter.
 */
export const RAW_OTLP_REQUEST = new WeakMap<readonly Span[], Uint8Array>();

/** A kafka receiver's consumer group and topics, handed whole to the stage that reads them. */
export interface KafkaSource {
  client: KafkaClient;
  groupId: string;
  topics: { traces: string; logs: string };
}

/**
 * `kafka_topics`: a stage that reads Kafka topics itself, so that it commits offsets only once its
 * output is durable (the Kafka correlator, the store loader). The kafka receiver hands it its
 * source and runs the returned component as its own.
 */
export interface KafkaTopicsConsumer {
  consumeKafkaTopics(source: KafkaSource): Component;
}

/**
 * `kafka_output`: the topic a stage that produces to Kafka itself (the Kafka correlator) writes
 * to, named by a kafka exporter. Claiming it tells the exporter that it will not be fed in process,
 * so it opens no producer of its own.
 */
export interface KafkaTopicSink {
  claimTracesTopic(): string;
  /** A client with the exporter's own connection settings (brokers, library, TLS, SASL), for the stage that writes in its place. */
  producerClient(): KafkaClient;
}

/** What a receiver or processor hands its data to: every consumer of each form downstream of it. */
export interface Downstream {
  spans: SpanConsumer;
  audit: AuditConsumer;
  /** The one stage that takes the Kafka topics over (checked at load: exactly one). */
  kafkaTopics: KafkaTopicsConsumer | undefined;
  /** The kafka exporter a Kafka-producing stage writes to (checked at load: exactly one). */
  kafkaOutput: KafkaTopicSink | undefined;
}

/** Builds a Downstream over components: each form fans out to every component that takes it. */
export function downstreamOf(components: readonly unknown[]): Downstream {
  const unique = [...new Set(components)];
  const spans = unique.filter((c): c is SpanConsumer => typeof (c as Partial<SpanConsumer>).consumeSpans === 'function');
  const audit = unique.filter((c): c is AuditConsumer => typeof (c as Partial<AuditConsumer>).consumeAuditEvents === 'function');
  const raw = spans.length > 0 && spans.every((t) => typeof t.consumeRawSpans === 'function');
  return {
    spans: {
      consumeSpans: async (s) => void (await Promise.all(spans.map((t) => t.consumeSpans(s)))),
      ...(raw ? { consumeRawSpans: async (s: RawSpan[]) => void (await Promise.all(spans.map((t) => t.consumeRawSpans!(s)))) } : {}),
    },
    audit: { consumeAuditEvents: async (a) => void (await Promise.all(audit.map((t) => t.consumeAuditEvents(a)))) },
    kafkaTopics: unique.find((c): c is KafkaTopicsConsumer => typeof (c as Partial<KafkaTopicsConsumer>).consumeKafkaTopics === 'function'),
    kafkaOutput: unique.find((c): c is KafkaTopicSink => typeof (c as Partial<KafkaTopicSink>).claimTracesTopic === 'function'),
  };
}
