import type { Span } from '@kube-correlate/otlp';

/**
 * kube-apiserver's `authentication` filter runs before the request's trace is decided. For
 * `system:masters` callers without a traceparent it is the trace's root, parent of the route span.
 * For every other caller (every controller's service account) and for any accepted traceparent, it
 * is exported alone: a one-span trace, no parent, no attributes, no events, nothing that names the
 * request it belongs to (44% of all traces in the real recordings, DESIGN.md). Joining it by time
 * would be a guess, not a join, so the correlator drops such a trace and counts it
 * (`kube_correlate_correlator_dropped_total{reason="lone_authentication"}`); it never becomes a
 * "request" in listings or in Jaeger.
 *
 * When a `system:masters` request's spans come in two OTLP batches, its authentication root may
 * arrive after the rest of its trace settled: that span is not lone. The correlator remembers the
 * trace ids it settled recently (`RecentTraces`) and keeps an authentication span of one of those.
 */
export const AUTHENTICATION_SPAN = 'authentication';
export const FILTER_LATENCY_SCOPE = 'k8s.op/apiserver/pkg/endpoints/filterlatency';

/**
 * The rule, on what every span form says (a decoded Span, a RawSpan: span-model.ts): a span that can
 * only be a lone authentication filter span is kube-apiserver's, root, with nothing in it.
 */
export function isAuthenticationOnlyShape(name: string, parentSpanId: string, scopeName: string, attributes: number, events: number, links: number): boolean {
  return name === AUTHENTICATION_SPAN && parentSpanId === '' && attributes === 0 && events === 0 && links === 0 && scopeName === FILTER_LATENCY_SCOPE;
}

/** isAuthenticationOnlyShape for a decoded Span. */
export function isAuthenticationOnly(s: Span): boolean {
  return isAuthenticationOnlyShape(s.name, s.parentSpanId, s.scope.name, s.attributes.length, s.events.length, s.links.length);
}

/** True when `spans` (everything buffered for a trace) is one lone authentication span. */
export function isLoneAuthentication(spans: readonly Span[]): boolean {
  return spans.length === 1 && isAuthenticationOnly(spans[0]!);
}

/** Trace ids settled recently (an LRU of bounded size), so that late spans of a trace are known as its. */
export class RecentTraces {
  private readonly ids = new Set<string>();

  constructor(private readonly capacity = 200_000) {}

  add(traceId: string): void {
    this.ids.delete(traceId);
    this.ids.add(traceId);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value as string);
  }

  has(traceId: string): boolean {
    return this.ids.has(traceId);
  }

  get size(): number {
    return this.ids.size;
  }
}
