/**
 * A validating scanner for ExportTraceServiceRequest bytes: what decodeTraceRequest accepts,
 * refuses and rejects, without building the span model. Per accepted span it gives a `RawSpan`:
 * the few fields a join needs (ids, kind, name, the `audit-id` attribute) and where the span's own
 * bytes are, with its ResourceSpans' and ScopeSpans' other fields (resource, scope, schema urls,
 * unknown fields) shared by the spans of one ScopeSpans. `spliceTraceRequest` writes such spans
 * back out as a request, copying their bytes.
 *
 * Strictness is the full decoder's, on every field (test/fuzz checks the two agree on every input):
 * the same inputs throw OtlpDecodeError with the same message, and the same spans are rejected
 * (`rejected`, same index and reason): ids of the wrong length or all zero, a link with such ids,
 * an array or kvlist nested deeper than MAX_ANY_VALUE_DEPTH in the span, its resource or its
 * scope. So any span this accepts decodes, alone or spliced into another request, to the span
 * decodeTraceRequest gives.
 *
 * The grammar is in decode-protobuf.ts; the functions here mirror its decode functions one to one.
 */
import { AUDIT_ID } from '@kube-correlate/semconv';
import { MAX_ANY_VALUE_DEPTH, tooDeepReason, type RejectedSpan } from './model.js';
import { allZero, DEEP, fail, idProblem, lengthEnd, Reader, skipField, utf8, varint32, wrongWireType } from './decode-protobuf.js';

/**
 * The fields of one ResourceSpans and one ScopeSpans other than their children, shared by the
 * spans under them: `[start, end)` byte ranges of `buf`.
 */
export interface RawScope {
  buf: Uint8Array;
  /** ResourceSpans fields other than scope_spans (the same array for every scope of one ResourceSpans). */
  resource: number[];
  /** ScopeSpans fields other than spans. */
  scope: number[];
  /** InstrumentationScope.name, as Span.scope.name. */
  name: string;
}

/** One accepted span: what the join reads, and where its bytes are. */
export interface RawSpan {
  /** As Span.traceId, spanId, parentSpanId ('' for none), name, kind. */
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  /** attrString(span.attributes, 'audit-id'): the first `audit-id` attribute's value when it is a string. */
  auditId: string | undefined;
  /** As span.attributes.length, events.length, links.length. */
  attributeCount: number;
  eventCount: number;
  linkCount: number;
  /** The Span message's body is buf[start, end) (without its tag and length). */
  buf: Uint8Array;
  start: number;
  end: number;
  scope: RawScope;
}

export interface ScannedTraces {
  spans: RawSpan[];
  rejected: RejectedSpan[];
}

/** The `audit-id` attribute key's UTF-8 bytes, compared in place. */
const AUDIT_ID_KEY = Buffer.from(AUDIT_ID, 'utf8');

/**
 * What the last skimmed top-level KeyValue held (a scan is synchronous: module state is safe).
 * `member` is the field number of the AnyValue member that decides its value (the last one seen,
 * 0 for an empty value or one nested too deep).
 */
let keyAt = -1;
let keyEnd = -1;
let member = 0;
let strAt = 0;
let strEnd = 0;

function skimKeyValue(r: Reader, end: number, depth: number): void {
  if (depth === 1) {
    keyAt = keyEnd = -1;
    member = 0;
  }
  let kAt = -1;
  let kEnd = -1;
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    const wt = tag & 7;
    switch (tag >>> 3) {
      case 1: {
        if (wt !== 2) wrongWireType('KeyValue.key (1)', wt, 2, tagAt);
        const e = lengthEnd(r, end);
        kAt = r.pos;
        kEnd = e;
        r.pos = e;
        break;
      }
      case 2:
        if (wt !== 2) wrongWireType('KeyValue.value (2)', wt, 2, tagAt);
        skimAnyValue(r, lengthEnd(r, end), depth);
        break;
      default:
        skipField(r, end, tag >>> 3, wt, tagAt);
    }
  }
  if (depth === 1) {
    keyAt = kAt;
    keyEnd = kEnd;
    if (r.deep === DEEP) r.deep = tooDeepReason(kAt < kEnd ? utf8(r, kAt, kEnd) : '');
  }
}

