import { auditEventsConflict, auditIDForSpans, canonicalAuditJson, type AuditEvent } from '@kube-correlate/audit';
import type { Span } from '@kube-correlate/otlp';
import { PipelineMetrics } from '@kube-correlate/telemetry';
import { describeRequests, type ApiOperation, type DescribeRequest } from './api-attributes.js';
import { RecentTraces } from './lone-spans.js';
import { DECODED_SPANS, type JoinSpan, type JoinSpanModel } from './span-model.js';

/**
 * The join, in one place, for both drivers (embedded: correlator.ts over the store's durable
 * inbox; Kafka: kafka-correlator.ts over partitions). No I/O and no timers: the driver gives it
 * data with the time (`now`) and a token naming where the data came from (an inbox sequence
 * number, a Kafka offset), and asks it to `settle(now)`. What settles comes out with the tokens it
 * releases: the driver may forget a source (delete the inbox row, commit the offset) once every
 * holder of its token released it, and only after the output is durable.
 *
 * The rules:
 *  - spans are grouped by trace id; a span is identified by (trace id, span id);
 *  - any span carrying the `audit-id` attribute names the audit request it belongs to; its trace
 *    is the audit request's trace (kube-apiserver puts `audit-id` on handler and storage spans
 *    always, on the route span from 1.34 on);
 *  - audit events are identified by (auditID, stage); all stages of one auditID join the trace.
 *    Spans carry the auditID's first 64 bytes (kube-apiserver truncates it), so events are joined
 *    on that form. Events may also come already paired with their trace (`addTraceAudit`: the
 *    Kafka driver pairs them through its repartition topics);
 *  - a trace that is nothing but kube-apiserver's lone `authentication` filter span is dropped
 *    and counted (lone-spans.ts): it names no request;
 *  - a trace settles when nothing arrived for it during `settleAfterMs` (and, when the driver says
 *    so, once the input that could still bring its audit events caught up: `settle`'s `ready`,
 *    at most `maxLagWaitMs` longer); later spans or events
 *    reopen it as a new update, and sinks merge updates by the same keys, so settling early
 *    (caps, shutdown) never loses data, it only splits it;
 *  - audit events whose trace did not come within `pendingAuditTtlMs` go out unjoined (a sink still
 *    joins them when their trace comes later);
 *  - memory is bounded by counts and by bytes: traces, spans per trace, spans in all, pending audit
 *    requests, bytes per trace, bytes in all; reaching a cap settles the least recently updated data
 *    early (counted in kube_correlate_correlator_evicted_total). Nothing is dropped.
 */

/** What the join hands out: new data of one trace since its previous update. `S`: the span representation (span-model.ts). */
export interface TraceUpdate<S = Span> {
  traceId: string;
  spans: S[];
  /** Audit events of the auditIDs this trace carries (any stage, deduplicated). */
  auditEvents: AuditEvent[];
  /** auditIDs seen on this update's spans, or paired with the trace. */
  auditIds: string[];
  /** For audit events of an update without their spans: auditID -> the span they hang under. */
  anchors?: Map<string, string>;
  reason: SettleReason;
  /** The tokens (inbox rows, offsets) this update's data came from: what to keep when it cannot be stored. */
  sources?: unknown[];
}

export type SettleReason = 'idle' | 'max_traces' | 'max_spans' | 'max_spans_in_flight' | 'max_bytes' | 'max_bytes_in_flight' | 'shutdown';

export interface CorrelatorOutput<S = Span> {
  traces: TraceUpdate<S>[];
  /** Audit events whose trace was not seen within `pendingAuditTtlMs`: stored on their own, so a late trace still finds them. */
  unjoinedAuditEvents: AuditEvent[];
  /** The API operation of the audit requests in this output (auditID's 64-character form -> operation), when an OpenAPI spec names them. */
  apiOperations?: Map<string, ApiOperation>;
}

