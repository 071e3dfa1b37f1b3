/**
 * The correlator benchmark's workload and its output check (see correlator.ts).
 *
 * Workload: the deployment scenario of @kube-correlate/fixtures (kube-apiserver request traces,
 * the kubectl caller's trace and detached authentication spans, plus two audit events per request),
 * over seeds 1..T as templates, copied with fresh ids: copy k of a template rewrites every trace id
 * and audit id to start with k as 8 hex digits (the rest of the template's id kept), and links to
 * traces of the same template accordingly. Messages are what the collector's Kafka exporter writes:
 * one trace per `otlp_spans` message (key = trace id, value `encodeTraceRequest`), one audit Event
 * per `k8s_audit` message (key `auditIDForSpans(auditID)`, value its JSON).
 *
 * Check (the lone authentication spans are dropped by the correlator since issue 13, so not
 * expected): every expected span arrives (by trace id and span id), every audit request is joined
 * (a derived audit span, child of the request's anchor span, holding every stage), nothing else
 * arrives; duplicates, trees split over several messages and joins that came in a later update are
 * counted.
 */
import { auditIDForSpans, type AuditEvent } from '@kube-correlate/audit';
import { auditSpanId, DERIVED_SCOPE, isLoneAuthentication, requestAnchor } from '@kube-correlate/correlator';
import { generateDeploymentScenario, type Scenario } from '@kube-correlate/fixtures';
import { attrString, decodeTraceRequest, encodeTraceRequest, type Span } from '@kube-correlate/otlp';

export interface Msg { key: string; value: Uint8Array | string }

export interface ExpectedAudit {
  /** As spans carry it (auditIDForSpans). */
  auditId: string;
  /** The span the audit request hangs under (requestAnchor). */
  anchor: string;
  auditSpanId: string;
  stages: string[];
}

export interface ExpectedTrace {
  traceId: string;
  kind: string;
  spanIds: string[];
  audits: ExpectedAudit[];
  /** kube-apiserver's lone authentication span: the correlator drops it (counted), so it never arrives. */
  dropped?: boolean;
}

export interface WorkItem {
  expect: ExpectedTrace;
  /** The trace's otlp_spans message (value: encodeTraceRequest). */
  spans: { key: string; value: Uint8Array };
  /** Its audit events, in stage-time order. */
  audit: Msg[];
}

export interface Workload {
  items: WorkItem[];
  spans: number;
  traces: number;
  auditEvents: number;
  auditIds: number;
  spanBytes: number;
  auditBytes: number;
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** Templates (one scenario per seed) and a counter of copies handed out, so ids never repeat. */
export class WorkloadFactory {
  private readonly templates: Scenario[] = [];
  private nextCopy = 1;
  readonly spansPerTemplateRound: number;

  constructor(seeds: number) {
    const tails = new Set<string>();
    const check = (id: string, what: string) => {
      const t = id.slice(8);
      if (tails.has(t)) throw new Error(`workload: two templates share the ${what} tail ${t}: ids would repeat`);
      tails.add(t);
    };
    let spans = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const s = generateDeploymentScenario({ seed });
      for (const t of s.traces) check(t.traceId, 'trace id');
      for (const id of new Set(s.auditEvents.map((e) => e.auditID))) check(id, 'audit id');
      spans += s.spans.length;
      this.templates.push(s);
    }
    this.spansPerTemplateRound = spans;
  }

  /** Whole template copies, in order, until at least `minSpans` spans. */
  make(minSpans: number): Workload {
    const w: Workload = { items: [], spans: 0, traces: 0, auditEvents: 0, auditIds: 0, spanBytes: 0, auditBytes: 0 };
    for (let i = 0; w.spans < minSpans; i++) {
      const copy = this.nextCopy++;
      const s = this.templates[i % this.templates.length]!;
      for (const item of copyScenario(s, copy)) {
        w.items.push(item);
        w.spans += item.expect.spanIds.length;
        w.traces++;
        w.auditEvents += item.audit.length;
        w.auditIds += item.expect.audits.length;
        w.spanBytes += item.spans.value.length;
        for (const a of item.audit) w.auditBytes += a.value.length;
      }
    }
    return w;
  }
}