function skimAnyValue(r: Reader, end: number, depth: number): void {
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    const wt = tag & 7;
    const field = tag >>> 3;
    switch (field) {
      case 1: {
        if (wt !== 2) wrongWireType('AnyValue.string_value (1)', wt, 2, tagAt);
        const e = lengthEnd(r, end);
        if (depth === 1) {
          strAt = r.pos;
          strEnd = e;
        }
        r.pos = e;
        break;
      }
      case 2:
        if (wt !== 0) wrongWireType('AnyValue.bool_value (2)', wt, 0, tagAt);
        varint32(r, end);
        break;
      case 3:
        if (wt !== 0) wrongWireType('AnyValue.int_value (3)', wt, 0, tagAt);
        varint32(r, end); // the same length rules and errors as an int64
        break;
      case 4:
        if (wt !== 1) wrongWireType('AnyValue.double_value (4)', wt, 1, tagAt);
        if (end - r.pos < 8) fail('truncated double', tagAt);
        r.pos += 8;
        break;
      case 5:
      case 6: {
        if (wt !== 2) wrongWireType(field === 5 ? 'AnyValue.array_value (5)' : 'AnyValue.kvlist_value (6)', wt, 2, tagAt);
        if (depth > MAX_ANY_VALUE_DEPTH) {
          r.pos = lengthEnd(r, end);
          r.deep ||= DEEP;
          if (depth === 1) member = 0;
          continue;
        }
        const e = lengthEnd(r, end);
        while (r.pos < e) {
          const at = r.pos;
          const t = varint32(r, e);
          if (t >>> 3 === 1) {
            if ((t & 7) !== 2) wrongWireType(field === 5 ? 'ArrayValue.values (1)' : 'KeyValueList.values (1)', t & 7, 2, at);
            if (field === 5) skimAnyValue(r, lengthEnd(r, e), depth + 1);
            else skimKeyValue(r, lengthEnd(r, e), depth + 1);
          } else skipField(r, e, t >>> 3, t & 7, at);
        }
        break;
      }
      case 7: {
        if (wt !== 2) wrongWireType('AnyValue.bytes_value (7)', wt, 2, tagAt);
        r.pos = lengthEnd(r, end);
        break;
      }
      default:
        skipField(r, end, field, wt, tagAt);
        continue;
    }
    if (depth === 1) member = field;
  }
}

function skimResource(r: Reader, end: number): void {
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    const wt = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wt !== 2) wrongWireType('Resource.attributes (1)', wt, 2, tagAt);
        skimKeyValue(r, lengthEnd(r, end), 1);
        break;
      case 2:
        if (wt !== 0) wrongWireType('Resource.dropped_attributes_count (2)', wt, 0, tagAt);
        varint32(r, end);
        break;
      default:
        skipField(r, end, tag >>> 3, wt, tagAt);
    }
  }
}

/** Skims an InstrumentationScope; sets scope.name when the scope names itself. */
function skimScope(r: Reader, end: number, scope: RawScope): void {
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    const wt = tag & 7;
    switch (tag >>> 3) {
      case 1: {
        if (wt !== 2) wrongWireType('InstrumentationScope.name (1)', wt, 2, tagAt);
        const e = lengthEnd(r, end);
        scope.name = e === r.pos ? '' : utf8(r, r.pos, e);
        r.pos = e;
        break;
      }
      case 2:
        if (wt !== 2) wrongWireType('InstrumentationScope.version (2)', wt, 2, tagAt);
        r.pos = lengthEnd(r, end);
        break;
      case 3:
        if (wt !== 2) wrongWireType('InstrumentationScope.attributes (3)', wt, 2, tagAt);
        skimKeyValue(r, lengthEnd(r, end), 1);
        break;
      case 4:
        if (wt !== 0) wrongWireType('InstrumentationScope.dropped_attributes_count (4)', wt, 0, tagAt);
        varint32(r, end);
        break;
      default:
        skipField(r, end, tag >>> 3, wt, tagAt);
    }
  }
}

/** Scans ExportTraceServiceRequest bytes. Throws OtlpDecodeError exactly when decodeTraceRequest does. */
export function scanTraceRequest(bytes: Uint8Array): ScannedTraces {
  const r = new Reader(bytes);
  const out: ScannedTraces = { spans: [], rejected: [] };
  const end = bytes.length;
  try {
    while (r.pos < end) {
      const tagAt = r.pos;
      const tag = varint32(r, end);
      if (tag >>> 3 === 1) {
        if ((tag & 7) !== 2) wrongWireType('ExportTraceServiceRequest.resource_spans (1)', tag & 7, 2, tagAt);
        scanResourceSpans(r, lengthEnd(r, end), out);
      } else skipField(r, end, tag >>> 3, tag & 7, tagAt);
    }
  } finally {
    lastTraceBuf = undefined; // holds no message past the call
  }
  return out;
}

