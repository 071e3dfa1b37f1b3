/**
 * Splits ExportTraceServiceRequest bytes into one request per trace without decoding the spans:
 * each span's bytes, and the bytes of its ResourceSpans' and ScopeSpans' other fields (resource,
 * scope, schema urls, unknown fields), are copied as they came. What the collector's Kafka exporter
 * writes (one message per trace per request, key = trace id) is then a copy of what kube-apiserver
 * sent, at the cost of a scan and a memcpy instead of a re-encode of the decoded spans.
 *
 * Per trace, the output holds one ResourceSpans per input ResourceSpans that has spans of the trace,
 * and within it one ScopeSpans per input ScopeSpans that has any, in input order; the other fields
 * of a ResourceSpans / ScopeSpans are written before its children (field order carries no meaning
 * in protobuf). A span without a 16-byte trace_id goes under the key '' (callers that need valid
 * ids decode first: decodeTraceRequest rejects such spans).
 */
import { OtlpDecodeError } from './model.js';
import { Reader, varint32, lengthEnd, skipField, hex, wrongWireType } from './decode-protobuf.js';

export interface TraceRequest {
  /** 32 lowercase hex digits, as Span.traceId. */
  traceId: string;
  /** ExportTraceServiceRequest bytes holding only this trace's spans. */
  request: Uint8Array;
}

/** [start, end) byte ranges of a message's fields other than its repeated child. */
type Ranges = number[];

interface ScopeGroup { header: Ranges; spans: number[] /* start, end pairs of span bodies */ }
interface ResourceGroup { header: Ranges; scopes: Map<number, ScopeGroup> }

const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

function rangesLength(r: Ranges): number {
  let n = 0;
  for (let i = 0; i < r.length; i += 2) n += r[i + 1]! - r[i]!;
  return n;
}

/** Reads the trace_id of the span body [start, end): hex, or '' when absent or not 16 bytes. */
function spanTraceId(r: Reader, start: number, end: number): string {
  r.pos = start;
  let id = '';
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    if (tag >>> 3 === 1) {
      if ((tag & 7) !== 2) wrongWireType('Span.trace_id (1)', tag & 7, 2, tagAt);
      const e = lengthEnd(r, end);
      id = e - r.pos === 16 ? hex(r.buf, r.pos, 16) : '';
      r.pos = e;
    } else skipField(r, end, tag >>> 3, tag & 7, tagAt);
  }
  return id;
}

/** Walks a message [start, end): ranges of every field but `child` go to `header`; `onChild` gets each child's body. */
function walk(r: Reader, start: number, end: number, child: number, what: string, header: Ranges, onChild: (bodyStart: number, bodyEnd: number) => void): void {
  r.pos = start;
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = varint32(r, end);
    if (tag >>> 3 === child) {
      if ((tag & 7) !== 2) wrongWireType(what, tag & 7, 2, tagAt);
      const e = lengthEnd(r, end);
      const bodyStart = r.pos;
      onChild(bodyStart, e);
      r.pos = e;
    } else {
      skipField(r, end, tag >>> 3, tag & 7, tagAt);
      header.push(tagAt, r.pos);
    }
  }
}

/** Splits a request into per-trace requests, in the order traces first appear. Throws OtlpDecodeError on malformed bytes. */
export function splitTraceRequest(bytes: Uint8Array): TraceRequest[] {
  const r = new Reader(bytes);
  // trace id -> resource index -> scope index -> span ranges
  const traces = new Map<string, Map<number, ResourceGroup>>();
  const rsHeaders: Ranges[] = [];
  const ssHeaders: Ranges[] = [];
  const top: Ranges = [];
  walk(r, 0, bytes.length, 1, 'ExportTraceServiceRequest.resource_spans (1)', top, (rsStart, rsEnd) => {
    const rsIndex = rsHeaders.length;
    const rsHeader: Ranges = [];
    rsHeaders.push(rsHeader);
    walk(r, rsStart, rsEnd, 2, 'ResourceSpans.scope_spans (2)', rsHeader, (ssStart, ssEnd) => {
      const ssIndex = ssHeaders.length;
      const ssHeader: Ranges = [];
      ssHeaders.push(ssHeader);
      walk(r, ssStart, ssEnd, 2, 'ScopeSpans.spans (2)', ssHeader, (spStart, spEnd) => {
        const traceId = spanTraceId(r, spStart, spEnd);
        let byResource = traces.get(traceId);
        if (!byResource) traces.set(traceId, (byResource = new Map()));
        let rg = byResource.get(rsIndex);
        if (!rg) byResource.set(rsIndex, (rg = { header: rsHeader, scopes: new Map() }));
        let sg = rg.scopes.get(ssIndex);
        if (!sg) rg.scopes.set(ssIndex, (sg = { header: ssHeader, spans: [] }));
        sg.spans.push(spStart, spEnd);
      });
    });
  });
  // `top` holds unknown top-level fields: nothing to attach them to per trace; dropped, as
  // decodeTraceRequest ignores them.

  const out: TraceRequest[] = [];
  for (const [traceId, byResource] of traces) {
    // Sizes first (bodies of ResourceSpans and ScopeSpans), then one allocation and copies.
    let total = 0;
    const rsSizes: number[] = [];
    const ssSizes: number[] = [];
    for (const rg of byResource.values()) {
      let rsBody = rangesLength(rg.header);
      for (const sg of rg.scopes.values()) {
        let ssBody = rangesLength(sg.header);
        for (let i = 0; i < sg.spans.length; i += 2) {
          const len = sg.spans[i + 1]! - sg.spans[i]!;
          ssBody += 1 + varintSize(len) + len;
        }
        ssSizes.push(ssBody);
        rsBody += 1 + varintSize(ssBody) + ssBody;
      }
      rsSizes.push(rsBody);
      total += 1 + varintSize(rsBody) + rsBody;
    }
    const buf = Buffer.allocUnsafe(total);
    let pos = 0;
    const putLen = (tag: number, len: number) => {
      buf[pos++] = tag;
      while (len >= 0x80) {
        buf[pos++] = (len & 0x7f) | 0x80;
        len >>>= 7;
      }
      buf[pos++] = len;
    };
    const copy = (ranges: Ranges) => {
      for (let i = 0; i < ranges.length; i += 2) {
        buf.set(bytes.subarray(ranges[i]!, ranges[i + 1]!), pos);
        pos += ranges[i + 1]! - ranges[i]!;
      }
    };
    let rsi = 0;
    let ssi = 0;
    for (const rg of byResource.values()) {
      putLen(0x0a, rsSizes[rsi++]!); // ExportTraceServiceRequest.resource_spans = 1
      copy(rg.header);
      for (const sg of rg.scopes.values()) {
        putLen(0x12, ssSizes[ssi++]!); // ResourceSpans.scope_spans = 2
        copy(sg.header);
        for (let i = 0; i < sg.spans.length; i += 2) {
          const start = sg.spans[i]!;
          const end = sg.spans[i + 1]!;
          putLen(0x12, end - start); // ScopeSpans.spans = 2
          buf.set(bytes.subarray(start, end), pos);
          pos += end - start;
        }
      }
    }
    if (pos !== total) throw new OtlpDecodeError(`splitTraceRequest: wrote ${pos} bytes, planned ${total}`);
    out.push({ traceId, request: buf });
  }
  return out;
}
