/**
 * Decoder for OTLP/JSON ExportTraceServiceRequest bodies (already parsed with JSON.parse).
 *
 * Follows https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding: lowerCamelCase keys
 * (proto snake_case names accepted too), trace and span ids as hex (not base64), enums as integers
 * or names, 64-bit integers as numbers or decimal strings, bytes as base64, unknown keys ignored,
 * `null` read as the field's default. Wrong shapes throw OtlpDecodeError naming the JSON path;
 * bad ids only reject their span, and so does an array or kvlist nested deeper than
 * MAX_ANY_VALUE_DEPTH (not read past that depth: the decoder's recursion stays bounded; JSON.parse
 * itself does not recurse in V8). Unknown keys are never walked, however deep their values are.
 */
import { MAX_ANY_VALUE_DEPTH, OtlpDecodeError, tooDeepReason } from './model.js';
import type { AnyValue, DecodedTraces, KeyValue, Resource, Scope, Span, SpanEvent, SpanLink } from './model.js';

type Obj = Record<string, unknown>;

const SPAN_KINDS: Record<string, number> = {
  SPAN_KIND_UNSPECIFIED: 0,
  SPAN_KIND_INTERNAL: 1,
  SPAN_KIND_SERVER: 2,
  SPAN_KIND_CLIENT: 3,
  SPAN_KIND_PRODUCER: 4,
  SPAN_KIND_CONSUMER: 5,
};
const STATUS_CODES: Record<string, number> = { STATUS_CODE_UNSET: 0, STATUS_CODE_OK: 1, STATUS_CODE_ERROR: 2 };

const UINT64_MAX = 18446744073709551615n;
const INT64_MIN = -9223372036854775808n;
const INT64_MAX = 9223372036854775807n;

/**
 * The JSON path of what is being read, kept as a stack so that building it costs nothing unless
 * an error is thrown.
 */
class Path {
  private readonly parts: Array<string | number> = [];
  /** Set (to the reason) when an attribute nested too deep was skipped; cleared by whoever owns the attributes. */
  deep = '';
  push(part: string | number): void {
    this.parts.push(part);
  }
  pop(): void {
    this.parts.pop();
  }
  fail(what: string, key?: string): never {
    let s = '';
    for (const p of key === undefined ? this.parts : [...this.parts, key]) {
      s += typeof p === 'number' ? `[${p}]` : s ? `.${p}` : p;
    }
    throw new OtlpDecodeError(`${s || 'request body'}: ${what}`);
  }
}

/** `JSON.stringify(s)`, cut to 60 characters: error messages go back to senders and into logs. */
function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}

type WellFormed = string & { isWellFormed(): boolean; toWellFormed(): string };

/**
 * The string with lone surrogates (JSON allows "\ud800") replaced by U+FFFD, as the protobuf
 * decoder reads invalid UTF-8: protobuf strings, Kafka and Jaeger carry UTF-8 only, so the same span
 * must read the same whichever encoding it came in (found by the fuzzer: a re-encoded span changed).
 */
function text(s: string): string {
  return (s as WellFormed).isWellFormed() ? s : (s as WellFormed).toWellFormed();
}

/** Reads `camel` or its proto name `snake`; null counts as absent. */
function field(o: Obj, camel: string, snake: string): unknown {
  const v = o[camel];
  if (v !== undefined && v !== null) return v;
  const w = o[snake];
  return w === null ? undefined : w;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function objectAt(p: Path, v: unknown, key?: string): Obj {
  if (!isObj(v)) p.fail('expected an object', key);
  return v;
}

function arrayField(p: Path, o: Obj, camel: string, snake: string): unknown[] {
  const v = field(o, camel, snake);
  if (v === undefined) return [];
  if (!Array.isArray(v)) p.fail('expected an array', camel);
  return v;
}

function stringField(p: Path, o: Obj, camel: string, snake: string): string {
  const v = field(o, camel, snake);
  if (v === undefined) return '';
  if (typeof v !== 'string') p.fail('expected a string', camel);
  return text(v);
}

/** uint32 as a JSON number or decimal string. */
function uint32Field(p: Path, o: Obj, camel: string, snake: string): number {
  const v = field(o, camel, snake);
  if (v === undefined) return 0;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    p.fail('expected an unsigned 32-bit integer', camel);
  }
  // -0 is 0 (JSON may say "-0"; the protobuf encoding of the span cannot).
  return n + 0;
}