function copyScenario(s: Scenario, copy: number): WorkItem[] {
  const prefix = hex8(copy);
  const traceIds = new Map<string, string>();
  for (const t of s.traces) traceIds.set(t.traceId, prefix + t.traceId.slice(8));
  const auditIds = new Map<string, string>();
  for (const e of s.auditEvents) if (!auditIds.has(e.auditID)) auditIds.set(e.auditID, prefix + e.auditID.slice(8));
  const events = new Map<string, AuditEvent[]>();
  for (const e of s.auditEvents) {
    const id = auditIDForSpans(auditIds.get(e.auditID)!);
    const ev: AuditEvent = { ...e, auditID: auditIds.get(e.auditID)! };
    const list = events.get(id);
    if (list) list.push(ev);
    else events.set(id, [ev]);
  }
  const used = new Set<string>();
  const items: WorkItem[] = [];
  for (const t of s.traces) {
    const traceId = traceIds.get(t.traceId)!;
    const spans: Span[] = t.spans.map((sp) => ({
      ...sp,
      traceId,
      attributes: sp.attributes.map((kv) => {
        if (kv.key !== 'audit-id') return kv;
        const v = attrString([kv], 'audit-id');
        const mapped = v === undefined ? undefined : auditIds.get(v);
        return mapped ? { key: kv.key, value: { stringValue: auditIDForSpans(mapped) } } : kv;
      }),
      links: sp.links.map((l) => ({ ...l, traceId: traceIds.get(l.traceId) ?? l.traceId })),
    }));
    const byId = new Map(spans.map((sp) => [sp.spanId, sp]));
    const ids = [...new Set(spans.map((sp) => attrString(sp.attributes, 'audit-id')).filter((v): v is string => v !== undefined))];
    const audits: ExpectedAudit[] = [];
    const audit: Msg[] = [];
    for (const id of ids) {
      const evs = events.get(id);
      if (!evs) continue; // a span naming an audit id without events (not in this scenario)
      used.add(id);
      const anchor = requestAnchor(id, byId);
      audits.push({ auditId: id, anchor: anchor?.spanId ?? '', auditSpanId: auditSpanId(id), stages: evs.map((e) => e.stage) });
      for (const e of evs) audit.push({ key: auditIDForSpans(e.auditID), value: JSON.stringify(e) });
    }
    const dropped = audits.length === 0 && isLoneAuthentication(spans);
    items.push({ expect: { traceId, kind: t.kind, spanIds: spans.map((sp) => sp.spanId), audits, ...(dropped ? { dropped } : {}) }, spans: { key: traceId, value: encodeTraceRequest(spans) }, audit });
  }
  if (used.size !== events.size) throw new Error(`workload: ${events.size - used.size} audit requests of the template have no spans: the check expects every one joined`);
  return items;
}

// ---------------------------------------------------------------------------------------------
// The output check

interface TraceSeen {
  spans: Set<string>;
  /** auditId -> stages seen in derived audit spans under a span of the trace. */
  stages: Map<string, Set<string>>;
  /** auditIds whose anchor span came with k8s.audit.id (joined in the same settle as the spans). */
  routeJoined: Set<string>;
  messages: number;
  /** Timestamp (ms) of the message that made the tree complete. */
  completeAt?: number;
  firstAt: number;
  lastAt: number;
}

export interface CheckReport {
  expectedTraces: number;
  /** Every span and every audit join present (over all messages of the trace). */
  complete: number;
  tracesMissing: number;
  missingSpans: number;
  /** Audit requests with a stage missing, or no audit span under a span of their trace. */
  auditsNotJoined: number;
  /** Audit requests whose route span carried no k8s.audit.* attributes: joined by a later update only. */
  auditsJoinedLate: number;
  /** Audit requests with an audit span under a span of the trace other than the request's anchor (requestAnchor). */
  auditsUnderOtherSpan: number;
  /** Traces that arrived in more than one message (settled, then updated). */
  splitTraces: number;
  /** Messages of the (group's) expected traces. */
  messages: number;
  /** Every message read, and the sum and maximum of their values' sizes. */
  messagesRead: number;
  bytes: number;
  maxBytes: number;
  duplicateSpans: number;
  duplicateAuditSpans: number;
  /** Audit spans written again under the same span id with other stages (a consumer deduplicating by span id keeps one). */
  conflictingAuditSpans: number;
  /** Spans of trace ids or span ids we never sent (e.g. unjoined audit traces). */
  unexpectedSpans: number;
  unexpectedTraces: number;
  keyMismatch: number;
  undecodable: number;
  /** First and last message timestamp (ms, the broker's LogAppendTime on our topics) of the expected traces. */
  firstAt?: number;
  lastAt?: number;
}