/** Where settled output goes (the store). */
export interface CorrelatorSink {
  write(output: CorrelatorOutput): Promise<void>;
}

export interface JoinOutput<T, S = Span> extends CorrelatorOutput<S> {
  /** One entry per holder that let go of a token: a token is free once each of its holds was released. */
  released: T[];
}

export interface TraceJoinOptions<S extends JoinSpan = Span> {
  /** Idle window after which a trace settles. Default 5000 ms. */
  settleAfterMs?: number;
  /** How long audit events wait for their trace before going out unjoined. Default 30000 ms. */
  pendingAuditTtlMs?: number;
  /** Cap on traces buffered at once; the least recently updated is settled early. Default 50000. */
  maxTracesInFlight?: number;
  /** Cap on spans buffered for one trace; the trace is settled early (in parts) when reached. Default 10000. */
  maxSpansPerTrace?: number;
  /** Cap on spans buffered across all traces; least recently updated traces are settled early. Default 1000000. */
  maxSpansInFlight?: number;
  /** Cap on audit requests waiting for their trace; the oldest go out unjoined. Default 50000. */
  maxPendingAudits?: number;
  /** Cap on the bytes (as received) buffered for one trace. Default 64 MiB. */
  maxBytesPerTrace?: number;
  /** Cap on the bytes (as received) buffered in all: spans and audit events. Default 512 MiB. */
  maxBytesInFlight?: number;
  /** auditID -> trace id pairs remembered after a trace settled, for late audit events; also the recent trace ids. Default 200000. */
  auditIndexSize?: number;
  /**
   * Longest a trace past its idle window waits for a driver's `ready` (settle()): then it settles
   * anyway, counted in kube_correlate_correlator_lag_wait_exceeded_total{kind="trace"}. Default 300000.
   */
  maxLagWaitMs?: number;
  metrics?: PipelineMetrics;
  /** Names each audit request's API operation (k8s.api.*). */
  describeRequest?: DescribeRequest;
  /** Called when a holder takes a token (once per holder per token): the driver counts holds. */
  onHold?: (token: never) => void;
  /** How spans are read: required unless they are decoded Spans (span-model.ts). */
  spanModel?: JoinSpanModel<S>;
}

/**
 * One trace in flight. Most traces hold a few spans, one or two audit requests and one or two
 * tokens: lists are scanned while short, and a Map or Set beside them is made only past
 * SMALL (and the audit maps only when the trace gets audit events), so a held trace costs little
 * more than its spans (raw-spans bench: bytes per span held).
 */
interface TraceBuffer<T, S> extends Holder<T> {
  traceId: string;
  spans: S[];
  /** By span id, once `spans` is longer than SMALL. */
  spanIndex?: Map<string, S> | undefined;
  auditIds?: SmallSet<string> | undefined;
  /** Its audit events, one per (auditID, stage); by that key in `auditByKey` once longer than SMALL. */
  audit?: AuditEvent[] | undefined;
  auditByKey?: Map<string, AuditEvent> | undefined;
  anchors?: Map<string, string> | undefined;
  bytes: number;
  group: number;
  lastUpdate: number;
}

interface PendingAudit<T> extends Holder<T> {
  events: Map<string, AuditEvent>;
  bytes: number;
  group: number;
  lastUpdate: number;
}

/** What holds tokens: each once (a list, and a Set beside it once the list is longer than SMALL). */
interface Holder<T> {
  held: T[];
  heldSet?: Set<T> | undefined;
}

/**
 * Lists up to this long are searched by scanning, and grown by copying into an array of the exact
 * size (V8's push grows an array's store to 17 slots and more: 150 bytes or more for a list of two).
 */
const SMALL = 16;

/** The list with `v` appended: a new exact-size array while short, else pushed. */
function appended<V>(list: V[], v: V): V[] {
  if (list.length >= SMALL) {
    list.push(v);
    return list;
  }
  const out = new Array<V>(list.length + 1);
  for (let i = 0; i < list.length; i++) out[i] = list[i]!;
  out[list.length] = v;
  return out;
}

