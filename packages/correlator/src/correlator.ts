import { describeRequests, type ApiOperation, type DescribeRequest } from './api-attributes.js';
import { auditIDForSpans, type AuditEvent } from '@kube-correlate/audit';
import { attrString, type Span } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger, type Logger } from '@kube-correlate/telemetry';
import { isLoneAuthentication, RecentTraces } from './lone-spans.js';

/**
 * The join rules, in one place:
 *  - spans are grouped by trace id; a span is identified by (trace id, span id);
 *  - any span carrying the `audit-id` attribute names the audit request it belongs to; its trace
 *    is the audit request's trace (kube-apiserver puts `audit-id` on handler and storage spans
 *    always, on the server span from 1.34 on);
 *  - audit events are identified by (auditID, stage); all stages of one auditID join the trace.
 *    Spans carry the auditID's first 64 bytes (kube-apiserver truncates it), so events are joined
 *    on that form;
 *  - a trace that is nothing but kube-apiserver's lone `authentication` filter span is dropped
 *    and counted (lone-spans.ts): it names no request;
 *  - a trace settles when nothing arrived for it during `settleAfterMs`; later spans or events
 *    reopen it as a new update, and the sink merges updates by the same keys, so settling early
 *    (caps, shutdown) never loses data, it only splits it.
 */

/** What the correlator hands to its sink: new data for one trace, since its previous update. */
export interface TraceUpdate {
  traceId: string;
  spans: Span[];
  /** Audit events of the auditIDs this trace carries (any stage, deduplicated). */
  auditEvents: AuditEvent[];
  /** auditIDs seen on this update's spans. */
  auditIds: string[];
  reason: SettleReason;
}

export type SettleReason = 'idle' | 'max_traces' | 'max_spans' | 'max_spans_in_flight' | 'shutdown';

export interface CorrelatorOutput {
  traces: TraceUpdate[];
  /** Audit events whose trace was not seen within `pendingAuditTtlMs`: stored on their own, so a late trace still finds them. */
  unjoinedAuditEvents: AuditEvent[];
  /** The API operation of the audit requests in this output (auditID's 64-character form -> operation), when an OpenAPI spec names them. */
  apiOperations?: Map<string, ApiOperation>;
}

/** Where settled data goes. `write` resolves once the data is durable. */
export interface CorrelatorSink {
  write(output: CorrelatorOutput): Promise<void>;
}

export interface CorrelatorOptions {
  sink: CorrelatorSink;
  /** Idle window after which a trace settles. Default 5000 ms. */
  settleAfterMs?: number;
  /** How long audit events wait for their trace before being stored unjoined. Default 30000 ms. */
  pendingAuditTtlMs?: number;
  /** Cap on traces buffered at once; the least recently updated is flushed early. Default 50000. */
  maxTracesInFlight?: number;
  /** Cap on spans buffered for one trace; the trace is flushed early when reached. Default 10000. */
  maxSpansPerTrace?: number;
  /** Cap on spans buffered across all traces; least recently updated traces are flushed early. Default 1000000. */
  maxSpansInFlight?: number;
  /** Cap on audit requests waiting for their trace. Default 50000. */
  maxPendingAudits?: number;
  /** How many auditID -> trace id pairs are remembered after a trace settled, for late audit events. Default 200000. */
  auditIndexSize?: number;
  metrics?: PipelineMetrics;
  logger?: Logger;
  /** Clock, for tests. */
  now?: () => number;
  /** Names each audit request's API operation: adds k8s.api.operation_id / k8s.api.stability to its route span. */
  describeRequest?: DescribeRequest;
}

interface TraceBuffer {
  traceId: string;
  spans: Map<string, Span>;
  auditIds: Set<string>;
  audit: Map<string, AuditEvent>;
  lastUpdate: number;
}

interface PendingAudit {
  events: Map<string, AuditEvent>;
  lastUpdate: number;
}

/** Early-settled updates waiting for the timer are written once this many pile up. */
const OUTBOX_FLUSH_AT = 1000;

const auditKey = (e: AuditEvent) => `${e.auditID}/${e.stage}`;

