import { auditIDForSpans } from '@kube-correlate/audit';
import type { ObjectRow, ObjectSetChainEntry, ObjectSetTree, RequestTree } from '@kube-correlate/correlator';
import { APISERVER_SERVICE, AUDIT_ATTR, AUDIT_SERVICE, OBJECT_ATTR, objectSetWindowStart, OBJSET_ATTR, OBJSET_SCOPE, OBJSET_SERVICE, unjoinedTraceId } from '@kube-correlate/semconv';
import { attrString, decodeTraceRequestJson, OtlpDecodeError, type Span } from '@kube-correlate/otlp';
import { correlatedToOutput } from './kafka-store.js';
import { TraceStore } from './trace-store.js';

/** Jaeger could not be asked (unreachable, an error status, a body that is not a trace). */
export class JaegerSourceError extends Error {
  override readonly name = 'JaegerSourceError';
}

export interface JaegerSourceOptions {
  /** Jaeger query base URL, e.g. http://jaeger-query:16686. */
  url: string;
  /** How far back a search looks (the object's first request must be in it). Default 7 days. */
  lookbackMs?: number;
  /** Per-request timeout. Default 10 s. */
  timeoutMs?: number;
  /** Traces a search may return (Jaeger's memory storage refuses more than its max_traces). Default 100. */
  searchLimit?: number;
}

// Service names (object-set spans, kube-apiserver, derived audit spans): @kube-correlate/semconv.
const FETCH_CONCURRENCY = 8;

/**
 * Trees read from Jaeger through its HTTP API v3, the same trees the store gives: the traces
 * (raw, without Jaeger's adjusters) are loaded into an in-memory store and the tree is built by the
 * same code. A request trace brings its audit with it (the audit span holds each stage's Event).
 * An object set is a chain of traces, one per time window (and further parts of a busy window):
 * its traces are found by their `k8s.objset.id` (the query service's /api/traces search filters by
 * attribute; API v3's does not before Jaeger v2.19), or by searching object spans by name, and the
 * window shown is rebuilt from its objects' spans and the request traces its spans link to.
 */
export class JaegerSource {
  private readonly base: string;
  private readonly lookbackMs: number;
  private readonly timeoutMs: number;
  private readonly searchLimit: number;