/** An enum: its integer value (int32, as number or decimal string) or its name. */
function enumField(p: Path, o: Obj, camel: string, snake: string, names: Record<string, number>): number {
  const v = field(o, camel, snake);
  if (v === undefined) return 0;
  if (typeof v === 'string') {
    // Own names only: "__proto__" or "constructor" are no enum values (found by the fuzzer: the
    // status code became Object.prototype).
    if (Object.hasOwn(names, v)) return names[v]!;
    if (/^-?\d+$/.test(v)) return int32(p, Number(v), camel);
    p.fail(`unknown enum value ${quote(v)}`, camel);
  }
  if (typeof v !== 'number') p.fail('expected an enum name or integer', camel);
  return int32(p, v, camel);
}

function int32(p: Path, n: number, key: string): number {
  if (!Number.isInteger(n) || n < -0x80000000 || n > 0x7fffffff) p.fail('expected a 32-bit integer', key);
  return n | 0;
}

/**
 * A 64-bit integer (number or decimal string) as the model's decimal string. A number above 2^53
 * has already lost precision in JSON.parse; its exact double value is kept, as the protobuf
 * encoder of the same number would.
 */
function int64Value(p: Path, v: unknown, key: string, unsigned: boolean): string {
  const want = unsigned ? 'expected an unsigned 64-bit integer' : 'expected a 64-bit integer';
  let big: bigint;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) p.fail(want, key);
    if (Number.isSafeInteger(v) && (!unsigned || v >= 0)) return String(v);
    big = BigInt(v);
  } else if (typeof v === 'string' && /^-?\d+$/.test(v)) {
    if (v.length <= 15 && v[0] !== '0' && v[0] !== '-') return v;
    big = BigInt(v);
  } else p.fail(want, key);
  if (unsigned ? big < 0n || big > UINT64_MAX : big < INT64_MIN || big > INT64_MAX) p.fail(`${want}, out of range`, key);
  return big.toString();
}

function timeField(p: Path, o: Obj, camel: string, snake: string): string {
  const v = field(o, camel, snake);
  return v === undefined ? '0' : int64Value(p, v, camel, true);
}

/** Checks a hex id; returns the lowercase id, or a reason starting with the field name. */
function hexId(v: string, name: string, digits: number): { id: string; problem: string } {
  if (v.length !== digits) return { id: '', problem: `${name} is ${v.length} hex digits, want ${digits}` };
  if (!/^[0-9a-fA-F]*$/.test(v)) return { id: '', problem: `${name} ${quote(v)} is not hex` };
  const id = v.toLowerCase();
  if (/^0*$/.test(id)) return { id: '', problem: `${name} is all zero` };
  return { id, problem: '' };
}