export class Correlator {
  private readonly opts: Required<Omit<CorrelatorOptions, 'metrics' | 'logger' | 'now' | 'sink' | 'describeRequest'>>;
  private readonly describeRequest: DescribeRequest | undefined;
  private readonly sink: CorrelatorSink;
  private readonly metrics: PipelineMetrics;
  private readonly logger: Logger;
  private readonly now: () => number;
  /** Insertion order = least recently updated first: updates delete and re-insert. */
  private readonly traces = new Map<string, TraceBuffer>();
  private readonly pending = new Map<string, PendingAudit>();
  /** auditID -> trace id, LRU by insertion order. */
  private readonly auditIndex = new Map<string, string>();
  /** Trace ids settled lately: a late span of one of them is never a lone authentication span. */
  private readonly recent: RecentTraces;
  private spansBuffered = 0;
  private outbox: CorrelatorOutput = { traces: [], unjoinedAuditEvents: [] };
  private flushing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(options: CorrelatorOptions) {
    this.sink = options.sink;
    this.opts = {
      settleAfterMs: options.settleAfterMs ?? 5000,
      pendingAuditTtlMs: options.pendingAuditTtlMs ?? 30000,
      maxTracesInFlight: options.maxTracesInFlight ?? 50000,
      maxSpansPerTrace: options.maxSpansPerTrace ?? 10000,
      maxSpansInFlight: options.maxSpansInFlight ?? 1_000_000,
      maxPendingAudits: options.maxPendingAudits ?? 50000,
      auditIndexSize: options.auditIndexSize ?? 200000,
    };
    for (const [k, v] of Object.entries(this.opts)) {
      if (!Number.isFinite(v) || v <= 0) throw new RangeError(`correlator: ${k} must be a positive number, got ${v}`);
    }
    this.metrics = options.metrics ?? new PipelineMetrics();
    this.logger = options.logger ?? silentLogger();
    this.now = options.now ?? Date.now;
    this.describeRequest = options.describeRequest;
    this.recent = new RecentTraces(this.opts.auditIndexSize);
  }

  /** Starts the settle timer. */
  start(): void {
    if (this.timer || this.stopped) return;
    const every = Math.max(10, Math.min(1000, Math.floor(this.opts.settleAfterMs / 4)));
    this.timer = setInterval(() => void this.tick().catch((err: unknown) => this.logger.error({ err }, 'settle failed')), every);
    this.timer.unref();
  }

  /** Buffers spans. Synchronous: once it returns, the spans are the correlator's responsibility. */
  addSpans(spans: readonly Span[]): void {
    const now = this.now();
    for (const span of spans) {
      let trace = this.touch(span.traceId, now);
      if (trace.spans.has(span.spanId)) {
        this.metrics.duplicates.inc({ kind: 'span' });
        continue;
      }
      if (trace.spans.size >= this.opts.maxSpansPerTrace) {
        this.metrics.evicted.inc({ reason: 'max_spans' });
        this.settle(trace, 'max_spans');
        trace = this.touch(span.traceId, now);
      }
      trace.spans.set(span.spanId, span);
      this.spansBuffered++;
      const auditId = attrString(span.attributes, 'audit-id');
      if (auditId && !trace.auditIds.has(auditId)) this.attachAuditId(trace, auditId);
    }
    this.enforceTraceCap();
    this.updateGauges();
  }

  /** Buffers audit events, joining each to its trace when the trace is known. */
  addAuditEvents(events: readonly AuditEvent[]): void {
    const now = this.now();
    for (const event of events) {
      const joinId = auditIDForSpans(event.auditID);
      const traceId = this.auditIndex.get(joinId);
      if (traceId !== undefined) {
        // When the trace settled earlier this event is late: the trace reopens with the auditID,
        // so the sink merges the event into the stored tree.
        const trace = this.touch(traceId, now);
        trace.auditIds.add(joinId);
        this.addAuditToTrace(trace, event);
        continue;
      }
      let p = this.pending.get(joinId);
      if (p) this.pending.delete(joinId);
      else p = { events: new Map(), lastUpdate: now };
      p.lastUpdate = now;
      this.pending.set(joinId, p);
      const key = auditKey(event);
      if (p.events.has(key)) this.metrics.duplicates.inc({ kind: 'audit_event' });
      else p.events.set(key, event);
    }
    while (this.pending.size > this.opts.maxPendingAudits) {
      const [id, p] = this.pending.entries().next().value as [string, PendingAudit];
      this.pending.delete(id);
      this.metrics.evicted.inc({ reason: 'max_pending_audits' });
      this.outbox.unjoinedAuditEvents.push(...p.events.values());
    }
    this.enforceTraceCap();
    this.updateGauges();
  }

  /** Settles idle traces and expired pending audits, then writes them to the sink. */
  async tick(): Promise<void> {
    const now = this.now();
    for (const trace of this.traces.values()) {
      if (now - trace.lastUpdate < this.opts.settleAfterMs) break; // LRU order: the rest are newer
      this.settle(trace, 'idle');
    }
    for (const [id, p] of this.pending) {
      if (now - p.lastUpdate < this.opts.pendingAuditTtlMs) break;
      this.pending.delete(id);
      this.outbox.unjoinedAuditEvents.push(...p.events.values());
    }
    this.updateGauges();
    await this.flush();
  }

