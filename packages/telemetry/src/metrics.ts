import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric kube-correlate exports, defined in one place so names and labels stay consistent
 * (the package README lists them). One instance per process, bound to one registry.
 */
export class PipelineMetrics {
  readonly registry: Registry;
  /** Requests answered by a receiver, by outcome (ok | partial | refused). */
  readonly receiverRequests: Counter<'receiver' | 'outcome'>;
  /** Items (spans, audit events) a receiver accepted and handed on. */
  readonly receiverItems: Counter<'receiver' | 'signal'>;
  /** Requests, items or lines refused, by reason (malformed_protobuf, invalid_json, too_large, ...). */
  readonly receiverRefused: Counter<'receiver' | 'reason'>;
  /** Spans decoded from OTLP, before validation of ids. */
  readonly decodedSpans: Counter<'receiver'>;
  /** Audit request (auditID) joined to a trace. */
  readonly joined: Counter;
  /** Trace updates handed to the sink, by reason (idle | max_traces | max_spans | shutdown). */
  readonly settled: Counter<'reason'>;
  /** Buffers flushed before their idle window, because a cap was reached. */
  readonly evicted: Counter<'reason'>;
  /**
   * Kafka correlator: waits for a lagging input that reached their bound (`maxLagWaitMs`), by what
   * waited (trace: an idle trace settled although its audit side still lagged; pending_audit: an
   * audit event went out unjoined although the span side had not caught up past it).
   */
  readonly lagWaitExceeded: Counter<'kind'>;
  /** Items seen twice while buffered (later duplicates are dropped by the store's keys). */
  readonly duplicates: Counter<'kind'>;
  /** Traces the correlator drops on purpose (lone authentication filter spans), by reason. */
  readonly dropped: Counter<'reason'>;
  readonly tracesInFlight: Gauge;
  readonly spansInFlight: Gauge;
  readonly pendingAudits: Gauge;
  /** Rows written to the embedded store, and rows that were already there (redeliveries). */
  readonly storeRows: Counter<'table' | 'outcome'>;
  readonly storeWriteSeconds: Histogram;
  readonly queryRequests: Counter<'route' | 'code'>;
  /** Items an exporter delivered (Kafka: acknowledged by all in-sync replicas). */
  readonly exporterSent: Counter<'exporter' | 'signal'>;
  /** Exporter sends that failed or were refused, by reason (unavailable, timeout, queue_full, too_large). */
  readonly exporterFailed: Counter<'exporter' | 'reason'>;
  /** Requests waiting on an exporter's destination. */
  readonly exporterQueue: Gauge<'exporter'>;
  /** Bytes (as received) of the spans and audit events the correlator holds. */
  readonly bytesInFlight: Gauge;
  /** Items the store could not write (the rest went on), set aside in its quarantine table. */
  readonly storeQuarantined: Counter<'what'>;
  /** Store writes that failed and will be tried again (disk full, I/O error, busy), by reason. */
  readonly storeWriteFailed: Counter<'reason'>;
  /** Values redacted from audit events before anything stored or sent them, by rule. */
  readonly auditRedactions: Counter<'rule'>;
  /** The memory limiter's view: resident memory sampled, and its hard limit. */
  readonly memoryUsage: Gauge;
  readonly memoryLimit: Gauge;
  /** What retention deleted, by kind (traces, audit_requests, objects). */
  readonly storeRetained: Counter<'what'>;
  /** Bytes the store's database uses. */
  readonly storeBytes: Gauge;
  /** Acknowledged input not stored yet (the store's inbox): rows and bytes. */
  readonly inboxRows: Gauge;
  readonly inboxBytes: Gauge;
  /** TLS handshakes a listener refused or that failed, by listener (its config path) and reason (tls.ts TlsErrorReason). */
  readonly tlsHandshakeErrors: Counter<'listener' | 'reason'>;
  /** Reloads of a listener's certificate, key and client CAs after their files changed, by outcome (ok | error). */
  readonly tlsCertReloads: Counter<'listener' | 'outcome'>;