/** Values in insertion order, each once; a Set beside the list once it is longer than SMALL. */
interface SmallSet<V> {
  list: V[];
  set?: Set<V> | undefined;
}

function smallHas<V>(s: SmallSet<V> | { list: V[]; set?: Set<V> | undefined }, v: V): boolean {
  return s.set ? s.set.has(v) : s.list.includes(v);
}

/** Adds `v` (the caller checked it is not there yet). */
function smallAdd<V>(s: SmallSet<V>, v: V): void {
  s.list = appended(s.list, v);
  if (s.set) s.set.add(v);
  else if (s.list.length > SMALL) s.set = new Set(s.list);
}

function holds<T>(h: Holder<T>, token: T): boolean {
  return h.heldSet ? h.heldSet.has(token) : h.held.includes(token);
}

/** Adds a token the holder does not hold yet. */
function addHeld<T>(h: Holder<T>, token: T): void {
  h.held = appended(h.held, token);
  if (h.heldSet) h.heldSet.add(token);
  else if (h.held.length > SMALL) h.heldSet = new Set(h.held);
}

function hasSpan<S extends JoinSpan>(trace: TraceBuffer<unknown, S>, spanId: string): boolean {
  if (trace.spanIndex) return trace.spanIndex.has(spanId);
  for (const s of trace.spans) if (s.spanId === spanId) return true;
  return false;
}

function addSpan<S extends JoinSpan>(trace: TraceBuffer<unknown, S>, span: S): void {
  trace.spans = appended(trace.spans, span);
  if (trace.spanIndex) trace.spanIndex.set(span.spanId, span);
  else if (trace.spans.length > SMALL) trace.spanIndex = new Map(trace.spans.map((s) => [s.spanId, s]));
}

function auditIdsOf(trace: TraceBuffer<unknown, JoinSpan>): SmallSet<string> {
  return (trace.auditIds ??= { list: [] });
}

function addAuditId(trace: TraceBuffer<unknown, JoinSpan>, id: string): void {
  const ids = auditIdsOf(trace);
  if (!smallHas(ids, id)) smallAdd(ids, id);
}

const auditKey = (e: AuditEvent) => `${e.auditID}/${e.stage}`;
const MiB = 1024 * 1024;

export class TraceJoin<T = number, S extends JoinSpan = Span> {
  readonly opts: Required<Omit<TraceJoinOptions<S>, 'metrics' | 'describeRequest' | 'onHold' | 'spanModel'>>;
  private readonly model: JoinSpanModel<S>;
  private readonly metrics: PipelineMetrics;
  private readonly describe: DescribeRequest | undefined;
  private readonly onHold: ((token: T) => void) | undefined;
  /** Insertion order = least recently updated first: updates delete and re-insert. */
  private readonly traces = new Map<string, TraceBuffer<T, S>>();
  private readonly pending = new Map<string, PendingAudit<T>>();
  /** auditID -> trace id, LRU by insertion order. */
  private readonly auditIndex = new Map<string, string>();
  private readonly recent: RecentTraces;
  private spansBuffered = 0;
  private bytesBuffered = 0;
  /**
   * No trace or pending audit request is due (idle past its window) before this time: a lower
   * bound, exact after settle(), lowered as data arrives (nextDue()).
   */
  private due = Infinity;
  /** Settled early (caps): handed out by the next settle(). */
  private early: JoinOutput<T, S> = { traces: [], unjoinedAuditEvents: [], released: [] };

