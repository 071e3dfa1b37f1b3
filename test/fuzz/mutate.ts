/**
 * Mutators for the decoder fuzzers: raw bytes (bit flips, truncation, duplication, splices, invalid
 * UTF-8), protobuf structure (fields deleted, duplicated, moved, wire types and length prefixes
 * corrupted, varints at their extremes, values nested deep) and JSON structure (values swapped for
 * edge cases, keys renamed, subtrees spliced from other seeds, values nested deep).
 */
import type { Rng } from './rng.js';

/** Invalid UTF-8: a lone continuation byte, overlong forms, surrogates, truncated sequences, bytes never valid. */
const BAD_UTF8: readonly number[][] = [[0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf],
  [0xf0, 0x9f], [0xf0, 0x9f, 0x98], [0xf4, 0x90, 0x80, 0x80], [0xf5], [0xfe], [0xff], [0xe2, 0x82], [0xc3]];

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x22, 0x5b, 0x7b, 0x5d, 0x7d, 0x5c, 0x2c, 0x3a];

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Inputs are kept below this size: bigger ones test allocation, not decoding. */
export const MAX_INPUT = 8 * 1024 * 1024;

/** One to four stacked byte-level mutations. */
export function mutateBytes(rng: Rng, input: Uint8Array, others: readonly Uint8Array[]): Uint8Array {
  let b = input;
  const rounds = 1 + rng.small(3);
  for (let r = 0; r < rounds; r++) b = mutateBytesOnce(rng, b, others);
  return b.length > MAX_INPUT ? b.subarray(0, MAX_INPUT) : b;
}

