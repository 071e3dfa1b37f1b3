import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { decodeTraceRequest, encodeTraceRequest, OtlpDecodeError, splitTraceRequest } from '../src/index.js';
import type { Resource, Scope, Span } from '../src/index.js';
import { referenceDecode } from './reference-proto.js';
import { makeSdkSpans } from './sdk-spans.js';
import { cat, hexField, keyValue, ld, nestedAnyValue, str, vi } from './pb.js';

/** Spans of `traces` traces spread over 3 resources x 2 scopes, interleaved as a batch processor sends them. */
function mixedSpans(traces: number, perTrace: number): Span[] {
  const resources: Resource[] = ['apiserver', 'etcd', 'kube-controller-manager'].map((name, i) => ({
    attributes: [{ key: 'service.name', value: { stringValue: name } }, { key: 'host.name', value: { stringValue: `node-${i}` } }],
    droppedAttributesCount: i, schemaUrl: i === 1 ? 'https://opentelemetry.io/schemas/1.24.0' : '',
  }));
  const scopes: Scope[] = ['k8s.io/apiserver', 'go.opentelemetry.io/otelhttp'].map((name, i) => ({
    name, version: `0.${i}`, attributes: i ? [{ key: 'lib', value: { boolValue: true } }] : [], droppedAttributesCount: 0, schemaUrl: '',
  }));
  const out: Span[] = [];
  for (let s = 0; s < perTrace; s++) {
    for (let t = 0; t < traces; t++) {
      const n = t * perTrace + s;
      out.push({
        traceId: (0xabc000 + t).toString(16).padStart(32, '0'), spanId: (n + 1).toString(16).padStart(16, '0'),
        parentSpanId: s ? n.toString(16).padStart(16, '0') : '', traceState: s % 2 ? 'k=v' : '', flags: 1,
        name: `span ${n} ${'x'.repeat(n % 200)}`, kind: (n % 5) + 1,
        startTimeUnixNano: String(1_760_000_000_000_000_000n + BigInt(n)), endTimeUnixNano: String(1_760_000_000_000_000_000n + BigInt(n * 1000)),
        attributes: [{ key: 'audit-id', value: { stringValue: `audit-${t}` } }, { key: 'n', value: { intValue: String(n) } }],
        droppedAttributesCount: 0,
        events: s === 1 ? [{ timeUnixNano: '1760000000000000001', name: 'etcd', attributes: [], droppedAttributesCount: 0 }] : [],
        droppedEventsCount: 0,
        links: s === 2 ? [{ traceId: 'f'.repeat(32), spanId: '1'.repeat(16), traceState: '', attributes: [], droppedAttributesCount: 0, flags: 0 }] : [],
        droppedLinksCount: 0, status: { code: n % 3, message: n % 3 === 2 ? 'boom' : '' },
        resource: resources[n % resources.length]!, scope: scopes[(n >> 1) % scopes.length]!,
      });
    }
  }
  return out;
}

const byTrace = (spans: Span[], id: string) => spans.filter((s) => s.traceId === id);

test('splits a mixed batch into one request per trace, in first-seen order, each decoding (by protobufjs) to exactly that trace\'s spans', () => {
  const spans = mixedSpans(7, 9);
  const bytes = encodeTraceRequest(spans);
  const parts = splitTraceRequest(bytes);
  const reference = referenceDecode(bytes);
  // First seen on the wire (the encoder groups by resource, then scope).
  assert.equal(parts.map((p) => p.traceId), [...new Set(reference.map((s) => s.traceId))]);
  assert.is(parts.length, 7);
  for (const p of parts) {
    // The reference decoder, not ours, checks the bytes; and ours agrees with it.
    const got = referenceDecode(p.request);
    assert.equal(got, byTrace(reference, p.traceId), p.traceId);
    assert.equal(decodeTraceRequest(p.request).spans, byTrace(decodeTraceRequest(bytes).spans, p.traceId));
  }
  // Nothing lost, nothing twice.
  assert.is(parts.reduce((n, p) => n + referenceDecode(p.request).length, 0), spans.length);
});

test('the same on the OpenTelemetry JS SDK\'s own serializer output (ProtobufTraceSerializer)', () => {
  const bytes = ProtobufTraceSerializer.serializeRequest(makeSdkSpans())!;
  const reference = referenceDecode(bytes);
  const parts = splitTraceRequest(bytes);
  assert.ok(parts.length >= 1);
  assert.equal(parts.flatMap((p) => referenceDecode(p.request)).sort((a, b) => a.spanId.localeCompare(b.spanId)), [...reference].sort((a, b) => a.spanId.localeCompare(b.spanId)));
  for (const p of parts) assert.equal(referenceDecode(p.request), byTrace(reference, p.traceId));
});

