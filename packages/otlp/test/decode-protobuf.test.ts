import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { MAX_ANY_VALUE_DEPTH, OtlpDecodeError, decodeTraceRequest } from '../src/index.js';
import type { Span } from '../src/index.js';
import { uint64ToDecimal } from '../src/decode-protobuf.js';
import { referenceDecode } from './reference-proto.js';
import { expectedSpans, makeSdkSpans } from './sdk-spans.js';
import { cat, dbl, f32, f64, hexField, keyValue, ld, nestedAnyValue, str, tag, unknownFields, varint, vi } from './pb.js';

const sdkSpans = makeSdkSpans();
const sdkBytes = ProtobufTraceSerializer.serializeRequest(sdkSpans)!;

function throwsDecode(bytes: Uint8Array, pattern: RegExp): OtlpDecodeError {
  try {
    decodeTraceRequest(bytes);
  } catch (err) {
    assert.instance(err, OtlpDecodeError);
    assert.match((err as Error).message, pattern);
    return err as OtlpDecodeError;
  }
  assert.unreachable(`expected OtlpDecodeError matching ${pattern}`);
  throw new Error('unreachable');
}

const byName = (spans: readonly Span[], name: string): Span => {
  const s = spans.find((x) => x.name === name);
  assert.ok(s, `span ${name}`);
  return s!;
};

test('reference serializer: decoded spans equal the SDK spans field by field', () => {
  const { spans, rejected } = decodeTraceRequest(sdkBytes);
  assert.equal(rejected, []);
  assert.is(spans.length, sdkSpans.length);
  const expected = expectedSpans(sdkSpans);
  // Field by field first, for a readable failure; then the whole thing.
  for (let i = 0; i < expected.length; i++) {
    const got = spans[i]!;
    const want = expected[i]!;
    for (const key of Object.keys(want) as Array<keyof Span>) {
      assert.equal(got[key], want[key], `span ${i} (${want.name}) ${key}`);
    }
  }
  assert.equal(spans, expected);
});

test('reference serializer: spot checks of types, kinds, times, status, sharing', () => {
  const { spans } = decodeTraceRequest(sdkBytes);
  const root = byName(spans, 'POST /api/v1/namespaces/{:namespace}/configmaps');
  const attr = (name: string): unknown => root.attributes.find((a) => a.key === name)?.value;
  assert.equal(attr('int.min'), { intValue: '-9223372036854775808' });
  assert.equal(attr('int.large'), { intValue: '1152921504606846976' });
  assert.equal(attr('int.below_2_63'), { intValue: '9223372036854774784' });
  assert.equal(attr('double.tiny'), { doubleValue: 5e-324 });
  assert.equal(attr('str.unicode'), { stringValue: 'héllo wörld ✓ 日本語 🚀' });
  assert.equal(attr('arr.empty'), { arrayValue: { values: [] } });
  assert.equal(attr('arr.with_nulls'), {
    arrayValue: { values: [{ stringValue: 'a' }, {}, { stringValue: 'b' }, {}] },
  });
  assert.equal(attr('bytes'), { bytesValue: 'AAEC/v8=' });
  assert.equal(attr('bytes.empty'), { bytesValue: '' });
  assert.is(root.kind, 2);
  assert.is(root.parentSpanId, 'b7ad6b7169203331');
  assert.is(root.traceState, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
  assert.is(root.flags, 0x301); // sampled, has-is-remote, is-remote
  assert.is(root.startTimeUnixNano, '1760000000123456789');
  assert.is(root.endTimeUnixNano, '1760000001999999999');
  assert.equal(root.status, { code: 1, message: '' }); // the SDK drops a message on OK
  const txn = byName(spans, 'etcdserverpb.KV/Txn');
  assert.equal(txn.status, { code: 2, message: 'etcdserver: request timed out' });
  assert.is(txn.kind, 3);
  assert.is(byName(spans, 'Call mutating webhook').kind, 4);
  assert.is(byName(spans, 'watch event').kind, 5);
  const create = byName(spans, 'Create');
  assert.is(create.kind, 1);
  assert.is(create.droppedAttributesCount, 8);
  assert.is(create.droppedEventsCount, 2);
  assert.is(create.droppedLinksCount, 1);
  assert.is(create.links.length, 2);
  assert.is(create.links[1]!.droppedAttributesCount, 1);
  assert.is(create.events[1]!.droppedAttributesCount, 5);
  assert.is(create.flags, 0x101);
  assert.is(create.events[0]!.timeUnixNano, '1760000000123460790');
  // One Resource object for all spans; one Scope object per tracer.
  assert.ok(spans.every((s) => s.resource === root.resource));
  assert.is(root.resource.schemaUrl, 'https://opentelemetry.io/schemas/1.30.0');
  assert.ok(txn.scope === byName(spans, 'watch event').scope);
  assert.ok(txn.scope !== root.scope);
  assert.is(txn.scope.schemaUrl, 'https://opentelemetry.io/schemas/1.24.0');
  assert.is(root.scope.version, '1.34.1');
  assert.is(txn.scope.version, '');
});

test('reference serializer: our decoder agrees with protobufjs on the same bytes', () => {
  assert.equal(decodeTraceRequest(sdkBytes).spans, referenceDecode(sdkBytes));
});

test('uint64ToDecimal matches BigInt on edges and random values', () => {
  const cases: Array<[number, number]> = [
    [0, 0], [1, 0], [0xffffffff, 0], [0, 1], [0xffffffff, 0x1fffff], [0, 0x200000], [1, 0x200000],
    [0xffffffff, 0xffffffff], [0, 0x80000000], [999999999, 0x17a2b3c4], [1e9 % 2 ** 32, 0xffff0000],
  ];
  let seed = 42;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0), seed);
  for (let i = 0; i < 20000; i++) cases.push([rnd(), i % 2 ? rnd() : rnd() >>> (i % 32)]);
  for (const [lo, hi] of cases) {
    assert.is(uint64ToDecimal(lo, hi), ((BigInt(hi) << 32n) | BigInt(lo)).toString(), `${lo} ${hi}`);
  }
});

