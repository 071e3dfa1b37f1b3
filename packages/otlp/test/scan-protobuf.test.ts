import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  attrString, decodeTraceRequest, detachRawSpans, encodeKeyValueFields, encodeTraceRequest, OtlpDecodeError, scanTraceRequest, spliceTraceRequest, splitTraceRequest,
  type KeyValue, type RawSpan, type Span,
} from '../src/index.js';
import { cat, f64, hexField, keyValue, ld, nestedAnyValue, str, unknownFields, vi } from './pb.js';

/** ../shared/data beside the repository (from packages/otlp/dist/test/), or $KC_SHARED_DATA. */
const DATA_DIR = process.env['KC_SHARED_DATA'] ?? fileURLToPath(new URL('../../../../../shared/data/', import.meta.url));

/** Every request of every real recording (captures/<version>/otlp.bin: 4-byte big-endian length, then the request). */
function recordedRequests(): Uint8Array[] {
  const dir = join(DATA_DIR, 'captures');
  if (!existsSync(dir)) throw new Error(`${dir} is missing (set KC_SHARED_DATA to the directory holding captures/)`);
  const out: Uint8Array[] = [];
  for (const d of readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
    const bin = readFileSync(join(dir, d, 'otlp.bin'));
    for (let i = 0; i < bin.length;) {
      const n = bin.readUInt32BE(i);
      out.push(bin.subarray(i + 4, i + 4 + n));
      i += 4 + n;
    }
  }
  return out;
}

/** What a RawSpan says, computed from the decoded span. */
function expectedRaw(s: Span): Omit<RawSpan, 'buf' | 'start' | 'end' | 'scope'> & { scopeName: string } {
  return {
    traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId, name: s.name, kind: s.kind,
    auditId: attrString(s.attributes, 'audit-id'),
    attributeCount: s.attributes.length, eventCount: s.events.length, linkCount: s.links.length,
    scopeName: s.scope.name,
  };
}

function rawFields(r: RawSpan): ReturnType<typeof expectedRaw> {
  return {
    traceId: r.traceId, spanId: r.spanId, parentSpanId: r.parentSpanId, name: r.name, kind: r.kind, auditId: r.auditId,
    attributeCount: r.attributeCount, eventCount: r.eventCount, linkCount: r.linkCount, scopeName: r.scope.name,
  };
}

/** The scanner agrees with the decoder on `bytes`: same error, same rejections, same fields, and each span's bytes decode to the span. */
function agree(bytes: Uint8Array, what: string): RawSpan[] {
  let decoded: ReturnType<typeof decodeTraceRequest> | Error;
  let scanned: ReturnType<typeof scanTraceRequest> | Error;
  try { decoded = decodeTraceRequest(bytes); } catch (err) { decoded = err as Error; }
  try { scanned = scanTraceRequest(bytes); } catch (err) { scanned = err as Error; }
  if (decoded instanceof Error || scanned instanceof Error) {
    assert.ok(decoded instanceof OtlpDecodeError, `${what}: decoder: ${String(decoded)}`);
    assert.ok(scanned instanceof OtlpDecodeError, `${what}: scanner: ${String(scanned)}`);
    assert.is((scanned as Error).message, (decoded as Error).message, what);
    return [];
  }
  assert.equal(scanned.rejected, decoded.rejected, `${what}: rejected`);
  assert.equal(scanned.spans.map(rawFields), decoded.spans.map(expectedRaw), `${what}: fields`);
  for (let i = 0; i < scanned.spans.length; i++) {
    const again = decodeTraceRequest(spliceTraceRequest([scanned.spans[i]!]));
    assert.equal(again.spans, [decoded.spans[i]!], `${what}: span ${i} spliced alone`);
  }
  return scanned.spans;
}

const key = (s: Span): string => `${s.traceId}/${s.spanId}`;
const sortSpans = (spans: Span[]): Span[] => [...spans].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));

