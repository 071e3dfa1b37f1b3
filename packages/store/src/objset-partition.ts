import { randomUUID } from 'node:crypto';
import { auditIDForSpans, type AuditEvent } from '@kube-correlate/audit';
import { encodeCorrelatedTrace, encodeUnjoinedAudit, objectsOfAudit, type CorrelatorOutput } from '@kube-correlate/correlator';
import { javaPartition, topicSpec, type ConsumedMessage, type Consumer, type KafkaClient, type OutgoingMessage, type Producer, type TopicSpec } from '@kube-correlate/kafka';
import { attrString, type Span } from '@kube-correlate/otlp';
import { AUDIT_ID, DERIVED_SCOPE, objectSetWindowStart } from '@kube-correlate/semconv';
import { PipelineMetrics, silentLogger, type Logger } from '@kube-correlate/telemetry';
import { Counter, Gauge } from 'prom-client';
import { setObjectSetScope } from './export-plan.js';
import type { ObjectRow } from '@kube-correlate/correlator';
import type { TraceStore } from './trace-store.js';

/**
 * Object sets in Kafka mode, shared by N `correlate store` instances (README "Object sets
 * partitioned"). Each instance reads its share of `otlp_correlated` (the KafkaStoreLoader) and then:
 *
 *  - publishes what it learnt about objects to `kc_objects` (compacted, key = object uid: the
 *    object as its store has it, every fact merged), and reads that topic WHOLE (a consumer group of
 *    its own, from the beginning, never committed: a global table) into its store, so every
 *    instance resolves any object to its set root (annotation, audit annotation, controller owners
 *    up any number of levels) whichever instance saw the owner, and whenever it came;
 *  - publishes each request that touched an object as a summary (its audit events, as stored:
 *    already redacted, and per trace it joined the spans that name its request anchor) to
 *    `kc_objset_requests`, keyed and partitioned by its object-set id; the instances share that
 *    topic in one consumer group, and the owner of a set's partition writes its summaries into its
 *    store and alone exports the set's windows (planExport's object-set scope);
 *  - re-publishes a summary under its new set id when the global table moves its object to another
 *    set (an owner or an annotation came later): `kube_correlate_objset_reemitted_total`.
 *
 * What a summary alone brought (spans and audit stages of a request trace read by another instance)
 * is recorded as exported when written: the instance that read the trace exports it.
 */

/** A message of the objects topic: one object, as the publishing store has it (ObjectRow). */
export interface ObjectFact {
  v: 1;
  object: ObjectRow;
}

/** A message of the object-set requests topic: one audit request filed under an object set. */
export interface RequestSummary {
  v: 1;
  setId: string;
  /** The 64-byte form. */
  auditId: string;
  /** Every stage stored for the request (already redacted by whoever stored them). */
  events: AuditEvent[];
  /** The traces the request joined, each with the spans that find its anchor (requestAnchor): the spans naming an audit-id, their ancestors and the roots. */
  traces: Array<{ traceId: string; spans: Span[] }>;
}

export interface ObjectSetSharingOptions {
  client: KafkaClient;
  store: TraceStore;
  /** The store loader's consumer group; the object-set requests are shared in `<groupId>-objsets`. */
  groupId: string;
  /** Default `kc_objects`. */
  objectsTopic?: string;
  /** Default `kc_objset_requests`. */
  requestsTopic?: string;
  /** Partitions of the topics when this process creates them. Default 8. */
  partitions?: number;
  /** How long a published request is watched for a change of its set id (re-emission). Default 10 minutes. */
  reemitForMs?: number;
  /** Names this process's own consumer group of the objects topic (`<groupId>-objects-<id>`). Default a random UUID. */
  instanceId?: string;
  metrics?: PipelineMetrics;
  logger?: Logger;
  /** How often the lag gauge is measured (ms; 0: never). Default 30 s. */
  lagIntervalMs?: number;
  /** Clock (ms), for tests. */
  now?: () => number;
}

