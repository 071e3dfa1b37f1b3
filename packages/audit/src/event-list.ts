/**
 * Validation of audit events as kube-apiserver's webhook backend (EventList batches) and log backend
 * (one Event per line) write them, for `audit.k8s.io/v1` and `v1beta1`.
 */
import { AUDIT_STAGES, AuditFormatError } from './model.js';
import type { AuditEvent, AuditEventError, AuditStage } from './model.js';
import { parseAuditTimestamp } from './timestamp.js';
import { nestedDeeperThan } from './depth.js';

export const AUDIT_API_VERSIONS = ['audit.k8s.io/v1', 'audit.k8s.io/v1beta1'] as const;
export type AuditApiVersion = (typeof AUDIT_API_VERSIONS)[number];

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A short, one-line description of a value for error messages. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array (${v.length} items)`;
  if (typeof v === 'object') return 'an object';
  const text = JSON.stringify(v) ?? String(v);
  return `${typeof v === 'number' ? 'the number' : typeof v === 'boolean' ? 'the boolean' : 'the string'} ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`;
}

/** A key for an error message: JSON-quoted, cut to 60 characters (keys come from the sender). */
function quoteKey(k: string): string {
  return JSON.stringify(k.length > 60 ? `${k.slice(0, 57)}...` : k);
}

function isAuditApiVersion(v: unknown): v is AuditApiVersion {
  return (AUDIT_API_VERSIONS as readonly unknown[]).includes(v);
}

function isStage(v: unknown): v is AuditStage {
  return (AUDIT_STAGES as readonly unknown[]).includes(v);
}

/** Missing, null and "" all mean "not written": Go writes a zero metav1.MicroTime as null. */
function absent(v: unknown): boolean {
  return v === undefined || v === null || v === '';
}

/**
 * The deepest an event may nest objects and arrays, counting the event itself as level 1 (so its
 * `requestObject` is level 2). Kubernetes' own JSON decoder stops at 10000 (Go encoding/json's
 * maxNestingDepth, which sigs.k8s.io/json keeps), but what this pipeline does with an event later
 * recurses: JSON.stringify in the store's write transaction and the Kafka exporter overflows Node's
 * default stack at about 4,000 levels, the summary's canonical JSON at about 2,300, fewer on a
 * deeper stack. 1000 leaves that margin and is far above any real object (a CRD's schema nests a
 * few dozen levels).
 */
export const MAX_AUDIT_EVENT_DEPTH = 1000;

/** The top-level field of the event holding something nested too deep, or ''. */
function tooDeepField(e: Obj): string {
  for (const field in e) {
    // The event is level 1, its fields' values level 2.
    if (nestedDeeperThan(e[field], MAX_AUDIT_EVENT_DEPTH, 2)) return field;
  }
  return '';
}

/**
 * The longest auditID accepted, in characters (UTF-16 code units, as JavaScript counts them). A
 * client chooses its request's auditID with the `Audit-ID` header, so nothing in Kubernetes bounds
 * it; the query API and `correlate --audit-id` accept up to this length, so every stored auditID
 * can be queried. Longer ones are refused where events come in (the k8saudit receiver answers 400
 * naming the item, the auditlog receiver counts the line).
 */
export const MAX_AUDIT_ID_LENGTH = 1024;

function checkAuditId(e: Obj): string | undefined {
  const r = checkString(e, 'auditID', true);
  if (r !== undefined) return r;
  const id = e.auditID as string;
  return id.length > MAX_AUDIT_ID_LENGTH ? `auditID: ${id.length} characters, longer than the limit of ${MAX_AUDIT_ID_LENGTH}` : undefined;
}

/** Optional fields we read: null means absent (other writers than Go emit it), a wrong type is an error. */
const OPTIONAL_OBJECTS = ['objectRef', 'responseStatus', 'impersonatedUser', 'annotations'] as const;

function checkTimestamp(e: Obj, field: string): string | undefined {
  const v = e[field];
  if (absent(v)) return `${field}: missing`;
  if (typeof v !== 'string') return `${field}: expected an RFC 3339 string, got ${describeValue(v)}`;
  if (parseAuditTimestamp(v) === undefined) return `${field}: ${describeValue(v)} is not an RFC 3339 timestamp`;
  return undefined;
}

function checkString(e: Obj, field: string, nonEmpty = false): string | undefined {
  const v = e[field];
  if (v === undefined || v === null) return `${field}: missing`;
  if (typeof v !== 'string') return `${field}: expected a string, got ${describeValue(v)}`;
  if (nonEmpty && v === '') return `${field}: empty`;
  return undefined;
}

/**
 * Validation with the apiVersion inherited from the enclosing EventList: kube-apiserver's webhook
 * backend encodes the list as a whole, so its items carry no kind/apiVersion of their own.
 */
function validate(value: unknown, inheritedApiVersion: AuditApiVersion | undefined): AuditEvent | string {
  if (!isObject(value)) return `event: expected an object, got ${describeValue(value)}`;
  if (value.kind !== undefined && value.kind !== 'Event') return `kind: expected "Event", got ${describeValue(value.kind)}`;
  if (value.apiVersion !== undefined && !isAuditApiVersion(value.apiVersion)) {
    return `apiVersion: expected one of ${AUDIT_API_VERSIONS.join(', ')}, got ${describeValue(value.apiVersion)}`;
  }
  const apiVersion = (value.apiVersion as AuditApiVersion | undefined) ?? inheritedApiVersion;

  // A copy: the caller's object stays as it came, every original field is kept.
  const e: Obj = { ...value };
  if (apiVersion !== undefined) {
    // Stamp kind/apiVersion so an event taken out of its list (one Event per Kafka message) says what it is.
    e.kind = 'Event';
    e.apiVersion = apiVersion;
  }

  // v1beta1 also wrote the deprecated second-precision copies `timestamp` (= requestReceivedTimestamp)
  // and `metadata.creationTimestamp` (= stageTimestamp). Use them only when the microsecond fields
  // are absent, so the rest of the pipeline reads one pair of fields whatever the version.
  if (apiVersion !== 'audit.k8s.io/v1') {
    if (absent(e.requestReceivedTimestamp) && typeof e.timestamp === 'string') e.requestReceivedTimestamp = e.timestamp;
    const meta = e.metadata;
    if (absent(e.stageTimestamp) && isObject(meta) && typeof meta.creationTimestamp === 'string') {
      e.stageTimestamp = meta.creationTimestamp;
    }
  }

  const reason =
    checkAuditId(e) ??
    (isStage(e.stage) ? undefined : e.stage === undefined ? 'stage: missing' : `stage: expected one of ${AUDIT_STAGES.join(', ')}, got ${describeValue(e.stage)}`) ??
    checkString(e, 'verb') ??
    checkString(e, 'requestURI') ??
    checkString(e, 'level') ??
    (isObject(e.user) ? undefined : `user: expected an object, got ${describeValue(e.user)}`) ??
    checkTimestamp(e, 'requestReceivedTimestamp') ??
    checkTimestamp(e, 'stageTimestamp') ??
    checkOptional(e) ??
    checkDepth(e);
  if (reason !== undefined) return reason;
  return e as AuditEvent;
}

function checkDepth(e: Obj): string | undefined {
  const field = tooDeepField(e);
  if (!field) return undefined;
  const name = /^[A-Za-z]\w{0,59}$/.test(field) ? field : quoteKey(field);
  return `${name}: objects and arrays nested deeper than ${MAX_AUDIT_EVENT_DEPTH} levels (counting the event as 1)`;
}

/** Types of the optional fields the pipeline reads; null ones are dropped so readers see one shape. */
function checkOptional(e: Obj): string | undefined {
  for (const field of [...OPTIONAL_OBJECTS, 'sourceIPs', 'userAgent'] as const) if (e[field] === null) delete e[field];
  for (const field of OPTIONAL_OBJECTS) {
    if (e[field] !== undefined && !isObject(e[field])) return `${field}: expected an object, got ${describeValue(e[field])}`;
  }
  const user = e.user as Obj;
  if (user.username !== undefined && typeof user.username !== 'string') return `user.username: expected a string, got ${describeValue(user.username)}`;
  if (e.userAgent !== undefined && typeof e.userAgent !== 'string') return `userAgent: expected a string, got ${describeValue(e.userAgent)}`;
  if (e.sourceIPs !== undefined && !(Array.isArray(e.sourceIPs) && e.sourceIPs.every((s) => typeof s === 'string'))) {
    return `sourceIPs: expected an array of strings, got ${describeValue(e.sourceIPs)}`;
  }
  const status = e.responseStatus as Obj | undefined;
  if (status?.code !== undefined && !Number.isInteger(status.code)) return `responseStatus.code: expected an integer, got ${describeValue(status.code)}`;
  const annotations = e.annotations as Obj | undefined;
  if (annotations) {
    for (const [k, v] of Object.entries(annotations)) {
      if (typeof v !== 'string') return `annotations[${quoteKey(k)}]: expected a string, got ${describeValue(v)}`;
    }
  }
  return undefined;
}

/**
 * Returns the event (a normalized copy, every original field kept) or a one-line reason it is not
 * usable. v1beta1 events lacking the microsecond timestamps get them from `timestamp` /
 * `metadata.creationTimestamp`.
 */
export function validateAuditEvent(value: unknown): AuditEvent | string {
  return validate(value, undefined);
}

/**
 * Splits a webhook batch (`EventList`, v1 or v1beta1) into valid events and per-item errors.
 * Throws AuditFormatError when the body as a whole is not an EventList. A bad item does not fail
 * the batch: the webhook backend retries a failed POST as a whole, so refusing it would drop (after
 * 5 retries) every good event that came with the bad one, and the bad one would never get better.
 */
export function parseEventList(body: unknown): { events: AuditEvent[]; errors: AuditEventError[] } {
  if (!isObject(body)) throw new AuditFormatError(`expected an audit.k8s.io EventList object, got ${describeValue(body)}`);
  if (body.kind !== 'EventList') {
    const hint = body.kind === 'Event' ? ' (a single Event; the audit webhook backend posts EventList batches)' : '';
    throw new AuditFormatError(`expected kind "EventList", got ${describeValue(body.kind)}${hint}`);
  }
  if (!isAuditApiVersion(body.apiVersion)) {
    throw new AuditFormatError(`expected apiVersion ${AUDIT_API_VERSIONS.join(' or ')}, got ${describeValue(body.apiVersion)}`);
  }
  // Go marshals a nil slice as null: an empty batch may come as `"items": null`.
  if (body.items !== null && !Array.isArray(body.items)) {
    throw new AuditFormatError(`expected "items" to be an array, got ${describeValue(body.items)}`);
  }
  const items: unknown[] = body.items ?? [];
  const events: AuditEvent[] = [];
  const errors: AuditEventError[] = [];
  items.forEach((item, index) => {
    const result = validate(item, body.apiVersion as AuditApiVersion);
    if (typeof result === 'string') errors.push({ index, reason: result });
    else events.push(result);
  });
  return { events, errors };
}

/** parseEventList on a raw request body; invalid JSON is an AuditFormatError too. */
export function parseEventListJson(text: string | Uint8Array): { events: AuditEvent[]; errors: AuditEventError[] } {
  const s = typeof text === 'string' ? text : new TextDecoder().decode(text);
  let body: unknown;
  try {
    body = JSON.parse(s);
  } catch (err) {
    throw new AuditFormatError(`expected a JSON EventList, got invalid JSON: ${(err as Error).message}`);
  }
  return parseEventList(body);
}

/** `--audit-log-format=legacy` lines: `<time> AUDIT: id="..." stage="..." ...`. */
const LEGACY_LINE = /^\S+ AUDIT: id=/;

/**
 * One line of an `--audit-log-path` file (`--audit-log-format=json`, the default): one Event per line.
 * `lineNumber` is 1-based and becomes the error's index.
 */
export function parseAuditLine(line: string, lineNumber: number): AuditEvent | AuditEventError {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    const reason = LEGACY_LINE.test(line)
      ? 'legacy audit log format is not supported: run kube-apiserver with --audit-log-format=json'
      : `invalid JSON: ${(err as Error).message}`;
    return { index: lineNumber, reason };
  }
  const result = validate(value, undefined);
  return typeof result === 'string' ? { index: lineNumber, reason: result } : result;
}

/** Narrows parseAuditLine's result. */
export function isAuditEventError(v: AuditEvent | AuditEventError): v is AuditEventError {
  return typeof (v as AuditEventError).reason === 'string' && typeof (v as AuditEvent).auditID !== 'string';
}

// The `audit-id` span attribute's form of an auditID lives with the other names and derived ids.
export { auditIDForSpans } from '@kube-correlate/semconv';