/** As decode-protobuf.ts's rejectAll: spans [firstIndex, lastIndex) share a resource or scope nested too deep. */
function rejectAll(out: ScannedTraces, spansFrom: number, rejectedFrom: number, firstIndex: number, lastIndex: number, why: string): void {
  const already = out.rejected.splice(rejectedFrom);
  out.spans.length = spansFrom;
  let k = 0;
  for (let index = firstIndex; index < lastIndex; index++) {
    if (k < already.length && already[k]!.index === index) out.rejected.push(already[k++]!);
    else out.rejected.push({ index, reason: `span ${index}: ${why}` });
  }
}

/**
 * A pushed-to array's exact-size copy: an array grown by push keeps room for 16 or more entries,
 * over 100 bytes that every held span of a small message would keep alive.
 */
const exact = (ranges: number[]): number[] => ranges.slice();

function scanResourceSpans(r: Reader, end: number, out: ScannedTraces): void {
  const header: number[] = [];
  const scopes: RawScope[] = [];
  const spansFrom = out.spans.length;
  const rejectedFrom = out.rejected.length;
  const firstIndex = r.spanIndex;
  let deep = '';
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    const wt = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wt !== 2) wrongWireType('ResourceSpans.resource (1)', wt, 2, tagAt);
        skimResource(r, lengthEnd(r, end));
        header.push(tagAt, r.pos);
        if (r.deep) {
          deep ||= `resource ${r.deep}`;
          r.deep = '';
        }
        break;
      case 2:
        if (wt !== 2) wrongWireType('ResourceSpans.scope_spans (2)', wt, 2, tagAt);
        scopes.push(scanScopeSpans(r, lengthEnd(r, end), header, out));
        break;
      case 3:
        if (wt !== 2) wrongWireType('ResourceSpans.schema_url (3)', wt, 2, tagAt);
        r.pos = lengthEnd(r, end);
        header.push(tagAt, r.pos);
        break;
      default:
        skipField(r, end, tag >>> 3, wt, tagAt);
        header.push(tagAt, r.pos);
    }
  }
  if (deep) rejectAll(out, spansFrom, rejectedFrom, firstIndex, r.spanIndex, deep);
  const fixed = exact(header); // complete only now: a schema_url may follow the scope_spans
  for (const scope of scopes) scope.resource = fixed;
}

function scanScopeSpans(r: Reader, end: number, resource: number[], out: ScannedTraces): RawScope {
  const scope: RawScope = { buf: r.buf, resource, scope: [], name: '' };
  const spansFrom = out.spans.length;
  const rejectedFrom = out.rejected.length;
  const firstIndex = r.spanIndex;
  let deep = '';
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    const wt = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wt !== 2) wrongWireType('ScopeSpans.scope (1)', wt, 2, tagAt);
        skimScope(r, lengthEnd(r, end), scope);
        scope.scope.push(tagAt, r.pos);
        if (r.deep) {
          deep ||= `scope ${r.deep}`;
          r.deep = '';
        }
        break;
      case 2:
        if (wt !== 2) wrongWireType('ScopeSpans.spans (2)', wt, 2, tagAt);
        scanSpan(r, lengthEnd(r, end), scope, out);
        break;
      case 3:
        if (wt !== 2) wrongWireType('ScopeSpans.schema_url (3)', wt, 2, tagAt);
        r.pos = lengthEnd(r, end);
        scope.scope.push(tagAt, r.pos);
        break;
      default:
        skipField(r, end, tag >>> 3, wt, tagAt);
        scope.scope.push(tagAt, r.pos);
    }
  }
  if (deep) rejectAll(out, spansFrom, rejectedFrom, firstIndex, r.spanIndex, deep);
  scope.scope = exact(scope.scope);
  return scope;
}

function skipFixed64(r: Reader, end: number, tagAt: number): void {
  if (end - r.pos < 8) fail('truncated fixed64', tagAt);
  r.pos += 8;
}

function skipFixed32(r: Reader, end: number, tagAt: number): void {
  if (end - r.pos < 4) fail('truncated fixed32', tagAt);
  r.pos += 4;
}