  constructor(opts: JaegerSourceOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new JaegerSourceError(`invalid Jaeger URL "${opts.url}": want e.g. http://127.0.0.1:16686`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new JaegerSourceError(`invalid Jaeger URL "${opts.url}": want http:// or https://`);
    this.base = u.href.replace(/\/+$/, '');
    this.lookbackMs = opts.lookbackMs ?? 7 * 24 * 3600_000;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.searchLimit = opts.searchLimit ?? 100;
  }

  async getTrace(traceId: string): Promise<RequestTree | undefined> {
    const spans = await this.fetchTrace(traceId);
    if (!spans) return undefined;
    // Links to callers' traces are followed one level, as the store does with what it holds.
    const linked = new Set(spans.flatMap((s) => s.links.map((l) => l.traceId)).filter((t) => t !== traceId));
    const all = [...spans, ...(await this.fetchTraces([...linked])), ...(await this.linkingTo(traceId, spans))];
    return this.withLoaded(all, (store) => {
      const tree = store.getTrace(traceId);
      if (tree) return tree;
      // A trace of audit alone (a request whose spans never came).
      const auditId = spans.map((s) => attrString(s.attributes, AUDIT_ATTR.id)).find(Boolean);
      return auditId ? store.getByAuditId(auditId) : undefined;
    });
  }

  /**
   * The request of an auditID. Jaeger 2.13's HTTP API v3 search has no attribute filter, so: the
   * trace derived from the auditID (a request whose spans never came), else a scan of the newest
   * `searchLimit` traces with audit spans in the lookback window.
   */
  async getByAuditId(auditId: string): Promise<RequestTree | undefined> {
    const id = auditIDForSpans(auditId);
    const own = await this.fetchTrace(unjoinedTraceId(id));
    if (own) return this.withLoaded(own, (store) => store.getByAuditId(auditId));
    const hit = (await this.search(AUDIT_SERVICE)).find((s) => s.scope.name !== OBJSET_SCOPE && attrString(s.attributes, AUDIT_ATTR.id) !== undefined && auditIDForSpans(attrString(s.attributes, AUDIT_ATTR.id)!) === id);
    return hit ? this.getTrace(hit.traceId) : undefined;
  }

  /**
   * By set id, or by the uid of one of its objects: the newest window (or the one holding
   * `window`, ms, or `'all'`), with the chain of the set's windows in the lookback (at most
   * `searchLimit` traces).
   */
  async getObjectSet(id: string, opts: { window?: number | 'all' } = {}): Promise<ObjectSetTree | undefined> {
    let traces = await this.objectSetTraces(id);
    let setId = id;
    if (traces.size === 0) {
      const [hit] = await this.findTraceIds(OBJSET_SERVICE, { [OBJECT_ATTR.uid]: id }, 1);
      const spans = hit ? await this.fetchTrace(hit) : undefined;
      const found = spans?.map((s) => attrString(s.attributes, OBJSET_ATTR.id)).find((x) => x !== undefined);
      if (!found || found === id) return undefined;
      setId = found;
      traces = await this.objectSetTraces(setId);
    }
    return traces.size ? this.objectSetFrom(setId, traces, opts.window) : undefined;
  }

  /** The traces of a set (every span of them carries k8s.objset.id), by trace id. */
  private async objectSetTraces(setId: string): Promise<Map<string, Span[]>> {
    const ids = await this.findTraceIds(OBJSET_SERVICE, { [OBJSET_ATTR.id]: setId }, this.searchLimit);
    const out = new Map<string, Span[]>();
    for (const s of await this.fetchTraces(ids)) {
      if (s.scope.name !== OBJSET_SCOPE || attrString(s.attributes, OBJSET_ATTR.id) !== setId) continue;
      out.set(s.traceId, [...(out.get(s.traceId) ?? []), s]);
    }
    return out;
  }

  /**
   * The chain from the set's traces (window and part from their spans' k8s.objset.window.start and
   * k8s.objset.part), and the tree of the window(s) shown: the objects from the object spans of
   * those traces (the owners of a window's objects have no request in it), the requests from the
   * request traces their request spans link to, loaded into an in-memory store.
   */
  private async objectSetFrom(setId: string, traces: Map<string, Span[]>, window: number | 'all' | undefined): Promise<ObjectSetTree | undefined> {
    const windows = new Map<string, { end: string; parts: Map<number, string>; requests: Set<string>; spans: Span[] }>();
    for (const [traceId, spans] of traces) {
      const start = spans.map((s) => attrString(s.attributes, OBJSET_ATTR.windowStart)).find((x) => x !== undefined);
      const end = spans.map((s) => attrString(s.attributes, OBJSET_ATTR.windowEnd)).find((x) => x !== undefined);
      if (!start || !end) continue;
      const w = windows.get(start) ?? { end, parts: new Map<number, string>(), requests: new Set<string>(), spans: [] as Span[] };
      w.parts.set(Number(intAttr(spans[0]!.attributes, OBJSET_ATTR.part) ?? 0), traceId);
      for (const s of spans) if (attrString(s.attributes, AUDIT_ATTR.id) !== undefined) w.requests.add(s.spanId);
      w.spans.push(...spans);
      windows.set(start, w);
    }
    const chain: ObjectSetChainEntry[] = [...windows].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([start, w]) => ({
      start, end: w.end, requests: w.requests.size, traceIds: [...w.parts].sort((a, b) => a[0] - b[0]).map(([, t]) => t),
    }));
    if (chain.length === 0) return undefined;
    const windowMs = Date.parse(chain[0]!.end) - Date.parse(chain[0]!.start);
    const shown = window === 'all' ? chain : [chain.find((c) => Date.parse(c.start) === (window === undefined ? Date.parse(chain.at(-1)!.start) : objectSetWindowStart(window, windowMs)))].filter((c) => c !== undefined);
    const spans = shown.flatMap((c) => windows.get(c.start)!.spans);
    const linked = new Set(spans.filter((s) => attrString(s.attributes, AUDIT_ATTR.id) !== undefined).flatMap((s) => s.links.map((l) => l.traceId)));
    const requests = await this.fetchTraces([...linked]);
    const store = new TraceStore({ dir: '', memory: true, objectSetWindowMs: windowMs });
    try {
      // A window without requests shows the set's root alone (named from the newest window's objects), as the store does.
      store.putObjects(objectsOfSpans(setId, shown.length ? spans : windows.get(chain.at(-1)!.start)!.spans));
      store.writeSync(correlatedToOutput(requests));
      const tree = store.getObjectSet(setId, { window: window ?? Date.parse(chain.at(-1)!.start) });
      return tree ? { ...tree, chain } : undefined;
    } finally {
      store.close();
    }
  }

