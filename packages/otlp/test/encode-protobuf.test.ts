import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { decodeTraceRequest, encodeRpcStatus, encodeTraceRequest, encodeTraceResponse } from '../src/index.js';
import type { Resource, Scope, Span } from '../src/index.js';
import { RequestType, ResponseType, RpcStatusType, TO_OBJECT, referenceDecode } from './reference-proto.js';
import { makeSdkSpans } from './sdk-spans.js';

const sdkDecoded = decodeTraceRequest(ProtobufTraceSerializer.serializeRequest(makeSdkSpans())!).spans;

const resource = (name: string): Resource => ({
  attributes: [{ key: 'service.name', value: { stringValue: name } }],
  droppedAttributesCount: 0,
  schemaUrl: '',
});
const scope = (name: string, extra: Partial<Scope> = {}): Scope => ({
  name,
  version: '',
  attributes: [],
  droppedAttributesCount: 0,
  schemaUrl: '',
  ...extra,
});

function span(name: string, r: Resource, s: Scope, extra: Partial<Span> = {}): Span {
  return {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    parentSpanId: '',
    traceState: '',
    flags: 0,
    name,
    kind: 0,
    startTimeUnixNano: '0',
    endTimeUnixNano: '0',
    attributes: [],
    droppedAttributesCount: 0,
    events: [],
    droppedEventsCount: 0,
    links: [],
    droppedLinksCount: 0,
    status: { code: 0, message: '' },
    resource: r,
    scope: s,
    ...extra,
  };
}

test('round trip: SDK spans decoded, re-encoded and decoded again are unchanged (also via protobufjs)', () => {
  assert.ok(sdkDecoded.length > 5);
  const bytes = encodeTraceRequest(sdkDecoded);
  assert.equal(decodeTraceRequest(bytes), { spans: sdkDecoded, rejected: [] });
  assert.equal(referenceDecode(bytes), sdkDecoded);
  // protobufjs finds nothing it does not know either.
  const raw = RequestType.decode(bytes) as unknown as Record<string, unknown>;
  assert.is(RequestType.verify(raw), null);
});

test('round trip: edge values and grouping by Resource/Scope object identity', () => {
  const r1 = resource('apiserver');
  const r2 = resource('apiserver'); // equal content, different object: its own ResourceSpans
  r2.schemaUrl = 'https://opentelemetry.io/schemas/1.30.0';
  r2.droppedAttributesCount = 3;
  const s1 = scope('k8s.io/apiserver', { version: '1.34.1' });
  const s2 = scope('etcd', { attributes: [{ key: 'a', value: { boolValue: false } }], droppedAttributesCount: 1, schemaUrl: 'su' });
  const s3 = scope('');
  const spans = [
    span('A', r1, s1, {
      parentSpanId: 'eee19b7ec3c1b173',
      traceState: 'k=v',
      flags: 0xffffffff,
      kind: -1,
      startTimeUnixNano: '18446744073709551615',
      endTimeUnixNano: '9007199254740993',
      attributes: [
        { key: 'max', value: { intValue: '9223372036854775807' } },
        { key: 'min', value: { intValue: '-9223372036854775808' } },
        { key: 'm1', value: { intValue: '-1' } },
        { key: 'zero', value: { intValue: '0' } },
        { key: 'neg0', value: { doubleValue: -0 } },
        { key: 'inf', value: { doubleValue: -Infinity } },
        { key: 'empty', value: {} },
        { key: '', value: { stringValue: '' } },
        { key: 'uni', value: { stringValue: 'é日本🚀' } },
        { key: 'bytes', value: { bytesValue: 'AAEC/v8=' } },
        { key: 'nobytes', value: { bytesValue: '' } },
        { key: 'f', value: { boolValue: false } },
        {
          key: 'nest',
          value: {
            arrayValue: {
              values: [{}, { arrayValue: { values: [] } }, { kvlistValue: { values: [{ key: 'k', value: { kvlistValue: { values: [] } } }] } }],
            },
          },
        },
      ],
      droppedAttributesCount: 0xffffffff,
      events: [
        { timeUnixNano: '0', name: '', attributes: [], droppedAttributesCount: 0 },
        { timeUnixNano: '1', name: 'e', attributes: [{ key: 'x', value: { doubleValue: 0.1 } }], droppedAttributesCount: 2 },
      ],
      droppedEventsCount: 1,
      links: [
        { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '53995c3f42cd8ad8', traceState: '', attributes: [], droppedAttributesCount: 0, flags: 0 },
        { traceId: '4bf92f3577b34da6a3ce929d0e0e4737', spanId: '53995c3f42cd8ad9', traceState: 'a=b', attributes: [{ key: 'l', value: { intValue: '5' } }], droppedAttributesCount: 9, flags: 0x301 },
      ],
      droppedLinksCount: 7,
      status: { code: 0, message: 'message without code' },
    }),
    span('B', r2, s2, { kind: 99, status: { code: 2, message: '' } }),
    span('C', r1, s1, { spanId: '0000000000000001' }),
    span('D', r1, s3, { name: '' }),
  ];
  const { spans: back, rejected } = decodeTraceRequest(encodeTraceRequest(spans));
  assert.equal(rejected, []);
  const grouped = [spans[0]!, spans[2]!, spans[3]!, spans[1]!];
  assert.equal(back, grouped);
  assert.equal(referenceDecode(encodeTraceRequest(spans)), grouped);
  assert.ok(back[0]!.resource === back[1]!.resource && back[1]!.resource === back[2]!.resource);
  assert.ok(back[0]!.resource !== back[3]!.resource);
  assert.ok(back[0]!.scope === back[1]!.scope && back[1]!.scope !== back[2]!.scope);
  assert.ok(Object.is((back[0]!.attributes[4]!.value as { doubleValue: number }).doubleValue, -0));
});