// A hand-built request touching every message type; `u` is spliced in everywhere a field may go.
const TRACE = '5b8efff798038103d269b633813fc60c';
const SPAN = 'eee19b7ec3c1b174';
const PARENT = 'eee19b7ec3c1b173';
function handMade(u: Uint8Array): Uint8Array {
  const kv = (field: number, key: string, anyValue: Uint8Array): Uint8Array =>
    ld(field, u, str(1, key), ld(2, anyValue, u));
  const span = ld(
    2,
    hexField(1, TRACE), u, hexField(2, SPAN), str(3, 'ts=1'), hexField(4, PARENT), str(5, 'Create'), vi(6, 2),
    f64(7, 1700000000000000001n), f64(8, 18446744073709551615n),
    kv(9, 's', str(1, 'x')),
    kv(9, 'arr', ld(5, u, ld(1, u, vi(3, -5)), ld(1, dbl(4, 1.5)), ld(1))),
    kv(9, 'kv', ld(6, u, ld(1, str(1, 'k'), ld(2, vi(2, 1)), u))),
    kv(9, 'b', cat(u, ld(7, Uint8Array.of(0xff, 0)))),
    vi(10, 1),
    ld(11, u, f64(1, 5n), str(2, 'ev'), kv(3, 'e', str(1, 'y')), vi(4, 2)),
    vi(12, 3),
    ld(13, hexField(1, TRACE), hexField(2, PARENT), u, str(3, 'l=1'), kv(4, 'la', vi(3, 1)), vi(5, 4), f32(6, 0x301)),
    vi(14, 5),
    ld(15, u, str(2, 'boom'), vi(3, 2)),
    f32(16, 0x101),
    u,
  );
  const scope = ld(1, u, str(1, 'k8s.io/apiserver'), str(2, '1.34'), kv(3, 'sa', str(1, 'z')), vi(4, 6));
  const resource = ld(1, kv(1, 'service.name', str(1, 'apiserver')), u, vi(2, 7));
  return cat(u, ld(1, u, resource, ld(2, u, scope, span, str(3, 'scope-schema')), str(3, 'res-schema')), u);
}