/** Reads `otlp_correlated` messages and checks them against the expected traces. */
export class OutputCheck {
  private readonly expected = new Map<string, ExpectedTrace>();
  private readonly groups = new Map<string, string>();
  private readonly seen = new Map<string, TraceSeen>();
  private readonly auditSpansSeen = new Map<string, string>();
  private readonly unexpected = new Set<string>();
  /** trace/audit ids whose audit span came (also) under a span of the trace other than the request's anchor. */
  private readonly elsewhere = new Set<string>();
  private r: Omit<CheckReport, 'expectedTraces' | 'complete' | 'tracesMissing' | 'missingSpans' | 'auditsNotJoined' | 'auditsJoinedLate' | 'auditsUnderOtherSpan' | 'splitTraces' | 'messages'> = {
    messagesRead: 0, bytes: 0, maxBytes: 0, duplicateSpans: 0, duplicateAuditSpans: 0, conflictingAuditSpans: 0, unexpectedSpans: 0, unexpectedTraces: 0, keyMismatch: 0, undecodable: 0,
  };

  constructor(traces: Iterable<ExpectedTrace> = []) {
    for (const t of traces) this.expect(t);
  }

  /** Adds a trace to expect; `group` lets report() cover a subset (e.g. the live traces). A dropped one must not come. */
  expect(t: ExpectedTrace, group = 'main'): void {
    if (t.dropped) return;
    this.expected.set(t.traceId, t);
    this.groups.set(t.traceId, group);
  }

  get expectedCount(): number { return this.expected.size; }

  completedAt(traceId: string): number | undefined { return this.seen.get(traceId)?.completeAt; }

  add(key: string | undefined, value: Uint8Array, timestamp: number): void {
    this.r.messagesRead++;
    this.r.bytes += value.length;
    if (value.length > this.r.maxBytes) this.r.maxBytes = value.length;
    let spans: Span[];
    try {
      spans = decodeTraceRequest(value).spans;
    } catch {
      this.r.undecodable++;
      return;
    }
    const touched = new Set<string>();
    for (const s of spans) {
      if (key !== undefined && s.traceId !== key) this.r.keyMismatch++;
      const exp = this.expected.get(s.traceId);
      if (!exp) {
        this.r.unexpectedSpans++;
        if (!this.unexpected.has(s.traceId)) { this.unexpected.add(s.traceId); this.r.unexpectedTraces++; }
        continue;
      }
      let st = this.seen.get(s.traceId);
      if (!st) this.seen.set(s.traceId, (st = { spans: new Set(), stages: new Map(), routeJoined: new Set(), messages: 0, firstAt: timestamp, lastAt: timestamp }));
      if (!touched.has(s.traceId)) {
        touched.add(s.traceId);
        st.messages++;
        if (timestamp > st.lastAt) st.lastAt = timestamp;
      }
      if (s.scope.name === DERIVED_SCOPE) {
        const id = attrString(s.attributes, 'k8s.audit.id');
        const a = id === undefined ? undefined : exp.audits.find((x) => x.auditId === auditIDForSpans(id));
        if (!a || s.spanId !== a.auditSpanId) { this.r.unexpectedSpans++; continue; }
        const k = `${s.traceId}/${s.spanId}`;
        const stagesHere = s.events.map((e) => e.name).sort().join(',');
        const before = this.auditSpansSeen.get(k);
        if (before === undefined) this.auditSpansSeen.set(k, stagesHere);
        else {
          this.r.duplicateAuditSpans++;
          if (before !== stagesHere) this.r.conflictingAuditSpans++;
        }
        if (s.parentSpanId !== a.anchor) {
          if (!exp.spanIds.includes(s.parentSpanId)) continue; // not under a span of its trace: not joined
          this.elsewhere.add(`${s.traceId}/${a.auditId}`);
        }
        let set = st.stages.get(a.auditId);
        if (!set) st.stages.set(a.auditId, (set = new Set()));
        for (const e of s.events) set.add(e.name);
        continue;
      }
      if (!exp.spanIds.includes(s.spanId)) { this.r.unexpectedSpans++; continue; }
      if (st.spans.has(s.spanId)) this.r.duplicateSpans++;
      else st.spans.add(s.spanId);
      const aid = attrString(s.attributes, 'k8s.audit.id');
      if (aid !== undefined) {
        const a = exp.audits.find((x) => x.auditId === auditIDForSpans(aid));
        if (a && a.anchor === s.spanId) st.routeJoined.add(a.auditId);
      }
    }
    for (const id of touched) {
      const st = this.seen.get(id)!;
      if (st.completeAt !== undefined) continue;
      const exp = this.expected.get(id)!;
      if (st.spans.size === exp.spanIds.length && exp.audits.every((a) => a.stages.every((x) => st.stages.get(a.auditId)?.has(x)))) {
        st.completeAt = timestamp;
      }
    }
  }