test('the real recordings: every span as the decoder gives it, whole requests and split per trace', () => {
  const requests = recordedRequests();
  assert.ok(requests.length > 10, `${requests.length} recorded requests`);
  let spans = 0;
  for (const [i, req] of requests.entries()) {
    spans += agree(req, `request ${i}`).length;
    for (const part of splitTraceRequest(req)) agree(part.request, `request ${i} trace ${part.traceId}`);
    // All spans of the request spliced together: the same spans (grouped by resource and scope).
    const scanned = scanTraceRequest(req).spans;
    assert.equal(sortSpans(decodeTraceRequest(spliceTraceRequest(scanned)).spans), sortSpans(decodeTraceRequest(req).spans), `request ${i} spliced`);
  }
  assert.ok(spans > 1000, `${spans} spans`);
});

const T = '0af7651916cd43dd8448eb211c80319c';
const S = 'b7ad6b7169203331';
const P = '00f067aa0ba902b7';
const resource = ld(1, keyValue(1, 'service.name', str(1, 'apiserver')), vi(2, 3));
const scope = ld(1, str(1, 'k8s.io/apiserver'), str(2, '1.0'));
const span = (...fields: Uint8Array[]): Uint8Array => ld(2, hexField(1, T), hexField(2, S), ...fields);
const request = (...spans: Uint8Array[]): Uint8Array => ld(1, resource, ld(2, scope, ...spans));

test('audit-id: the first audit-id attribute, when its value (merged as proto3 merges) is a string', () => {
  const cases: Array<[string, Uint8Array[]]> = [
    ['plain', [keyValue(9, 'audit-id', str(1, 'a1'))]],
    ['first wins', [keyValue(9, 'audit-id', str(1, 'a1')), keyValue(9, 'audit-id', str(1, 'a2'))]],
    ['first is an int', [keyValue(9, 'audit-id', vi(3, 7)), keyValue(9, 'audit-id', str(1, 'a2'))]],
    ['string then int in one value', [keyValue(9, 'audit-id', cat(str(1, 'a1'), vi(3, 7)))]],
    ['int then string in two values', [ld(9, str(1, 'audit-id'), ld(2, vi(3, 7)), ld(2, str(1, 'a3')))]],
    ['string then an empty value', [ld(9, str(1, 'audit-id'), ld(2, str(1, 'a4')), ld(2))]],
    ['string then an unknown field', [ld(9, str(1, 'audit-id'), ld(2, str(1, 'a5'), vi(9, 1)))]],
    ['key given twice, last wins', [ld(9, str(1, 'audit-id'), str(1, 'other'), ld(2, str(1, 'a6'))), keyValue(9, 'audit-id', str(1, 'a7'))]],
    ['key after the value', [ld(9, ld(2, str(1, 'a8')), str(1, 'audit-id'))]],
    ['empty string', [keyValue(9, 'audit-id', str(1, ''))]],
    ['no key', [ld(9, ld(2, str(1, 'a9')))]],
    ['audit-ids with a prefix', [keyValue(9, 'audit-idx', str(1, 'a10')), keyValue(9, 'audit-i', str(1, 'a10'))]],
    ['an array', [keyValue(9, 'audit-id', ld(5, ld(1, str(1, 'a11'))))]],
    ['a string nested in a kvlist', [keyValue(9, 'x', ld(6, keyValue(1, 'audit-id', str(1, 'a12'))))]],
    ['non-ASCII', [keyValue(9, 'audit-id', str(1, 'é✓'))]],
  ];
  const seen = new Set<string | undefined>();
  for (const [name, attrs] of cases) {
    const [r] = agree(request(span(...attrs)), name);
    seen.add(r!.auditId);
  }
  assert.ok(seen.has(undefined) && seen.has('a1') && seen.has('a3') && seen.has('') && seen.has('a7'), [...seen].join(','));
});

