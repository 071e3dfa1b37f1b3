import * as assert from 'uvu/assert';
import type { AuditEvent } from '@kube-correlate/audit';
import type { Scenario } from '@kube-correlate/fixtures';
import { Rng } from '@kube-correlate/fixtures';
import { DEFAULT_OBJSET_WINDOW_MS, objectSetTraceId, objectSetWindowStart } from '@kube-correlate/correlator';
import { decodeTraceRequestJson, type Span } from '@kube-correlate/otlp';
import { objectSetSpans, type ObjectSetTree } from '@kube-correlate/store';

/**
 * Replaying the Deployment scenario out of order (issue 12): the children's audit events first,
 * their stages shuffled, in batches; the owners' (the Deployment's) last, shuffled. The object-set
 * trace Jaeger ends up with must be the one the store builds from all of it.
 */

export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const rng = new Rng(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.float() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * The trace in Jaeger of a scenario's object set: the trace of the window it ran in (one hour by
 * default; a scenario lasts well under a second).
 */
export function scenarioSetTrace(s: Scenario, windowMs = DEFAULT_OBJSET_WINDOW_MS): string {
  return objectSetTraceId(s.deploymentUid, objectSetWindowStart(Date.parse(s.auditEvents[0]!.requestReceivedTimestamp), windowMs));
}

/** The scenario's audit events: children (ReplicaSet, Pods) in shuffled batches, then the owners. */
export function childrenFirst(s: Scenario, seed: number, batches = 3): { children: AuditEvent[][]; owners: AuditEvent[] } {
  const isOwner = (e: AuditEvent) => e.objectRef?.resource === 'deployments';
  const children = shuffled(s.auditEvents.filter((e) => !isOwner(e)), seed);
  const size = Math.ceil(children.length / batches);
  return {
    children: Array.from({ length: batches }, (_, i) => children.slice(i * size, (i + 1) * size)).filter((b) => b.length),
    owners: shuffled(s.auditEvents.filter(isOwner), seed + 1),
  };
}

/** Spans of a trace as Jaeger stores them (raw: no adjusters, so a duplicate would show). */
export async function jaegerTrace(queryHttp: string, traceId: string): Promise<Span[]> {
  const res = await fetch(`${queryHttp}/api/v3/traces/${traceId}?raw_traces=true`, { signal: AbortSignal.timeout(10_000) });
  if (res.status === 404) return [];
  if (!res.ok) throw new Error(`Jaeger answered ${res.status} for trace ${traceId}: ${await res.text()}`);
  return decodeTraceRequestJson(((await res.json()) as { result: unknown }).result).spans;
}

/**
 * What the operator sees of a span in Jaeger: id, parent, name, attributes, links, and the times of
 * request spans. The times of the root and object spans are as of when they were sent (a span in
 * Jaeger cannot change), so they are not compared.
 */
function view(s: Span): unknown {
  const request = s.attributes.some((kv) => kv.key === 'k8s.audit.id');
  return {
    spanId: s.spanId, parentSpanId: s.parentSpanId, name: s.name, service: s.resource.attributes.find((kv) => kv.key === 'service.name')?.value,
    attributes: Object.fromEntries([...s.attributes].sort((a, b) => (a.key < b.key ? -1 : 1)).map((kv) => [kv.key, kv.value])),
    links: s.links.map((l) => `${l.traceId}/${l.spanId}`),
    ...(request ? { start: s.startTimeUnixNano, end: s.endTimeUnixNano } : {}),
  };
}

/** Jaeger's object-set trace is the store's tree: every span once, the same ids, parents, names, attributes and links. */
export function assertJaegerHasStoreTree(inJaeger: Span[], tree: ObjectSetTree): void {
  const ids = inJaeger.map((s) => s.spanId);
  assert.is(new Set(ids).size, ids.length, 'every span id once in Jaeger');
  assert.ok(inJaeger.every((s) => s.traceId === tree.traceId), 'all in the set\'s trace');
  const want = objectSetSpans(tree, { release: true }).spans;
  const sorted = (spans: Span[]) => [...spans].sort((a, b) => (a.spanId < b.spanId ? -1 : 1)).map(view);
  assert.equal(sorted(inJaeger), sorted(want), 'Jaeger\'s object-set trace is the store\'s');
  const root = inJaeger.find((s) => !s.parentSpanId);
  assert.ok(root, 'a root span');
  assert.is(root.name, tree.root.name);
}