  /** Settles everything in flight and waits until the sink has it. Safe twice, safe without start. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const trace of [...this.traces.values()]) this.settle(trace, 'shutdown');
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      this.outbox.unjoinedAuditEvents.push(...p.events.values());
    }
    this.updateGauges();
    await this.flush();
  }

  /** Hands what has settled to the sink; one write at a time, in order. */
  flush(): Promise<void> {
    const run = this.flushing.then(async () => {
      const out = this.outbox;
      if (out.traces.length === 0 && out.unjoinedAuditEvents.length === 0) return;
      this.outbox = { traces: [], unjoinedAuditEvents: [] };
      if (this.describeRequest) out.apiOperations = describeRequests([...out.traces.flatMap((t) => t.auditEvents), ...out.unjoinedAuditEvents], this.describeRequest);
      try {
        await this.sink.write(out);
      } catch (err) {
        // Keep the output for the next flush: the sink merges by key, so a retry is harmless.
        this.outbox.traces.unshift(...out.traces);
        this.outbox.unjoinedAuditEvents.unshift(...out.unjoinedAuditEvents);
        throw err;
      }
    });
    // A failed write is reported to this caller, and the chain continues for the next one.
    this.flushing = run.catch((err: unknown) => this.logger.error({ err }, 'sink write failed'));
    return run;
  }

  /** Numbers for tests and the README's guarantees. */
  stats(): { tracesInFlight: number; spansInFlight: number; pendingAudits: number; auditIndex: number } {
    return { tracesInFlight: this.traces.size, spansInFlight: this.spansBuffered, pendingAudits: this.pending.size, auditIndex: this.auditIndex.size };
  }

  private touch(traceId: string, now: number): TraceBuffer {
    let trace = this.traces.get(traceId);
    if (trace) this.traces.delete(traceId);
    else trace = { traceId, spans: new Map(), auditIds: new Set(), audit: new Map(), lastUpdate: now };
    trace.lastUpdate = now;
    this.traces.set(traceId, trace);
    return trace;
  }

  private attachAuditId(trace: TraceBuffer, auditId: string): void {
    trace.auditIds.add(auditId);
    const known = this.auditIndex.get(auditId);
    if (known !== trace.traceId) {
      if (known === undefined) this.metrics.joined.inc();
      this.auditIndex.delete(auditId);
      this.auditIndex.set(auditId, trace.traceId);
      if (this.auditIndex.size > this.opts.auditIndexSize) {
        this.auditIndex.delete(this.auditIndex.keys().next().value as string);
      }
    }
    const p = this.pending.get(auditId);
    if (p) {
      this.pending.delete(auditId);
      for (const e of p.events.values()) this.addAuditToTrace(trace, e);
    }
  }

  private addAuditToTrace(trace: TraceBuffer, event: AuditEvent): void {
    const key = auditKey(event);
    if (trace.audit.has(key)) this.metrics.duplicates.inc({ kind: 'audit_event' });
    else trace.audit.set(key, event);
  }

  private settle(trace: TraceBuffer, reason: SettleReason): void {
    this.traces.delete(trace.traceId);
    this.spansBuffered -= trace.spans.size;
    if (trace.audit.size === 0 && !this.recent.has(trace.traceId) && isLoneAuthentication([...trace.spans.values()])) {
      this.metrics.dropped.inc({ reason: 'lone_authentication' });
      return;
    }
    this.recent.add(trace.traceId);
    this.metrics.settled.inc({ reason });
    const auditEvents = [...trace.audit.values()];
    this.outbox.traces.push({
      traceId: trace.traceId,
      spans: [...trace.spans.values()],
      auditEvents,
      auditIds: [...trace.auditIds],
      reason,
    });
  }

  private enforceTraceCap(): void {
    while (this.traces.size > this.opts.maxTracesInFlight) {
      const oldest = this.traces.values().next().value as TraceBuffer;
      this.metrics.evicted.inc({ reason: 'max_traces' });
      this.settle(oldest, 'max_traces');
    }
    while (this.spansBuffered > this.opts.maxSpansInFlight) {
      const oldest = this.traces.values().next().value as TraceBuffer;
      this.metrics.evicted.inc({ reason: 'max_spans_in_flight' });
      this.settle(oldest, 'max_spans_in_flight');
    }
    // Settled early data should not wait for the timer: write it now, bounded by one write at a time.
    if (this.outbox.traces.length >= OUTBOX_FLUSH_AT) {
      this.flush().catch((err: unknown) => this.logger.error({ err }, 'sink write failed'));
    }
  }

  private updateGauges(): void {
    this.metrics.tracesInFlight.set(this.traces.size);
    this.metrics.spansInFlight.set(this.spansBuffered);
    this.metrics.pendingAudits.set(this.pending.size);
  }
}
