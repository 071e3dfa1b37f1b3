import type { PipelineMetrics } from '@kube-correlate/telemetry';

/**
 * A receiver's counters, labelled with its id: requests answered by outcome, items accepted,
 * items or requests refused by reason (`kube_correlate_receiver_*`).
 */
export class ReceiverCounters {
  constructor(
    private readonly metrics: PipelineMetrics,
    readonly receiver: string,
  ) {}

  /** A request answered OK (all accepted) or partially (some items refused, counted with `refusedItems`). */
  answered(outcome: 'ok' | 'partial'): void {
    this.metrics.receiverRequests.inc({ receiver: this.receiver, outcome });
  }

  /** A whole request refused. */
  refusedRequest(reason: string): void {
    this.refusedItems(reason, 1);
    this.metrics.receiverRequests.inc({ receiver: this.receiver, outcome: 'refused' });
  }

  /** Items (spans, events, file lines) refused, the rest of their request kept. */
  refusedItems(reason: string, n: number): void {
    this.metrics.receiverRefused.inc({ receiver: this.receiver, reason }, n);
  }

  accepted(signal: 'spans' | 'audit_events', n: number): void {
    this.metrics.receiverItems.inc({ receiver: this.receiver, signal }, n);
  }

  decodedSpans(n: number): void {
    this.metrics.decodedSpans.inc({ receiver: this.receiver }, n);
  }
}

/** A bounded label set for per-item audit event reasons (webhook items, log file lines). */
export function auditReasonLabel(reason: string): string {
  if (/^auditID: \d+ characters, longer than/.test(reason)) return 'audit_id_too_long';
  if (/auditID/i.test(reason)) return 'missing_audit_id';
  if (/stage/i.test(reason)) return 'invalid_stage';
  if (/timestamp/i.test(reason)) return 'invalid_timestamp';
  if (/JSON/i.test(reason)) return 'invalid_json';
  return 'invalid_event';
}