const HAND_MADE_SPAN: Span = {
  traceId: TRACE,
  spanId: SPAN,
  parentSpanId: PARENT,
  traceState: 'ts=1',
  flags: 0x101,
  name: 'Create',
  kind: 2,
  startTimeUnixNano: '1700000000000000001',
  endTimeUnixNano: '18446744073709551615',
  attributes: [
    { key: 's', value: { stringValue: 'x' } },
    { key: 'arr', value: { arrayValue: { values: [{ intValue: '-5' }, { doubleValue: 1.5 }, {}] } } },
    { key: 'kv', value: { kvlistValue: { values: [{ key: 'k', value: { boolValue: true } }] } } },
    { key: 'b', value: { bytesValue: '/wA=' } },
  ],
  droppedAttributesCount: 1,
  events: [{ timeUnixNano: '5', name: 'ev', attributes: [{ key: 'e', value: { stringValue: 'y' } }], droppedAttributesCount: 2 }],
  droppedEventsCount: 3,
  links: [{ traceId: TRACE, spanId: PARENT, traceState: 'l=1', attributes: [{ key: 'la', value: { intValue: '1' } }], droppedAttributesCount: 4, flags: 0x301 }],
  droppedLinksCount: 5,
  status: { code: 2, message: 'boom' },
  resource: { attributes: [{ key: 'service.name', value: { stringValue: 'apiserver' } }], droppedAttributesCount: 7, schemaUrl: 'res-schema' },
  scope: { name: 'k8s.io/apiserver', version: '1.34', attributes: [{ key: 'sa', value: { stringValue: 'z' } }], droppedAttributesCount: 6, schemaUrl: 'scope-schema' },
};

test('hand-built request with every field decodes to the expected span (and protobufjs agrees)', () => {
  const bytes = handMade(new Uint8Array(0));
  assert.equal(decodeTraceRequest(bytes), { spans: [HAND_MADE_SPAN], rejected: [] });
  assert.equal(referenceDecode(bytes), [HAND_MADE_SPAN]);
});

test('unknown fields of each wire type are skipped at every level', () => {
  const all = unknownFields(900);
  const single = [vi(901, 300), f64(902, 1n), ld(903, str(1, 'x')), f32(904, 7), vi(19, 1), ld(1000, ld(1))];
  for (const u of [all, ...single]) {
    const bytes = handMade(u);
    assert.equal(decodeTraceRequest(bytes), { spans: [HAND_MADE_SPAN], rejected: [] }, `unknown ${Buffer.from(u).toString('hex')}`);
    assert.equal(referenceDecode(bytes), [HAND_MADE_SPAN]);
  }
});

test('every truncation of a valid request throws OtlpDecodeError (the request is one length-delimited field)', () => {
  assert.equal(decodeTraceRequest(sdkBytes.subarray(0, 0)), { spans: [], rejected: [] });
  for (let k = 1; k < sdkBytes.length; k++) {
    try {
      decodeTraceRequest(sdkBytes.subarray(0, k));
      assert.unreachable(`prefix of ${k} bytes decoded`);
    } catch (err) {
      if (!(err instanceof OtlpDecodeError)) throw err;
      assert.match(err.message, / at byte offset \d+$/);
    }
  }
});

test('inner truncations and corrupted bytes never crash: they decode or throw OtlpDecodeError', () => {
  let decoded = 0;
  let thrown = 0;
  const check = (bytes: Uint8Array): void => {
    try {
      decodeTraceRequest(bytes);
      decoded++;
    } catch (err) {
      if (!(err instanceof OtlpDecodeError)) throw err;
      thrown++;
    }
  };
  // Cut the inner ResourceSpans short while keeping the outer length consistent.
  const body = sdkBytes.subarray(sdkBytes.length - decodeLen(sdkBytes)!);
  assert.ok(body.length > 1000);
  for (let k = 0; k < body.length; k++) check(ld(1, body.subarray(0, k)));
  for (let i = 0; i < sdkBytes.length; i++) {
    for (const v of [0x00, 0xff, 0x80, 0x7f, sdkBytes[i]! ^ 0x01, sdkBytes[i]! ^ 0x07]) {
      const copy = sdkBytes.slice();
      copy[i] = v;
      check(copy);
    }
  }
  let seed = 7;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0), seed >>> 24);
  for (let n = 0; n < 3000; n++) check(Uint8Array.from({ length: rnd() }, rnd));
  assert.ok(decoded > 100, `decoded ${decoded}`);
  assert.ok(thrown > 100, `thrown ${thrown}`);
});

