/**
 * One request's audit stages merged into one view. Stages arrive late, out of order and more than
 * once (webhook retries, log replays), so the merge depends only on the set of (auditID, stage)
 * events, never on arrival order.
 */
import { AUDIT_STAGES } from './model.js';
import type { AuditEvent, AuditObjectRef, AuditStage } from './model.js';
import { auditEventJson, fullAuditEvent, isHeldAuditEvent } from './held.js';

export interface AuditSummary {
  auditID: string;
  verb: string;
  /** `user.username` ('' when the event has none). */
  user: string;
  userAgent?: string;
  sourceIPs?: string[];
  /** Fields merged over the stages, later stages winning (a create's name/uid may only appear late). */
  objectRef?: AuditObjectRef;
  /** `responseStatus.code` of the latest stage that has one; Panic is the latest stage. */
  code?: number;
  requestURI: string;
  level: string;
  /** `stageTimestamp` of each stage seen. */
  stages: Partial<Record<AuditStage, string>>;
  requestReceivedTimestamp: string;
  /** Union over the stages, later stages winning. */
  annotations: Record<string, string>;
  requestObject?: unknown;
  responseObject?: unknown;
  /** `impersonatedUser.username`, when the request was impersonated. */
  impersonatedUser?: string;
}

/** The dedup key of an audit event: one event per request stage. */
export function auditEventKey(e: Pick<AuditEvent, 'auditID' | 'stage'>): string {
  return `${e.auditID}/${e.stage}`;
}

/** JSON with sorted keys: a total order on events, used to find and pick between conflicting duplicates. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJson(x) ?? 'null').join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** canonicalJson of a whole audit event (a held event's text parsed again: held.ts). */
export function canonicalAuditJson(e: AuditEvent): string {
  return canonicalJson(fullAuditEvent(e));
}

/**
 * Whether two copies of one request stage (same auditID and stage) differ: a sender's retry repeats
 * the same event; a different one under the same key is a conflict (a bug, or a forgery).
 */
export function auditEventsConflict(a: AuditEvent, b: AuditEvent): boolean {
  if (a === b) return false;
  if (isHeldAuditEvent(a) && isHeldAuditEvent(b) && auditEventJson(a) === auditEventJson(b)) return false;
  return canonicalAuditJson(a) !== canonicalAuditJson(b);
}

/** One event per stage; of two differing copies of a stage the canonically smaller wins, whatever came first. */
function pickPerStage(events: readonly AuditEvent[]): AuditEvent[] {
  const byStage = new Map<AuditStage, AuditEvent>();
  const canon = new Map<AuditEvent, string>();
  const keyOf = (e: AuditEvent) => {
    let k = canon.get(e);
    if (k === undefined) canon.set(e, (k = canonicalAuditJson(e)));
    return k;
  };
  for (const e of events) {
    const prev = byStage.get(e.stage);
    if (prev === undefined || (prev !== e && keyOf(e) < keyOf(prev))) byStage.set(e.stage, e);
  }
  return AUDIT_STAGES.filter((s) => byStage.has(s)).map((s) => byStage.get(s)!);
}

/**
 * Merges the stages of one request. Events must share one auditID; any order and duplicates give
 * the same result. Fields every stage carries (verb, requestURI, ...) come from the latest stage.
 */
export function summarizeAudit(events: readonly AuditEvent[]): AuditSummary {
  if (events.length === 0) throw new Error('summarizeAudit: no events');
  const auditID = events[0]!.auditID;
  const other = events.find((e) => e.auditID !== auditID);
  if (other) throw new Error(`summarizeAudit: events of different requests: auditID ${JSON.stringify(auditID)} and ${JSON.stringify(other.auditID)}`);

  const ordered = pickPerStage(events);
  const latest = ordered[ordered.length - 1]!;
  const summary: AuditSummary = {
    auditID,
    verb: latest.verb,
    user: latest.user?.username ?? '',
    requestURI: latest.requestURI,
    level: latest.level,
    stages: {},
    requestReceivedTimestamp: latest.requestReceivedTimestamp,
    annotations: {},
  };
  let objectRef: AuditObjectRef | undefined;
  for (const e of ordered) {
    summary.stages[e.stage] = e.stageTimestamp;
    if (e.annotations) Object.assign(summary.annotations, e.annotations);
    if (e.objectRef) objectRef = { ...objectRef, ...e.objectRef };
    if (e.userAgent !== undefined) summary.userAgent = e.userAgent;
    if (e.sourceIPs !== undefined) summary.sourceIPs = [...e.sourceIPs];
    if (e.responseStatus?.code !== undefined) summary.code = e.responseStatus.code;
    if (e.requestObject !== undefined) summary.requestObject = e.requestObject;
    if (e.responseObject !== undefined) summary.responseObject = e.responseObject;
    if (e.impersonatedUser?.username !== undefined) summary.impersonatedUser = e.impersonatedUser.username;
  }
  if (objectRef) summary.objectRef = objectRef;
  return summary;
}
