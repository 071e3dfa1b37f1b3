/**
 * Spans made by the real OpenTelemetry JS SDK, and the span model the OTLP spec says they map to
 * (computed here from the ReadableSpans, independently of any serializer or decoder).
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import type { Attributes, HrTime, Link } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { AnyValue, KeyValue, Resource, Scope, Span } from '../src/index.js';

/** Every attribute value type the SDK accepts. */
export const SDK_ATTRIBUTES: Attributes = {
  str: 'value',
  'str.empty': '',
  'str.unicode': 'héllo wörld ✓ 日本語 🚀',
  'bool.true': true,
  'bool.false': false,
  int: 42,
  'int.zero': 0,
  'int.negative': -17,
  'int.max_safe': Number.MAX_SAFE_INTEGER,
  'int.min_safe': Number.MIN_SAFE_INTEGER,
  'int.large': 2 ** 60,
  'int.large_negative': -(2 ** 62) - 2048,
  'int.min': -(2 ** 63),
  'int.below_2_63': 2 ** 63 - 1024,
  double: 3.14159,
  'double.negative': -0.5,
  'double.tiny': 5e-324,
  'double.big_fraction': 123456789.123,
  'arr.str': ['a', 'b', ''],
  'arr.bool': [true, false],
  'arr.int': [1, -2, 2 ** 60],
  'arr.double': [1.5, -2.25],
  'arr.empty': [],
  'arr.with_nulls': ['a', null, 'b', undefined],
};

/** Values the transformer encodes but the SDK's attribute sanitizer refuses: injected after end. */
export const TRANSFORMER_ONLY_ATTRIBUTES: Record<string, unknown> = {
  bytes: new Uint8Array([0, 1, 2, 0xfe, 0xff]),
  'bytes.empty': new Uint8Array(0),
  kvlist: { a: 1, b: 'x', c: [true, 2.5], d: { e: new Uint8Array([9, 8]), f: {} } },
};

export const T0: HrTime = [1_760_000_000, 123_456_789];
const at = (ns: number): HrTime => [T0[0] + Math.floor((T0[1] + ns) / 1e9), (T0[1] + ns) % 1e9];