/** The trace id string of the previous span, reused while the same bytes repeat (spans of one trace share one string). */
let lastTrace = '';
let lastTraceBuf: Uint8Array | undefined;
let lastTraceAt = 0;

/** Byte -> its high and low hex digit's character code. */
const HI = new Uint8Array(256);
const LO = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  HI[i] = '0123456789abcdef'.charCodeAt(i >> 4);
  LO[i] = '0123456789abcdef'.charCodeAt(i & 15);
}

/**
 * 8 bytes as 16 hex digits in one flat string. (decode-protobuf.ts's `hex` concatenates two-digit
 * pieces, which leaves a rope of cons strings: over 200 bytes of heap for a span's ids, which a
 * held span would keep. One String.fromCharCode call makes a flat string, faster than Buffer's
 * hexSlice, a native call.)
 */
function hex8(b: Uint8Array, a: number): string {
  const x0 = b[a]!, x1 = b[a + 1]!, x2 = b[a + 2]!, x3 = b[a + 3]!, x4 = b[a + 4]!, x5 = b[a + 5]!, x6 = b[a + 6]!, x7 = b[a + 7]!;
  return String.fromCharCode(HI[x0]!, LO[x0]!, HI[x1]!, LO[x1]!, HI[x2]!, LO[x2]!, HI[x3]!, LO[x3]!, HI[x4]!, LO[x4]!, HI[x5]!, LO[x5]!, HI[x6]!, LO[x6]!, HI[x7]!, LO[x7]!);
}

/** 16 bytes as 32 hex digits in one flat string. */
function hex16(b: Uint8Array, a: number): string {
  const x0 = b[a]!, x1 = b[a + 1]!, x2 = b[a + 2]!, x3 = b[a + 3]!, x4 = b[a + 4]!, x5 = b[a + 5]!, x6 = b[a + 6]!, x7 = b[a + 7]!;
  const y0 = b[a + 8]!, y1 = b[a + 9]!, y2 = b[a + 10]!, y3 = b[a + 11]!, y4 = b[a + 12]!, y5 = b[a + 13]!, y6 = b[a + 14]!, y7 = b[a + 15]!;
  return String.fromCharCode(
    HI[x0]!, LO[x0]!, HI[x1]!, LO[x1]!, HI[x2]!, LO[x2]!, HI[x3]!, LO[x3]!, HI[x4]!, LO[x4]!, HI[x5]!, LO[x5]!, HI[x6]!, LO[x6]!, HI[x7]!, LO[x7]!,
    HI[y0]!, LO[y0]!, HI[y1]!, LO[y1]!, HI[y2]!, LO[y2]!, HI[y3]!, LO[y3]!, HI[y4]!, LO[y4]!, HI[y5]!, LO[y5]!, HI[y6]!, LO[y6]!, HI[y7]!, LO[y7]!,
  );
}

function traceIdString(buf: Uint8Array, at: number): string {
  const prev = lastTraceBuf;
  if (prev !== undefined) {
    let same = true;
    for (let i = 0; i < 16; i++) {
      if (prev[lastTraceAt + i] !== buf[at + i]) {
        same = false;
        break;
      }
    }
    if (same) {
      lastTraceBuf = buf;
      lastTraceAt = at;
      return lastTrace;
    }
  }
  lastTrace = hex16(buf, at);
  lastTraceBuf = buf;
  lastTraceAt = at;
  return lastTrace;
}