/** Length of the first top-level length-delimited field's body. */
function decodeLen(bytes: Uint8Array): number | undefined {
  let len = 0;
  for (let i = 1, shift = 0; i < bytes.length; i++, shift += 7) {
    len += (bytes[i]! & 0x7f) * 2 ** shift;
    if (bytes[i]! < 0x80) return len;
  }
  return undefined;
}

test('length past the end throws with the offset of the length', () => {
  throwsDecode(cat(tag(1, 2), varint(10), Uint8Array.of(1, 2, 3)), /^length 10 runs past the end of the enclosing message \(3 bytes left\) at byte offset 1$/);
  // A nested length may not run past its parent, even when the buffer has the bytes.
  const nested = cat(ld(1, tag(2, 2), varint(5), Uint8Array.of(0, 0)), new Uint8Array(10));
  throwsDecode(nested, /length 5 runs past the end of the enclosing message \(2 bytes left\) at byte offset 3$/);
});

test('a length above 32 bits throws instead of wrapping around', () => {
  throwsDecode(cat(tag(1, 2), varint(2 ** 32)), /^length does not fit in 32 bits at byte offset 1$/);
  throwsDecode(cat(tag(1, 2), varint(2n ** 63n + 1n), Uint8Array.of(0)), /^length does not fit in 32 bits at byte offset 1$/);
  // A zero-padded (non-minimal) length is still a valid length.
  assert.equal(decodeTraceRequest(cat(tag(1, 2), Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x00))), { spans: [], rejected: [] });
});

test('a varint of 11 bytes throws', () => {
  const bytes = cat(tag(5, 0), new Uint8Array(10).fill(0xff), Uint8Array.of(0x01));
  throwsDecode(bytes, /^varint longer than 10 bytes at byte offset 1$/);
  // Ten bytes are fine (a negative int64).
  assert.equal(decodeTraceRequest(cat(tag(5, 0), new Uint8Array(9).fill(0xff), Uint8Array.of(0x01))).spans, []);
});

test('a truncated varint throws', () => {
  throwsDecode(Uint8Array.of(0x0a, 0x80), /^truncated varint at byte offset 1$/);
});

test('group wire types throw', () => {
  throwsDecode(cat(tag(7, 3), tag(7, 4)), /^field 7: group wire types \(3, 4\) are not supported at byte offset 0$/);
  throwsDecode(cat(vi(2, 1), tag(9, 4)), /group wire types .* at byte offset 2$/);
  throwsDecode(cat(tag(3, 7)), /^field 3: invalid wire type 7 at byte offset 0$/);
  throwsDecode(cat(tag(0, 0), varint(1)), /^invalid field number 0 at byte offset 0$/);
});

test('a wrong wire type for a known field throws, naming the field', () => {
  const nameAsVarint = vi(5, 3);
  const bytes = ld(1, ld(2, ld(2, hexField(1, TRACE), hexField(2, SPAN), nameAsVarint)));
  const at = bytes.length - nameAsVarint.length;
  throwsDecode(bytes, new RegExp(`^Span\\.name \\(5\\): wire type varint, want length-delimited at byte offset ${at}$`));
  throwsDecode(ld(1, ld(2, ld(2, vi(7, 1)))), /^Span\.start_time_unix_nano \(7\): wire type varint, want 64-bit at byte offset 6$/);
  throwsDecode(ld(1, ld(2, ld(2, ld(16)))), /^Span\.flags \(16\): wire type length-delimited, want 32-bit/);
  throwsDecode(vi(1, 1), /^ExportTraceServiceRequest\.resource_spans \(1\): wire type varint/);
});

test('truncated fixed64 and fixed32 throw', () => {
  throwsDecode(ld(1, ld(2, ld(2, tag(7, 1), Uint8Array.of(1, 2, 3)))), /^truncated fixed64 at byte offset 6$/);
  throwsDecode(ld(1, ld(2, ld(2, tag(16, 5), Uint8Array.of(1)))), /^truncated fixed32 at byte offset 6$/);
  throwsDecode(cat(tag(9, 1), Uint8Array.of(1)), /^truncated 64-bit field 9 at byte offset 0$/);
});

function spanBytes(name: string, traceId: string, spanId: string, extra: Uint8Array = new Uint8Array(0)): Uint8Array {
  return ld(2, traceId ? hexField(1, traceId) : new Uint8Array(0), spanId ? hexField(2, spanId) : new Uint8Array(0), str(5, name), extra);
}