  constructor(options: TraceJoinOptions<S> = {}) {
    this.model = options.spanModel ?? (DECODED_SPANS as unknown as JoinSpanModel<S>);
    this.opts = {
      settleAfterMs: options.settleAfterMs ?? 5000,
      pendingAuditTtlMs: options.pendingAuditTtlMs ?? 30000,
      maxTracesInFlight: options.maxTracesInFlight ?? 50000,
      maxSpansPerTrace: options.maxSpansPerTrace ?? 10000,
      maxSpansInFlight: options.maxSpansInFlight ?? 1_000_000,
      maxPendingAudits: options.maxPendingAudits ?? 50000,
      maxBytesPerTrace: options.maxBytesPerTrace ?? 64 * MiB,
      maxBytesInFlight: options.maxBytesInFlight ?? 512 * MiB,
      auditIndexSize: options.auditIndexSize ?? 200000,
      maxLagWaitMs: options.maxLagWaitMs ?? 300000,
    };
    for (const [k, v] of Object.entries(this.opts)) {
      if (!Number.isFinite(v) || v <= 0) throw new RangeError(`correlator: ${k} must be a positive number, got ${v}`);
    }
    this.metrics = options.metrics ?? new PipelineMetrics();
    this.describe = options.describeRequest;
    this.onHold = options.onHold as ((token: T) => void) | undefined;
    this.recent = new RecentTraces(this.opts.auditIndexSize);
  }

  /**
   * Buffers spans. `bytes`: their size as received (for the byte caps; spread evenly); `group`: a
   * label the driver can forget by (the Kafka partition).
   */
  addSpans(spans: readonly S[], now: number, token?: T, bytes = 0, group = 0): void {
    const each = spans.length ? bytes / spans.length : 0;
    for (const span of spans) {
      let trace = this.touch(span.traceId, now, group);
      if (hasSpan(trace, span.spanId)) {
        this.metrics.duplicates.inc({ kind: 'span' });
        if (token !== undefined) this.hold(trace, token);
        continue;
      }
      if (trace.spans.length >= this.opts.maxSpansPerTrace || (trace.spans.length > 0 && trace.bytes + each > this.opts.maxBytesPerTrace)) {
        const reason = trace.spans.length >= this.opts.maxSpansPerTrace ? 'max_spans' : 'max_bytes';
        this.metrics.evicted.inc({ reason });
        this.settleTrace(trace, reason, this.early);
        trace = this.touch(span.traceId, now, group);
      }
      // The trace's own id string, not one copy per span (each span's was read from its own bytes).
      span.traceId = trace.traceId;
      addSpan(trace, span);
      trace.bytes += each;
      this.bytesBuffered += each;
      this.spansBuffered++;
      if (token !== undefined) this.hold(trace, token);
      const auditId = this.model.auditId(span);
      if (auditId && !(trace.auditIds && smallHas(trace.auditIds, auditId))) this.attachAuditId(trace, auditId);
    }
    this.enforceCaps();
  }

  /** Buffers audit events, joining each to its trace when the trace is known (or waiting for it). */
  addAuditEvents(events: readonly AuditEvent[], now: number, token?: T, bytes = 0, group = 0): void {
    const each = events.length ? bytes / events.length : 0;
    for (const event of events) {
      const joinId = auditIDForSpans(event.auditID);
      const traceId = this.auditIndex.get(joinId);
      if (traceId !== undefined) {
        // When the trace settled earlier this event is late: the trace reopens with the auditID,
        // so the sink merges the event into the stored tree.
        const trace = this.touch(traceId, now, group);
        addAuditId(trace, joinId);
        this.addAuditToTrace(trace, event, each);
        if (token !== undefined) this.hold(trace, token);
        continue;
      }
      let p = this.pending.get(joinId);
      if (p) this.pending.delete(joinId);
      else p = { events: new Map(), held: [], heldSet: undefined, bytes: 0, group, lastUpdate: now };
      p.lastUpdate = now;
      this.pending.set(joinId, p);
      if (now + this.opts.pendingAuditTtlMs < this.due) this.due = now + this.opts.pendingAuditTtlMs;
      const key = auditKey(event);
      const seen = p.events.get(key);
      if (seen) p.events.set(key, this.keptOf(seen, event));
      else {
        p.events.set(key, event);
        p.bytes += each;
        this.bytesBuffered += each;
      }
      if (token !== undefined) this.hold(p, token);
    }
    while (this.pending.size > this.opts.maxPendingAudits) {
      const [id, p] = this.pending.entries().next().value as [string, PendingAudit<T>];
      this.metrics.evicted.inc({ reason: 'max_pending_audits' });
      this.releasePending(id, p, this.early);
    }
    this.enforceCaps();
  }