/** Decodes a parsed OTLP/JSON ExportTraceServiceRequest. Throws OtlpDecodeError on a wrong shape. */
export function decodeTraceRequestJson(body: unknown): DecodedTraces {
  const p = new Path();
  const root = objectAt(p, body);
  const out: DecodedTraces = { spans: [], rejected: [] };
  // Unknown fields are skipped, but a body with no resourceSpans and only other keys is some other
  // document (an audit EventList, a Jaeger trace): refuse it rather than accept it as empty.
  const keys = Object.keys(root);
  if (!('resourceSpans' in root) && !('resource_spans' in root) && keys.length > 0) {
    throw new OtlpDecodeError(`expected an ExportTraceServiceRequest with "resourceSpans", got an object with ${keys.slice(0, 5).map(quote).join(', ')}${keys.length > 5 ? ', ...' : ''}`);
  }
  const resourceSpans = arrayField(p, root, 'resourceSpans', 'resource_spans');
  p.push('resourceSpans');
  let index = 0;
  for (let i = 0; i < resourceSpans.length; i++) {
    p.push(i);
    const rs = objectAt(p, resourceSpans[i]);
    const resource: Resource = { attributes: [], droppedAttributesCount: 0, schemaUrl: '' };
    let resourceDeep = '';
    const res = field(rs, 'resource', 'resource');
    if (res !== undefined) {
      const ro = objectAt(p, res, 'resource');
      p.push('resource');
      resource.attributes = attributesField(p, ro, 'attributes', 'attributes');
      resource.droppedAttributesCount = uint32Field(p, ro, 'droppedAttributesCount', 'dropped_attributes_count');
      p.pop();
      if (p.deep) resourceDeep = `resource ${p.deep}`;
      p.deep = '';
    }
    resource.schemaUrl = stringField(p, rs, 'schemaUrl', 'schema_url');
    const scopeSpans = arrayField(p, rs, 'scopeSpans', 'scope_spans');
    p.push('scopeSpans');
    for (let j = 0; j < scopeSpans.length; j++) {
      p.push(j);
      const ss = objectAt(p, scopeSpans[j]);
      const scope: Scope = { name: '', version: '', attributes: [], droppedAttributesCount: 0, schemaUrl: '' };
      let sharedDeep = resourceDeep;
      const sc = field(ss, 'scope', 'scope');
      if (sc !== undefined) {
        const so = objectAt(p, sc, 'scope');
        p.push('scope');
        scope.name = stringField(p, so, 'name', 'name');
        scope.version = stringField(p, so, 'version', 'version');
        scope.attributes = attributesField(p, so, 'attributes', 'attributes');
        scope.droppedAttributesCount = uint32Field(p, so, 'droppedAttributesCount', 'dropped_attributes_count');
        p.pop();
        if (p.deep) sharedDeep ||= `scope ${p.deep}`;
        p.deep = '';
      }
      scope.schemaUrl = stringField(p, ss, 'schemaUrl', 'schema_url');
      const spans = arrayField(p, ss, 'spans', 'spans');
      p.push('spans');
      for (let k = 0; k < spans.length; k++) {
        p.push(k);
        decodeSpan(p, objectAt(p, spans[k]), index++, resource, scope, out, sharedDeep);
        p.pop();
      }
      p.pop();
      p.pop();
    }
    p.pop();
    p.pop();
  }
  return out;
}

