import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { MAX_ANY_VALUE_DEPTH, OtlpDecodeError, decodeTraceRequest, decodeTraceRequestJson, encodeTraceRequest, encodeTracesJson } from '../src/index.js';
import type { Span } from '../src/index.js';
import { expectedSpans, makeSdkSpans } from './sdk-spans.js';

const sdkSpans = makeSdkSpans();
const referenceJson = (spans = sdkSpans): unknown =>
  JSON.parse(new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans)!));

function throwsJson(body: unknown, message: string): void {
  try {
    decodeTraceRequestJson(body);
  } catch (err) {
    assert.instance(err, OtlpDecodeError);
    assert.is((err as Error).message, message);
    return;
  }
  assert.unreachable(`expected OtlpDecodeError: ${message}`);
}

const TRACE = '5B8EFFF798038103D269B633813FC60C';
const SPAN = 'EEE19B7EC3C1B174';

/** A one-span request body with the span's fields overridden. */
const oneSpan = (span: Record<string, unknown>): unknown => ({
  resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: TRACE, spanId: SPAN, name: 'x', ...span }] }] }],
});

test('reference JSON serializer: same spans as the protobuf path and as the SDK spans', () => {
  const fromJson = decodeTraceRequestJson(referenceJson());
  const fromProto = decodeTraceRequest(ProtobufTraceSerializer.serializeRequest(sdkSpans)!);
  assert.equal(fromJson.rejected, []);
  assert.is(fromJson.spans.length, sdkSpans.length);
  assert.equal(fromJson, fromProto);
  assert.equal(fromJson.spans, expectedSpans(sdkSpans));
  // Shared objects, as from protobuf.
  assert.ok(fromJson.spans.every((s) => s.resource === fromJson.spans[0]!.resource));
});

test('reference JSON encodes ids as hex, times as decimal strings and int64 as JSON numbers', () => {
  const body = referenceJson() as {
    resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<Record<string, unknown> & { attributes: Array<{ key: string; value: unknown }> }> }> }>;
  };
  const span = body.resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
  assert.match(String(span.traceId), /^[0-9a-f]{32}$/);
  assert.type(span.startTimeUnixNano, 'string');
  const root = body.resourceSpans[0]!.scopeSpans.flatMap((s) => s.spans).find((s) => s.attributes.some((a) => a.key === 'int.large'))!;
  // 2^60 leaves the serializer as a JSON number; JSON.parse rounds it to the same double, which
  // our decoder writes out exactly, matching the protobuf path's int64.
  assert.equal(root.attributes.find((a) => a.key === 'int.large')!.value, { intValue: 2 ** 60 });
  const decoded = decodeTraceRequestJson(body).spans.find((s) => s.attributes.some((a) => a.key === 'int.large'))!;
  assert.equal(decoded.attributes.find((a) => a.key === 'int.large')!.value, { intValue: '1152921504606846976' });
});

function sdkSpanWith(attributes: Record<string, unknown>): ReturnType<InMemorySpanExporter['getFinishedSpans']> {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  provider.getTracer('t').startSpan('s', { startTime: [1, 2] }).end([3, 4]);
  const spans = exporter.getFinishedSpans();
  Object.assign(spans[0]!.attributes, attributes);
  return spans;
}

test('reference divergence: integral numbers >= 2^63 are double in protobuf but intValue in JSON (we refuse the JSON)', () => {
  const spans = sdkSpanWith({ big: 1e19 });
  const proto = decodeTraceRequest(ProtobufTraceSerializer.serializeRequest(spans)!);
  assert.equal(proto.spans[0]!.attributes, [{ key: 'big', value: { doubleValue: 1e19 } }]);
  throwsJson(
    referenceJson(spans),
    'resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.intValue: expected a 64-bit integer, out of range',
  );
});