function mutateBytesOnce(rng: Rng, b: Uint8Array, others: readonly Uint8Array[]): Uint8Array {
  const pos = () => (b.length === 0 ? 0 : rng.int(b.length + 1));
  switch (rng.int(11)) {
    case 0: {
      // Bit flips.
      const out = b.slice();
      const n = 1 + rng.small(8);
      for (let i = 0; i < n && out.length; i++) out[rng.int(out.length)]! ^= 1 << rng.int(8);
      return out;
    }
    case 1: {
      const out = b.slice();
      if (out.length) out[rng.int(out.length)] = rng.pick(INTERESTING_BYTES);
      return out;
    }
    case 2:
      // Truncation, most often near the end.
      return b.subarray(0, rng.chance(0.5) ? Math.max(0, b.length - 1 - rng.small(64)) : pos());
    case 3: {
      const a = pos();
      const len = rng.small(Math.max(1, b.length - a));
      return concat([b.subarray(0, a), b.subarray(a + len)]);
    }
    case 4: {
      // Duplicate a range somewhere.
      const a = pos();
      const len = rng.small(Math.max(1, b.length - a));
      const at = pos();
      return concat([b.subarray(0, at), b.subarray(a, a + len), b.subarray(at)]);
    }
    case 5: {
      const at = pos();
      return concat([b.subarray(0, at), rng.bytes(1 + rng.small(32)), b.subarray(at)]);
    }
    case 6: {
      // Splice: this one's head, another's tail.
      const o = others.length ? rng.pick(others) : b;
      return concat([b.subarray(0, pos()), o.subarray(o.length ? rng.int(o.length) : 0)]);
    }
    case 7: {
      const at = pos();
      return concat([b.subarray(0, at), Uint8Array.from(rng.pick(BAD_UTF8)), b.subarray(at)]);
    }
    case 8: {
      // A varint at its extremes, or longer than 10 bytes.
      const at = pos();
      const v = rng.pick([[0xff, 0xff, 0xff, 0xff, 0x0f], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], [0x80, 0x80, 0x00], [0xff, 0xff, 0xff, 0xff, 0x7f]]);
      return concat([b.subarray(0, at), Uint8Array.from(v), b.subarray(at)]);
    }
    case 9: {
      // Swap two ranges.
      if (b.length < 4) return b;
      const x = rng.int(b.length >> 1);
      const y = (b.length >> 1) + rng.int(b.length >> 1);
      const len = Math.min(1 + rng.small(64), (b.length >> 1) - x, b.length - y);
      const out = b.slice();
      out.set(b.subarray(y, y + len), x);
      out.set(b.subarray(x, x + len), y);
      return out;
    }
    default: {
      // Repeat a short range many times (long runs of the same structure).
      const a = pos();
      const len = 1 + rng.small(8);
      const piece = b.subarray(a, a + len);
      const times = 1 + rng.small(2000);
      const parts: Uint8Array[] = [b.subarray(0, a)];
      for (let i = 0; i < times; i++) parts.push(piece);
      parts.push(b.subarray(a));
      return concat(parts);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Protobuf

/** A protobuf field: a tag and either raw payload bytes or (length-delimited, parsed) children. */
export interface PbField {
  field: number;
  wt: number;
  /** Payload as on the wire (varint bytes, fixed bytes, or length-delimited content). */
  raw: Uint8Array;
  /** Length-delimited content that parses as a message. */
  children?: PbField[];
  /** Written instead of the tag's varint (a corrupted tag). */
  tagBytes?: Uint8Array;
  /** Written instead of the length prefix (a corrupted length). */
  lenBytes?: Uint8Array;
}

export function varintBytes(v: number | bigint): Uint8Array {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  while (x > 0x7fn) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return Uint8Array.from(out);
}

/** Parses a message into fields, or undefined when the bytes are not one (parsing stops at depth `maxDepth`). */
export function parsePb(b: Uint8Array, depth = 0, maxDepth = 12): PbField[] | undefined {
  const out: PbField[] = [];
  let pos = 0;
  const varint = (): number | undefined => {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (pos >= b.length) return undefined;
      const byte = b[pos++]!;
      result += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return result;
    }
    return undefined;
  };
  while (pos < b.length) {
    const tag = varint();
    if (tag === undefined) return undefined;
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    if (field === 0) return undefined;
    const start = pos;
    if (wt === 0) {
      while (pos < b.length && b[pos]! >= 0x80) pos++;
      if (pos >= b.length || pos - start >= 10) return undefined;
      pos++;
      out.push({ field, wt, raw: b.subarray(start, pos) });
    } else if (wt === 1 || wt === 5) {
      pos += wt === 1 ? 8 : 4;
      if (pos > b.length) return undefined;
      out.push({ field, wt, raw: b.subarray(start, pos) });
    } else if (wt === 2) {
      const len = varint();
      if (len === undefined || pos + len > b.length) return undefined;
      const raw = b.subarray(pos, pos + len);
      pos += len;
      const children = depth < maxDepth && len > 0 ? parsePb(raw, depth + 1, maxDepth) : undefined;
      out.push(children ? { field, wt, raw, children } : { field, wt, raw });
    } else return undefined;
  }
  return out;
}

export function serializePb(fields: readonly PbField[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of fields) {
    parts.push(f.tagBytes ?? varintBytes(f.field * 8 + f.wt));
    if (f.wt === 2 || f.lenBytes) {
      const content = f.children ? serializePb(f.children) : f.raw;
      parts.push(f.lenBytes ?? varintBytes(content.length), content);
    } else parts.push(f.raw);
  }
  return concat(parts);
}

interface Located {
  node: PbField;
  /** The list holding node. */
  list: PbField[];
  /** Field numbers from the top. */
  path: number[];
}

function flatten(fields: PbField[], path: number[] = [], out: Located[] = []): Located[] {
  for (const f of fields) {
    const p = [...path, f.field];
    out.push({ node: f, list: fields, path: p });
    if (f.children && out.length < 50_000) flatten(f.children, p, out);
  }
  return out;
}

/**
 * An AnyValue's content holding `levels` nested arrays (or kvlists) around a string, built back to
 * front in one buffer (100,000 levels in milliseconds).
 */
export function nestedAnyValue(levels: number, kind: 'array' | 'kvlist'): Uint8Array {
  const inner = Uint8Array.of(0x0a, 0x01, 0x78); // string_value "x"
  const buf = new Uint8Array(inner.length + levels * 24);
  let start = buf.length - inner.length;
  buf.set(inner, start);
  const end = buf.length;
  const put = (bytes: Uint8Array) => {
    start -= bytes.length;
    buf.set(bytes, start);
  };
  for (let i = 0; i < levels; i++) {
    if (kind === 'array') {
      put(varintBytes(end - start));
      put(Uint8Array.of(0x0a));
      put(varintBytes(end - start));
      put(Uint8Array.of(0x2a));
    } else {
      put(varintBytes(end - start));
      put(Uint8Array.of(0x12));
      put(Uint8Array.of(0x0a, 0x01, 0x6b));
      put(varintBytes(end - start));
      put(Uint8Array.of(0x0a));
      put(varintBytes(end - start));
      put(Uint8Array.of(0x32));
    }
  }
  return buf.subarray(start, end);
}

/** Depths around the decoders' limits and far past them. */
export const DEPTHS = [1, 2, 10, 63, 64, 65, 66, 100, 999, 1000, 1001, 2000, 5000, 100_000] as const;

const VARINTS: ReadonlyArray<number | bigint> = [0, 1, 2, 5, 0x7f, 0x80, 0x3fff, 0x4000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, -1];

/** Where attributes live (path of field numbers from ExportTraceServiceRequest) and their field number. */
const ATTRIBUTE_HOMES: ReadonlyArray<[number[], number]> = [[[1, 1], 1], [[1, 2, 1], 3], [[1, 2, 2], 9], [[1, 2, 2, 11], 3], [[1, 2, 2, 13], 4]];

const samePath = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** One to three structural mutations of an ExportTraceServiceRequest (or any protobuf message). */
export function mutatePb(rng: Rng, input: Uint8Array, others: readonly Uint8Array[]): Uint8Array {
  const fields = parsePb(input);
  if (!fields) return mutateBytes(rng, input, others);
  const rounds = 1 + rng.small(2);
  for (let r = 0; r < rounds; r++) {
    const all = flatten(fields);
    if (all.length === 0) {
      fields.push({ field: 1, wt: 2, raw: new Uint8Array(0) });
      continue;
    }
    const at = rng.pick(all);
    const { node, list } = at;
    switch (rng.int(11)) {
      case 0:
        list.splice(list.indexOf(node), 1);
        break;
      case 1: {
        const times = rng.chance(0.9) ? 1 : 1 + rng.small(1000);
        for (let i = 0; i < times; i++) list.splice(list.indexOf(node) + 1, 0, { ...node });
        break;
      }
      case 2: {
        // Move it elsewhere in its message.
        list.splice(list.indexOf(node), 1);
        list.splice(rng.int(list.length + 1), 0, node);
        break;
      }
      case 3:
        // Another wire type under the same number.
        node.tagBytes = varintBytes(node.field * 8 + rng.int(8));
        break;
      case 4:
        node.tagBytes = varintBytes(rng.pick([0, 1, 2, 15, 16, 17, 99, 2 ** 29 - 1]) * 8 + node.wt);
        break;
      case 5:
        if (node.wt === 0) node.raw = rng.chance(0.8) ? varintBytes(rng.pick(VARINTS)) : Uint8Array.from(rng.pick([[0x80, 0x00], [0x80, 0x80, 0x80, 0x00], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]]));
        else if (node.wt === 1 || node.wt === 5) node.raw = rng.bytes(node.raw.length);
        else node.lenBytes = corruptLength(rng, node);
        break;
      case 6:
        if (node.wt === 2) node.lenBytes = corruptLength(rng, node);
        else node.raw = node.raw.subarray(0, rng.int(node.raw.length));
        break;
      case 7: {
        // New content: invalid UTF-8 in a string, random bytes, nothing, a lot.
        delete node.children;
        node.wt = 2;
        node.raw = rng.pick([
          () => concat([node.raw.subarray(0, rng.int(node.raw.length + 1)), Uint8Array.from(rng.pick(BAD_UTF8)), node.raw.subarray(rng.int(node.raw.length + 1))]),
          () => rng.bytes(rng.small(64)),
          () => new Uint8Array(0),
          () => new Uint8Array(rng.pick([16, 17, 15, 8, 9, 7])).fill(rng.chance(0.5) ? 0 : 0xab),
          () => new Uint8Array(1 + rng.small(1 << 20)).fill(0x61),
        ])();
        break;
      }
      case 8: {
        // An attribute nested deep where attributes live (or as its own value, or anywhere).
        const levels = rng.pick(DEPTHS);
        const value = nestedAnyValue(levels, rng.chance(0.5) ? 'array' : 'kvlist');
        const kv: PbField = { field: 0, wt: 2, raw: new Uint8Array(0), children: [{ field: 1, wt: 2, raw: new TextEncoder().encode(`deep.${levels}`) }, { field: 2, wt: 2, raw: value }] };
        const homes = all.filter((l) => l.node.children && ATTRIBUTE_HOMES.some(([p]) => samePath(p, l.path)));
        if (homes.length && rng.chance(0.85)) {
          const home = rng.pick(homes);
          kv.field = ATTRIBUTE_HOMES.find(([p]) => samePath(p, home.path))![1];
          home.node.children!.splice(rng.int(home.node.children!.length + 1), 0, kv);
        } else {
          delete node.children;
          node.wt = 2;
          node.raw = value;
        }
        break;
      }
      case 9: {
        // Splice a field from another seed into this message (or the top).
        const other = others.length ? parsePb(rng.pick(others)) : undefined;
        const donors = other ? flatten(other) : [];
        if (donors.length) {
          const d = rng.pick(donors).node;
          const into = node.children ?? list;
          into.splice(rng.int(into.length + 1), 0, d);
        }
        break;
      }
      default: {
        // A field of some number (mostly the known ones, 1-16: repeated scalars, merged messages), of some wire type.
        const wt = rng.chance(0.8) ? rng.pick([0, 1, 2, 5]) : rng.pick([3, 4, 6, 7]);
        const raw = wt === 0 ? varintBytes(rng.pick(VARINTS)) : wt === 1 ? rng.bytes(8) : wt === 5 ? rng.bytes(4) : rng.chance(0.5) ? rng.bytes(rng.small(32)) : serializePb(rng.pick(all).node.children ?? []);
        const into = node.children ?? list;
        into.splice(rng.int(into.length + 1), 0, { field: rng.chance(0.8) ? 1 + rng.int(16) : 1000 + rng.int(100), wt, raw });
      }
    }
  }
  const out = serializePb(fields);
  return out.length > MAX_INPUT ? out.subarray(0, MAX_INPUT) : out;
}