test('invalid ids reject only their span, with index in request order and a reason', () => {
  const bytes = cat(
    ld(1,
      ld(2,
        spanBytes('s0', TRACE, SPAN),
        spanBytes('s1', TRACE.slice(2), SPAN),
        spanBytes('s2', TRACE, SPAN, hexField(4, '0000000000000000')),
        spanBytes('s3', TRACE, '0000000000000000')),
      ld(2,
        spanBytes('s4', TRACE, SPAN, ld(13, hexField(1, TRACE), hexField(2, PARENT))),
        spanBytes('s5', TRACE, SPAN, cat(ld(13, hexField(1, TRACE), hexField(2, PARENT)), ld(13, hexField(1, TRACE), hexField(2, 'aabbccddeeff11')))))),
    ld(1,
      ld(2,
        spanBytes('s6', TRACE, SPAN, hexField(4, 'aabbccddee')),
        spanBytes('s7', '', SPAN),
        spanBytes('s8', '00000000000000000000000000000000', SPAN),
        spanBytes('s9', TRACE, SPAN, ld(13, hexField(1, TRACE.slice(0, 30) + '00'), hexField(2, PARENT))),
        spanBytes('s10', TRACE, SPAN, ld(13, hexField(2, PARENT))))),
  );
  const { spans, rejected } = decodeTraceRequest(bytes);
  assert.equal(spans.map((s) => s.name), ['s0', 's2', 's4', 's9']);
  assert.is(spans[1]!.parentSpanId, ''); // all-zero parent means root
  assert.is(spans[2]!.links[0]!.spanId, PARENT);
  assert.equal(rejected, [
    { index: 1, reason: 'span 1: trace_id is 15 bytes, want 16' },
    { index: 3, reason: 'span 3: span_id is all zero' },
    { index: 5, reason: 'span 5: link 1 span_id is 7 bytes, want 8' },
    { index: 6, reason: 'span 6: parent_span_id is 5 bytes, want 0 or 8' },
    { index: 7, reason: 'span 7: trace_id is 0 bytes, want 16' },
    { index: 8, reason: 'span 8: trace_id is all zero' },
    { index: 10, reason: 'span 10: link 0 trace_id is 0 bytes, want 16' },
  ]);
  // Spans of different ResourceSpans do not share a Resource.
  assert.ok(spans[0]!.resource !== spans[3]!.resource);
  assert.ok(spans[0]!.scope !== spans[2]!.scope);
});

test('proto3 merge rules: last scalar wins, repeated messages merge', () => {
  const bytes = ld(1,
    ld(1, ld(1, str(1, 'a'), ld(2, str(1, 'x'))), vi(2, 1)),
    ld(2,
      ld(2,
        hexField(1, TRACE), hexField(2, SPAN), str(5, 'first'), str(5, 'second'),
        ld(15, str(2, 'msg')), ld(15, vi(3, 2)),
        ld(9, str(1, 'arr'), ld(2, ld(5, ld(1, vi(3, 1)))), ld(2, ld(5, ld(1, vi(3, 2))))),
        ld(9, str(1, 'replaced'), ld(2, str(1, 'old')), ld(2, vi(2, 0))))),
    ld(1, ld(1, str(1, 'b'), ld(2, str(1, 'y')))));
  const [span] = decodeTraceRequest(bytes).spans;
  assert.is(span!.name, 'second');
  assert.equal(span!.status, { code: 2, message: 'msg' });
  assert.equal(span!.attributes, [
    { key: 'arr', value: { arrayValue: { values: [{ intValue: '1' }, { intValue: '2' }] } } },
    { key: 'replaced', value: { boolValue: false } },
  ]);
  assert.equal(span!.resource.attributes.map((a) => a.key), ['a', 'b']);
  assert.is(span!.resource.droppedAttributesCount, 1);
});