test('reference divergence: NaN and Infinity become JSON null, read back as an empty value', () => {
  const spans = sdkSpanWith({ nan: NaN, inf: Infinity });
  const proto = decodeTraceRequest(ProtobufTraceSerializer.serializeRequest(spans)!);
  assert.equal(proto.spans[0]!.attributes.map((a) => a.value), [{ doubleValue: NaN }, { doubleValue: Infinity }]);
  const json = decodeTraceRequestJson(referenceJson(spans));
  assert.equal(json.spans[0]!.attributes.map((a) => a.value), [{}, {}]);
});

test('round trip through our own encodeTracesJson', () => {
  const spans = decodeTraceRequest(ProtobufTraceSerializer.serializeRequest(sdkSpans)!).spans;
  const back = decodeTraceRequestJson(JSON.parse(JSON.stringify(encodeTracesJson(spans))));
  assert.equal(back.spans, spans);
});

test('snake_case keys, enum names, string numbers, uppercase hex, base64url', () => {
  const body = {
    resource_spans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { string_value: 'apiserver' } }], dropped_attributes_count: '2' },
        schema_url: 'rs',
        scope_spans: [
          {
            scope: { name: 'sc', version: 'v' },
            spans: [
              {
                trace_id: TRACE,
                span_id: SPAN,
                parent_span_id: 'AAAAAAAAAAAAAAAA',
                trace_state: 'a=b',
                name: 'n',
                kind: 'SPAN_KIND_CLIENT',
                start_time_unix_nano: '1700000000000000001',
                end_time_unix_nano: 1700000000000,
                attributes: [
                  { key: 'i', value: { int_value: '-9223372036854775808' } },
                  { key: 'd', value: { double_value: 'NaN' } },
                  { key: 'd2', value: { doubleValue: '-Infinity' } },
                  { key: 'd3', value: { doubleValue: '2.5' } },
                  { key: 'b', value: { bytes_value: '-_8' } },
                  { key: 'arr', value: { array_value: { values: [{ bool_value: true }, {}] } } },
                  { key: 'kv', value: { kvlist_value: { values: [{ key: 'k' }] } } },
                  { key: 'zero', value: { intValue: '007' } },
                ],
                events: [{ time_unix_nano: '5', name: 'e', dropped_attributes_count: 1 }],
                links: [{ trace_id: TRACE, span_id: 'aaaaaaaaaaaaaaaa', flags: 257 }],
                status: { code: 'STATUS_CODE_ERROR', message: 'bad' },
                flags: 1,
                unknownField: { ignored: true },
              },
            ],
          },
        ],
      },
    ],
  };
  const { spans, rejected } = decodeTraceRequestJson(body);
  assert.equal(rejected, []);
  const s = spans[0]!;
  assert.is(s.traceId, TRACE.toLowerCase());
  assert.is(s.parentSpanId, 'aaaaaaaaaaaaaaaa');
  assert.is(s.kind, 3);
  assert.is(s.startTimeUnixNano, '1700000000000000001');
  assert.is(s.endTimeUnixNano, '1700000000000');
  assert.equal(s.status, { code: 2, message: 'bad' });
  assert.equal(s.attributes.map((a) => a.value), [
    { intValue: '-9223372036854775808' },
    { doubleValue: NaN },
    { doubleValue: -Infinity },
    { doubleValue: 2.5 },
    { bytesValue: '+/8=' },
    { arrayValue: { values: [{ boolValue: true }, {}] } },
    { kvlistValue: { values: [{ key: 'k', value: {} }] } },
    { intValue: '7' },
  ]);
  assert.equal(s.events, [{ timeUnixNano: '5', name: 'e', attributes: [], droppedAttributesCount: 1 }]);
  assert.equal(s.links[0], { traceId: TRACE.toLowerCase(), spanId: 'aaaaaaaaaaaaaaaa', traceState: '', attributes: [], droppedAttributesCount: 0, flags: 257 });
  assert.equal(s.resource, { attributes: [{ key: 'service.name', value: { stringValue: 'apiserver' } }], droppedAttributesCount: 2, schemaUrl: 'rs' });
  assert.equal(s.scope, { name: 'sc', version: 'v', attributes: [], droppedAttributesCount: 0, schemaUrl: '' });
});