test('refusals and rejections: the same as the decoder, message for message', () => {
  const cases: Array<[string, Uint8Array]> = [
    ['empty', new Uint8Array()],
    ['unknown fields everywhere', cat(unknownFields(), ld(1, unknownFields(), resource, ld(2, unknownFields(), scope, span(unknownFields(), keyValue(9, 'k', cat(str(1, 'v'), unknownFields()))))))],
    ['truncated', request(span()).subarray(0, 20)],
    ['wrong wire type of a name', request(span(vi(5, 1)))],
    ['wrong wire type of a link flag', request(span(ld(13, hexField(1, T), hexField(2, S), vi(6, 1))))],
    ['truncated start time', request(ld(2, hexField(1, T), hexField(2, S), new Uint8Array([0x39, 1, 2])))],
    ['truncated double', request(span(keyValue(9, 'd', new Uint8Array([0x21, 1]))))],
    ['a group', request(span(new Uint8Array([0x1b])))],
    ['field 0', request(span(new Uint8Array([0x00, 0x00])))],
    ['a 6-byte length', request(span(new Uint8Array([0x4a, 0x80, 0x80, 0x80, 0x80, 0x10])))],
    ['short trace id', ld(1, ld(2, ld(2, hexField(1, 'abcd'), hexField(2, S))))],
    ['zero span id', ld(1, ld(2, ld(2, hexField(1, T), hexField(2, '0000000000000000'))))],
    ['no ids', ld(1, ld(2, ld(2)))],
    ['parent of 4 bytes', request(span(hexField(4, 'abcdabcd')))],
    ['zero parent', request(span(hexField(4, '0000000000000000')))],
    ['parent', request(span(hexField(4, P)))],
    ['bad link', request(span(ld(13, hexField(1, T))), span(ld(13, hexField(1, T), hexField(2, S)), ld(13, hexField(1, T), hexField(2, '00'))))],
    ['deep span attribute', request(span(), span(keyValue(9, 'deep', nestedAnyValue(70, 'array', str(1, 'x')))), span())],
    ['deep kvlist in an event', request(span(ld(11, f64(1, 5n), keyValue(3, 'deep', nestedAnyValue(70, 'kvlist', str(1, 'x'))))))],
    ['just deep enough', request(span(keyValue(9, 'd', nestedAnyValue(64, 'array', str(1, 'x')))))],
    ['deep resource', cat(ld(1, ld(1, keyValue(1, 'r', nestedAnyValue(70, 'kvlist', str(1, 'x')))), ld(2, scope, span(), ld(2, hexField(1, 'ab')))), request(span()))],
    ['deep scope after its spans', ld(1, resource, ld(2, span(), ld(1, keyValue(3, 's', nestedAnyValue(70, 'array', str(1, 'x'))))), ld(2, scope, span()))],
    ['kind, name, counts', request(span(str(5, 'authentication'), vi(6, 2), vi(6, 3), ld(11, str(2, 'e')), ld(13, hexField(1, T), hexField(2, S)), ld(15, str(2, 'm'), vi(3, 2))))],
    ['negative kind', request(span(vi(6, -1)))],
    ['scope name given twice', ld(1, ld(2, ld(1, str(1, 'a')), span(), ld(1, str(1, 'b')), str(3, 'schema')))],
  ];
  let refused = 0;
  let rejected = 0;
  for (const [name, bytes] of cases) {
    try {
      decodeTraceRequest(bytes);
      rejected += decodeTraceRequest(bytes).rejected.length;
    } catch {
      refused++;
    }
    agree(bytes, name);
  }
  assert.ok(refused >= 6 && rejected >= 8, `${refused} refused, ${rejected} rejected`);
});

test('splice: appended attributes follow the span\'s own, other spans are untouched, a tail request is appended', () => {
  const bytes = request(span(keyValue(9, 'audit-id', str(1, 'a1')), str(5, 'route')), ld(2, hexField(1, T), hexField(2, P), str(5, 'other')));
  const [route, other] = scanTraceRequest(bytes).spans;
  const added: KeyValue[] = [{ key: 'k8s.audit.verb', value: { stringValue: 'get' } }, { key: 'k8s.audit.code', value: { intValue: '200' } }];
  const derived = decodeTraceRequest(bytes).spans[1]!;
  const tail = encodeTraceRequest([{ ...derived, spanId: 'ffffffffffffffff', resource: { attributes: [], droppedAttributesCount: 0, schemaUrl: '' } }]);
  const out = decodeTraceRequest(spliceTraceRequest([route!, other!], (s) => (s === route ? encodeKeyValueFields(9, added) : undefined), tail));
  const want = decodeTraceRequest(bytes).spans;
  assert.equal(out.spans.map((s) => s.spanId), [S, P, 'ffffffffffffffff']);
  assert.equal(out.spans[0]!.attributes, [...want[0]!.attributes, ...added]);
  assert.equal(out.spans[1], want[1]);
  assert.equal(out.spans[2]!.resource.attributes, []);
});