  /** Over the traces of `group` (all when undefined); the duplicate/unexpected counters cover every message read. */
  report(group?: string): CheckReport {
    let complete = 0, tracesMissing = 0, missingSpans = 0, auditsNotJoined = 0, auditsJoinedLate = 0, auditsUnderOtherSpan = 0, splitTraces = 0;
    let firstAt: number | undefined;
    let lastAt: number | undefined;
    let expectedTraces = 0;
    let messages = 0;
    for (const [id, exp] of this.expected) {
      if (group !== undefined && this.groups.get(id) !== group) continue;
      expectedTraces++;
      const st = this.seen.get(id);
      if (!st) { tracesMissing++; missingSpans += exp.spanIds.length; auditsNotJoined += exp.audits.length; continue; }
      if (st.completeAt !== undefined) complete++;
      missingSpans += exp.spanIds.length - st.spans.size;
      for (const a of exp.audits) {
        if (!a.stages.every((x) => st.stages.get(a.auditId)?.has(x))) auditsNotJoined++;
        else if (!st.routeJoined.has(a.auditId)) auditsJoinedLate++;
        if (this.elsewhere.has(`${id}/${a.auditId}`)) auditsUnderOtherSpan++;
      }
      if (st.messages > 1) splitTraces++;
      messages += st.messages;
      if (firstAt === undefined || st.firstAt < firstAt) firstAt = st.firstAt;
      if (lastAt === undefined || st.lastAt > lastAt) lastAt = st.lastAt;
    }
    return { expectedTraces, complete, tracesMissing, missingSpans, auditsNotJoined, auditsJoinedLate, auditsUnderOtherSpan, splitTraces, messages, ...this.r, firstAt, lastAt };
  }
}

/** Problems that make a run's result wrong (an empty list: the output is right). */
export function checkProblems(r: CheckReport): string[] {
  const p: string[] = [];
  if (r.tracesMissing) p.push(`${r.tracesMissing} of ${r.expectedTraces} traces missing`);
  if (r.missingSpans) p.push(`${r.missingSpans} spans missing`);
  if (r.auditsNotJoined) p.push(`${r.auditsNotJoined} audit requests not joined`);
  if (r.unexpectedTraces) p.push(`${r.unexpectedTraces} unexpected traces (${r.unexpectedSpans} spans; unjoined audit traces?)`);
  else if (r.unexpectedSpans) p.push(`${r.unexpectedSpans} unexpected spans`);
  if (r.keyMismatch) p.push(`${r.keyMismatch} spans under another trace's key`);
  if (r.undecodable) p.push(`${r.undecodable} undecodable messages`);
  return p;
}

/** Observations that are allowed by the delivery contract (consumers deduplicate) but worth reporting. */
export function checkNotes(r: CheckReport): string[] {
  const n: string[] = [];
  if (r.duplicateSpans) n.push(`${r.duplicateSpans} duplicate spans`);
  if (r.duplicateAuditSpans) n.push(`${r.duplicateAuditSpans} audit spans written again${r.conflictingAuditSpans ? ` (${r.conflictingAuditSpans} of them with other stages under the same span id)` : ''}`);
  if (r.splitTraces) n.push(`${r.splitTraces} traces in more than one message`);
  if (r.auditsJoinedLate) n.push(`${r.auditsJoinedLate} audit requests joined only by a later update (route span without k8s.audit.*)`);
  if (r.auditsUnderOtherSpan) n.push(`${r.auditsUnderOtherSpan} audit spans under another span of the trace than the request's anchor (route span)`);
  return n;
}