test('empty and null forms: {} is an empty request, null reads as the default', () => {
  assert.equal(decodeTraceRequestJson({}), { spans: [], rejected: [] });
  assert.equal(decodeTraceRequestJson({ resourceSpans: null }), { spans: [], rejected: [] });
  assert.equal(decodeTraceRequestJson({ resourceSpans: [{}] }), { spans: [], rejected: [] });
  const { spans } = decodeTraceRequestJson(oneSpan({ parentSpanId: null, name: null, kind: null, status: null, attributes: null }));
  const s: Partial<Span> = { ...spans[0]! };
  assert.is(s.name, '');
  assert.is(s.kind, 0);
  assert.is(s.parentSpanId, '');
  assert.equal(s.status, { code: 0, message: '' });
  assert.is(s.startTimeUnixNano, '0');
});

test('invalid ids reject only their span', () => {
  const span = (name: string, fields: Record<string, unknown>): Record<string, unknown> => ({ traceId: TRACE, spanId: SPAN, name, ...fields });
  const body = {
    resourceSpans: [
      { scopeSpans: [{ spans: [span('s0', {}), span('s1', { traceId: TRACE.slice(1) })] }, { spans: [span('s2', { spanId: 'zz' + SPAN.slice(2) })] }] },
      {
        scopeSpans: [
          {
            spans: [
              span('s3', { parentSpanId: '0000000000000000' }),
              span('s4', { spanId: '0000000000000000' }),
              span('s5', { parentSpanId: 'abc' }),
              span('s6', { traceId: '' }),
              span('s7', { links: [{ traceId: TRACE, spanId: SPAN }, { traceId: TRACE, spanId: '' }] }),
              span('s8', { traceId: undefined }),
            ],
          },
        ],
      },
    ],
  };
  const { spans, rejected } = decodeTraceRequestJson(body);
  assert.equal(spans.map((s) => s.name), ['s0', 's3']);
  assert.is(spans[1]!.parentSpanId, '');
  assert.equal(rejected, [
    { index: 1, reason: 'span 1: traceId is 31 hex digits, want 32' },
    { index: 2, reason: 'span 2: spanId "zzE19B7EC3C1B174" is not hex' },
    { index: 4, reason: 'span 4: spanId is all zero' },
    { index: 5, reason: 'span 5: parentSpanId is 3 hex digits, want 16' },
    { index: 6, reason: 'span 6: traceId is 0 hex digits, want 32' },
    { index: 7, reason: 'span 7: link 1 spanId is 0 hex digits, want 16' },
    { index: 8, reason: 'span 8: traceId is 0 hex digits, want 32' },
  ]);
});

