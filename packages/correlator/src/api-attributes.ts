import type { AuditEvent } from '@kube-correlate/audit';
import type { Span } from '@kube-correlate/otlp';
import { groupByAuditId } from './correlated-format.js';
import { requestAnchor } from './request-tree.js';

/** The API operation of one audit request (its stages): from the OpenAPI spec, see @kube-correlate/apicoverage. */
export type DescribeRequest = (events: readonly AuditEvent[]) => { operationId: string; stability: string } | undefined;

export const API_OPERATION_ID = 'k8s.api.operation_id';
export const API_STABILITY = 'k8s.api.stability';

/**
 * Adds `k8s.api.operation_id` and `k8s.api.stability` to the span each audit request hangs under
 * (its route span, the server span that stands for the request), when `describe` knows the
 * request's operation. Spans that already carry them are left as they are; others are copied.
 */
export function withApiAttributes(spans: Span[], auditEvents: readonly AuditEvent[], describe: DescribeRequest | undefined): Span[] {
  if (!describe || auditEvents.length === 0 || spans.length === 0) return spans;
  const byAudit = groupByAuditId(auditEvents);
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const extra = new Map<string, Span>();
  for (const [id, events] of byAudit) {
    const anchor = requestAnchor(id, byId);
    if (!anchor || anchor.attributes.some((kv) => kv.key === API_OPERATION_ID)) continue;
    const op = describe(events);
    if (!op) continue;
    const updated: Span = { ...anchor, attributes: [...anchor.attributes, { key: API_OPERATION_ID, value: { stringValue: op.operationId } }, { key: API_STABILITY, value: { stringValue: op.stability } }] };
    byId.set(anchor.spanId, updated);
    extra.set(anchor.spanId, updated);
  }
  return extra.size ? spans.map((s) => extra.get(s.spanId) ?? s) : spans;
}
