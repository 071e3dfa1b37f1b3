/**
 * The subset of `audit.k8s.io/v1` (and `v1beta1`) `Event` that kube-correlate reads.
 * Unknown fields are kept: an event is stored as it came.
 */

export type AuditStage = 'RequestReceived' | 'ResponseStarted' | 'ResponseComplete' | 'Panic';
export const AUDIT_STAGES: readonly AuditStage[] = ['RequestReceived', 'ResponseStarted', 'ResponseComplete', 'Panic'];

export interface AuditUser {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface AuditObjectRef {
  resource?: string;
  namespace?: string;
  name?: string;
  uid?: string;
  apiGroup?: string;
  apiVersion?: string;
  resourceVersion?: string;
  subresource?: string;
}

export interface AuditResponseStatus {
  code?: number;
  status?: string;
  message?: string;
  reason?: string;
  metadata?: Record<string, unknown>;
}

export interface AuditEvent {
  kind?: 'Event';
  apiVersion?: string;
  level: 'None' | 'Metadata' | 'Request' | 'RequestResponse' | string;
  /** The join key: equals the `audit-id` attribute of the request's spans (at most 64 characters). */
  auditID: string;
  stage: AuditStage;
  requestURI: string;
  verb: string;
  user: AuditUser;
  impersonatedUser?: AuditUser;
  sourceIPs?: string[];
  userAgent?: string;
  objectRef?: AuditObjectRef;
  responseStatus?: AuditResponseStatus;
  requestObject?: unknown;
  responseObject?: unknown;
  /** RFC 3339 with microseconds, e.g. 2026-11-21T05:49:15.123456Z. */
  requestReceivedTimestamp: string;
  stageTimestamp: string;
  annotations?: Record<string, string>;
  [extra: string]: unknown;
}

/** An item of a batch or a line of a file that is not a usable audit event. */
export interface AuditEventError {
  /** Index in `items` (webhook) or 1-based line number (files). */
  index: number;
  reason: string;
}

/** The body as a whole is not what was expected (invalid JSON, not an EventList). */
export class AuditFormatError extends Error {
  override readonly name = 'AuditFormatError';
}