test('edge values: negative enum, int64 extremes, bool from a wide varint, invalid UTF-8', () => {
  const bytes = ld(1, ld(2, ld(2,
    hexField(1, TRACE), hexField(2, SPAN),
    ld(5, Uint8Array.of(0x68, 0xff, 0x69)),
    vi(6, -1),
    ld(9, str(1, 'max'), ld(2, vi(3, 2n ** 63n - 1n))),
    ld(9, str(1, 'min'), ld(2, vi(3, -(2n ** 63n)))),
    ld(9, str(1, 'minus1'), ld(2, vi(3, -1))),
    ld(9, str(1, 'safe'), ld(2, vi(3, 2n ** 53n - 1n))),
    ld(9, str(1, 'wide-true'), ld(2, vi(2, 2n ** 40n))),
    ld(9, str(1, 'nan'), ld(2, dbl(4, NaN))),
    ld(9, str(1, 'long string with é'), ld(2, str(1, 'x'.repeat(300) + 'é'))),
  )));
  const [span] = decodeTraceRequest(bytes).spans;
  assert.is(span!.name, 'h\ufffdi');
  assert.is(span!.kind, -1);
  assert.equal(span!.attributes.map((a) => a.value), [
    { intValue: '9223372036854775807' },
    { intValue: '-9223372036854775808' },
    { intValue: '-1' },
    { intValue: '9007199254740991' },
    { boolValue: true },
    { doubleValue: NaN },
    { stringValue: 'x'.repeat(300) + 'é' },
  ]);
  assert.is(span!.attributes[6]!.key, 'long string with é');
});

test('many distinct strings of equal length (string cache collisions) decode exactly', () => {
  const keys: string[] = [];
  const attrs: Uint8Array[] = [];
  for (let i = 0; i < 20000; i++) {
    const short = `k${String(i).padStart(5, '0')}`; // 6 bytes
    const long = `value-${String(i * 7919).padStart(34, '0')}`; // 40 bytes
    keys.push(short, long);
    attrs.push(ld(9, str(1, short), ld(2, str(1, long))));
  }
  const bytes = ld(1, ld(2, ld(2, hexField(1, TRACE), hexField(2, SPAN), ...attrs)));
  for (let pass = 0; pass < 2; pass++) {
    const got = decodeTraceRequest(bytes).spans[0]!.attributes.flatMap((a) => [a.key, (a.value as { stringValue: string }).stringValue]);
    assert.ok(got.length === keys.length && got.every((k, i) => k === keys[i]), `pass ${pass}`);
  }
});

test('decodes from a Uint8Array view with a non-zero byteOffset', () => {
  const padded = new Uint8Array(sdkBytes.length + 7);
  padded.set(sdkBytes, 5);
  assert.equal(decodeTraceRequest(padded.subarray(5, 5 + sdkBytes.length)), decodeTraceRequest(sdkBytes));
});


/** How many arrays or kvlists nest in a decoded value (0 for a scalar). */
function nesting(v: unknown): number {
  let n = 0;
  for (let cur = v as Record<string, { values: Array<Record<string, unknown>> }>; ; n++) {
    if (cur.arrayValue) cur = cur.arrayValue.values[0] as typeof cur;
    else if (cur.kvlistValue) cur = cur.kvlistValue.values[0]!.value as typeof cur;
    else return n;
  }
}

const LEAF = str(1, 'leaf');

test(`nesting: arrays and kvlists up to ${MAX_ANY_VALUE_DEPTH} deep decode; one level more rejects only that span`, () => {
  assert.is(MAX_ANY_VALUE_DEPTH, 64);
  for (const kind of ['array', 'kvlist'] as const) {
    const bytes = ld(1, ld(2,
      spanBytes('ok', TRACE, SPAN, keyValue(9, 'deep', nestedAnyValue(MAX_ANY_VALUE_DEPTH, kind, LEAF))),
      spanBytes('too deep', TRACE, SPAN, cat(str(9, ''), keyValue(9, 'plain', LEAF), keyValue(9, 'deeper', nestedAnyValue(MAX_ANY_VALUE_DEPTH + 1, kind, LEAF)))),
      spanBytes('after', TRACE, SPAN)));
    const { spans, rejected } = decodeTraceRequest(bytes);
    assert.equal(spans.map((s) => s.name), ['ok', 'after'], kind);
    assert.is(nesting(spans[0]!.attributes[0]!.value), MAX_ANY_VALUE_DEPTH, kind);
    assert.equal(rejected, [{ index: 1, reason: `span 1: attribute "deeper": array or kvlist nested deeper than ${MAX_ANY_VALUE_DEPTH} levels` }], kind);
  }
});