/** `sharedDeep`: why the span's resource or scope is refused ('' when it is not). */
function decodeSpan(p: Path, o: Obj, index: number, resource: Resource, scope: Scope, out: DecodedTraces, sharedDeep: string): void {
  const trace = hexId(stringField(p, o, 'traceId', 'trace_id'), 'traceId', 32);
  const span = hexId(stringField(p, o, 'spanId', 'span_id'), 'spanId', 16);
  const parentRaw = stringField(p, o, 'parentSpanId', 'parent_span_id');
  let parentSpanId = '';
  let problem = trace.problem || span.problem;
  if (parentRaw !== '') {
    const parent = hexId(parentRaw, 'parentSpanId', 16);
    // An all-zero parent is how some SDKs spell "no parent".
    if (parent.problem && !parent.problem.endsWith('all zero')) problem ||= parent.problem;
    parentSpanId = parent.id;
  }
  const name = stringField(p, o, 'name', 'name');
  const kind = enumField(p, o, 'kind', 'kind', SPAN_KINDS);
  const startTimeUnixNano = timeField(p, o, 'startTimeUnixNano', 'start_time_unix_nano');
  const endTimeUnixNano = timeField(p, o, 'endTimeUnixNano', 'end_time_unix_nano');
  const attributes = attributesField(p, o, 'attributes', 'attributes');
  const droppedAttributesCount = uint32Field(p, o, 'droppedAttributesCount', 'dropped_attributes_count');

  const rawEvents = arrayField(p, o, 'events', 'events');
  const events: SpanEvent[] = [];
  p.push('events');
  for (let i = 0; i < rawEvents.length; i++) {
    p.push(i);
    const e = objectAt(p, rawEvents[i]);
    events.push({
      timeUnixNano: timeField(p, e, 'timeUnixNano', 'time_unix_nano'),
      name: stringField(p, e, 'name', 'name'),
      attributes: attributesField(p, e, 'attributes', 'attributes'),
      droppedAttributesCount: uint32Field(p, e, 'droppedAttributesCount', 'dropped_attributes_count'),
    });
    p.pop();
  }
  p.pop();
  const droppedEventsCount = uint32Field(p, o, 'droppedEventsCount', 'dropped_events_count');

  const rawLinks = arrayField(p, o, 'links', 'links');
  const links: SpanLink[] = [];
  p.push('links');
  for (let i = 0; i < rawLinks.length; i++) {
    p.push(i);
    const l = objectAt(p, rawLinks[i]);
    const lt = hexId(stringField(p, l, 'traceId', 'trace_id'), 'traceId', 32);
    const ls = hexId(stringField(p, l, 'spanId', 'span_id'), 'spanId', 16);
    if (lt.problem || ls.problem) problem ||= `link ${i} ${lt.problem || ls.problem}`;
    links.push({
      traceId: lt.id,
      spanId: ls.id,
      traceState: stringField(p, l, 'traceState', 'trace_state'),
      attributes: attributesField(p, l, 'attributes', 'attributes'),
      droppedAttributesCount: uint32Field(p, l, 'droppedAttributesCount', 'dropped_attributes_count'),
      flags: uint32Field(p, l, 'flags', 'flags'),
    });
    p.pop();
  }
  p.pop();
  const droppedLinksCount = uint32Field(p, o, 'droppedLinksCount', 'dropped_links_count');

  const status = { code: 0, message: '' };
  const st = field(o, 'status', 'status');
  if (st !== undefined) {
    const so = objectAt(p, st, 'status');
    p.push('status');
    status.code = enumField(p, so, 'code', 'code', STATUS_CODES);
    status.message = stringField(p, so, 'message', 'message');
    p.pop();
  }
  const traceState = stringField(p, o, 'traceState', 'trace_state');
  const flags = uint32Field(p, o, 'flags', 'flags');

  // Ids first (as the protobuf decoder reports them), then nesting: of the span, or shared.
  problem ||= p.deep || sharedDeep;
  p.deep = '';
  if (problem) {
    out.rejected.push({ index, reason: `span ${index}: ${problem}` });
    return;
  }
  out.spans.push({
    traceId: trace.id,
    spanId: span.id,
    parentSpanId,
    traceState,
    flags,
    name,
    kind,
    startTimeUnixNano,
    endTimeUnixNano,
    attributes,
    droppedAttributesCount,
    events,
    droppedEventsCount,
    links,
    droppedLinksCount,
    status,
    resource,
    scope,
  } satisfies Span);
}

function attributesField(p: Path, o: Obj, camel: string, snake: string): KeyValue[] {
  const raw = arrayField(p, o, camel, snake);
  p.push(camel);
  const out = keyValues(p, raw, 1);
  p.pop();
  return out;
}

/** KeyValues whose values are at `depth` (1 for attributes). */
function keyValues(p: Path, raw: unknown[], depth: number): KeyValue[] {
  const out: KeyValue[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    p.push(i);
    const kv = objectAt(p, raw[i]);
    const key = stringField(p, kv, 'key', 'key');
    const v = field(kv, 'value', 'value');
    let value: AnyValue = {};
    if (v !== undefined) {
      p.push('value');
      value = anyValue(p, objectAt(p, v), depth);
      p.pop();
      if (depth === 1 && p.deep === DEEP) p.deep = tooDeepReason(key);
    }
    out[i] = { key, value };
    p.pop();
  }
  return out;
}

