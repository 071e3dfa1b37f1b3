import { randomUUID } from 'node:crypto';
import { ANNOTATION_OBJSETID, ANNOTATION_SPAN, AUDIT_ANNOTATION_OBJSETID, AUDIT_ANNOTATION_TRACEPARENT, BAGGAGE_OBJSETID } from '@kube-correlate/semconv';
import { baggageValue } from './baggage.js';

/**
 * The admission decision, as a pure function of the AdmissionReview and the HTTP headers of the
 * webhook call (no I/O; the only non-determinism is the new objsetid, injectable).
 *
 * Rules (README.md, "Annotations"), for CREATE and UPDATE of a main resource. They are built so that
 * the webhook never makes a controller loop: a second pass over what it produced, or over what a
 * controller copied, yields no patch.
 *  - An object with a controller owner (an ownerReference with `controller: true`) is never patched:
 *    its controller owns and copies its annotations (the deployment controller copies a Deployment's
 *    onto its ReplicaSets on every sync), so any change of ours is a difference it writes back.
 *    Outcome 'owned'; the audit annotations still record the call's context.
 *  - A root object on CREATE: `trace.kubernetes.io/span` = the call's `traceparent` when valid;
 *    `trace.kubernetes.io/objsetid` = baggage `objectSetID`, else the existing annotation, else a
 *    new random UUID.
 *  - A root object on UPDATE: the span annotation is re-stamped only when the request changes the
 *    object's desired state (object and oldObject differ outside `metadata` and `status`); a
 *    metadata-only or status-only write leaves it as it is. objsetid: baggage, else existing, else
 *    the old object's (restored when a client dropped it), else the stored uid.
 * DELETE, CONNECT and subresources are allowed with no patch. Audit annotations `traceparent` and
 * `objectSetID` record the values that apply; kube-apiserver stores them as `<webhook name>/<key>`.
 */

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
// The annotation keys, the baggage member and the audit annotation keys (kube-apiserver records
// them as `<webhook name>/<key>`; `<webhook name>/objectSetID` is what the correlator reads as a
// request's object-set id) are in @kube-correlate/semconv.

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
const OPERATIONS: ReadonlySet<string> = new Set<Operation>(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);

/** The fields of `admission.k8s.io/v1` AdmissionRequest this webhook reads; the rest pass through unread. */
export interface AdmissionRequest {
  uid: string;
  operation?: string;
  subResource?: string;
  dryRun?: boolean;
  name?: string;
  namespace?: string;
  kind?: { group?: string; version?: string; kind?: string };
  object?: unknown;
  oldObject?: unknown;
  [field: string]: unknown;
}

export interface AdmissionResponse {
  uid: string;
  allowed: true;
  patchType?: 'JSONPatch';
  /** base64 of the JSON-encoded RFC 6902 patch. */
  patch?: string;
  auditAnnotations?: Record<string, string>;
}