  /**
   * Buffers audit events already paired with their trace (the Kafka driver's repartition): `anchor`
   * is the span the request hangs under, for an update that carries the events without the spans.
   */
  addTraceAudit(traceId: string, events: readonly AuditEvent[], anchor: string, now: number, token?: T, bytes = 0, group = 0): void {
    const each = events.length ? bytes / events.length : 0;
    const trace = this.touch(traceId, now, group);
    for (const event of events) {
      const id = auditIDForSpans(event.auditID);
      addAuditId(trace, id);
      if (anchor) (trace.anchors ??= new Map()).set(id, anchor);
      this.addAuditToTrace(trace, event, each);
    }
    if (token !== undefined) this.hold(trace, token);
    this.enforceCaps();
  }

  /**
   * What settled: traces idle for settleAfterMs (every trace with `all`), audit events pending for
   * longer than pendingAuditTtlMs (all with `all`), and what the caps settled early since the last call.
   *
   * `ready(group, lastUpdate)`, when given, may hold an idle trace back (the Kafka driver: while the
   * input that could still bring its audit events lags); a trace idle for settleAfterMs +
   * maxLagWaitMs settles anyway and is counted.
   */
  settle(now: number, all = false, ready?: (group: number, lastUpdate: number) => boolean): JoinOutput<T, S> {
    const out = this.early;
    this.early = { traces: [], unjoinedAuditEvents: [], released: [] };
    let due = Infinity;
    // The maps are walked in place (settleTrace and releasePending only delete the entry at hand,
    // which a Map iterator allows): a copy per call cost O(traces held) even when nothing was due.
    for (const trace of this.traces.values()) {
      const idle = now - trace.lastUpdate;
      if (!all && idle < this.opts.settleAfterMs) {
        due = Math.min(due, trace.lastUpdate + this.opts.settleAfterMs);
        break; // LRU order: the rest are newer
      }
      if (!all && ready && !ready(trace.group, trace.lastUpdate)) {
        // Waits for the driver's input (its next look at it settles it), at most until then.
        if (idle < this.opts.settleAfterMs + this.opts.maxLagWaitMs) {
          due = Math.min(due, trace.lastUpdate + this.opts.settleAfterMs + this.opts.maxLagWaitMs);
          continue;
        }
        this.metrics.lagWaitExceeded.inc({ kind: 'trace' });
      }
      this.settleTrace(trace, all ? 'shutdown' : 'idle', out);
    }
    for (const [id, p] of this.pending) {
      if (!all && now - p.lastUpdate < this.opts.pendingAuditTtlMs) {
        due = Math.min(due, p.lastUpdate + this.opts.pendingAuditTtlMs);
        break;
      }
      this.releasePending(id, p, out);
    }
    this.due = due;
    if (this.describe && (out.traces.length || out.unjoinedAuditEvents.length)) {
      out.apiOperations = describeRequests([...out.traces.flatMap((t) => t.auditEvents), ...out.unjoinedAuditEvents], this.describe);
    }
    this.updateGauges();
    return out;
  }