test('round trip: random 64-bit times and ints agree with protobufjs', () => {
  let seed = 1234567;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0), seed);
  const r = resource('x');
  const s = scope('y');
  const spans: Span[] = [];
  for (let i = 0; i < 500; i++) {
    const u = (BigInt(rnd()) << 32n) | BigInt(rnd() >>> i % 32);
    const signed = BigInt.asIntN(64, u);
    spans.push(
      span(`s${i}`, r, s, {
        startTimeUnixNano: u.toString(),
        endTimeUnixNano: (u >> BigInt(i % 64)).toString(),
        attributes: [
          { key: 'i', value: { intValue: signed.toString() } },
          { key: 'j', value: { intValue: (signed >> BigInt(i % 64)).toString() } },
        ],
      }),
    );
  }
  const bytes = encodeTraceRequest(spans);
  assert.equal(decodeTraceRequest(bytes).spans, spans);
  assert.equal(referenceDecode(bytes), spans);
});

test('long strings (written by Node\'s native UTF-8 path) encode as protobufjs writes them: ASCII, multi-byte, astral, lone surrogates', () => {
  const values = ['x'.repeat(300), `${'a'.repeat(255)}é`, 'é'.repeat(400), `${'{"k":"v"}'.repeat(100)}🚀`, `${'b'.repeat(300)}\ud800${'c'.repeat(10)}`, 'y'.repeat(256), 'z'.repeat(257)];
  const spans = values.map((v, i) => span(v, resource('r'), scope('s'), { spanId: `${'0'.repeat(15)}${i + 1}`, attributes: [{ key: 'k', value: { stringValue: v } }] }));
  const bytes = encodeTraceRequest(spans);
  const back = decodeTraceRequest(bytes).spans;
  // A lone surrogate is not UTF-8: it is written as U+FFFD, as Buffer and protobufjs write it.
  const want = values.map((v) => v.replace(/\ud800/, '\ufffd'));
  assert.equal(back.map((s) => s.name), want);
  assert.equal(back.map((s) => s.attributes[0]!.value), want.map((v) => ({ stringValue: v })));
  assert.equal(referenceDecode(bytes).map((s) => s.name), want, 'protobufjs reads the same');
});

test('encodeTraceRequest refuses values not in the model form', () => {
  const r = resource('x');
  const s = scope('y');
  assert.throws(() => encodeTraceRequest([span('a', r, s, { traceId: 'xyz' })]), /traceId: "xyz" is not an even number of hex digits/);
  assert.throws(() => encodeTraceRequest([span('a', r, s, { spanId: 'zz00000000000000' })]), /spanId: "zz00000000000000" is not hex/);
  assert.throws(() => encodeTraceRequest([span('a', r, s, { startTimeUnixNano: '18446744073709551616' })]), /startTimeUnixNano: "18446744073709551616" is not a decimal uint64/);
  assert.throws(() => encodeTraceRequest([span('a', r, s, { endTimeUnixNano: '-1' })]), /endTimeUnixNano/);
  assert.throws(() => encodeTraceRequest([span('a', r, s, { attributes: [{ key: 'k', value: { intValue: '9223372036854775808' } }] })]), /not a decimal int64/);
  assert.equal(encodeTraceRequest([]), new Uint8Array(0));
});

test('encodeTraceResponse: empty on success, partial_success read back by the reference and protobufjs', () => {
  assert.equal(encodeTraceResponse(), new Uint8Array(0));
  assert.equal(ProtobufTraceSerializer.deserializeResponse(encodeTraceResponse()), {});
  const partial = encodeTraceResponse({ rejectedSpans: 3, errorMessage: 'span 1: trace_id is 15 bytes, want 16' });
  assert.equal(ProtobufTraceSerializer.deserializeResponse(partial), {
    partialSuccess: { rejectedSpans: 3, errorMessage: 'span 1: trace_id is 15 bytes, want 16' },
  });
  assert.equal(ResponseType.toObject(ResponseType.decode(partial), TO_OBJECT), {
    partial_success: { rejected_spans: '3', error_message: 'span 1: trace_id is 15 bytes, want 16' },
  });
  const big = encodeTraceResponse({ rejectedSpans: 2 ** 40 + 1, errorMessage: 'é' });
  assert.equal(ResponseType.toObject(ResponseType.decode(big), TO_OBJECT), {
    partial_success: { rejected_spans: String(2 ** 40 + 1), error_message: 'é' },
  });
  // A warning with nothing rejected still sets partial_success.
  assert.equal(Array.from(encodeTraceResponse({ rejectedSpans: 0, errorMessage: 'w' })), [0x0a, 0x03, 0x12, 0x01, 0x77]);
});

test('encodeRpcStatus: google.rpc.Status bytes', () => {
  assert.equal(Array.from(encodeRpcStatus(3, 'x')), [0x08, 0x03, 0x12, 0x01, 0x78]);
  assert.equal(RpcStatusType.toObject(RpcStatusType.decode(encodeRpcStatus(14, 'queue is full, retry later')), TO_OBJECT), {
    code: 14,
    message: 'queue is full, retry later',
    details: [],
  });
  assert.equal(RpcStatusType.toObject(RpcStatusType.decode(encodeRpcStatus(-1, '')), TO_OBJECT), { code: -1, message: '', details: [] });
  assert.equal(encodeRpcStatus(0, ''), new Uint8Array(0));
});

test.run();
