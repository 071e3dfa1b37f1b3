import { AUDIT_ID } from '@kube-correlate/semconv';
import { attrString, type RawSpan, type Span } from '@kube-correlate/otlp';
import { isAuthenticationOnlyShape, isLoneAuthentication } from './lone-spans.js';

/**
 * How the join (trace-join.ts) reads the spans it holds: the embedded driver holds decoded Spans
 * (the store needs them whole), the Kafka driver RawSpans (scanTraceRequest: the span's bytes and
 * the few fields the join reads), which it writes out by splicing bytes (correlated-format.ts).
 */
export interface JoinSpan {
  traceId: string;
  spanId: string;
}

export interface JoinSpanModel<S extends JoinSpan> {
  /** The span's `audit-id` attribute (the first one, when a string): the audit request it belongs to. */
  auditId(span: S): string | undefined;
  /** True when the spans (all a trace has) are kube-apiserver's lone authentication span (lone-spans.ts). */
  isLoneAuthentication(spans: readonly S[]): boolean;
}

export const DECODED_SPANS: JoinSpanModel<Span> = {
  auditId: (s) => attrString(s.attributes, AUDIT_ID),
  isLoneAuthentication,
};

/** isAuthenticationOnlyShape (lone-spans.ts) for a RawSpan. */
export function isRawAuthenticationOnly(s: RawSpan): boolean {
  return isAuthenticationOnlyShape(s.name, s.parentSpanId, s.scope.name, s.attributeCount, s.eventCount, s.linkCount);
}

export const RAW_SPANS: JoinSpanModel<RawSpan> = {
  auditId: (s) => s.auditId,
  isLoneAuthentication: (spans) => spans.length === 1 && isRawAuthenticationOnly(spans[0]!),
};