test('wrong shapes throw with the JSON path', () => {
  throwsJson(null, 'request body: expected an object');
  throwsJson([], 'request body: expected an object');
  throwsJson('{}', 'request body: expected an object');
  throwsJson({ resourceSpans: {} }, 'resourceSpans: expected an array');
  // A document of another kind is not an empty request.
  throwsJson({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [] }, 'expected an ExportTraceServiceRequest with "resourceSpans", got an object with "kind", "apiVersion", "items"');
  throwsJson({ resourceSpans: [1] }, 'resourceSpans[0]: expected an object');
  throwsJson({ resourceSpans: [{ scopeSpans: [{}, { spans: {} }] }] }, 'resourceSpans[0].scopeSpans[1].spans: expected an array');
  throwsJson({ resourceSpans: [{ resource: [] }] }, 'resourceSpans[0].resource: expected an object');
  throwsJson({ resourceSpans: [{ resource: { attributes: [{ key: 1 }] } }] }, 'resourceSpans[0].resource.attributes[0].key: expected a string');
  throwsJson({ resourceSpans: [{ scopeSpans: [{ scope: { name: 5 } }] }] }, 'resourceSpans[0].scopeSpans[0].scope.name: expected a string');
  const at = 'resourceSpans[0].scopeSpans[0].spans[0]';
  throwsJson(oneSpan({ name: 7 }), `${at}.name: expected a string`);
  throwsJson(oneSpan({ traceId: 7 }), `${at}.traceId: expected a string`);
  throwsJson(oneSpan({ kind: 'SERVER' }), `${at}.kind: unknown enum value "SERVER"`);
  throwsJson(oneSpan({ kind: 1.5 }), `${at}.kind: expected a 32-bit integer`);
  throwsJson(oneSpan({ startTimeUnixNano: '12abc' }), `${at}.startTimeUnixNano: expected an unsigned 64-bit integer`);
  throwsJson(oneSpan({ startTimeUnixNano: -1 }), `${at}.startTimeUnixNano: expected an unsigned 64-bit integer, out of range`);
  throwsJson(oneSpan({ endTimeUnixNano: '18446744073709551616' }), `${at}.endTimeUnixNano: expected an unsigned 64-bit integer, out of range`);
  throwsJson(oneSpan({ droppedAttributesCount: -1 }), `${at}.droppedAttributesCount: expected an unsigned 32-bit integer`);
  throwsJson(oneSpan({ flags: 2 ** 32 }), `${at}.flags: expected an unsigned 32-bit integer`);
  throwsJson(oneSpan({ events: [{ name: 'e', attributes: 'no' }] }), `${at}.events[0].attributes: expected an array`);
  throwsJson(oneSpan({ links: [null] }), `${at}.links[0]: expected an object`);
  throwsJson(oneSpan({ status: { code: 'ERROR' } }), `${at}.status.code: unknown enum value "ERROR"`);
  throwsJson(oneSpan({ attributes: [{ key: 'k', value: { intValue: 'abc' } }] }), `${at}.attributes[0].value.intValue: expected a 64-bit integer`);
  throwsJson(oneSpan({ attributes: [{ key: 'k', value: { intValue: 1.5 } }] }), `${at}.attributes[0].value.intValue: expected a 64-bit integer`);
  throwsJson(oneSpan({ attributes: [{ key: 'k', value: { boolValue: 'true' } }] }), `${at}.attributes[0].value.boolValue: expected a boolean`);
  throwsJson(oneSpan({ attributes: [{ key: 'k', value: { doubleValue: 'x' } }] }), `${at}.attributes[0].value.doubleValue: expected a number`);
  throwsJson(oneSpan({ attributes: [{ key: 'k', value: { bytesValue: 'not base64!' } }] }), `${at}.attributes[0].value.bytesValue: expected base64`);
  throwsJson(oneSpan({ attributes: [{ key: 'k', value: { stringValue: 'a', intValue: 1 } }] }), `${at}.attributes[0].value: both stringValue and intValue are set`);
  throwsJson(
    oneSpan({ attributes: [{ key: 'k', value: { arrayValue: { values: [{ kvlistValue: { values: [{ key: 'x', value: { stringValue: 1 } }] } }] } } }] }),
    `${at}.attributes[0].value.arrayValue.values[0].kvlistValue.values[0].value.stringValue: expected a string`,
  );
});


/** An OTLP/JSON AnyValue of `levels` nested arrays (or one-member kvlists) around a string, built without recursion. */
function nestedJson(levels: number, kind: 'array' | 'kvlist'): Record<string, unknown> {
  let v: Record<string, unknown> = { stringValue: 'leaf' };
  for (let i = 0; i < levels; i++) v = kind === 'array' ? { arrayValue: { values: [v] } } : { kvlistValue: { values: [{ key: 'k', value: v }] } };
  return v;
}