test('splice: spans of several messages with equal resources and scopes share one ResourceSpans and ScopeSpans', () => {
  const a = scanTraceRequest(request(span(str(5, 'a')))).spans;
  const b = scanTraceRequest(request(ld(2, hexField(1, T), hexField(2, P), str(5, 'b')))).spans;
  const c = scanTraceRequest(ld(1, resource, ld(2, ld(1, str(1, 'other scope')), ld(2, hexField(1, T), hexField(2, 'abababababababab'))))).spans;
  const out = spliceTraceRequest([...a, ...b, ...c]);
  const again = decodeTraceRequest(out);
  assert.equal(again.spans.map((s) => s.name), ['a', 'b', '']);
  assert.ok(again.spans[0]!.resource === again.spans[2]!.resource, 'one resource');
  assert.ok(again.spans[0]!.scope === again.spans[1]!.scope && again.spans[0]!.scope !== again.spans[2]!.scope, 'two scopes');
});

test('detachRawSpans: spans no longer point into the message and splice to the same request', () => {
  const req = recordedRequests()[3]!;
  const spans = scanTraceRequest(req).spans;
  const before = spliceTraceRequest(spans);
  detachRawSpans(spans);
  for (const s of spans) assert.ok(s.buf.buffer !== req.buffer && s.scope.buf.buffer !== req.buffer && s.start === 0);
  assert.equal(Buffer.from(spliceTraceRequest(spans)), Buffer.from(before));
});

test('random requests from the encoder: the scanner agrees with the decoder', () => {
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const hexOf = (n: number, len: number): string => n.toString(16).padStart(len, '0').slice(-len);
  for (let round = 0; round < 50; round++) {
    const resources = [0, 1].map((i) => ({ attributes: [{ key: 'service.name', value: { stringValue: `svc${i}` } }], droppedAttributesCount: i, schemaUrl: i ? 'u' : '' }));
    const scopes = [0, 1, 2].map((i) => ({ name: i === 2 ? 'k8s.op/apiserver/pkg/endpoints/filterlatency' : `scope${i}`, version: '', attributes: [], droppedAttributesCount: 0, schemaUrl: '' }));
    const spans: Span[] = [];
    for (let i = 0, n = 1 + rnd(20); i < n; i++) {
      const attrs: KeyValue[] = [];
      for (let k = 0, m = rnd(4); k < m; k++) {
        const v = rnd(4);
        attrs.push({ key: rnd(2) ? 'audit-id' : `k${k}`, value: v === 0 ? { stringValue: `id-${rnd(5)}` } : v === 1 ? { intValue: String(rnd(1000)) } : v === 2 ? { boolValue: true } : { arrayValue: { values: [{ stringValue: 'x' }] } } });
      }
      spans.push({
        traceId: hexOf(1 + rnd(3), 32), spanId: hexOf(1 + rnd(1 << 30), 16), parentSpanId: rnd(2) ? hexOf(1 + rnd(1000), 16) : '', traceState: '', flags: rnd(2),
        name: rnd(3) ? `span ${rnd(10)}` : 'authentication', kind: rnd(6), startTimeUnixNano: String(1e18 + rnd(1e6)), endTimeUnixNano: '0',
        attributes: attrs, droppedAttributesCount: 0,
        events: rnd(3) ? [] : [{ timeUnixNano: '5', name: 'e', attributes: [], droppedAttributesCount: 0 }], droppedEventsCount: 0,
        links: rnd(4) ? [] : [{ traceId: hexOf(9, 32), spanId: hexOf(9, 16), traceState: '', attributes: [], droppedAttributesCount: 0, flags: 0 }], droppedLinksCount: 0,
        status: { code: rnd(3), message: '' }, resource: resources[rnd(2)]!, scope: scopes[rnd(3)]!,
      });
    }
    const bytes = encodeTraceRequest(spans);
    const raw = agree(bytes, `round ${round}`);
    const shuffled = [...raw].sort(() => rnd(3) - 1);
    assert.equal(sortSpans(decodeTraceRequest(spliceTraceRequest(shuffled)).spans), sortSpans(decodeTraceRequest(bytes).spans), `round ${round} spliced`);
  }
});

test.run();