/** Makes a varied set of finished spans with the SDK (two tracers, limits hit, remote parent...). */
export function makeSdkSpans(): ReadableSpan[] {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes(
      { 'service.name': 'apiserver', 'host.cpu.count': 2, 'k8s.cluster.name': 'kind' },
      { schemaUrl: 'https://opentelemetry.io/schemas/1.30.0' },
    ),
    spanLimits: {
      attributeCountLimit: 40,
      eventCountLimit: 3,
      linkCountLimit: 2,
      attributePerEventCountLimit: 30,
      attributePerLinkCountLimit: 1,
    },
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  const apiserver = provider.getTracer('k8s.io/apiserver', '1.34.1');
  const etcd = provider.getTracer('go.etcd.io/etcd/client/v3', undefined, {
    schemaUrl: 'https://opentelemetry.io/schemas/1.24.0',
  });

  // The caller's context, as kube-apiserver sees it in a traceparent header.
  const remote = {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: new TraceState('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'),
  };
  const root = apiserver.startSpan(
    'POST /api/v1/namespaces/{:namespace}/configmaps',
    { kind: SpanKind.SERVER, startTime: T0, attributes: SDK_ATTRIBUTES },
    trace.setSpanContext(ROOT_CONTEXT, remote),
  );
  root.setStatus({ code: SpanStatusCode.OK, message: 'ignored for OK' });
  const rootCtx = trace.setSpan(ROOT_CONTEXT, root);

  // Three links over a limit of two: the oldest is dropped; one attribute over the per-link limit.
  const links: Link[] = [
    { context: { traceId: '4bf92f3577b34da6a3ce929d0e0e4737', spanId: '53995c3f42cd8ad9', traceFlags: 1 } },
    { context: { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '53995c3f42cd8ad8', traceFlags: TraceFlags.NONE } },
    { context: { ...remote, spanId: '00f067aa0ba902b7' }, attributes: { 'link.reason': 'caller', n: 7 } },
  ];
  const create = apiserver.startSpan('Create', { kind: SpanKind.INTERNAL, startTime: at(1_000), links }, rootCtx);
  create.setAttributes({ 'audit-id': '4b1a3c2d-6e5f-4a1b-9c8d-7e6f5a4b3c2d', verb: 'create', resource: 'configmaps' });
  for (let i = 0; i < 45; i++) create.setAttribute(`extra.${i}`, i); // over the limit: dropped count
  create.addEvent('About to convert to expected version', at(2_000));
  create.addEvent('Conversion done', { a: 1 }, at(3_000));
  create.addEvent('About to store object in database', { ...SDK_ATTRIBUTES, more: 1 }, at(4_001));
  const many: Attributes = {};
  for (let i = 0; i < 35; i++) many[`a${i}`] = i; // over the per-event limit: dropped count
  create.addEvent('Write to database call succeeded', many, at(5_999));
  create.addEvent('About to write a response', at(7_000)); // fifth event over a limit of 3: two dropped
  const createCtx = trace.setSpan(ROOT_CONTEXT, create);

  const store = apiserver.startSpan('Create etcd3', { kind: SpanKind.INTERNAL, startTime: at(4_100) }, createCtx);
  store.setAttribute('key', '/registry/configmaps/default/cm1');
  const txn = etcd.startSpan('etcdserverpb.KV/Txn', { kind: SpanKind.CLIENT, startTime: at(4_200) }, trace.setSpan(ROOT_CONTEXT, store));
  txn.setStatus({ code: SpanStatusCode.ERROR, message: 'etcdserver: request timed out' });
  txn.end(at(5_800));
  store.end(at(5_900));

  const webhook = apiserver.startSpan('Call mutating webhook', { kind: SpanKind.PRODUCER, startTime: at(1_500) }, createCtx);
  webhook.setAttributes({ webhook: 'objset.kube-correlate.io', operation: 'CREATE' });
  webhook.end(at(1_900));
  const consumer = etcd.startSpan('watch event', { kind: SpanKind.CONSUMER, startTime: at(6_000) }, createCtx);
  consumer.setStatus({ code: SpanStatusCode.ERROR });
  consumer.end(at(6_500));
  create.end(at(8_000));
  root.end([T0[0] + 1, 999_999_999]);

  // A span with default (clock) times, in a fresh trace.
  apiserver.startSpan('SerializeObject').end();

  const spans = exporter.getFinishedSpans();
  // Inject values the transformer supports but the SDK sanitizer drops.
  const rootReadable = spans.find((s) => s.spanContext().spanId === root.spanContext().spanId)!;
  Object.assign(rootReadable.attributes as Record<string, unknown>, TRANSFORMER_ONLY_ATTRIBUTES);
  const storeEvent = spans.find((s) => s.name === 'Create')!.events.find((e) => e.name.startsWith('About to store'))!;
  Object.assign(storeEvent.attributes as Record<string, unknown>, {
    'event.bytes': new Uint8Array([1, 2, 3]),
    'event.kvlist': { k: 'v' },
  });
  // Scope attributes are not settable through the JS API yet; the transformer still writes them.
  const scopeWithAttributes = spans.find((s) => s.name === 'watch event')!.instrumentationScope as {
    attributes?: Attributes;
  };
  scopeWithAttributes.attributes = { 'scope.attr': 'x', 'scope.n': 3 };
  return spans;
}

export function hrTimeToNanos(t: HrTime): string {
  return (BigInt(t[0]) * 1_000_000_000n + BigInt(t[1])).toString();
}