/** The objects topic: compacted (the newest fact of each uid stays), never deleted by age. */
export function objectsTopicSpec(name: string, partitions: number): TopicSpec {
  return { name, partitions, configs: { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': '60000' } };
}

interface Metrics {
  reemitted: Counter;
  objects: Gauge;
  lag: Gauge<'topic'>;
  published: Counter<'topic'>;
  refused: Counter<'topic'>;
}

/** The sharing metrics, registered once per registry. */
function sharingMetrics(m: PipelineMetrics): Metrics {
  const registers = [m.registry];
  const p = 'kube_correlate_objset_';
  const get = <T>(name: string, make: () => T): T => (m.registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    reemitted: get(`${p}reemitted_total`, () => new Counter({ name: `${p}reemitted_total`, help: 'Requests published again under a new object-set id (the objects table moved their object to another set).', registers })),
    objects: get(`${p}objects_table_size`, () => new Gauge({ name: `${p}objects_table_size`, help: 'Objects in the shared objects table as this instance read it.', registers })),
    lag: get(`${p}lag_messages`, () => new Gauge({ name: `${p}lag_messages`, help: 'Messages of the objects and object-set requests topics this instance has not read yet (at its last batch).', labelNames: ['topic'], registers })),
    published: get(`${p}published_total`, () => new Counter({ name: `${p}published_total`, help: 'Messages published to the objects and object-set requests topics.', labelNames: ['topic'], registers })),
    refused: get(`${p}refused_total`, () => new Counter({ name: `${p}refused_total`, help: 'Messages of the objects and object-set requests topics that could not be read (skipped).', labelNames: ['topic'], registers })),
  };
}

/** The spans of a trace that decide a request's anchor: those naming an audit-id, their ancestors, and the roots. */
export function anchorSpans(spans: readonly Span[]): Span[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const keep = new Set<string>();
  for (const s of spans) {
    if (!s.parentSpanId) keep.add(s.spanId);
    if (!attrString(s.attributes, AUDIT_ID)) continue;
    for (let cur: Span | undefined = s; cur && !keep.has(cur.spanId); cur = cur.parentSpanId ? byId.get(cur.parentSpanId) : undefined) keep.add(cur.spanId);
  }
  return spans.filter((s) => keep.has(s.spanId));
}

const FACT_FIELDS: Array<keyof ObjectRow> = ['uid', 'kind', 'api_version', 'resource', 'namespace', 'name', 'owner_uid', 'objset_id', 'first_seen', 'deleted', 'owner_kind', 'owner_name', 'owner_api_version'];

function parseFact(v: Buffer | null): ObjectRow | undefined {
  const f = JSON.parse(v?.toString('utf8') ?? 'null') as Partial<ObjectFact> | null;
  const o = f?.object as Record<string, unknown> | undefined;
  if (f?.v !== 1 || !o || typeof o !== 'object') return undefined;
  for (const k of FACT_FIELDS) if (k === 'deleted' ? typeof o[k] !== 'number' : typeof o[k] !== 'string') return undefined;
  return o.uid ? (o as unknown as ObjectRow) : undefined;
}

function parseSummary(v: Buffer | null): RequestSummary | undefined {
  const s = JSON.parse(v?.toString('utf8') ?? 'null') as Partial<RequestSummary> | null;
  if (s?.v !== 1 || typeof s.setId !== 'string' || !s.setId || typeof s.auditId !== 'string' || !s.auditId || !Array.isArray(s.events) || !Array.isArray(s.traces)) return undefined;
  if (!s.events.every((e) => e && typeof e === 'object' && typeof e.auditID === 'string' && typeof e.stage === 'string')) return undefined;
  if (!s.traces.every((t) => t && typeof t.traceId === 'string' && Array.isArray(t.spans))) return undefined;
  return s as RequestSummary;
}

const factJson = (o: ObjectRow) => JSON.stringify(FACT_FIELDS.map((k) => o[k]));

/**
 * Requests this instance published, watched until `untilMs` for a change of their set id: by
 * auditId, by the uids their set id was resolved through (a change to one of those objects may move
 * them), and those whose object was not known yet (set id '').
 */
class WatchList {
  private readonly byAudit = new Map<string, { setId: string; untilMs: number; uids: string[] }>();
  private readonly byUid = new Map<string, Set<string>>();
  private readonly pending = new Set<string>();
  private nextSweep = 0;

  has(auditId: string): boolean {
    return this.byAudit.has(auditId);
  }

  get(auditId: string): { setId: string; untilMs: number } | undefined {
    return this.byAudit.get(auditId);
  }

  set(auditId: string, setId: string, untilMs: number, uids: string[]): void {
    this.remove(auditId);
    this.byAudit.set(auditId, { setId, untilMs, uids });
    for (const u of uids) {
      let ids = this.byUid.get(u);
      if (!ids) this.byUid.set(u, (ids = new Set()));
      ids.add(auditId);
    }
    if (!setId) this.pending.add(auditId);
  }

  private remove(auditId: string): void {
    const w = this.byAudit.get(auditId);
    if (!w) return;
    this.byAudit.delete(auditId);
    this.pending.delete(auditId);
    for (const u of w.uids) {
      const ids = this.byUid.get(u);
      ids?.delete(auditId);
      if (ids?.size === 0) this.byUid.delete(u);
    }
  }

  /** The watched requests a change of these objects may move (and those whose object was not known); forgets the expired ones (swept each minute). */
  affected(uids: Iterable<string>, now: number): string[] {
    if (now >= this.nextSweep) {
      for (const [id, w] of this.byAudit) if (w.untilMs < now) this.remove(id);
      this.nextSweep = now + 60_000;
    }
    const out = new Set(this.pending);
    for (const u of uids) for (const id of this.byUid.get(u) ?? []) out.add(id);
    return [...out];
  }
}

export class ObjectSetSharing {
  private readonly objectsTopic: string;
  private readonly requestsTopic: string;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly now: () => number;
  private producer: Producer | undefined;
  private objectsConsumer: Consumer | undefined;
  private requestsConsumer: Consumer | undefined;
  private partitions = 0;
  /** Partitions of the requests topic this instance owns (its share of the consumer group). */
  private owned = new Set<number>();
  /** Each object as the objects table last showed it (or as this instance published it). */
  private readonly facts = new Map<string, string>();
  /** Requests this instance published, watched for a change of their set id. */
  private readonly watched = new WatchList();
  private stopped = false;

  constructor(private readonly opts: ObjectSetSharingOptions) {
    this.objectsTopic = opts.objectsTopic ?? 'kc_objects';
    this.requestsTopic = opts.requestsTopic ?? 'kc_objset_requests';
    this.metrics = sharingMetrics(opts.metrics ?? new PipelineMetrics());
    this.logger = opts.logger ?? silentLogger();
    this.now = opts.now ?? Date.now;
  }

  /** Creates the topics when missing, reads the objects table and joins the requests' group. */
  async start(): Promise<void> {
    const n = this.opts.partitions ?? 8;
    const admin = await this.opts.client.admin();
    try {
      await admin.ensureTopics([objectsTopicSpec(this.objectsTopic, n), topicSpec(this.requestsTopic, n)]);
      this.partitions = await admin.partitionCount(this.requestsTopic);
    } finally {
      await admin.disconnect();
    }
    // Until the group assigns partitions this instance owns no set; the plan skips them meanwhile
    // and the owner re-queues them (queueObjectExport) when it reads their requests.
    setObjectSetScope(this.opts.store, (setId) => this.owns(setId));
    this.producer = await this.opts.client.producer();
    this.objectsConsumer = await this.opts.client.consumer({ groupId: `${this.opts.groupId}-objects-${this.opts.instanceId ?? randomUUID()}`, topics: [this.objectsTopic], fromBeginning: true });
    await this.objectsConsumer.run((batch) => this.onObjects(batch));
    this.requestsConsumer = await this.opts.client.consumer({ groupId: `${this.opts.groupId}-objsets`, topics: [this.requestsTopic] });
    this.requestsConsumer.onAssignment((a) => {
      this.owned = new Set(a[this.requestsTopic] ?? []);
      this.logger.info({ partitions: [...this.owned] }, 'object-set partitions assigned');
    });
    await this.requestsConsumer.run((batch) => this.onRequests(batch));
    const every = this.opts.lagIntervalMs ?? 30_000;
    if (every > 0) {
      this.lagTimer = setInterval(() => {
        this.measureLag().catch((err: unknown) => this.logger.debug({ err }, 'cannot measure the object-set topics\' lag'));
      }, every);
      this.lagTimer.unref();
    }
  }

  /** Whether this instance exports the set's windows: it owns the set's partition of the requests topic. */
  owns(setId: string): boolean {
    return this.partitions > 0 && this.owned.has(javaPartition(setId, this.partitions));
  }

  /**
   * After the loader stored `output`: publishes the objects it touched and its requests, and
   * resolves once Kafka acknowledged them (then the loader may commit its offsets).
   */
  async publish(output: CorrelatorOutput): Promise<void> {
    const events = [...output.traces.flatMap((t) => t.auditEvents), ...output.unjoinedAuditEvents];
    const uids = new Set<string>();
    const auditIds = new Set<string>();
    for (const e of events) {
      const { object, ref } = objectsOfAudit(e);
      if (object) uids.add(object.uid);
      if (ref.uid) uids.add(ref.uid);
      // A request on a named object (or its uid): filed under the object's set, or once it is known.
      if (ref.uid || object || (ref.resource && ref.name)) auditIds.add(auditIDForSpans(e.auditID));
    }
    const out: OutgoingMessage[] = [];
    let changed = false;
    for (const uid of uids) {
      const f = this.opts.store.objectFact(uid);
      if (!f) continue;
      const json = factJson(f);
      if (this.facts.get(uid) === json) continue;
      this.facts.set(uid, json);
      changed = true;
      out.push({ topic: this.objectsTopic, key: uid, value: JSON.stringify({ v: 1, object: f } satisfies ObjectFact) });
    }
    // What this batch told about objects may move requests published before (by this instance).
    if (changed) out.push(...this.reemitted(uids, auditIds));
    for (const id of auditIds) {
      const m = this.summaryMessage(id);
      if (m) out.push(m);
      // Its object not known yet (it was read by another instance): filed when the objects table shows it.
      else if (!this.watched.has(id)) this.watched.set(id, '', this.now() + (this.opts.reemitForMs ?? 600_000), []);
    }
    await this.send(out);
  }

  /** The uids an object's set id is resolved through: the object, its controller owners up to the top (seen or not). */
  private chainOf(uid: string | undefined): string[] {
    return uid ? this.opts.store.objectSets.pathOf(uid) : [];
  }

  private summaryMessage(auditId: string, untilMs?: number): OutgoingMessage | undefined {
    const { store } = this.opts;
    const setId = store.objectSetTraceOfAudit(auditId)?.setId;
    if (!setId) return undefined;
    const summary: RequestSummary = {
      v: 1, setId, auditId, events: store.auditEvents(auditId),
      traces: store.tracesOfAudit(auditId).map((traceId) => ({ traceId, spans: anchorSpans(store.traceData(traceId).spans) })),
    };
    this.watched.set(auditId, setId, untilMs ?? this.now() + (this.opts.reemitForMs ?? 600_000), this.chainOf(this.objectOf(summary.events)));
    return { topic: this.requestsTopic, key: setId, partition: javaPartition(setId, this.partitions), value: JSON.stringify(summary) };
  }

  private async send(out: OutgoingMessage[]): Promise<void> {
    if (out.length === 0) return;
    await this.producer!.send(out);
    for (const m of out) this.metrics.published.inc({ topic: m.topic });
  }

  /** The messages of a batch that `parse` reads; the others are skipped, counted and logged (bad input never stops the consumer). */
  private decoded<T>(batch: ConsumedMessage[], parse: (v: Buffer | null) => T | undefined, what: string): T[] {
    const out: T[] = [];
    for (const m of batch) {
      let v: T | undefined;
      try {
        v = parse(m.value);
      } catch {
        v = undefined; // not JSON
      }
      if (v !== undefined) out.push(v);
      else {
        this.metrics.refused.inc({ topic: m.topic });
        this.logger.warn({ topic: m.topic, partition: m.partition, offset: m.offset }, `skipping a message that is not ${what}`);
      }
    }
    return out;
  }

  /** A batch of the objects table: into the store; re-emits requests whose set changed; re-plans owned sets. */
  private async onObjects(batch: ConsumedMessage[]): Promise<void> {
    for (const m of batch) this.objectsRead.set(m.partition, Number(m.offset) + 1);
    const rows = this.decoded(batch, parseFact, 'an object fact');
    const { store } = this.opts;
    store.putObjects(rows);
    const changed = new Set<string>();
    for (const o of rows) {
      const merged = store.objectFact(o.uid);
      if (!merged) continue;
      const json = factJson(merged);
      if (this.facts.get(o.uid) !== json) changed.add(o.uid);
      this.facts.set(o.uid, json);
    }
    this.metrics.objects.set(this.facts.size);
    // Set ids change only with the objects table (this instance's own facts changed it when published).
    if (changed.size) await this.send(this.reemitted(changed));
    // An owned set whose objects the table changed is planned again (its tree may have grown).
    for (const uid of changed) if (this.owns(store.objectSetOf(uid))) store.queueObjectExport(uid);
  }

  /** Requests published under a set id that is not their set's any more: published again under the new one. */
  private reemitted(changedUids: Iterable<string>, skip: ReadonlySet<string> = new Set()): OutgoingMessage[] {
    const out: OutgoingMessage[] = [];
    for (const auditId of this.watched.affected(changedUids, this.now())) {
      const p = this.watched.get(auditId)!;
      if (skip.has(auditId)) continue;
      const setId = this.opts.store.objectSetTraceOfAudit(auditId)?.setId;
      if (!setId || setId === p.setId) continue;
      const m = this.summaryMessage(auditId, p.untilMs);
      if (!m) continue;
      out.push(m);
      if (!p.setId) continue;
      this.metrics.reemitted.inc();
      this.logger.debug({ auditId, from: p.setId, to: setId }, 'request re-published under its new object set');
    }
    return out;
  }

  /** A batch of the requests of this instance's sets: stored, then its offsets committed. */
  private async onRequests(batch: ConsumedMessage[]): Promise<void> {
    // One transaction for the batch (a commit per summary was the largest cost of a lone partitioned
    // instance); the offsets are committed after it, so a crash re-reads the batch, which the store's keys deduplicate.
    const summaries = this.decoded(batch, parseSummary, 'a request summary');
    this.opts.store.transaction(() => {
      for (const s of summaries) this.storeSummary(s);
    });
    const last = batch[batch.length - 1];
    if (last && !this.stopped) await this.requestsConsumer!.commit([{ topic: last.topic, partition: last.partition, offset: String(Number(last.offset) + 1) }]);
  }

  /**
   * Writes a request of an owned set. What only the summary brought (another instance read the
   * trace and exports it) is recorded as exported; the request's object is queued for export.
   */
  private storeSummary(s: RequestSummary): void {
    const { store } = this.opts;
    const storedStages = new Set(store.auditEvents(s.auditId).map((e) => e.stage));
    const newEvents = s.events.filter((e) => !storedStages.has(e.stage));
    const marks: Array<{ traceId: string; spanId: string }> = [];
    const foreign = (spans: Span[]) => {
      for (const x of spans) marks.push({ traceId: x.traceId, spanId: x.spanId });
    };
    const traces = s.traces.map((t) => {
      const stored = new Set(store.traceData(t.traceId).spans.map((x) => x.spanId));
      const fresh = t.spans.filter((x) => !stored.has(x.spanId));
      foreign(fresh);
      // The request's derived spans (its audit span) when this store had none of its stages.
      if (storedStages.size === 0) foreign(encodeCorrelatedTrace(t.traceId, t.spans, s.events).filter((x) => x.scope.name === DERIVED_SCOPE));
      return { traceId: t.traceId, spans: t.spans, auditEvents: s.events, auditIds: [s.auditId], reason: 'idle' as const };
    });
    if (traces.length === 0 && storedStages.size === 0) foreign(encodeUnjoinedAudit(s.events));
    store.writeSync({ traces, unjoinedAuditEvents: traces.length ? [] : s.events });
    store.markExported(marks, newEvents.map((e) => ({ auditId: s.auditId, stage: e.stage })));
    // The object the request touched, in its window (a write queues it only when something was new).
    const uid = this.objectOf(s.events);
    const ms = Date.parse(s.events[0]?.requestReceivedTimestamp ?? '');
    if (uid) store.queueObjectExport(uid, Number.isNaN(ms) ? undefined : objectSetWindowStart(ms, store.objectSetWindowMs));
  }

  /** The uid of the object a request touched (named by uid, or by resource, namespace and name). */
  private objectOf(events: readonly AuditEvent[]): string | undefined {
    for (const e of events) {
      const { object, ref } = objectsOfAudit(e);
      const uid = ref.uid || object?.uid;
      if (uid) return uid;
      const named = ref.resource && ref.name ? this.opts.store.findObjects(ref.resource, ref.namespace, ref.name)[0] : undefined;
      if (named) return named.uid;
    }
    return undefined;
  }

  /** Lag of this instance on the two topics (end offsets minus what it read or its group committed), also set on the gauge. */
  async measureLag(): Promise<{ objects: number; requests: number }> {
    const admin = await this.opts.client.admin();
    try {
      const lagOf = async (topic: string, group: string) => {
        const [end, done] = await Promise.all([admin.endOffsets(topic), admin.committedOffsets(group, topic)]);
        return end.reduce((s, e, p) => s + Math.max(0, e - Math.max(0, done[p] ?? 0)), 0);
      };
      const requests = await lagOf(this.requestsTopic, `${this.opts.groupId}-objsets`);
      const end = await admin.endOffsets(this.objectsTopic);
      const objects = end.reduce((sum, e, p) => sum + Math.max(0, e - (this.objectsRead.get(p) ?? 0)), 0);
      this.metrics.lag.set({ topic: this.requestsTopic }, requests);
      this.metrics.lag.set({ topic: this.objectsTopic }, objects);
      return { objects, requests };
    } finally {
      await admin.disconnect();
    }
  }

  /** The next offset to read of each partition of the objects topic. */
  private readonly objectsRead = new Map<number, number>();
  private lagTimer: NodeJS.Timeout | undefined;

  /** Safe twice. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.lagTimer);
    setObjectSetScope(this.opts.store, undefined);
    await this.requestsConsumer?.disconnect().catch(() => undefined);
    await this.objectsConsumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
  }
}