  /**
   * The earliest time settle() can hand out an idle trace or an expired pending audit request
   * (undefined: nothing is held). Never later than that time; it may be earlier (a trace updated
   * since was due then), so a driver that sets one timer to it and settles when it fires settles
   * each trace at its due time, not up to a polling period later; settle() makes it exact again.
   * A trace held back by settle()'s `ready` counts as due when its wait runs out: what ends the
   * wait sooner is the driver's own look at its input.
   */
  nextDue(): number | undefined {
    return this.due === Infinity ? undefined : this.due;
  }

  /** Updates settled early by a cap, waiting for the next settle(): a driver settles at once past a threshold. */
  earlyCount(): number {
    return this.early.traces.length + this.early.unjoinedAuditEvents.length;
  }

  /** Forgets what a group holds (the Kafka driver, for partitions it no longer owns): their tokens are not released. */
  forget(keep: (group: number, kind: 'trace' | 'pending') => boolean): number {
    let dropped = 0;
    for (const [id, t] of this.traces) {
      if (keep(t.group, 'trace')) continue;
      this.traces.delete(id);
      this.spansBuffered -= t.spans.length;
      this.bytesBuffered -= t.bytes;
      dropped++;
    }
    for (const [id, p] of this.pending) {
      if (keep(p.group, 'pending')) continue;
      this.pending.delete(id);
      this.bytesBuffered -= p.bytes;
    }
    this.updateGauges();
    return dropped;
  }

  stats(): { tracesInFlight: number; spansInFlight: number; pendingAudits: number; auditIndex: number; bytesInFlight: number } {
    return { tracesInFlight: this.traces.size, spansInFlight: this.spansBuffered, pendingAudits: this.pending.size, auditIndex: this.auditIndex.size, bytesInFlight: Math.round(this.bytesBuffered) };
  }

  private hold(holder: Holder<T>, token: T): void {
    if (holds(holder, token)) return;
    addHeld(holder, token);
    this.onHold?.(token);
  }

  private touch(traceId: string, now: number, group: number): TraceBuffer<T, S> {
    let trace = this.traces.get(traceId);
    if (trace) this.traces.delete(traceId);
    // Every field from the start (the lazy ones undefined): one object shape, fields in the object.
    else trace = { traceId, spans: [], spanIndex: undefined, auditIds: undefined, audit: undefined, auditByKey: undefined, anchors: undefined, held: [], heldSet: undefined, bytes: 0, group, lastUpdate: now };
    trace.lastUpdate = now;
    this.traces.set(traceId, trace);
    if (now + this.opts.settleAfterMs < this.due) this.due = now + this.opts.settleAfterMs;
    return trace;
  }

  private attachAuditId(trace: TraceBuffer<T, S>, auditId: string): void {
    smallAdd(auditIdsOf(trace), auditId);
    const known = this.auditIndex.get(auditId);
    if (known !== trace.traceId) {
      if (known === undefined) this.metrics.joined.inc();
      this.auditIndex.delete(auditId);
      this.auditIndex.set(auditId, trace.traceId);
      if (this.auditIndex.size > this.opts.auditIndexSize) this.auditIndex.delete(this.auditIndex.keys().next().value as string);
    }
    const p = this.pending.get(auditId);
    if (p) {
      this.pending.delete(auditId);
      this.bytesBuffered -= p.bytes;
      const each = p.events.size ? p.bytes / p.events.size : 0;
      for (const e of p.events.values()) this.addAuditToTrace(trace, e, each);
      for (const t of p.held) {
        // The trace holds the pending request's tokens now; each is still held once.
        if (holds(trace, t)) this.early.released.push(t);
        else addHeld(trace, t);
      }
    }
  }

  /**
   * Of two copies of a stage, the one kept: a redelivery is dropped; a copy that differs (a bug, or a forged event)
   * is counted as `audit_event_conflict`, and of the two the canonically smaller is kept, so what is
   * kept does not depend on which came first.
   */
  private keptOf(seen: AuditEvent, event: AuditEvent): AuditEvent {
    if (!auditEventsConflict(seen, event)) {
      this.metrics.duplicates.inc({ kind: 'audit_event' });
      return seen;
    }
    this.metrics.duplicates.inc({ kind: 'audit_event_conflict' });
    return canonicalAuditJson(event) < canonicalAuditJson(seen) ? event : seen;
  }