/** The OTLP AnyValue of a JS attribute value (int64 when integral and in range, else double). */
export function expectedValue(v: unknown): AnyValue {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') {
    return Number.isInteger(v) && v >= -(2 ** 63) && v < 2 ** 63 ? { intValue: BigInt(v).toString() } : { doubleValue: v };
  }
  if (v instanceof Uint8Array) return { bytesValue: Buffer.from(v).toString('base64') };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(expectedValue) } };
  if (typeof v === 'object' && v !== null) return { kvlistValue: { values: expectedAttributes(v as Attributes) } };
  return {};
}

export function expectedAttributes(attrs: Attributes | Record<string, unknown> | undefined): KeyValue[] {
  return Object.entries(attrs ?? {}).map(([key, value]) => ({ key, value: expectedValue(value) }));
}

/** OTLP span flags: W3C trace flags, plus the "has is_remote" bit and the is_remote bit. */
function expectedFlags(traceFlags: number, isRemote: boolean | undefined): number {
  return (traceFlags & 0xff) | 0x100 | (isRemote ? 0x200 : 0);
}

/** The spans in request order: grouped by resource, then scope, in first-seen order. */
export function expectedSpans(readable: readonly ReadableSpan[]): Span[] {
  const groups = new Map<unknown, Map<unknown, ReadableSpan[]>>();
  for (const s of readable) {
    let scopes = groups.get(s.resource);
    if (!scopes) groups.set(s.resource, (scopes = new Map()));
    let list = scopes.get(s.instrumentationScope);
    if (!list) scopes.set(s.instrumentationScope, (list = []));
    list.push(s);
  }
  const out: Span[] = [];
  for (const scopes of groups.values()) {
    let resource: Resource | undefined;
    for (const list of scopes.values()) {
      const first = list[0]!;
      resource ??= {
        attributes: expectedAttributes(first.resource.attributes),
        droppedAttributesCount: 0,
        schemaUrl: first.resource.schemaUrl ?? '',
      };
      const is = first.instrumentationScope as typeof first.instrumentationScope & { attributes?: Attributes };
      const scope: Scope = {
        name: is.name,
        version: is.version ?? '',
        attributes: expectedAttributes(is.attributes),
        droppedAttributesCount: 0,
        schemaUrl: is.schemaUrl ?? '',
      };
      for (const s of list) {
        const ctx = s.spanContext();
        out.push({
          traceId: ctx.traceId,
          spanId: ctx.spanId,
          parentSpanId: s.parentSpanContext?.spanId ?? '',
          traceState: ctx.traceState?.serialize() ?? '',
          flags: expectedFlags(ctx.traceFlags, s.parentSpanContext?.isRemote),
          name: s.name,
          kind: s.kind + 1, // the API's enum starts at INTERNAL = 0, OTLP's at UNSPECIFIED = 0
          startTimeUnixNano: hrTimeToNanos(s.startTime),
          endTimeUnixNano: hrTimeToNanos(s.endTime),
          attributes: expectedAttributes(s.attributes),
          droppedAttributesCount: s.droppedAttributesCount,
          events: s.events.map((e) => ({
            timeUnixNano: hrTimeToNanos(e.time),
            name: e.name,
            attributes: expectedAttributes(e.attributes),
            droppedAttributesCount: e.droppedAttributesCount ?? 0,
          })),
          droppedEventsCount: s.droppedEventsCount,
          links: s.links.map((l) => ({
            traceId: l.context.traceId,
            spanId: l.context.spanId,
            traceState: l.context.traceState?.serialize() ?? '',
            attributes: expectedAttributes(l.attributes),
            droppedAttributesCount: l.droppedAttributesCount ?? 0,
            flags: expectedFlags(l.context.traceFlags, l.context.isRemote),
          })),
          droppedLinksCount: s.droppedLinksCount,
          status: { code: s.status.code, message: s.status.message ?? '' },
          resource,
          scope,
        });
      }
    }
  }
  return out;
}
