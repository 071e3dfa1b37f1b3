import * as grpc from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PermanentError, RetryableError } from '../../src/component/errors.js';
import { fromGrpcStatus, fromHttpStatus, fromKafkaError, grpcError, retryAfterHeaders, statusOf } from '../../src/component/status.js';

test('receivers: a RetryableError is UNAVAILABLE / 503 with Retry-After in whole seconds (1 s unless it says)', () => {
  const r = statusOf(new RetryableError('busy now'));
  assert.equal([r.grpc, r.http, r.retryable, r.reason, r.message, r.internal], [grpc.status.UNAVAILABLE, 503, true, 'busy', 'busy now', false]);
  assert.equal(retryAfterHeaders(r), { 'retry-after': '1' });
  assert.equal(retryAfterHeaders(statusOf(new RetryableError('x', 2000))), { 'retry-after': '2' });
  assert.equal(retryAfterHeaders(statusOf(new RetryableError('x', 1500))), { 'retry-after': '2' }, 'rounded up: never sooner than asked');
  assert.equal(retryAfterHeaders(statusOf(new RetryableError('x', 0))), { 'retry-after': '0' });
});

test('receivers: the memory limiter\'s refusal is counted as memory_limit, other retryable reasons as busy', () => {
  const r = statusOf(new RetryableError('memory limit: above', 2000, { reason: 'memory_limit' }));
  assert.equal([r.grpc, r.http, r.retryable, r.reason], [grpc.status.UNAVAILABLE, 503, true, 'memory_limit']);
  assert.equal(retryAfterHeaders(r), { 'retry-after': '2' });
  assert.is(statusOf(new RetryableError('queue', 2000, { reason: 'queue_full' })).reason, 'busy');
});

test('receivers: a PermanentError keeps its reason; its HTTP status gives the gRPC code', () => {
  const cases: Array<[number | undefined, grpc.status]> = [
    [undefined, grpc.status.INVALID_ARGUMENT], [400, grpc.status.INVALID_ARGUMENT], [413, grpc.status.RESOURCE_EXHAUSTED],
    [415, grpc.status.INVALID_ARGUMENT], [404, grpc.status.UNIMPLEMENTED], [405, grpc.status.UNIMPLEMENTED],
    [401, grpc.status.UNAUTHENTICATED], [403, grpc.status.PERMISSION_DENIED],
  ];
  for (const [http, code] of cases) {
    const r = statusOf(new PermanentError('no', { reason: 'r', ...(http ? { http } : {}) }));
    assert.equal([r.grpc, r.http, r.retryable, r.reason, r.internal], [code, http ?? 400, false, 'r', false], String(http));
    assert.equal(retryAfterHeaders(r), {});
  }
});

test('receivers: any other error is INTERNAL / 500, counted as internal and flagged for the log', () => {
  const r = statusOf(new TypeError('boom'));
  assert.equal([r.grpc, r.http, r.retryable, r.reason, r.message, r.internal], [grpc.status.INTERNAL, 500, false, 'internal', 'internal error: boom', true]);
});

test('what a receiver answers, an exporter reads back the same: retryable, with the delay (RetryInfo and retry-after)', () => {
  for (const delay of [0, 250, 1000, 2000]) {
    const e = grpcError(statusOf(new RetryableError('slow down', delay)));
    assert.is(e.code, grpc.status.UNAVAILABLE);
    assert.is(e.metadata!.get('retry-after')[0], String(Math.ceil(delay / 1000)));
    const back = fromGrpcStatus(e.code!, e.metadata, e.details!);
    assert.instance(back, RetryableError);
    assert.is((back as RetryableError).delayMs, delay, 'from RetryInfo, to the millisecond');
    assert.is(back.reason, 'unavailable');
  }
  const permanent = grpcError(statusOf(new PermanentError('bad', { reason: 'malformed_protobuf' })));
  assert.is(permanent.metadata!.get('grpc-status-details-bin').length, 0);
  assert.instance(fromGrpcStatus(permanent.code!, permanent.metadata, 'bad'), PermanentError);
});

test('exporters: gRPC codes the OTLP specification calls retryable, and the reasons they are counted under', () => {
  const retryable = new Map<grpc.status, string>([
    [grpc.status.CANCELLED, 'cancelled'], [grpc.status.DEADLINE_EXCEEDED, 'timeout'], [grpc.status.ABORTED, 'aborted'],
    [grpc.status.OUT_OF_RANGE, 'out_of_range'], [grpc.status.UNAVAILABLE, 'unavailable'], [grpc.status.DATA_LOSS, 'data_loss'],
  ]);
  for (let code = 1; code <= 16; code++) {
    const e = fromGrpcStatus(code, new grpc.Metadata(), 'x');
    const want = retryable.get(code);
    assert.is(e.retryable, want !== undefined, grpc.status[code]);
    if (want) assert.is(e.reason, want);
    else if (code !== grpc.status.RESOURCE_EXHAUSTED) assert.is(e.reason, grpc.status[code]!.toLowerCase());
  }
  const throttled = fromGrpcStatus(grpc.status.RESOURCE_EXHAUSTED, new grpc.Metadata(), 'too big');
  assert.equal([throttled.retryable, throttled.reason], [false, 'throttled'], 'RESOURCE_EXHAUSTED without RetryInfo: retrying cannot help');
  const withInfo = grpcError({ grpc: grpc.status.RESOURCE_EXHAUSTED, http: 429, retryable: true, delayMs: 3000, reason: 'busy', message: 'later', internal: false });
  const e = fromGrpcStatus(withInfo.code!, withInfo.metadata, 'later');
  assert.equal([e.retryable, e.reason, (e as RetryableError).delayMs], [true, 'throttled', 3000]);
});

test('exporters: HTTP 429, 502, 503, 504 are retryable (honouring Retry-After); other statuses are not', () => {
  const t = fromHttpStatus(429, { 'retry-after': '7' }, 'slow');
  assert.equal([t.retryable, t.reason, (t as RetryableError).delayMs], [true, 'throttled', 7000]);
  for (const s of [502, 503, 504]) assert.equal([fromHttpStatus(s, {}, '').retryable, fromHttpStatus(s, {}, '').reason], [true, 'unavailable'], String(s));
  for (const [s, reason] of [[400, 'http_4xx'], [404, 'http_4xx'], [413, 'http_4xx'], [500, 'http_5xx'], [501, 'http_5xx']] as const) {
    const e = fromHttpStatus(s, { 'retry-after': '1' }, '');
    assert.equal([e.retryable, e.reason], [false, reason], String(s));
  }
  const date = new Date(Date.now() + 60_000).toUTCString();
  const d = (fromHttpStatus(503, { 'retry-after': date }, '') as RetryableError).delayMs!;
  assert.ok(d > 55_000 && d <= 60_000, `Retry-After as a date: ${d}`);
});

test('Kafka: a failed produce is retryable in 1 s; a pipeline error passes through', () => {
  const e = fromKafkaError(new Error('broker down'));
  assert.instance(e, RetryableError);
  assert.equal([e.message, e.reason, (e as RetryableError).delayMs], ['Kafka unavailable: broker down', 'unavailable', 1000]);
  const timeout = new RetryableError('late', 1000, { reason: 'timeout' });
  assert.is(fromKafkaError(timeout), timeout);
});

test.run();