  /** The set of the newest object with this kind (Kind, kind or plural resource), namespace and name. */
  async getObjectSetOf(kind: string, namespace: string, name: string, opts: { window?: number | 'all' } = {}): Promise<ObjectSetTree | undefined> {
    const label = `${namespace ? `${namespace}/` : ''}${name}`;
    const ops = await this.getJson<{ operations?: Array<{ name: string }> }>(`/api/v3/operations?service=${encodeURIComponent(OBJSET_SERVICE)}`, true);
    const wanted = kind.toLowerCase();
    const names = (ops?.operations ?? []).map((o) => o.name).filter((n) => {
      const space = n.indexOf(' ');
      return space > 0 && n.slice(space + 1) === label && kindMatches(n.slice(0, space), wanted);
    });
    let best: { start: bigint; setId: string } | undefined;
    for (const op of new Set(names)) {
      for (const s of await this.search(OBJSET_SERVICE, op)) {
        const setId = attrString(s.attributes, OBJSET_ATTR.id);
        if (s.scope.name !== OBJSET_SCOPE || s.name !== op || !setId) continue;
        const start = BigInt(s.startTimeUnixNano);
        if (!best || start > best.start) best = { start, setId };
      }
    }
    return best ? this.getObjectSet(best.setId, opts) : undefined;
  }

  /**
   * Trace ids of a service's traces with a span that has all these attributes, newest first, in the
   * lookback window: the query service's /api/traces (the API the Jaeger UI searches with), whose
   * `tags` filter reaches the storage (API v3's search has none before Jaeger v2.19).
   */
  private async findTraceIds(service: string, tags: Record<string, string>, limit: number): Promise<string[]> {
    const now = Date.now();
    const q = new URLSearchParams({
      service, tags: JSON.stringify(tags), limit: String(limit),
      start: String((now - this.lookbackMs) * 1000), end: String((now + 3600_000) * 1000),
    });
    const found = await this.getJson<{ data?: Array<{ traceID?: string }> | null }>(`/api/traces?${q}`, true);
    return [...new Set((found?.data ?? []).map((t) => t.traceID).filter((t): t is string => typeof t === 'string' && /^[0-9a-f]{32}$/.test(t)))];
  }

  /**
   * Spans of kube-apiserver requests that link to this trace (a caller's), for "linked from".
   * Jaeger 2.13's search has no attribute filter: the requests of service `apiserver` that started
   * while the caller's trace ran (plus a minute either side) are scanned, the newest `searchLimit`.
   */
  private async linkingTo(traceId: string, spans: Span[]): Promise<Span[]> {
    const starts = spans.map((s) => BigInt(s.startTimeUnixNano));
    const ends = spans.map((s) => BigInt(s.endTimeUnixNano));
    const min = Number(starts.reduce((a, b) => (b < a ? b : a)) / 1_000_000n) - 60_000;
    const max = Number(ends.reduce((a, b) => (b > a ? b : a)) / 1_000_000n) + 60_000;
    const found = await this.search(APISERVER_SERVICE, undefined, { min, max });
    const linking = new Set(found.filter((s) => s.links.some((l) => l.traceId === traceId)).map((s) => s.traceId));
    return found.filter((s) => linking.has(s.traceId) && s.traceId !== traceId);
  }

  /** Spans of the newest `searchLimit` traces of a service (and operation) in the lookback window (or `window`, ms), raw. */
  private async search(service: string, operation?: string, window?: { min: number; max: number }): Promise<Span[]> {
    const now = Date.now();
    const q = new URLSearchParams({
      'query.service_name': service,
      ...(operation ? { 'query.operation_name': operation } : {}),
      'query.start_time_min': new Date(window?.min ?? now - this.lookbackMs).toISOString(),
      'query.start_time_max': new Date(window?.max ?? now + 3600_000).toISOString(),
      'query.num_traces': String(this.searchLimit),
      'query.raw_traces': 'true',
    });
    const found = await this.getJson<unknown>(`/api/v3/traces?${q}`, true);
    return found ? decodeResult(found, 'search') : [];
  }

  private withLoaded<T>(spans: Span[], fn: (store: TraceStore) => T): T {
    const store = new TraceStore({ dir: '', memory: true });
    try {
      store.writeSync(correlatedToOutput(spans));
      return fn(store);
    } finally {
      store.close();
    }
  }

  /** Spans of one trace, as stored (raw_traces: no adjusters, no deduplication); undefined when Jaeger has none. */
  private async fetchTrace(traceId: string): Promise<Span[] | undefined> {
    const body = await this.getJson<unknown>(`/api/v3/traces/${traceId}?raw_traces=true`, true);
    if (body === undefined) return undefined;
    const spans = decodeResult(body, `trace ${traceId}`);
    return spans.length ? spans : undefined;
  }

