import { auditIDForSpans, type AuditEvent } from '@kube-correlate/audit';
import type { KeyValue } from '@kube-correlate/otlp';
import { API_ATTR } from '@kube-correlate/semconv';

/** The API operation of one audit request (its stages): from the OpenAPI spec, see @kube-correlate/apicoverage. */
export type DescribeRequest = (events: readonly AuditEvent[]) => ApiOperation | undefined;

export interface ApiOperation {
  operationId: string;
  stability: string;
}

/**
 * The API operation of each audit request among `events` (by the 64-character auditID spans
 * carry), when `describe` knows it. It is data of the audit request, like `k8s.audit.*`: it goes
 * wherever the audit goes (the route span in trees and in Jaeger, the audit span in
 * otlp_correlated), whenever the audit arrives, before or after the request's spans.
 */
export function describeRequests(events: readonly AuditEvent[], describe: DescribeRequest | undefined): Map<string, ApiOperation> {
  const out = new Map<string, ApiOperation>();
  if (!describe || events.length === 0) return out;
  const byAudit = new Map<string, AuditEvent[]>();
  for (const e of events) {
    const id = auditIDForSpans(e.auditID);
    byAudit.set(id, [...(byAudit.get(id) ?? []), e]);
  }
  for (const [id, list] of byAudit) {
    const op = describe(list);
    if (op) out.set(id, op);
  }
  return out;
}

/** `k8s.api.operation_id` and `k8s.api.stability` as span attributes. */
export function apiAttributes(op: ApiOperation | undefined): KeyValue[] {
  return op ? [{ key: API_ATTR.operationId, value: { stringValue: op.operationId } }, { key: API_ATTR.stability, value: { stringValue: op.stability } }] : [];
}