function scanSpan(r: Reader, end: number, scope: RawScope, out: ScannedTraces): void {
  const index = r.spanIndex++;
  const buf = r.buf;
  const start = r.pos;
  let traceAt = 0;
  let traceLen = 0;
  let spanAt = 0;
  let spanLen = 0;
  let parentAt = 0;
  let parentLen = 0;
  let nameAt = 0;
  let nameEnd = 0;
  let kind = 0;
  let auditId: string | undefined;
  let auditSeen = false;
  let attributeCount = 0;
  let eventCount = 0;
  let linkCount = 0;
  let problem = '';
  let linkIndex = 0;
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    const wt = tag & 7;
    switch (tag >>> 3) {
      case 1: {
        if (wt !== 2) wrongWireType('Span.trace_id (1)', wt, 2, tagAt);
        const e = lengthEnd(r, end);
        traceAt = r.pos;
        traceLen = e - traceAt;
        r.pos = e;
        break;
      }
      case 2: {
        if (wt !== 2) wrongWireType('Span.span_id (2)', wt, 2, tagAt);
        const e = lengthEnd(r, end);
        spanAt = r.pos;
        spanLen = e - spanAt;
        r.pos = e;
        break;
      }
      case 3:
        if (wt !== 2) wrongWireType('Span.trace_state (3)', wt, 2, tagAt);
        r.pos = lengthEnd(r, end);
        break;
      case 4: {
        if (wt !== 2) wrongWireType('Span.parent_span_id (4)', wt, 2, tagAt);
        const e = lengthEnd(r, end);
        parentAt = r.pos;
        parentLen = e - parentAt;
        r.pos = e;
        break;
      }
      case 5: {
        if (wt !== 2) wrongWireType('Span.name (5)', wt, 2, tagAt);
        const e = lengthEnd(r, end);
        nameAt = r.pos;
        nameEnd = e;
        r.pos = e;
        break;
      }
      case 6:
        if (wt !== 0) wrongWireType('Span.kind (6)', wt, 0, tagAt);
        kind = varint32(r, end) | 0;
        break;
      case 7:
        if (wt !== 1) wrongWireType('Span.start_time_unix_nano (7)', wt, 1, tagAt);
        skipFixed64(r, end, tagAt);
        break;
      case 8:
        if (wt !== 1) wrongWireType('Span.end_time_unix_nano (8)', wt, 1, tagAt);
        skipFixed64(r, end, tagAt);
        break;
      case 9:
        if (wt !== 2) wrongWireType('Span.attributes (9)', wt, 2, tagAt);
        skimKeyValue(r, lengthEnd(r, end), 1);
        attributeCount++;
        if (!auditSeen && keyEnd - keyAt === AUDIT_ID_KEY.length && isAuditIdKey(buf, keyAt)) {
          auditSeen = true;
          auditId = member === 1 ? (strAt === strEnd ? '' : utf8(r, strAt, strEnd)) : undefined;
        }
        break;
      case 10:
        if (wt !== 0) wrongWireType('Span.dropped_attributes_count (10)', wt, 0, tagAt);
        varint32(r, end);
        break;
      case 11:
        if (wt !== 2) wrongWireType('Span.events (11)', wt, 2, tagAt);
        skimEvent(r, lengthEnd(r, end));
        eventCount++;
        break;
      case 12:
        if (wt !== 0) wrongWireType('Span.dropped_events_count (12)', wt, 0, tagAt);
        varint32(r, end);
        break;
      case 13: {
        if (wt !== 2) wrongWireType('Span.links (13)', wt, 2, tagAt);
        const issue = skimLink(r, lengthEnd(r, end));
        if (issue) {
          if (!problem) problem = `link ${linkIndex} ${issue}`;
        } else linkCount++;
        linkIndex++;
        break;
      }
      case 14:
        if (wt !== 0) wrongWireType('Span.dropped_links_count (14)', wt, 0, tagAt);
        varint32(r, end);
        break;
      case 15:
        if (wt !== 2) wrongWireType('Span.status (15)', wt, 2, tagAt);
        skimStatus(r, lengthEnd(r, end));
        break;
      case 16:
        if (wt !== 5) wrongWireType('Span.flags (16)', wt, 5, tagAt);
        skipFixed32(r, end, tagAt);
        break;
      default:
        skipField(r, end, tag >>> 3, wt, tagAt);
    }
  }
  if (r.deep) {
    problem ||= r.deep;
    r.deep = '';
  }
  const idIssue =
    idProblem(buf, 'trace_id', traceAt, traceLen, 16) ||
    idProblem(buf, 'span_id', spanAt, spanLen, 8) ||
    (parentLen !== 0 && parentLen !== 8 ? `parent_span_id is ${parentLen} bytes, want 0 or 8` : '') ||
    problem;
  if (idIssue) {
    out.rejected.push({ index, reason: `span ${index}: ${idIssue}` });
    return;
  }
  out.spans.push({
    traceId: traceIdString(buf, traceAt),
    spanId: hex8(buf, spanAt),
    parentSpanId: parentLen === 0 || allZero(buf, parentAt, 8) ? '' : hex8(buf, parentAt),
    name: nameAt === nameEnd ? '' : utf8(r, nameAt, nameEnd),
    kind,
    auditId,
    attributeCount,
    eventCount,
    linkCount,
    buf,
    start,
    end,
    scope,
  });
}