/** The same as JSON text, as a receiver gets it (JSON.parse does not recurse in V8). */
function nestedJsonText(levels: number, kind: 'array' | 'kvlist'): string {
  return kind === 'array'
    ? '{"arrayValue":{"values":['.repeat(levels) + '{"stringValue":"leaf"}' + ']}}'.repeat(levels)
    : '{"kvlistValue":{"values":[{"key":"k","value":'.repeat(levels) + '{"stringValue":"leaf"}' + '}]}}'.repeat(levels);
}

const deepReason = (key: string, what = '') => `${what}attribute "${key}": array or kvlist nested deeper than ${MAX_ANY_VALUE_DEPTH} levels`;

test(`nesting: arrays and kvlists up to ${MAX_ANY_VALUE_DEPTH} deep decode; one level more rejects only that span`, () => {
  for (const kind of ['array', 'kvlist'] as const) {
    const body = {
      resourceSpans: [{ scopeSpans: [{ spans: [
        { traceId: TRACE, spanId: SPAN, name: 'ok', attributes: [{ key: 'deep', value: nestedJson(MAX_ANY_VALUE_DEPTH, kind) }] },
        { traceId: TRACE, spanId: SPAN, name: 'too deep', attributes: [{ key: 'plain', value: { intValue: 1 } }, { key: 'deeper', value: nestedJson(MAX_ANY_VALUE_DEPTH + 1, kind) }] },
        { traceId: TRACE, spanId: SPAN, name: 'event', events: [{ name: 'e', attributes: [{ key: 'in.event', value: nestedJson(MAX_ANY_VALUE_DEPTH + 1, kind) }] }] },
        { traceId: TRACE, spanId: SPAN, name: 'link', links: [{ traceId: TRACE, spanId: SPAN, attributes: [{ key: 'in.link', value: nestedJson(MAX_ANY_VALUE_DEPTH + 1, kind) }] }] },
        { traceId: TRACE, spanId: SPAN, name: 'after' },
      ] }] }],
    };
    const { spans, rejected } = decodeTraceRequestJson(body);
    assert.equal(spans.map((s) => s.name), ['ok', 'after'], kind);
    assert.equal(spans[0]!.attributes[0]!.value, nestedJson(MAX_ANY_VALUE_DEPTH, kind));
    assert.equal(rejected, [
      { index: 1, reason: `span 1: ${deepReason('deeper')}` },
      { index: 2, reason: `span 2: ${deepReason('in.event')}` },
      { index: 3, reason: `span 3: ${deepReason('in.link')}` },
    ], kind);
    // A value at the limit survives our protobuf encoder and decoder too.
    assert.equal(decodeTraceRequest(encodeTraceRequest(spans)).spans, spans, kind);
  }
});

test('nesting: a too deep resource or scope attribute rejects every span under it', () => {
  const deep = [{ key: 'x', value: nestedJson(MAX_ANY_VALUE_DEPTH + 1, 'array') }];
  const span = (name: string, spanId = SPAN) => ({ traceId: TRACE, spanId, name });
  const { spans, rejected } = decodeTraceRequestJson({
    resourceSpans: [
      { resource: { attributes: deep }, scopeSpans: [{ spans: [span('r0.a'), span('r0.b', '0000000000000000')] }, { spans: [span('r0.c')] }] },
      { scopeSpans: [{ scope: { name: 's', attributes: deep }, spans: [span('r1.s0')] }, { spans: [span('r1.s1')] }] },
    ],
  });
  assert.equal(spans.map((s) => s.name), ['r1.s1']);
  assert.equal(rejected, [
    { index: 0, reason: `span 0: ${deepReason('x', 'resource ')}` },
    { index: 1, reason: 'span 1: spanId is all zero' },
    { index: 2, reason: `span 2: ${deepReason('x', 'resource ')}` },
    { index: 3, reason: `span 3: ${deepReason('x', 'scope ')}` },
  ]);
});