test('nesting: the key of a too deep attribute is named whichever field comes first on the wire', () => {
  const valueFirst = ld(9, ld(2, nestedAnyValue(MAX_ANY_VALUE_DEPTH + 1, 'array', LEAF)), str(1, 'late.key'));
  const { rejected } = decodeTraceRequest(ld(1, ld(2, spanBytes('s', TRACE, SPAN, valueFirst))));
  assert.equal(rejected, [{ index: 0, reason: `span 0: attribute "late.key": array or kvlist nested deeper than ${MAX_ANY_VALUE_DEPTH} levels` }]);
});

test('nesting: too deep in event or link attributes rejects the span', () => {
  const deep = nestedAnyValue(MAX_ANY_VALUE_DEPTH + 1, 'kvlist', LEAF);
  const bytes = ld(1, ld(2,
    spanBytes('event', TRACE, SPAN, ld(11, str(2, 'e'), keyValue(3, 'in.event', deep))),
    spanBytes('link', TRACE, SPAN, ld(13, hexField(1, TRACE), hexField(2, PARENT), keyValue(4, 'in.link', deep))),
    spanBytes('fine', TRACE, SPAN)));
  const { spans, rejected } = decodeTraceRequest(bytes);
  assert.equal(spans.map((s) => s.name), ['fine']);
  assert.equal(rejected.map((r) => r.reason), [
    `span 0: attribute "in.event": array or kvlist nested deeper than ${MAX_ANY_VALUE_DEPTH} levels`,
    `span 1: attribute "in.link": array or kvlist nested deeper than ${MAX_ANY_VALUE_DEPTH} levels`,
  ]);
});

test('nesting: a too deep resource or scope attribute rejects every span under it, wherever it sits on the wire', () => {
  const deep = keyValue(1, 'res.deep', nestedAnyValue(MAX_ANY_VALUE_DEPTH + 1, 'array', LEAF));
  const scopeDeep = keyValue(3, 'scope.deep', nestedAnyValue(MAX_ANY_VALUE_DEPTH + 1, 'array', LEAF));
  const reason = (what: string, key: string) => `${what} attribute "${key}": array or kvlist nested deeper than ${MAX_ANY_VALUE_DEPTH} levels`;
  const bytes = cat(
    ld(1, ld(2, spanBytes('r0.a', TRACE, SPAN))),
    // Resource after its spans; one of them already rejected for its id, which it keeps.
    ld(1, ld(2, spanBytes('r1.a', TRACE, SPAN), spanBytes('r1.b', TRACE, '0000000000000000')), ld(2, spanBytes('r1.c', TRACE, SPAN)), ld(1, deep)),
    ld(1, ld(2, ld(1, scopeDeep), spanBytes('r2.s0', TRACE, SPAN)), ld(2, spanBytes('r2.s1', TRACE, SPAN))),
    ld(1, ld(2, spanBytes('r3.a', TRACE, SPAN))),
  );
  const { spans, rejected } = decodeTraceRequest(bytes);
  assert.equal(spans.map((s) => s.name), ['r0.a', 'r2.s1', 'r3.a']);
  assert.equal(rejected, [
    { index: 1, reason: `span 1: ${reason('resource', 'res.deep')}` },
    { index: 2, reason: 'span 2: span_id is all zero' },
    { index: 3, reason: `span 3: ${reason('resource', 'res.deep')}` },
    { index: 4, reason: `span 4: ${reason('scope', 'scope.deep')}` },
  ]);
});

test('nesting: 100,000 levels (arrays, kvlists) are rejected without recursing, and unknown fields of any depth are skipped', () => {
  for (const kind of ['array', 'kvlist'] as const) {
    const value = nestedAnyValue(100_000, kind, LEAF);
    const bytes = ld(1, ld(2, spanBytes('deep', TRACE, SPAN, keyValue(9, 'k', value)), spanBytes('next', TRACE, SPAN)));
    const { spans, rejected } = decodeTraceRequest(bytes);
    assert.equal(spans.map((s) => s.name), ['next'], kind);
    assert.is(rejected.length, 1, kind);
    // As an unknown field, the same bytes are never looked into.
    assert.equal(decodeTraceRequest(ld(1, ld(2, spanBytes('unknown', TRACE, SPAN, ld(99, value))))).rejected, []);
  }
});

test.run();
