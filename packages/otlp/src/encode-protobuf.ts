/**
 * Protobuf encoders: ExportTraceServiceRequest (the inverse of decodeTraceRequest),
 * ExportTraceServiceResponse and google.rpc.Status. Field numbers are listed in decode-protobuf.ts.
 *
 * Encoding is two passes over the same code: the first measures every length-delimited message
 * (recording the sizes in pre-order), the second writes into one exactly sized buffer. This keeps
 * length prefixes minimal without copying nested messages around.
 */
import type { AnyValue, KeyValue, Resource, Scope, Span, SpanEvent, SpanLink } from './model.js';

const HEX_NIBBLE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX_NIBBLE[48 + i] = i;
for (let i = 0; i < 6; i++) HEX_NIBBLE[97 + i] = HEX_NIBBLE[65 + i] = 10 + i;

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

function varint64Size(lo: number, hi: number): number {
  if (hi === 0) return varintSize(lo);
  let n = 5;
  for (let h = hi >>> 3; h !== 0; h >>>= 7) n++;
  return n;
}

/** UTF-8 length; equal to s.length exactly when s is ASCII. */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  }
  return s.length;
}

/** Above this many UTF-16 units a string is measured and copied by Node's native code rather than a loop here. */
const LONG_STRING = 256;

// Scratch results of parseUint64/parseInt64, to avoid allocating a pair per number.
let LO = 0;
let HI = 0;

/**
 * Parses a decimal uint64 into LO/HI without BigInt: value = a*1e9 + b with b the last nine
 * digits, and a*1e9 = a*1953125*2^9 split so every intermediate stays below 2^53.
 */
function parseUint64(s: string): boolean {
  const n = s.length;
  if (n === 0 || n > 20) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  if (n <= 15) {
    const v = Number(s);
    LO = v >>> 0;
    HI = (v / 4294967296) >>> 0;
    return true;
  }
  const a = Number(s.slice(0, n - 9));
  const b = Number(s.slice(n - 9));
  const aH = Math.floor(a / 65536);
  const aL = a - aH * 65536;
  const x = aH * 1953125; // times 2^25 to get aH*65536*1e9
  const xh = Math.floor(x / 128);
  const xl = x - xh * 128;
  const low = xl * 33554432 + aL * 1953125 * 512 + b;
  const carry = Math.floor(low / 4294967296);
  const hi = xh + carry;
  if (hi > 0xffffffff) return false;
  LO = (low - carry * 4294967296) >>> 0;
  HI = hi >>> 0;
  return true;
}

/** Parses a decimal int64 into two's-complement LO/HI. */
function parseInt64(s: string): boolean {
  const neg = s.charCodeAt(0) === 45; // '-'
  if (!parseUint64(neg ? s.slice(1) : s)) return false;
  if (!neg) return HI < 0x80000000;
  if (HI > 0x80000000 || (HI === 0x80000000 && LO !== 0)) return false;
  LO = (~LO + 1) >>> 0;
  HI = (~HI + (LO === 0 ? 1 : 0)) >>> 0;
  return true;
}

/** A JS integer as int64 LO/HI (exact below 2^53, and for any integral double in int64 range). */
function numberToInt64(v: number): void {
  const abs = Math.abs(v);
  let lo = abs >>> 0;
  let hi = Math.floor(abs / 4294967296) >>> 0;
  if (v < 0) {
    lo = (~lo + 1) >>> 0;
    hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
  }
  LO = lo;
  HI = hi;
}

class Writer {
  measuring = true;
  pos = 0;
  buf = new Uint8Array(0);
  private text = Buffer.alloc(0);
  private view = new DataView(this.buf.buffer);
  /** Content sizes of length-delimited messages, in the order they are begun. */
  private sizes: number[] = [];
  /** Open messages while measuring: pairs of (sizes index, content start). */
  private open: number[] = [];
  private next = 0;

  /** Switches from measuring to writing into a buffer of the measured size. */
  allocate(): void {
    this.buf = new Uint8Array(this.pos);
    this.text = Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.measuring = false;
    this.pos = 0;
    this.next = 0;
  }