/** Marker in Path.deep until the attribute's key is known. */
const DEEP = '\0';

const ANY_VALUE_KEYS: ReadonlyArray<readonly [string, string]> = [
  ['stringValue', 'string_value'],
  ['boolValue', 'bool_value'],
  ['intValue', 'int_value'],
  ['doubleValue', 'double_value'],
  ['arrayValue', 'array_value'],
  ['kvlistValue', 'kvlist_value'],
  ['bytesValue', 'bytes_value'],
];

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/**
 * An AnyValue at `depth` (an attribute's value is at 1; members of an array or kvlist at d are at
 * d + 1). An array or kvlist deeper than MAX_ANY_VALUE_DEPTH is not read: it becomes {} and
 * p.deep is set, so this recursion is at most MAX_ANY_VALUE_DEPTH + 1 calls deep.
 */
function anyValue(p: Path, o: Obj, depth: number): AnyValue {
  let found: string | undefined;
  let raw: unknown;
  for (const [camel, snake] of ANY_VALUE_KEYS) {
    const v = field(o, camel, snake);
    if (v === undefined) continue;
    // A oneof carries one member; two are a malformed value, not something to guess between.
    if (found !== undefined) p.fail(`both ${found} and ${camel} are set`);
    found = camel;
    raw = v;
  }
  switch (found) {
    case undefined:
      return {};
    case 'stringValue':
      if (typeof raw !== 'string') p.fail('expected a string', found);
      return { stringValue: text(raw) };
    case 'boolValue':
      if (typeof raw !== 'boolean') p.fail('expected a boolean', found);
      return { boolValue: raw };
    case 'intValue':
      return { intValue: int64Value(p, raw, found, false) };
    case 'doubleValue':
      return { doubleValue: doubleValue(p, raw, found) };
    case 'arrayValue': {
      if (depth > MAX_ANY_VALUE_DEPTH) {
        p.deep ||= DEEP;
        return {};
      }
      const arr = objectAt(p, raw, found);
      p.push(found);
      const values = arrayField(p, arr, 'values', 'values');
      p.push('values');
      const out: AnyValue[] = new Array(values.length);
      for (let i = 0; i < values.length; i++) {
        p.push(i);
        out[i] = anyValue(p, objectAt(p, values[i]), depth + 1);
        p.pop();
      }
      p.pop();
      p.pop();
      return { arrayValue: { values: out } };
    }
    case 'kvlistValue': {
      if (depth > MAX_ANY_VALUE_DEPTH) {
        p.deep ||= DEEP;
        return {};
      }
      const kvl = objectAt(p, raw, found);
      p.push(found);
      const values = arrayField(p, kvl, 'values', 'values');
      p.push('values');
      const out = keyValues(p, values, depth + 1);
      p.pop();
      p.pop();
      return { kvlistValue: { values: out } };
    }
    default: {
      // bytesValue: standard or URL-safe base64, normalized to standard padded base64.
      if (typeof raw !== 'string' || !(BASE64.test(raw) || BASE64URL.test(raw))) p.fail('expected base64', found);
      return { bytesValue: Buffer.from(raw, 'base64').toString('base64') };
    }
  }
}

/** A double: a JSON number, or a string holding a number or NaN/Infinity/-Infinity as proto3 JSON allows. */
function doubleValue(p: Path, raw: unknown, key: string): number {
  if (typeof raw === 'number') return raw;
  if (typeof raw === 'string') {
    if (raw === 'NaN') return NaN;
    if (raw === 'Infinity') return Infinity;
    if (raw === '-Infinity') return -Infinity;
    const n = Number(raw);
    if (raw.trim() !== '' && !Number.isNaN(n)) return n;
  }
  p.fail('expected a number', key);
}