function isAuditIdKey(buf: Uint8Array, at: number): boolean {
  for (let i = 0; i < AUDIT_ID_KEY.length; i++) if (buf[at + i] !== AUDIT_ID_KEY[i]) return false;
  return true;
}

function skimStatus(r: Reader, end: number): void {
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    const wt = tag & 7;
    switch (tag >>> 3) {
      case 2:
        if (wt !== 2) wrongWireType('Status.message (2)', wt, 2, tagAt);
        r.pos = lengthEnd(r, end);
        break;
      case 3:
        if (wt !== 0) wrongWireType('Status.code (3)', wt, 0, tagAt);
        varint32(r, end);
        break;
      default:
        skipField(r, end, tag >>> 3, wt, tagAt);
    }
  }
}

function skimEvent(r: Reader, end: number): void {
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    const wt = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wt !== 1) wrongWireType('Span.Event.time_unix_nano (1)', wt, 1, tagAt);
        skipFixed64(r, end, tagAt);
        break;
      case 2:
        if (wt !== 2) wrongWireType('Span.Event.name (2)', wt, 2, tagAt);
        r.pos = lengthEnd(r, end);
        break;
      case 3:
        if (wt !== 2) wrongWireType('Span.Event.attributes (3)', wt, 2, tagAt);
        skimKeyValue(r, lengthEnd(r, end), 1);
        break;
      case 4:
        if (wt !== 0) wrongWireType('Span.Event.dropped_attributes_count (4)', wt, 0, tagAt);
        varint32(r, end);
        break;
      default:
        skipField(r, end, tag >>> 3, wt, tagAt);
    }
  }
}

/** Why a link's ids are unusable, or ''. */
function skimLink(r: Reader, end: number): string {
  const buf = r.buf;
  let traceAt = 0;
  let traceLen = 0;
  let spanAt = 0;
  let spanLen = 0;
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    const wt = tag & 7;
    switch (tag >>> 3) {
      case 1: {
        if (wt !== 2) wrongWireType('Span.Link.trace_id (1)', wt, 2, tagAt);
        const e = lengthEnd(r, end);
        traceAt = r.pos;
        traceLen = e - traceAt;
        r.pos = e;
        break;
      }
      case 2: {
        if (wt !== 2) wrongWireType('Span.Link.span_id (2)', wt, 2, tagAt);
        const e = lengthEnd(r, end);
        spanAt = r.pos;
        spanLen = e - spanAt;
        r.pos = e;
        break;
      }
      case 3:
        if (wt !== 2) wrongWireType('Span.Link.trace_state (3)', wt, 2, tagAt);
        r.pos = lengthEnd(r, end);
        break;
      case 4:
        if (wt !== 2) wrongWireType('Span.Link.attributes (4)', wt, 2, tagAt);
        skimKeyValue(r, lengthEnd(r, end), 1);
        break;
      case 5:
        if (wt !== 0) wrongWireType('Span.Link.dropped_attributes_count (5)', wt, 0, tagAt);
        varint32(r, end);
        break;
      case 6:
        if (wt !== 5) wrongWireType('Span.Link.flags (6)', wt, 5, tagAt);
        skipFixed32(r, end, tagAt);
        break;
      default:
        skipField(r, end, tag >>> 3, wt, tagAt);
    }
  }
  return idProblem(buf, 'trace_id', traceAt, traceLen, 16) || idProblem(buf, 'span_id', spanAt, spanLen, 8);
}

const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

function rangesBytes(buf: Uint8Array, ranges: readonly number[]): Buffer {
  if (ranges.length === 2) return Buffer.from(buf.buffer, buf.byteOffset + ranges[0]!, ranges[1]! - ranges[0]!);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < ranges.length; i += 2) parts.push(buf.subarray(ranges[i]!, ranges[i + 1]!));
  return Buffer.concat(parts);
}

interface SpliceScope { buf: Uint8Array; ranges: number[]; bytes: Buffer; body: number; spans: RawSpan[]; extra: Array<Uint8Array | undefined> }
interface SpliceResource { buf: Uint8Array; ranges: number[]; bytes: Buffer; body: number; scopes: SpliceScope[] }

/**
 * Writes spans as one ExportTraceServiceRequest by copying their bytes: one ResourceSpans per
 * distinct resource (the bytes of its fields other than scope_spans), within it one ScopeSpans per
 * distinct scope, and in it each span's bytes with `append(span)` after them (more Span fields: a
 * repeated field such as attributes = 9 appended is added to the span's). `tail`, when given, is
 * another ExportTraceServiceRequest appended whole (its resource_spans follow). Decoding the output
 * gives the spans decodeTraceRequest gave for their own messages, grouped, plus what is appended.
 */