  begin(): void {
    if (this.measuring) {
      this.open.push(this.sizes.length, this.pos);
      this.sizes.push(0);
    } else this.varint(this.sizes[this.next++]!);
  }

  end(): void {
    if (!this.measuring) return;
    const start = this.open.pop()!;
    const index = this.open.pop()!;
    const len = this.pos - start;
    this.sizes[index] = len;
    this.pos += varintSize(len);
  }

  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  /** uint32 varint. */
  varint(v: number): void {
    if (this.measuring) {
      this.pos += varintSize(v);
      return;
    }
    const buf = this.buf;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  varint64(lo: number, hi: number): void {
    if (this.measuring) {
      this.pos += varint64Size(lo, hi);
      return;
    }
    const buf = this.buf;
    while (hi !== 0 || lo > 0x7f) {
      buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[this.pos++] = lo;
  }

  fixed32(v: number): void {
    if (!this.measuring) this.view.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
  }

  fixed64(lo: number, hi: number): void {
    if (!this.measuring) {
      this.view.setUint32(this.pos, lo, true);
      this.view.setUint32(this.pos + 4, hi, true);
    }
    this.pos += 8;
  }

  double(v: number): void {
    if (!this.measuring) this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  string(s: string): void {
    // Long strings (an audit event's JSON in the correlator's audit spans): Node's native length and copy.
    const long = s.length > LONG_STRING;
    const n = long ? Buffer.byteLength(s, 'utf8') : utf8Length(s);
    this.varint(n);
    if (!this.measuring) {
      if (long) this.text.write(s, this.pos, n, 'utf8');
      else if (n === s.length) {
        const buf = this.buf;
        for (let i = 0, p = this.pos; i < n; i++, p++) buf[p] = s.charCodeAt(i);
      } else this.text.write(s, this.pos, n, 'utf8');
    }
    this.pos += n;
  }

  bytes(b: Uint8Array): void {
    this.varint(b.length);
    if (!this.measuring) this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Writes a hex id as bytes; `what` names it in the error for a malformed id. */
  hexBytes(h: string, what: string): void {
    const n = h.length;
    if (n % 2 !== 0) throw new Error(`${what}: ${JSON.stringify(h)} is not an even number of hex digits`);
    this.varint(n / 2);
    if (this.measuring) {
      for (let i = 0; i < n; i++) {
        const c = h.charCodeAt(i);
        if (c >= 128 || HEX_NIBBLE[c]! < 0) throw new Error(`${what}: ${JSON.stringify(h)} is not hex`);
      }
    } else {
      const buf = this.buf;
      for (let i = 0, p = this.pos; i < n; i += 2, p++) {
        buf[p] = (HEX_NIBBLE[h.charCodeAt(i)]! << 4) | HEX_NIBBLE[h.charCodeAt(i + 1)]!;
      }
    }
    this.pos += n / 2;
  }
}

function writeFixed64String(w: Writer, field: number, s: string, what: string): void {
  if (s === '0' || s === '') return;
  if (!parseUint64(s)) throw new Error(`${what}: ${JSON.stringify(s)} is not a decimal uint64`);
  w.tag(field, 1);
  w.fixed64(LO, HI);
}

function writeAttributes(w: Writer, field: number, attributes: readonly KeyValue[]): void {
  for (const kv of attributes) {
    w.tag(field, 2);
    w.begin();
    writeKeyValue(w, kv);
    w.end();
  }
}

function writeKeyValue(w: Writer, kv: KeyValue): void {
  if (kv.key) {
    w.tag(1, 2);
    w.string(kv.key);
  }
  w.tag(2, 2);
  w.begin();
  writeAnyValue(w, kv.value);
  w.end();
}

function writeAnyValue(w: Writer, value: AnyValue): void {
  const v = value as Record<string, unknown>;
  if (typeof v.stringValue === 'string') {
    w.tag(1, 2);
    w.string(v.stringValue);
  } else if (typeof v.boolValue === 'boolean') {
    w.tag(2, 0);
    w.varint(v.boolValue ? 1 : 0);
  } else if (v.intValue !== undefined) {
    const s = String(v.intValue);
    if (!parseInt64(s)) throw new Error(`intValue: ${JSON.stringify(s)} is not a decimal int64`);
    w.tag(3, 0);
    w.varint64(LO, HI);
  } else if (typeof v.doubleValue === 'number') {
    w.tag(4, 1);
    w.double(v.doubleValue);
  } else if (v.arrayValue !== undefined) {
    w.tag(5, 2);
    w.begin();
    for (const item of (v.arrayValue as { values: AnyValue[] }).values) {
      w.tag(1, 2);
      w.begin();
      writeAnyValue(w, item);
      w.end();
    }
    w.end();
  } else if (v.kvlistValue !== undefined) {
    w.tag(6, 2);
    w.begin();
    writeAttributes(w, 1, (v.kvlistValue as { values: KeyValue[] }).values);
    w.end();
  } else if (typeof v.bytesValue === 'string') {
    w.tag(7, 2);
    w.bytes(Buffer.from(v.bytesValue, 'base64'));
  }
  // Else an empty AnyValue: nothing to write.
}

function writeResource(w: Writer, resource: Resource): void {
  writeAttributes(w, 1, resource.attributes);
  if (resource.droppedAttributesCount) {
    w.tag(2, 0);
    w.varint(resource.droppedAttributesCount);
  }
}

function writeScope(w: Writer, scope: Scope): void {
  if (scope.name) {
    w.tag(1, 2);
    w.string(scope.name);
  }
  if (scope.version) {
    w.tag(2, 2);
    w.string(scope.version);
  }
  writeAttributes(w, 3, scope.attributes);
  if (scope.droppedAttributesCount) {
    w.tag(4, 0);
    w.varint(scope.droppedAttributesCount);
  }
}

function writeEvent(w: Writer, e: SpanEvent): void {
  writeFixed64String(w, 1, e.timeUnixNano, 'event timeUnixNano');
  if (e.name) {
    w.tag(2, 2);
    w.string(e.name);
  }
  writeAttributes(w, 3, e.attributes);
  if (e.droppedAttributesCount) {
    w.tag(4, 0);
    w.varint(e.droppedAttributesCount);
  }
}

function writeLink(w: Writer, l: SpanLink): void {
  w.tag(1, 2);
  w.hexBytes(l.traceId, 'link traceId');
  w.tag(2, 2);
  w.hexBytes(l.spanId, 'link spanId');
  if (l.traceState) {
    w.tag(3, 2);
    w.string(l.traceState);
  }
  writeAttributes(w, 4, l.attributes);
  if (l.droppedAttributesCount) {
    w.tag(5, 0);
    w.varint(l.droppedAttributesCount);
  }
  if (l.flags) {
    w.tag(6, 5);
    w.fixed32(l.flags);
  }
}

function writeSpan(w: Writer, s: Span): void {
  w.tag(1, 2);
  w.hexBytes(s.traceId, 'traceId');
  w.tag(2, 2);
  w.hexBytes(s.spanId, 'spanId');
  if (s.traceState) {
    w.tag(3, 2);
    w.string(s.traceState);
  }
  if (s.parentSpanId) {
    w.tag(4, 2);
    w.hexBytes(s.parentSpanId, 'parentSpanId');
  }
  if (s.name) {
    w.tag(5, 2);
    w.string(s.name);
  }
  if (s.kind) {
    w.tag(6, 0);
    // An enum is an int32: negative values take the ten-byte sign-extended form.
    w.varint64(s.kind >>> 0, s.kind < 0 ? 0xffffffff : 0);
  }
  writeFixed64String(w, 7, s.startTimeUnixNano, 'startTimeUnixNano');
  writeFixed64String(w, 8, s.endTimeUnixNano, 'endTimeUnixNano');
  writeAttributes(w, 9, s.attributes);
  if (s.droppedAttributesCount) {
    w.tag(10, 0);
    w.varint(s.droppedAttributesCount);
  }
  for (const e of s.events) {
    w.tag(11, 2);
    w.begin();
    writeEvent(w, e);
    w.end();
  }
  if (s.droppedEventsCount) {
    w.tag(12, 0);
    w.varint(s.droppedEventsCount);
  }
  for (const l of s.links) {
    w.tag(13, 2);
    w.begin();
    writeLink(w, l);
    w.end();
  }
  if (s.droppedLinksCount) {
    w.tag(14, 0);
    w.varint(s.droppedLinksCount);
  }
  if (s.status.code || s.status.message) {
    w.tag(15, 2);
    w.begin();
    if (s.status.message) {
      w.tag(2, 2);
      w.string(s.status.message);
    }
    if (s.status.code) {
      w.tag(3, 0);
      w.varint64(s.status.code >>> 0, s.status.code < 0 ? 0xffffffff : 0);
    }
    w.end();
  }
  if (s.flags) {
    w.tag(16, 5);
    w.fixed32(s.flags);
  }
}

function writeRequest(w: Writer, groups: Map<Resource, Map<Scope, Span[]>>): void {
  for (const [resource, scopes] of groups) {
    w.tag(1, 2);
    w.begin();
    w.tag(1, 2);
    w.begin();
    writeResource(w, resource);
    w.end();
    for (const [scope, spans] of scopes) {
      w.tag(2, 2);
      w.begin();
      w.tag(1, 2);
      w.begin();
      writeScope(w, scope);
      w.end();
      for (const span of spans) {
        w.tag(2, 2);
        w.begin();
        writeSpan(w, span);
        w.end();
      }
      if (scope.schemaUrl) {
        w.tag(3, 2);
        w.string(scope.schemaUrl);
      }
      w.end();
    }
    if (resource.schemaUrl) {
      w.tag(3, 2);
      w.string(resource.schemaUrl);
    }
    w.end();
  }
}

/**
 * Encodes spans as one ExportTraceServiceRequest. Spans sharing a Resource (or Scope) object are
 * grouped under it in first-seen order, so decodeTraceRequest(encodeTraceRequest(spans)) gives the
 * spans back in order. Throws an Error for a span whose ids or numbers are not in the model's form.
 */
export function encodeTraceRequest(spans: readonly Span[]): Uint8Array {
  const groups = new Map<Resource, Map<Scope, Span[]>>();
  for (const span of spans) {
    let scopes = groups.get(span.resource);
    if (!scopes) groups.set(span.resource, (scopes = new Map()));
    let list = scopes.get(span.scope);
    if (!list) scopes.set(span.scope, (list = []));
    list.push(span);
  }
  const w = new Writer();
  writeRequest(w, groups);
  w.allocate();
  writeRequest(w, groups);
  return w.buf;
}

/**
 * Encodes KeyValues as repeated field `field` (attributes are 9 in a Span): bytes that, appended to
 * a message's, add these attributes after its own.
 */
export function encodeKeyValueFields(field: number, attributes: readonly KeyValue[]): Uint8Array {
  const w = new Writer();
  writeAttributes(w, field, attributes);
  w.allocate();
  writeAttributes(w, field, attributes);
  return w.buf;
}

/**
 * Encodes an ExportTraceServiceResponse. With no argument the response is empty (full success);
 * with one, partial_success carries how many spans were rejected and why.
 */
export function encodeTraceResponse(partial?: { rejectedSpans: number; errorMessage: string }): Uint8Array {
  const w = new Writer();
  const write = (): void => {
    if (!partial) return;
    w.tag(1, 2);
    w.begin();
    if (partial.rejectedSpans) {
      numberToInt64(partial.rejectedSpans);
      w.tag(1, 0);
      w.varint64(LO, HI);
    }
    if (partial.errorMessage) {
      w.tag(2, 2);
      w.string(partial.errorMessage);
    }
    w.end();
  };
  write();
  w.allocate();
  write();
  return w.buf;
}

/** Encodes a google.rpc.Status (code=1 int32, message=2), the body of OTLP/HTTP error responses. */
export function encodeRpcStatus(code: number, message: string): Uint8Array {
  const w = new Writer();
  const write = (): void => {
    if (code) {
      w.tag(1, 0);
      w.varint64(code >>> 0, code < 0 ? 0xffffffff : 0);
    }
    if (message) {
      w.tag(2, 2);
      w.string(message);
    }
  };
  write();
  w.allocate();
  write();
  return w.buf;
}