  private addAuditToTrace(trace: TraceBuffer<T, S>, event: AuditEvent, bytes: number): void {
    const list = trace.audit ?? [];
    const byKey = trace.auditByKey;
    const seen = byKey ? byKey.get(auditKey(event)) : list.find((e) => e.auditID === event.auditID && e.stage === event.stage);
    if (seen) {
      const kept = this.keptOf(seen, event);
      if (kept !== seen) {
        list[list.indexOf(seen)] = kept;
        byKey?.set(auditKey(event), kept);
      }
      return;
    }
    trace.audit = appended(list, event);
    if (byKey) byKey.set(auditKey(event), event);
    else if (trace.audit.length > SMALL) trace.auditByKey = new Map(trace.audit.map((e) => [auditKey(e), e]));
    trace.bytes += bytes;
    this.bytesBuffered += bytes;
  }

  private settleTrace(trace: TraceBuffer<T, S>, reason: SettleReason, out: JoinOutput<T, S>): void {
    this.traces.delete(trace.traceId);
    this.spansBuffered -= trace.spans.length;
    this.bytesBuffered -= trace.bytes;
    out.released.push(...trace.held);
    if (!trace.audit?.length && !this.recent.has(trace.traceId) && this.model.isLoneAuthentication(trace.spans)) {
      this.metrics.dropped.inc({ reason: 'lone_authentication' });
      return;
    }
    this.recent.add(trace.traceId);
    this.metrics.settled.inc({ reason });
    out.traces.push({
      traceId: trace.traceId,
      spans: trace.spans,
      auditEvents: trace.audit ?? [],
      auditIds: trace.auditIds?.list ?? [],
      ...(trace.anchors?.size ? { anchors: trace.anchors } : {}),
      reason,
      sources: trace.held,
    });
  }

  private releasePending(id: string, p: PendingAudit<T>, out: JoinOutput<T, S>): void {
    this.pending.delete(id);
    this.bytesBuffered -= p.bytes;
    for (const e of p.events.values()) out.unjoinedAuditEvents.push(e);
    out.released.push(...p.held);
  }

  private enforceCaps(): void {
    while (this.traces.size > this.opts.maxTracesInFlight) this.evictOldest('max_traces');
    while (this.spansBuffered > this.opts.maxSpansInFlight && this.traces.size) this.evictOldest('max_spans_in_flight');
    while (this.bytesBuffered > this.opts.maxBytesInFlight && (this.traces.size || this.pending.size)) {
      // The oldest of either: a trace, or a pending audit request (which goes out unjoined).
      const trace = this.traces.values().next().value as TraceBuffer<T, S> | undefined;
      const pend = this.pending.entries().next().value as [string, PendingAudit<T>] | undefined;
      if (trace && (!pend || trace.lastUpdate <= pend[1].lastUpdate)) this.evictOldest('max_bytes_in_flight');
      else if (pend) {
        this.metrics.evicted.inc({ reason: 'max_bytes_in_flight' });
        this.releasePending(pend[0], pend[1], this.early);
      }
    }
    this.updateGauges();
  }

  private evictOldest(reason: SettleReason): void {
    const oldest = this.traces.values().next().value as TraceBuffer<T, S>;
    this.metrics.evicted.inc({ reason });
    this.settleTrace(oldest, reason, this.early);
  }

  private updateGauges(): void {
    this.metrics.tracesInFlight.set(this.traces.size);
    this.metrics.spansInFlight.set(this.spansBuffered);
    this.metrics.pendingAudits.set(this.pending.size);
    this.metrics.bytesInFlight.set(Math.max(0, Math.round(this.bytesBuffered)));
  }
}