export interface AdmissionReviewRequest {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  request: AdmissionRequest;
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

/** One RFC 6902 operation; this webhook only ever adds or replaces. */
export interface JsonPatchOp {
  op: 'add' | 'replace';
  path: string;
  value: unknown;
}

/** The headers of the webhook call that carry trace context (as Node gives them). */
export interface TraceHeaders {
  traceparent?: string | readonly string[];
  baggage?: string | readonly string[];
}

/**
 * patched: a JSONPatch was sent. unchanged: nothing to change. owned: the object has a controller
 * owner, so it is never patched. skipped: not a CREATE/UPDATE of a main resource. error: allowed
 * unchanged because the object is malformed (or mutate threw).
 */
export type ReviewOutcome = 'patched' | 'unchanged' | 'owned' | 'skipped' | 'error';
/** What a trace-context header held: for metrics. */
export type HeaderState = 'valid' | 'invalid' | 'missing';

export interface MutateOptions {
  /** New object-set id for a root object on CREATE. Default: crypto.randomUUID. */
  newObjsetId?: () => string;
}

export interface MutateResult {
  review: AdmissionReviewResponse;
  outcome: ReviewOutcome;
  /** The request's operation, or 'unknown' (a bounded metric label). */
  operation: Operation | 'unknown';
  dryRun: boolean;
  /** The patch sent (empty unless outcome is 'patched'). */
  patch: JsonPatchOp[];
  traceparent: HeaderState;
  /** State of the baggage's objectSetID member. */
  baggage: HeaderState;
  /** Set when outcome is 'error': the request was allowed unchanged (exception: set by the server when mutate threw). */
  error?: { reason: 'bad_object' | 'exception'; message: string };
}

/** The body is not an admission.k8s.io/v1 AdmissionReview with a request: answered with HTTP 400. */
export class BadReviewError extends Error {
  override readonly name = 'BadReviewError';
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A short description of a value for an error message: strings and numbers quoted and cut to 60
 * characters, objects and arrays named, never serialized (a body may nest 100,000 levels, where
 * JSON.stringify overflows the stack, or carry megabytes).
 */
function describe(v: unknown): string {
  if (v === undefined || v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  const text = typeof v === 'string' ? JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v) : String(v);
  return text;
}

/** Checks the envelope only; the object inside is looked at by mutate(). Throws BadReviewError. */
export function parseAdmissionReview(body: unknown): AdmissionReviewRequest {
  if (!isRecord(body)) throw new BadReviewError('body is not a JSON object');
  if (body.kind !== 'AdmissionReview') throw new BadReviewError(`kind must be "AdmissionReview", got ${describe(body.kind)}`);
  if (body.apiVersion !== ADMISSION_API_VERSION) {
    throw new BadReviewError(`apiVersion must be "${ADMISSION_API_VERSION}" (set admissionReviewVersions: [v1]), got ${describe(body.apiVersion)}`);
  }
  const req = body.request;
  if (!isRecord(req)) throw new BadReviewError('request is missing or not an object');
  if (typeof req.uid !== 'string' || req.uid === '') throw new BadReviewError('request.uid is missing or empty');
  return body as unknown as AdmissionReviewRequest;
}

/** parseAdmissionReview over the raw body; invalid JSON is a BadReviewError too. */
export function parseAdmissionReviewJson(text: string): AdmissionReviewRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new BadReviewError(`body is not valid JSON: ${(err as Error).message}`);
  }
  return parseAdmissionReview(body);
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** A W3C traceparent of version 00 with non-zero ids (lowercase hex, as the spec requires), else undefined. */
export function validTraceparent(header: string | readonly string[] | undefined): string | undefined {
  const v = typeof header === 'string' ? header : header?.length === 1 ? header[0] : undefined;
  const m = v === undefined ? null : TRACEPARENT.exec(v.trim());
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined;
  return m[0];
}

/** An object-set id we are willing to store: 1–256 characters, no control characters. */
export function validObjsetId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 256 && !/[\x00-\x1f\x7f]/.test(v);
}