test('one trace in, the same spans out; encodeTraceRequest of that trace decodes the same', () => {
  const spans = mixedSpans(1, 12);
  const bytes = encodeTraceRequest(spans);
  const [only, ...rest] = splitTraceRequest(bytes);
  assert.is(rest.length, 0);
  assert.equal(decodeTraceRequest(only!.request).spans, decodeTraceRequest(bytes).spans);
});

test('keeps unknown fields and schema urls of ResourceSpans, ScopeSpans and spans, whatever their order on the wire', () => {
  const traceA = '0af7651916cd43dd8448eb211c80319c';
  const traceB = '4bf92f3577b34da6a3ce929d0e0e4736';
  const spanBody = (trace: string, id: string) => cat(hexField(1, trace), hexField(2, id), str(5, `op ${id}`), vi(99, 7) /* unknown */);
  const scopeSpans = cat(
    ld(2, spanBody(traceA, '00000000000000a1')),
    ld(1, str(1, 'k8s.io/apiserver')), // scope after a span
    ld(2, spanBody(traceB, '00000000000000b1')),
    str(3, 'https://scope.schema'),
    vi(77, 1), // unknown ScopeSpans field
  );
  const request = ld(1, cat(ld(2, scopeSpans), ld(1, ld(1, cat(str(1, 'service.name'), ld(2, str(1, 'apiserver'))))), str(3, 'https://resource.schema'), vi(55, 3)));
  const parts = splitTraceRequest(request);
  assert.equal(parts.map((p) => p.traceId), [traceA, traceB]);
  for (const p of parts) {
    const [s, ...more] = decodeTraceRequest(p.request).spans;
    assert.is(more.length, 0);
    assert.is(s!.traceId, p.traceId);
    assert.is(s!.scope.name, 'k8s.io/apiserver');
    assert.is(s!.scope.schemaUrl, 'https://scope.schema');
    assert.is(s!.resource.schemaUrl, 'https://resource.schema');
    assert.equal(s!.resource.attributes, [{ key: 'service.name', value: { stringValue: 'apiserver' } }]);
    const raw = Buffer.from(p.request);
    for (const unknown of [vi(99, 7), vi(77, 1), vi(55, 3)]) assert.ok(raw.includes(Buffer.from(unknown)), `unknown field ${Buffer.from(unknown).toString('hex')} kept`);
  }
  assert.ok(!Buffer.from(parts[0]!.request).includes(Buffer.from(traceB, 'hex')), 'no bytes of the other trace');
});

test('a span without a 16-byte trace id goes under the key ""', () => {
  const request = ld(1, ld(2, cat(ld(2, cat(hexField(2, '00000000000000a1'), str(5, 'no trace'))), ld(2, cat(hexField(1, 'abcd'), hexField(2, '00000000000000a2'))))));
  assert.equal(splitTraceRequest(request).map((p) => p.traceId), ['']);
});

test('malformed bytes throw OtlpDecodeError with an offset, never return a partial split', () => {
  const bytes = encodeTraceRequest(mixedSpans(3, 3));
  for (const cut of [1, 7, Math.floor(bytes.length / 2), bytes.length - 1]) {
    assert.throws(() => splitTraceRequest(bytes.subarray(0, cut)), (e: unknown) => e instanceof OtlpDecodeError && /byte offset \d+/.test((e as Error).message), `cut at ${cut}`);
  }
  assert.throws(() => splitTraceRequest(Uint8Array.of(0x0b)), (e: unknown) => e instanceof OtlpDecodeError); // resource_spans with wire type 3
  assert.equal(splitTraceRequest(new Uint8Array(0)), []);
});

test('a span holding 100,000 nested arrays is split without looking inside it; decoding the part rejects it', () => {
  const trace = 'ab'.repeat(16);
  const deep = ld(2, hexField(1, trace), hexField(2, '00000000000000a1'), str(5, 'deep'), keyValue(9, 'k', nestedAnyValue(100_000, 'array', str(1, 'leaf'))));
  const fine = ld(2, hexField(1, 'cd'.repeat(16)), hexField(2, '00000000000000a2'), str(5, 'fine'));
  const parts = splitTraceRequest(ld(1, ld(2, deep, fine)));
  assert.equal(parts.map((p) => p.traceId), [trace, 'cd'.repeat(16)]);
  const decoded = decodeTraceRequest(parts[0]!.request);
  assert.equal([decoded.spans.length, decoded.rejected.length], [0, 1]);
  assert.equal(decodeTraceRequest(parts[1]!.request).spans.map((s) => s.name), ['fine']);
});

test.run();
