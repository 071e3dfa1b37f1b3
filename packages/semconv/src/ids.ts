import { createHash } from 'node:crypto';

/**
 * The ids kube-correlate derives. Each is a prefix of the SHA-256 of a documented input string, so a
 * replay or a second process derives the same id (README.md, "Derived ids"). An all-zero result is
 * invalid in OTLP and is replaced by ...01.
 */

/**
 * The `audit-id` span attribute's form of an auditID. Events carry the full ID (a client may set any
 * `Audit-ID` header); kube-apiserver's spans carry its first 64 bytes (GetAuditIDTruncated).
 */
export function auditIDForSpans(auditID: string): string {
  const bytes = Buffer.from(auditID, 'utf8');
  return bytes.length <= 64 ? auditID : bytes.subarray(0, 64).toString('utf8');
}

function digestHex(text: string, bytes: number): string {
  let hex = createHash('sha256').update(text).digest('hex').slice(0, bytes * 2);
  if (/^0+$/.test(hex)) hex = hex.slice(0, -1) + '1'; // an all-zero id is invalid in OTLP
  return hex;
}

/** Span id of the audit span of `auditID`: 8 bytes of SHA-256 of `audit-span/<auditIDForSpans(auditID)>`. */
export const auditSpanId = (auditID: string): string => digestHex(`audit-span/${auditIDForSpans(auditID)}`, 8);

/**
 * Span id of the span that carries stages of `auditID` exported after its audit span was (late
 * stages): 8 bytes of SHA-256 of `audit-span/<auditIDForSpans(auditID)>/<stages, sorted, comma-separated>`.
 */
export const lateAuditSpanId = (auditID: string, stages: readonly string[]): string => digestHex(`audit-span/${auditIDForSpans(auditID)}/${[...stages].sort().join(',')}`, 8);

/** Trace id for an audit request whose spans never came: 16 bytes of SHA-256 of `audit-trace/<auditIDForSpans(auditID)>`. */
export const unjoinedTraceId = (auditID: string): string => digestHex(`audit-trace/${auditIDForSpans(auditID)}`, 16);

/**
 * Start of the window that holds `ms` (both in ms since the epoch): windows are `windowMs` long and
 * aligned to the epoch, so UTC-aligned for any length that divides a day (1h: 16:00, 17:00, ...).
 */
export function objectSetWindowStart(ms: number, windowMs: number): number {
  return Math.floor(ms / windowMs) * windowMs;
}

/**
 * Trace id in Jaeger of one window of an object set: 16 bytes of SHA-256 of
 * `objset/<set id>/<window start>` (RFC 3339 UTC with milliseconds, e.g.
 * `objset/591491bc-.../2026-12-02T16:00:00.000Z`), and of `.../<part>` for a further part of a window
 * that outgrew `object_sets.max_spans_per_trace`. A set has one trace per window with activity, so
 * no trace grows for the object's whole life.
 */
export function objectSetTraceId(setId: string, windowStartMs: number, part = 0): string {
  const text = `objset/${setId}/${new Date(windowStartMs).toISOString()}${part > 0 ? `/${part}` : ''}`;
  const hex = createHash('sha256').update(text).digest('hex').slice(0, 32);
  return /^0+$/.test(hex) ? '00000000000000000000000000000001' : hex;
}

/**
 * Deterministic span id for a node of an object-set trace: 8 bytes of SHA-256 of `parts` joined by
 * NUL. The named helpers below give the parts each kind of node uses.
 */
export function objectSetSpanId(...parts: string[]): string {
  const hex = createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 16);
  return /^0+$/.test(hex) ? '0000000000000001' : hex;
}

/**
 * Span id of the root of one trace of an object set (a window, or a further part of one; every
 * window when `windowStartMs` is undefined): parts `<set>, set[, <window start>[, <part>]]`. Each
 * trace's root has its own, so a root's span link to the root of the trace before it never names
 * its own id (the Jaeger UI takes a span's first reference as its parent when the id is in the trace).
 */
export function objectSetRootSpanId(setId: string, windowStartMs?: number, part = 0): string {
  return windowStartMs === undefined ? objectSetSpanId(setId, 'set') : objectSetSpanId(setId, 'set', new Date(windowStartMs).toISOString(), ...(part > 0 ? [String(part)] : []));
}

/** Span id of an object's node in its set's trees: parts `<set>, object, <uid>`. */
export const objectSpanId = (setId: string, uid: string): string => objectSetSpanId(setId, 'object', uid);

/** Span id of a request's node under an object: parts `<set>, request, <uid>, <auditID, 64-byte form>`. */
export const objectRequestSpanId = (setId: string, uid: string, auditId: string): string => objectSetSpanId(setId, 'request', uid, auditId);

/**
 * Span id of the chain span a trace of a set gets when the trace after it (`direction` 'next') or
 * before it ('previous', late data) goes out: parts `<set>, <direction>, <the other trace's id>`.
 */
export const objectSetChainSpanId = (setId: string, direction: 'next' | 'previous', otherTraceId: string): string => objectSetSpanId(setId, direction, otherTraceId);