  constructor(registry: Registry = new Registry(), opts: { defaultMetrics?: boolean } = {}) {
    this.registry = registry;
    const registers = [registry];
    const p = 'kube_correlate_';
    this.receiverRequests = new Counter({ name: `${p}receiver_requests_total`, help: 'Requests answered by a receiver, by outcome.', labelNames: ['receiver', 'outcome'], registers });
    this.receiverItems = new Counter({ name: `${p}receiver_accepted_items_total`, help: 'Spans and audit events accepted by a receiver and handed to the pipeline.', labelNames: ['receiver', 'signal'], registers });
    this.receiverRefused = new Counter({ name: `${p}receiver_refused_total`, help: 'Requests, items or file lines refused by a receiver, by reason.', labelNames: ['receiver', 'reason'], registers });
    this.decodedSpans = new Counter({ name: `${p}receiver_decoded_spans_total`, help: 'Spans decoded from OTLP requests.', labelNames: ['receiver'], registers });
    this.joined = new Counter({ name: `${p}correlator_joined_total`, help: 'Audit requests (auditIDs) joined to a trace.', registers });
    this.settled = new Counter({ name: `${p}correlator_settled_total`, help: 'Trace updates settled and handed to the store, by reason.', labelNames: ['reason'], registers });
    this.evicted = new Counter({ name: `${p}correlator_evicted_total`, help: 'Buffers flushed early because a memory cap was reached, by cap.', labelNames: ['reason'], registers });
    this.lagWaitExceeded = new Counter({ name: `${p}correlator_lag_wait_exceeded_total`, help: 'Kafka correlator: waits for a lagging input cut short by max_lag_wait, by what waited (trace | pending_audit).', labelNames: ['kind'], registers });
    this.duplicates = new Counter({ name: `${p}correlator_duplicates_total`, help: 'Redelivered spans and audit events dropped while buffered.', labelNames: ['kind'], registers });
    this.dropped = new Counter({ name: `${p}correlator_dropped_total`, help: 'Traces dropped on purpose, by reason (lone_authentication: kube-apiserver\'s authentication filter span alone in its trace, with nothing to join it by).', labelNames: ['reason'], registers });
    this.tracesInFlight = new Gauge({ name: `${p}correlator_traces_in_flight`, help: 'Traces buffered, waiting to settle.', registers });
    this.spansInFlight = new Gauge({ name: `${p}correlator_spans_in_flight`, help: 'Spans buffered, waiting to settle.', registers });
    this.pendingAudits = new Gauge({ name: `${p}correlator_pending_audits`, help: 'Audit requests whose trace has not been seen yet.', registers });
    this.storeRows = new Counter({ name: `${p}store_rows_total`, help: 'Rows offered to the embedded store, by table and outcome (inserted | duplicate | conflict: an audit stage already stored with different content, the stored copy kept).', labelNames: ['table', 'outcome'], registers });
    this.storeWriteSeconds = new Histogram({ name: `${p}store_write_seconds`, help: 'Time to write one batch of trace updates.', buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers });
    this.queryRequests = new Counter({ name: `${p}query_requests_total`, help: 'Query API requests, by route and HTTP status.', labelNames: ['route', 'code'], registers });
    this.exporterSent = new Counter({ name: `${p}exporter_sent_items_total`, help: 'Items an exporter delivered durably.', labelNames: ['exporter', 'signal'], registers });
    this.exporterFailed = new Counter({ name: `${p}exporter_failed_total`, help: 'Exporter sends that failed or were refused, by reason.', labelNames: ['exporter', 'reason'], registers });
    this.exporterQueue = new Gauge({ name: `${p}exporter_queue_size`, help: 'Requests waiting on an exporter destination.', labelNames: ['exporter'], registers });
    this.bytesInFlight = new Gauge({ name: `${p}correlator_bytes_in_flight`, help: 'Bytes (as received) of the spans and audit events the correlator holds.', registers });
    this.storeQuarantined = new Counter({ name: `${p}store_quarantined_total`, help: 'Items the store could not write and set aside for inspection (the rest was written), by kind.', labelNames: ['what'], registers });
    this.storeWriteFailed = new Counter({ name: `${p}store_write_failed_total`, help: 'Store writes that failed and are retried, by reason (full, io, busy, ...).', labelNames: ['reason'], registers });
    this.auditRedactions = new Counter({ name: `${p}audit_redactions_total`, help: 'Values redacted from audit events (Secret data, tokens, user rules) before anything stored, wrote to Kafka or exported them, by rule.', labelNames: ['rule'], registers });
    this.memoryUsage = new Gauge({ name: `${p}memory_limiter_usage_bytes`, help: 'Resident memory the memory limiter last sampled.', registers });
    this.memoryLimit = new Gauge({ name: `${p}memory_limiter_limit_bytes`, help: 'The memory limiter\'s hard limit (receivers refuse above limit - spike).', registers });
    this.storeRetained = new Counter({ name: `${p}store_retention_deleted_total`, help: 'What retention deleted (by age or size), by kind.', labelNames: ['what'], registers });
    this.storeBytes = new Gauge({ name: `${p}store_bytes`, help: 'Bytes the embedded store\'s database uses.', registers });
    this.inboxRows = new Gauge({ name: `${p}store_inbox_rows`, help: 'Acknowledged requests not yet stored in full (the inbox).', registers });
    this.inboxBytes = new Gauge({ name: `${p}store_inbox_bytes`, help: 'Bytes of acknowledged requests not yet stored in full (the inbox).', registers });
    this.tlsHandshakeErrors = new Counter({
      name: `${p}tls_handshake_errors_total`,
      help: 'TLS handshakes a listener refused or that failed, by listener and reason (protocol_version, no_shared_cipher, no_client_certificate, untrusted_client_certificate, not_tls, timeout, aborted, other).',
      labelNames: ['listener', 'reason'],
      registers,
    });
    this.tlsCertReloads = new Counter({ name: `${p}tls_certificate_reloads_total`, help: 'Reloads of a listener\'s certificate, key and client CAs after their files changed, by outcome.', labelNames: ['listener', 'outcome'], registers });
    if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: p });
  }
}