function corruptLength(rng: Rng, node: PbField): Uint8Array {
  const len = node.children ? serializePb(node.children).length : node.raw.length;
  return rng.pick([
    () => varintBytes(len + 1),
    () => varintBytes(Math.max(0, len - 1)),
    () => varintBytes(0),
    () => varintBytes(2 ** 32 - 1),
    () => varintBytes(2 ** 32 + len),
    () => varintBytes(2n ** 64n - 1n),
    () => Uint8Array.from([0x80 | (len & 0x7f), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
    () => varintBytes(len + 1 + rng.small(1 << 24)),
  ])();
}

// ---------------------------------------------------------------------------------------------
// JSON

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const DEEP_TOKEN = '@@kc-fuzz-deep-';

/** Strings that decoders treat specially somewhere. */
const STRINGS = ['', ' ', '0', '-0', '1', '-1', '1.5', '1e400', '0x10', 'NaN', 'Infinity', '-Infinity', 'true', 'null',
  '9007199254740993', '9223372036854775807', '9223372036854775808', '-9223372036854775808', '-9223372036854775809', '18446744073709551615', '18446744073709551616',
  '0'.repeat(32), '0'.repeat(16), 'ABCDEF0123456789ABCDEF0123456789', '0123456789abcdef0123456789abcde', 'zz23456789abcdef', '0123456789abcdef',
  'SPAN_KIND_SERVER', 'SPAN_KIND_NOPE', 'STATUS_CODE_ERROR', 'AQID', 'AQID-_', 'AQ=', '====', 'a b', '\u0000', '\ud800', '\udfff\ud800', 'é✓🚀',
  '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'Event', 'EventList', 'audit.k8s.io/v1', 'audit.k8s.io/v1beta1', 'admission.k8s.io/v1', 'AdmissionReview',
  'RequestReceived', 'ResponseComplete', 'Panic', 'CREATE', 'UPDATE', 'DELETE', 'CONNECT', 'secrets', 'status', 'metadata',
  '2026-12-02T16:44:58.487882Z', '2026-12-02T16:44:58Z', '2026-13-45T99:99:99Z', '2026-12-02T16:44:58.1234567890123Z', '2026-12-02 16:44:58',
  'kubectl.kubernetes.io/last-applied-configuration', '{"data":{"k":"dg=="}}', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'objectSetID=abc'];
const NUMBERS = [0, -0, 1, -1, 0.5, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 63, 2 ** 64, 1e21, 1e308, -1e308, 5e-324, -(2 ** 63), 400, 201];
const KEYS = ['resourceSpans', 'resource_spans', 'scopeSpans', 'scope_spans', 'spans', 'traceId', 'trace_id', 'spanId', 'parentSpanId', 'attributes', 'value', 'key',
  'stringValue', 'intValue', 'int_value', 'doubleValue', 'boolValue', 'bytesValue', 'arrayValue', 'kvlistValue', 'kvlist_value', 'values', 'events', 'links', 'status',
  'code', 'kind', 'flags', 'droppedAttributesCount', 'dropped_attributes_count', 'schemaUrl', 'scope', 'resource', 'startTimeUnixNano', 'timeUnixNano',
  'items', 'apiVersion', 'auditID', 'stage', 'verb', 'requestURI', 'level', 'user', 'username', 'objectRef', 'subresource', 'apiGroup', 'requestObject', 'responseObject',
  'responseStatus', 'annotations', 'sourceIPs', 'userAgent', 'impersonatedUser', 'timestamp', 'requestReceivedTimestamp', 'stageTimestamp', 'data', 'stringData',
  'request', 'uid', 'operation', 'subResource', 'dryRun', 'object', 'oldObject', 'ownerReferences', 'controller', 'spec', 'token', '__proto__', 'constructor', ''];

interface Slot {
  parent: Json[] | { [k: string]: Json } | undefined;
  key: string | number;
  value: Json;
}

/** Up to `max` positions in the tree, breadth first (no recursion). */
function slots(root: Json, max: number): Slot[] {
  const out: Slot[] = [{ parent: undefined, key: '', value: root }];
  for (let i = 0; i < out.length && out.length < max; i++) {
    const v = out[i]!.value;
    if (Array.isArray(v)) v.forEach((x, k) => out.push({ parent: v, key: k, value: x }));
    else if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) out.push({ parent: v, key: k, value: v[k]! });
  }
  return out;
}

/** JSON text of a value nested `levels` deep: OTLP AnyValues, or plain objects and arrays. */
function deepText(rng: Rng, levels: number): string {
  switch (rng.int(4)) {
    case 0:
      return '{"arrayValue":{"values":['.repeat(levels) + '{"stringValue":"x"}' + ']}}'.repeat(levels);
    case 1:
      return '{"kvlistValue":{"values":[{"key":"k","value":'.repeat(levels) + '{"intValue":"1"}' + '}]}}'.repeat(levels);
    case 2:
      return '['.repeat(levels) + ']'.repeat(levels);
    default:
      return '{"a":'.repeat(levels) + '{}' + '}'.repeat(levels);
  }
}

function interesting(rng: Rng, donors: readonly Slot[]): Json {
  switch (rng.int(9)) {
    case 0:
      return rng.pick(STRINGS);
    case 1:
      return rng.pick(NUMBERS);
    case 2:
      return rng.pick([null, true, false]);
    case 3:
      return rng.pick<Json>([{}, [], [null], { '': null }]);
    case 4:
      return 'x'.repeat(rng.pick([100, 1000, 65536, 1 << 20]));
    case 5:
      return new Array<number>(rng.pick([100, 10_000, 100_000])).fill(0);
    case 6:
      return donors.length ? structuredClone(rng.pick(donors).value) : null;
    case 7:
      return String.fromCharCode(...Array.from({ length: 1 + rng.small(16) }, () => rng.int(0x10000)));
    default:
      return rng.int(1 << 30) * (rng.chance(0.5) ? -1 : 1);
  }
}

/**
 * One to three structural mutations of a JSON document, serialized; then, sometimes, byte-level
 * mutations of the text (bit flips, truncation, invalid UTF-8).
 */
export function mutateJson(rng: Rng, seed: string, others: readonly string[]): Uint8Array {
  let root = JSON.parse(seed) as Json;
  const deep: string[] = [];
  const donorText = others.length ? rng.pick(others) : seed;
  const donors = donorText.length < 1_000_000 || rng.chance(0.2) ? slots(JSON.parse(donorText) as Json, 20_000) : [];
  const rounds = 1 + rng.small(2);
  for (let r = 0; r < rounds; r++) {
    const all = slots(root, 50_000);
    const s = rng.pick(all);
    const set = (v: Json) => {
      if (s.parent === undefined) root = v;
      else if (Array.isArray(s.parent)) s.parent[s.key as number] = v;
      else Object.defineProperty(s.parent, s.key, { value: v, writable: true, enumerable: true, configurable: true });
    };
    switch (rng.int(10)) {
      case 0:
        set(interesting(rng, donors));
        break;
      case 1: {
        // A counter or enum field on some object (the fields a decoder reads as numbers).
        const objects = all.filter((x) => x.value !== null && typeof x.value === 'object' && !Array.isArray(x.value));
        if (objects.length) {
          const o = rng.pick(objects).value as { [k: string]: Json };
          const key = rng.pick(['droppedAttributesCount', 'dropped_attributes_count', 'droppedEventsCount', 'droppedLinksCount', 'flags', 'kind', 'code', 'index']);
          Object.defineProperty(o, key, { value: rng.chance(0.7) ? rng.small(1000) : rng.pick(NUMBERS), writable: true, enumerable: true, configurable: true });
        }
        break;
      }
      case 2:
        // Remove it.
        if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
        else if (s.parent) delete s.parent[s.key as string];
        break;
      case 3:
        // Duplicate an array element, many times at worst.
        if (Array.isArray(s.parent)) {
          const times = rng.chance(0.9) ? 1 : rng.small(5000);
          const copy = JSON.stringify(s.value);
          for (let i = 0; i < times; i++) s.parent.splice(s.key as number, 0, copy === undefined ? null : (JSON.parse(copy) as Json));
        } else set([s.value]);
        break;
      case 4:
        // The same value under another type: "12" <-> 12, x -> [x], {k: x}.
        set(typeof s.value === 'string' && /^-?\d+(\.\d+)?$/.test(s.value) ? Number(s.value) : typeof s.value === 'number' ? String(s.value) : rng.chance(0.5) ? [s.value] : { [rng.pick(KEYS)]: s.value });
        break;
      case 5:
        // Rename a key, or add one.
        if (s.parent && !Array.isArray(s.parent) && rng.chance(0.5)) {
          const v = s.parent[s.key as string]!;
          delete s.parent[s.key as string];
          const key = rng.chance(0.7) ? rng.pick(KEYS) : rng.chance(0.5) ? 'k'.repeat(rng.pick([100, 65536, 1 << 20])) : rng.pick(STRINGS);
          Object.defineProperty(s.parent, key, { value: v, writable: true, enumerable: true, configurable: true });
        } else if (s.value !== null && typeof s.value === 'object' && !Array.isArray(s.value)) {
          Object.defineProperty(s.value, rng.pick(KEYS), { value: interesting(rng, donors), writable: true, enumerable: true, configurable: true });
        }
        break;
      case 6: {
        // Nested deep (written into the text after serializing: JSON.stringify would overflow).
        deep.push(deepText(rng, rng.pick(DEPTHS)));
        set(`${DEEP_TOKEN}${deep.length - 1}@@`);
        break;
      }
      case 7:
        // A subtree of another seed here (a copy: sharing could close a cycle in a later round).
        if (donors.length) set(structuredClone(rng.pick(donors).value));
        break;
      case 8:
        set(interesting(rng, donors));
        break;
      default:
        if (typeof s.value === 'string' && s.value.length > 0) {
          const i = rng.int(s.value.length);
          set(s.value.slice(0, i) + rng.pick(STRINGS) + s.value.slice(i + rng.small(4)));
        } else set(interesting(rng, donors));
    }
  }
  let text = JSON.stringify(root) ?? 'null';
  for (let i = 0; i < deep.length; i++) text = text.split(`"${DEEP_TOKEN}${i}@@"`).join(deep[i]!);
  let bytes: Uint8Array = Buffer.from(text, 'utf8');
  if (rng.chance(0.2)) bytes = mutateBytes(rng, bytes, []);
  return bytes.length > MAX_INPUT ? bytes.subarray(0, MAX_INPUT) : bytes;
}