test('nesting: 100,000 levels from JSON text are rejected without a stack overflow; unknown keys are never walked', () => {
  for (const kind of ['array', 'kvlist'] as const) {
    const text = `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"${TRACE}","spanId":"${SPAN}","name":"deep","attributes":[{"key":"k","value":${nestedJsonText(100_000, kind)}}]},{"traceId":"${TRACE}","spanId":"${SPAN}","name":"next","unknownField":${nestedJsonText(100_000, kind)}}]}]}]}`;
    const { spans, rejected } = decodeTraceRequestJson(JSON.parse(text));
    assert.equal(spans.map((s) => s.name), ['next'], kind);
    assert.equal(rejected, [{ index: 0, reason: `span 0: ${deepReason('k')}` }], kind);
  }
});

test('found by the fuzzer: enum names are own names only ("__proto__", "constructor" are unknown values)', () => {
  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
    throwsJson(oneSpan({ status: { code: name } }), `resourceSpans[0].scopeSpans[0].spans[0].status.code: unknown enum value ${JSON.stringify(name)}`);
    throwsJson(oneSpan({ kind: name }), `resourceSpans[0].scopeSpans[0].spans[0].kind: unknown enum value ${JSON.stringify(name)}`);
  }
});

test('found by the fuzzer: -0 integers read as 0, so the span encodes to protobuf and back unchanged', () => {
  const { spans } = decodeTraceRequestJson(oneSpan({ kind: -0, flags: -0, droppedAttributesCount: '0', status: { code: '-0' }, attributes: [{ key: 'd', value: { doubleValue: -0 } }] }));
  const s = spans[0]!;
  assert.ok(Object.is(s.kind, 0) && Object.is(s.flags, 0) && Object.is(s.status.code, 0));
  // A double keeps its sign: protobuf carries it.
  assert.ok(Object.is((s.attributes[0]!.value as { doubleValue: number }).doubleValue, -0));
  assert.equal(decodeTraceRequest(encodeTraceRequest(spans)).spans, spans);
});

test('found by the fuzzer: lone surrogates in strings become U+FFFD, as invalid UTF-8 does in protobuf', () => {
  const body = JSON.parse(JSON.stringify(oneSpan({ name: 'a\ud800b', traceState: '\udfff', attributes: [{ key: 'k\udc00', value: { stringValue: 'v\ud83d' } }], status: { message: '\ud83d\ude80 ok' } })));
  const { spans } = decodeTraceRequestJson(body);
  const s = spans[0]!;
  assert.is(s.name, 'a\ufffdb');
  assert.is(s.traceState, '\ufffd');
  assert.equal(s.attributes, [{ key: 'k\ufffd', value: { stringValue: 'v\ufffd' } }]);
  assert.is(s.status.message, '\ud83d\ude80 ok', 'a valid pair is kept');
  assert.equal(decodeTraceRequest(encodeTraceRequest(spans)).spans, spans);
});

test('found by the fuzzer: error messages quote at most 60 characters of a value (a 1 MiB enum name was echoed whole)', () => {
  const big = 'x'.repeat(1 << 20);
  throwsJson(oneSpan({ kind: big }), `resourceSpans[0].scopeSpans[0].spans[0].kind: unknown enum value "${'x'.repeat(57)}..."`);
  throwsJson({ [big]: 1 }, `expected an ExportTraceServiceRequest with "resourceSpans", got an object with "${'x'.repeat(57)}..."`);
});

test('found by the fuzzer: encodeTracesJson keeps the scope\'s droppedAttributesCount', () => {
  const { spans } = decodeTraceRequestJson({ resourceSpans: [{ scopeSpans: [{ scope: { name: 's', droppedAttributesCount: 3 }, spans: [{ traceId: TRACE, spanId: SPAN, name: 'x' }] }] }] });
  assert.is(spans[0]!.scope.droppedAttributesCount, 3);
  assert.equal(decodeTraceRequestJson(encodeTracesJson(spans)).spans, spans);
});

test.run();