/** RFC 6901 reference token: `~` → `~0`, `/` → `~1` (in that order). */
export function escapeJsonPointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The response for a request allowed as it is (no patch). */
export function allowResponse(uid: string, auditAnnotations: Record<string, string> = {}): AdmissionReviewResponse {
  const response: AdmissionResponse = { uid, allowed: true };
  if (Object.keys(auditAnnotations).length) response.auditAnnotations = auditAnnotations;
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

class ObjectShapeError extends Error {}

interface Meta {
  annotations: Record<string, unknown> | undefined;
  ownerReferences: unknown[];
  uid: string | undefined;
}

/** metadata of a Kubernetes object; throws ObjectShapeError when it is not shaped like one. */
function metaOf(obj: unknown, what: string): Meta {
  if (!isRecord(obj)) throw new ObjectShapeError(`${what} is not an object`);
  const m = obj.metadata;
  if (!isRecord(m)) throw new ObjectShapeError(`${what}.metadata is missing or not an object`);
  const ann = m.annotations;
  if (ann !== undefined && ann !== null && !isRecord(ann)) throw new ObjectShapeError(`${what}.metadata.annotations is not an object`);
  const owners = m.ownerReferences;
  if (owners !== undefined && owners !== null && !Array.isArray(owners)) throw new ObjectShapeError(`${what}.metadata.ownerReferences is not an array`);
  for (const key of [ANNOTATION_SPAN, ANNOTATION_OBJSETID]) {
    if (isRecord(ann) && key in ann && typeof ann[key] !== 'string') throw new ObjectShapeError(`${what}.metadata.annotations["${key}"] is not a string`);
  }
  return {
    annotations: isRecord(ann) ? ann : undefined,
    ownerReferences: Array.isArray(owners) ? owners : [],
    uid: typeof m.uid === 'string' && m.uid !== '' ? m.uid : undefined,
  };
}

const own = (rec: Record<string, unknown> | undefined, key: string): string | undefined =>
  rec && Object.hasOwn(rec, key) && typeof rec[key] === 'string' ? rec[key] : undefined;

/** The annotation of an object that may not be shaped like one (never throws). */
function annotationOf(obj: unknown, key: string): string | undefined {
  if (!isRecord(obj) || !isRecord(obj.metadata)) return undefined;
  const ann = obj.metadata.annotations;
  return isRecord(ann) ? own(ann, key) : undefined;
}

/** An ownerReference with `controller: true`: the object's controller writes (and copies) its annotations. */
const hasController = (owners: readonly unknown[]): boolean => owners.some((o) => isRecord(o) && o.controller === true);

/**
 * Deep JSON equality of two objects, ignoring their top-level `metadata` and `status`: does the
 * request change the object's desired state? Iterative (an explicit stack), so a deeply nested
 * object cannot overflow the call stack; arrays compare in order, object members in any order.
 */
export function sameDesiredState(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const stack: Array<[unknown, unknown]> = [];
  const pushMembers = (x: Record<string, unknown>, y: Record<string, unknown>, skip: boolean): boolean => {
    let n = 0;
    for (const k in x) {
      if (!Object.hasOwn(x, k) || (skip && (k === 'metadata' || k === 'status'))) continue;
      if (!Object.hasOwn(y, k)) return false;
      stack.push([x[k], y[k]]);
      n++;
    }
    for (const k in y) if (Object.hasOwn(y, k) && !(skip && (k === 'metadata' || k === 'status'))) n--;
    return n === 0;
  };
  if (!pushMembers(a, b, true)) return false;
  while (stack.length) {
    const [x, y] = stack.pop()!;
    if (x === y) continue;
    if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
    if (Array.isArray(x)) {
      if (!Array.isArray(y) || x.length !== y.length) return false;
      for (let i = 0; i < x.length; i++) stack.push([x[i], y[i]]);
    } else {
      if (Array.isArray(y) || !pushMembers(x as Record<string, unknown>, y as Record<string, unknown>, false)) return false;
    }
  }
  return true;
}

/** Decides the patch and audit annotations for one review. Throws only on a bug; a malformed object is outcome 'error'. */
export function mutate(review: AdmissionReviewRequest, headers: TraceHeaders, opts: MutateOptions = {}): MutateResult {
  const req = review.request;
  const operation: Operation | 'unknown' = typeof req.operation === 'string' && OPERATIONS.has(req.operation) ? (req.operation as Operation) : 'unknown';
  const dryRun = req.dryRun === true;

  const traceparent = validTraceparent(headers.traceparent);
  const rawBaggage = baggageValue(headers.baggage, BAGGAGE_OBJSETID);
  const baggageId = validObjsetId(rawBaggage) ? rawBaggage : undefined;
  const base = {
    operation,
    dryRun,
    traceparent: (traceparent ? 'valid' : headers.traceparent === undefined ? 'missing' : 'invalid') as HeaderState,
    baggage: (baggageId ? 'valid' : rawBaggage === undefined ? 'missing' : 'invalid') as HeaderState,
  };

  const audit: Record<string, string> = {};
  if (traceparent) audit[AUDIT_ANNOTATION_TRACEPARENT] = traceparent;

  const subresource = typeof req.subResource === 'string' && req.subResource !== '';
  if ((operation !== 'CREATE' && operation !== 'UPDATE') || subresource) {
    // Record the set the request belongs to, if known, so a Metadata-level audit event still says it.
    const id = baggageId ?? [annotationOf(req.object, ANNOTATION_OBJSETID), annotationOf(req.oldObject, ANNOTATION_OBJSETID)].find(validObjsetId);
    if (id) audit[AUDIT_ANNOTATION_OBJSETID] = id;
    return { ...base, review: allowResponse(req.uid, audit), outcome: 'skipped', patch: [] };
  }

  let meta: Meta;
  let old: Meta | undefined;
  try {
    meta = metaOf(req.object, 'request.object');
    if (operation === 'UPDATE' && req.oldObject !== undefined && req.oldObject !== null) old = metaOf(req.oldObject, 'request.oldObject');
  } catch (err) {
    if (!(err instanceof ObjectShapeError)) throw err;
    return { ...base, review: allowResponse(req.uid), outcome: 'error', patch: [], error: { reason: 'bad_object', message: err.message } };
  }
  const existingSpan = own(meta.annotations, ANNOTATION_SPAN);
  const existingId = own(meta.annotations, ANNOTATION_OBJSETID);
  const oldObjsetId = own(old?.annotations, ANNOTATION_OBJSETID);

  if (hasController(meta.ownerReferences)) {
    // Never patched: record the context and the set for the audit event only (they change nothing on the object).
    const id = baggageId ?? [existingId, oldObjsetId].find(validObjsetId);
    if (id) audit[AUDIT_ANNOTATION_OBJSETID] = id;
    return { ...base, review: allowResponse(req.uid, audit), outcome: 'owned', patch: [] };
  }

  const desired: Record<string, string> = {};
  // On UPDATE only a change of desired state re-stamps the span. A missing oldObject (kube-apiserver
  // always sends it) counts as no change: leaving the annotation alone can never start a loop.
  const restamp = operation === 'CREATE' || (old !== undefined && !sameDesiredState(req.object as Record<string, unknown>, req.oldObject as Record<string, unknown>));
  if (traceparent && restamp) desired[ANNOTATION_SPAN] = traceparent;

  let objsetId: string | undefined;
  if (baggageId) objsetId = baggageId;
  else if (validObjsetId(existingId)) objsetId = existingId;
  else if (validObjsetId(oldObjsetId)) objsetId = oldObjsetId;
  else objsetId = (operation === 'UPDATE' ? (old?.uid ?? meta.uid) : undefined) ?? (opts.newObjsetId ?? randomUUID)();
  desired[ANNOTATION_OBJSETID] = objsetId;
  audit[AUDIT_ANNOTATION_OBJSETID] = objsetId;

  const patch: JsonPatchOp[] = [];
  if (meta.annotations === undefined) {
    // Absent (or null): add the whole map; `add` also replaces a null member.
    patch.push({ op: 'add', path: '/metadata/annotations', value: desired });
  } else {
    for (const [key, value] of Object.entries(desired)) {
      const current = key === ANNOTATION_SPAN ? existingSpan : existingId;
      if (current === value) continue;
      const op = Object.hasOwn(meta.annotations, key) ? 'replace' : 'add';
      patch.push({ op, path: `/metadata/annotations/${escapeJsonPointer(key)}`, value });
    }
  }

  const out = allowResponse(req.uid, audit);
  if (!patch.length) return { ...base, review: out, outcome: 'unchanged', patch };
  out.response.patchType = 'JSONPatch';
  out.response.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
  return { ...base, review: out, outcome: 'patched', patch };
}