export function spliceTraceRequest(spans: readonly RawSpan[], append?: (s: RawSpan) => Uint8Array | undefined, tail?: Uint8Array): Uint8Array {
  const resources: SpliceResource[] = [];
  const byScope = new Map<RawScope, SpliceScope>();
  for (const s of spans) {
    let sg = byScope.get(s.scope);
    if (!sg) {
      const raw = s.scope;
      let rg = resources.find((g) => g.ranges === raw.resource && g.buf === raw.buf);
      if (!rg) {
        const bytes = rangesBytes(raw.buf, raw.resource);
        rg = resources.find((g) => g.bytes.equals(bytes));
        if (!rg) resources.push((rg = { buf: raw.buf, ranges: raw.resource, bytes, body: bytes.length, scopes: [] }));
      }
      const bytes = rangesBytes(raw.buf, raw.scope);
      sg = rg.scopes.find((g) => g.bytes.equals(bytes));
      if (!sg) rg.scopes.push((sg = { buf: raw.buf, ranges: raw.scope, bytes, body: bytes.length, spans: [], extra: [] }));
      byScope.set(raw, sg);
    }
    const extra = append?.(s);
    sg.spans.push(s);
    sg.extra.push(extra);
    const len = s.end - s.start + (extra?.length ?? 0);
    sg.body += 1 + varintSize(len) + len;
  }
  let total = tail?.length ?? 0;
  for (const rg of resources) {
    for (const sg of rg.scopes) rg.body += 1 + varintSize(sg.body) + sg.body;
    total += 1 + varintSize(rg.body) + rg.body;
  }
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  const putLen = (tag: number, len: number): void => {
    out[pos++] = tag;
    while (len >= 0x80) {
      out[pos++] = (len & 0x7f) | 0x80;
      len >>>= 7;
    }
    out[pos++] = len;
  };
  for (const rg of resources) {
    putLen(0x0a, rg.body); // ExportTraceServiceRequest.resource_spans = 1
    out.set(rg.bytes, pos);
    pos += rg.bytes.length;
    for (const sg of rg.scopes) {
      putLen(0x12, sg.body); // ResourceSpans.scope_spans = 2
      out.set(sg.bytes, pos);
      pos += sg.bytes.length;
      for (let i = 0; i < sg.spans.length; i++) {
        const s = sg.spans[i]!;
        const extra = sg.extra[i];
        const len = s.end - s.start;
        putLen(0x12, len + (extra?.length ?? 0)); // ScopeSpans.spans = 2
        out.set(s.buf.subarray(s.start, s.end), pos);
        pos += len;
        if (extra) {
          out.set(extra, pos);
          pos += extra.length;
        }
      }
    }
  }
  if (tail) {
    out.set(tail, pos);
    pos += tail.length;
  }
  if (pos !== total) throw new Error(`spliceTraceRequest: wrote ${pos} bytes, planned ${total}`);
  return out;
}

/**
 * Gives each span its own copy of its bytes, and each scope one copy of its ResourceSpans' and
 * ScopeSpans' fields, so that the message they were scanned from is no longer referenced. (The
 * alternative, keeping the message, holds every byte of it, rejected spans and framing included,
 * for as long as any of its spans is held; which costs less depends on the allocator: see
 * packages/correlator/bench/raw-spans.ts.)
 */
export function detachRawSpans(spans: readonly RawSpan[]): void {
  const scopes = new Map<RawScope, RawScope>();
  for (const s of spans) {
    let scope = scopes.get(s.scope);
    if (!scope) {
      const old = s.scope;
      const res = rangesBytes(old.buf, old.resource);
      const sc = rangesBytes(old.buf, old.scope);
      const buf = new Uint8Array(res.length + sc.length);
      buf.set(res, 0);
      buf.set(sc, res.length);
      scope = { buf, resource: [0, res.length], scope: [res.length, buf.length], name: old.name };
      scopes.set(old, scope);
    }
    s.buf = new Uint8Array(s.buf.subarray(s.start, s.end)); // a copy (Buffer.prototype.slice would not copy)
    s.end -= s.start;
    s.start = 0;
    s.scope = scope;
  }
}