  private async fetchTraces(ids: string[]): Promise<Span[]> {
    const out: Span[] = [];
    for (let i = 0; i < ids.length; i += FETCH_CONCURRENCY) {
      const got = await Promise.all(ids.slice(i, i + FETCH_CONCURRENCY).map((t) => this.fetchTrace(t)));
      for (const spans of got) if (spans) out.push(...spans);
    }
    return out;
  }

  /** GET a JSON document; undefined on 404 when `notFoundOk`. */
  private async getJson<T>(path: string, notFoundOk: boolean): Promise<T | undefined> {
    const url = `${this.base}${path}`;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs), headers: { accept: 'application/json' } });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new JaegerSourceError(`cannot reach Jaeger at ${this.base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    const text = await res.text();
    if (res.status === 404 && notFoundOk) return undefined;
    if (!res.ok) throw new JaegerSourceError(`Jaeger answered ${res.status} for ${path.split('?')[0]}: ${text.slice(0, 200).trim()}`);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new JaegerSourceError(`Jaeger's answer for ${path.split('?')[0]} is not JSON: ${text.slice(0, 100)}`);
    }
  }
}

/** `{ result: { resourceSpans } }` (API v3's TracesData) as spans. */
function decodeResult(body: unknown, what: string): Span[] {
  const result = (body as { result?: unknown }).result;
  if (!result || typeof result !== 'object') throw new JaegerSourceError(`Jaeger's answer for ${what} has no "result"`);
  try {
    return decodeTraceRequestJson(result).spans;
  } catch (err) {
    if (err instanceof OtlpDecodeError) throw new JaegerSourceError(`Jaeger's answer for ${what} is not OTLP: ${err.message}`);
    throw err;
  }
}

function intAttr(attrs: Span['attributes'], key: string): number | undefined {
  const v = attrs.find((kv) => kv.key === key)?.value;
  return v && 'intValue' in v ? Number(v.intValue) : undefined;
}

const isTrue = (attrs: Span['attributes'], key: string): boolean => attrs.some((kv) => kv.key === key && 'boolValue' in kv.value && kv.value.boolValue);
const isFalse = (attrs: Span['attributes'], key: string): boolean => attrs.some((kv) => kv.key === key && 'boolValue' in kv.value && !kv.value.boolValue);

/**
 * The objects of an object set's traces, from their object spans: kind, namespace, name and uid
 * from `k8s.object.*`, the owner from the parent span. An owner shown only from its children's
 * ownerReferences (k8s.object.observed=false) is left to them, as in the store it was exported from.
 */
function objectsOfSpans(setId: string, spans: Span[]): ObjectRow[] {
  const objects = spans.filter((s) => s.scope.name === OBJSET_SCOPE && attrString(s.attributes, OBJECT_ATTR.uid) !== undefined && attrString(s.attributes, AUDIT_ATTR.id) === undefined);
  const bySpan = new Map(objects.map((s) => [s.spanId, s]));
  const rows = new Map<string, ObjectRow>();
  for (const s of objects) {
    const a = (k: string) => attrString(s.attributes, k) ?? '';
    if (rows.has(a(OBJECT_ATTR.uid)) || isFalse(s.attributes, OBJECT_ATTR.observed)) continue;
    const owner = bySpan.get(s.parentSpanId);
    const o = (k: string) => (owner ? attrString(owner.attributes, k) ?? '' : '');
    rows.set(a(OBJECT_ATTR.uid), {
      uid: a(OBJECT_ATTR.uid), kind: a(OBJECT_ATTR.kind), api_version: '', resource: '', namespace: a(OBJECT_ATTR.namespace), name: a(OBJECT_ATTR.name),
      owner_uid: o(OBJECT_ATTR.uid), objset_id: setId, first_seen: new Date(Number(BigInt(s.startTimeUnixNano) / 1_000_000n)).toISOString(),
      deleted: isTrue(s.attributes, OBJECT_ATTR.deleted) ? 1 : 0,
      owner_kind: o(OBJECT_ATTR.kind), owner_name: o(OBJECT_ATTR.name), owner_api_version: '',
    });
  }
  return [...rows.values()];
}

/** Kind as written in a span name (Deployment) against what a user typed (deployment, deployments). */
function kindMatches(kind: string, wanted: string): boolean {
  const k = kind.toLowerCase();
  const plural = /(s|x|z|ch|sh)$/.test(k) ? `${k}es` : /[^aeiou]y$/.test(k) ? `${k.slice(0, -1)}ies` : `${k}s`;
  return wanted === k || wanted === plural;
}
