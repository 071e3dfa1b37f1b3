import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { gunzipSync } from 'node:zlib';
import { makeSpan } from '@kube-correlate/fixtures';
import { decodeTraceRequest, encodeTraceRequest, encodeTraceResponse } from '@kube-correlate/otlp';
import { OtlpClient, type OtlpClientOptions } from '../../../src/exporters/otlp/client.js';
import { OtlpGrpcReceiver } from '../../../src/receivers/otlp/grpc.js';
import { OtlpHttpReceiver } from '../../../src/receivers/otlp/http.js';
import { EXPORT_PATH } from '../../../src/wire/otlp-service.js';
import { PipelineError, RetryableError } from '../../../src/component/errors.js';
import type { Span } from '@kube-correlate/otlp';
import { PipelineMetrics, silentLogger } from '@kube-correlate/telemetry';

/** Closed after each test, last opened first, pass or fail: a failed assertion cannot leave the process running. */
const cleanup: (() => unknown)[] = [];
test.after.each(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const spans = [makeSpan({ trace: 1, id: 1, name: 'root' }), makeSpan({ trace: 1, id: 2, parent: 1, name: 'child' })];
const fastRetry = { enabled: true, initialIntervalMs: 20, maxIntervalMs: 50, maxElapsedMs: 2000 };

type GrpcReply = Buffer | { code: grpc.status; details: string; metadata?: grpc.Metadata } | 'hang';

/** A real grpc-js server on 127.0.0.1:0 answering Export with whatever `reply` returns for call n (1-based). */
async function grpcServer(reply: (request: Buffer, n: number, metadata: grpc.Metadata) => GrpcReply) {
  const server = new grpc.Server();
  const passthrough = (b: Buffer) => b;
  let calls = 0;
  server.addService(
    { Export: { path: EXPORT_PATH, requestStream: false, responseStream: false, requestSerialize: passthrough, requestDeserialize: passthrough, responseSerialize: passthrough, responseDeserialize: passthrough } },
    {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const r = reply(call.request, ++calls, call.metadata);
        if (r === 'hang') return;
        if (Buffer.isBuffer(r)) callback(null, r);
        else callback({ ...r, message: r.details, metadata: r.metadata ?? new grpc.Metadata() } as Partial<grpc.ServiceError>);
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanup.push(() => server.forceShutdown());
  return { endpoint: `127.0.0.1:${port}`, calls: () => calls, close: () => server.forceShutdown() };
}

interface Received { headers: http.IncomingHttpHeaders; url: string; body: Buffer }

/** A real node:http server on 127.0.0.1:0; `reply` answers request n (1-based), or leaves it hanging. */
async function httpServer(reply: (req: Received, n: number, res: http.ServerResponse) => void) {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { headers: req.headers, url: req.url ?? '', body: Buffer.concat(chunks) };
      received.push(r);
      reply(r, received.length, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    if (server.listening) server.close(() => resolve());
    else resolve();
  });
  cleanup.push(close);
  return { endpoint: `http://127.0.0.1:${port}`, received, close };
}

function newClient(opts: OtlpClientOptions): OtlpClient {
  const client = new OtlpClient(opts);
  cleanup.push(() => client.close());
  return client;
}

function grpcClient(endpoint: string, extra: Partial<OtlpClientOptions> = {}) {
  return newClient({ protocol: 'grpc', endpoint, timeoutMs: 2000, retry: fastRetry, ...extra });
}

/** The failure, from the one error tree: `delayMs` is set on retryable ones only. */
async function rejection(p: Promise<unknown>): Promise<PipelineError & { delayMs?: number }> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, PipelineError);
    return err as PipelineError;
  }
  assert.unreachable('expected the export to fail');
  throw new Error('unreachable');
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** Protobuf helpers for google.rpc.Status with RetryInfo (test input only). */
const varint = (n: number): number[] => {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
};
const ld = (field: number, bytes: Uint8Array | number[]): number[] => [...varint(field * 8 + 2), ...varint(bytes.length), ...bytes];
const vf = (field: number, n: number): number[] => [...varint(field * 8), ...varint(n)];
function statusWithRetryInfo(code: number, retryDelayMs: number): Buffer {
  const duration = [...vf(1, Math.floor(retryDelayMs / 1000)), ...vf(2, (retryDelayMs % 1000) * 1e6)];
  const any = [...ld(1, Buffer.from('type.googleapis.com/google.rpc.RetryInfo')), ...ld(2, ld(1, duration))];
  return Buffer.from([...vf(1, code), ...ld(2, Buffer.from('slow down')), ...ld(3, any)]);
}

test('gRPC: spans round-trip to a grpc-js server; headers arrive as metadata', async () => {
  let got: ReturnType<typeof decodeTraceRequest> | undefined;
  let tenant: unknown;
  const server = await grpcServer((req, _n, md) => {
    got = decodeTraceRequest(req);
    tenant = md.get('x-tenant')[0];
    return Buffer.from(encodeTraceResponse());
  });
  const client = grpcClient(`http://${server.endpoint}`, { headers: { 'X-Tenant': 'blue' } });
  const result = await client.export(spans);
  assert.equal(result, { rejectedSpans: 0, errorMessage: '', attempts: 1 });
  assert.equal(got!.spans.map((s) => [s.traceId, s.spanId, s.parentSpanId, s.name]), spans.map((s) => [s.traceId, s.spanId, s.parentSpanId, s.name]));
  assert.is(tenant, 'blue');
  client.close();
  client.close();
});

test('gRPC: partial success is reported', async () => {
  const server = await grpcServer((req) => {
    assert.is(decodeTraceRequest(req).spans.length, 2);
    return Buffer.from(encodeTraceResponse({ rejectedSpans: 2, errorMessage: 'spans too old' }));
  });
  const client = grpcClient(server.endpoint);
  assert.equal(await client.export(spans), { rejectedSpans: 2, errorMessage: 'spans too old', attempts: 1 });
});

test('gRPC: gzip compression: the message frame is gzip-compressed and says so', async () => {
  // grpc-js servers hide grpc-encoding from handlers, so this one reads the HTTP/2 stream itself.
  const server = http2.createServer();
  const seen: { encoding: unknown; compressedFlag: number; message: Buffer }[] = [];
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const frame = Buffer.concat(chunks);
      const message = frame.subarray(5, 5 + frame.readUInt32BE(1));
      seen.push({ encoding: headers['grpc-encoding'], compressedFlag: frame[0]!, message: frame[0] ? gunzipSync(message) : message });
      const reply = Buffer.from(encodeTraceResponse({ rejectedSpans: 0, errorMessage: 'compressed ok' }));
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(reply.length, 1);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.concat([prefix, reply]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => server.listening && new Promise((resolve) => server.close(resolve)));
  const client = grpcClient(`127.0.0.1:${(server.address() as net.AddressInfo).port}`, { compression: 'gzip' });
  assert.equal(await client.export(spans), { rejectedSpans: 0, errorMessage: 'compressed ok', attempts: 1 });
  assert.is(seen.length, 1);
  assert.is(seen[0]!.encoding, 'gzip');
  assert.is(seen[0]!.compressedFlag, 1);
  assert.equal(new Uint8Array(seen[0]!.message), encodeTraceRequest(spans));
});

test('gRPC: UNAVAILABLE twice then OK succeeds on attempt 3, onRetry called before each wait', async () => {
  const server = await grpcServer((_req, n) => (n <= 2 ? { code: grpc.status.UNAVAILABLE, details: 'busy' } : Buffer.alloc(0)));
  const retries: { attempt: number; delayMs: number; reason: string }[] = [];
  const client = grpcClient(server.endpoint, { onRetry: (i) => retries.push(i) });
  const result = await client.export(spans);
  assert.equal(result, { rejectedSpans: 0, errorMessage: '', attempts: 3 });
  assert.equal(retries.map((r) => [r.attempt, r.reason]), [[1, 'unavailable'], [2, 'unavailable']]);
  assert.ok(retries[0]!.delayMs >= 10 && retries[0]!.delayMs <= 30, `first delay ${retries[0]!.delayMs} is 20ms ± 50%`);
  assert.is(server.calls(), 3);
});

test('gRPC: INVALID_ARGUMENT is permanent: one attempt', async () => {
  const server = await grpcServer(() => ({ code: grpc.status.INVALID_ARGUMENT, details: 'bad span' }));
  const client = grpcClient(server.endpoint);
  const err = await rejection(client.export(spans));
  assert.is(err.retryable, false);
  assert.is(err.reason, 'invalid_argument');
  assert.is(err.attempts, 1);
  assert.match(err.message, 'INVALID_ARGUMENT (3): bad span');
  assert.is(server.calls(), 1);
});

test('gRPC: RESOURCE_EXHAUSTED is permanent without RetryInfo, retried after RetryInfo.retry_delay with it', async () => {
  const plain = await grpcServer(() => ({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'message too large' }));
  const c1 = grpcClient(plain.endpoint);
  const err = await rejection(c1.export(spans));
  assert.is(err.retryable, false);
  assert.is(plain.calls(), 1);

  const throttling = await grpcServer((_req, n) => {
    if (n > 1) return Buffer.alloc(0);
    const md = new grpc.Metadata();
    md.set('grpc-status-details-bin', statusWithRetryInfo(grpc.status.RESOURCE_EXHAUSTED, 70));
    return { code: grpc.status.RESOURCE_EXHAUSTED, details: 'slow down', metadata: md };
  });
  const delays: number[] = [];
  const c2 = grpcClient(throttling.endpoint, { onRetry: (i) => delays.push(i.delayMs) });
  assert.is((await c2.export(spans)).attempts, 2);
  assert.equal(delays, [70], 'the server-given delay, not the backoff');
});

test('gRPC: nothing listening: retryable failure once maxElapsedMs is spent', async () => {
  const port = await closedPort();
  let retries = 0;
  const client = grpcClient(`127.0.0.1:${port}`, { retry: { ...fastRetry, maxElapsedMs: 300 }, onRetry: () => retries++ });
  const started = Date.now();
  const err = await rejection(client.export(spans));
  assert.is(err.retryable, true);
  assert.is(err.reason, 'unavailable');
  assert.ok(err.attempts >= 3, `several attempts (${err.attempts})`);
  assert.is(retries, err.attempts - 1);
  assert.ok(Date.now() - started < 1000, 'gives up within the budget');
});

test('gRPC: a server that never answers: DEADLINE_EXCEEDED is reason timeout', async () => {
  const server = await grpcServer(() => 'hang');
  const client = grpcClient(server.endpoint, { timeoutMs: 100, retry: { ...fastRetry, enabled: false } });
  const err = await rejection(client.export(spans));
  assert.equal([err.reason, err.retryable, err.attempts], ['timeout', true, 1]);
});

test('HTTP: protobuf POST to /v1/traces, partial success, custom headers', async () => {
  const server = await httpServer((_req, _n, res) => {
    res.writeHead(200, { 'content-type': 'application/x-protobuf' });
    res.end(encodeTraceResponse({ rejectedSpans: 1, errorMessage: 'one bad' }));
  });
  const client = newClient({ protocol: 'http', endpoint: `${server.endpoint}/`, headers: { Authorization: 'Bearer t' }, timeoutMs: 2000, retry: fastRetry });
  assert.equal(await client.export(spans), { rejectedSpans: 1, errorMessage: 'one bad', attempts: 1 });
  const [r] = server.received;
  assert.is(r!.url, '/v1/traces');
  assert.is(r!.headers['content-type'], 'application/x-protobuf');
  assert.is(r!.headers.authorization, 'Bearer t');
  assert.equal(decodeTraceRequest(r!.body).spans.map((s) => s.name), ['root', 'child']);

  // An endpoint already ending in /v1/traces is used as is; an empty 200 body is full success.
  const plain = await httpServer((_req, _n, res) => res.end());
  const c2 = newClient({ protocol: 'http', endpoint: `${plain.endpoint}/otlp/v1/traces`, timeoutMs: 2000, retry: fastRetry });
  assert.equal(await c2.export(spans), { rejectedSpans: 0, errorMessage: '', attempts: 1 });
  assert.is(plain.received[0]!.url, '/otlp/v1/traces');
});

test('HTTP: 503 with Retry-After: 0 then 200 takes 2 attempts', async () => {
  const server = await httpServer((_req, n, res) => {
    if (n === 1) res.writeHead(503, { 'retry-after': '0' }).end('busy');
    else res.writeHead(200).end();
  });
  const delays: number[] = [];
  const client = newClient({ protocol: 'http', endpoint: server.endpoint, timeoutMs: 2000, retry: { ...fastRetry, initialIntervalMs: 1000, maxIntervalMs: 1000 }, onRetry: (i) => delays.push(i.delayMs) });
  assert.is((await client.export(spans)).attempts, 2);
  assert.equal(delays, [0], 'Retry-After replaces the backoff');
});

test('HTTP: Retry-After beyond the retry budget gives up at once, retryable', async () => {
  const server = await httpServer((_req, _n, res) => res.writeHead(429, { 'retry-after': '3600' }).end());
  const client = newClient({ protocol: 'http', endpoint: server.endpoint, timeoutMs: 2000, retry: fastRetry });
  const err = await rejection(client.export(spans));
  assert.equal([err.retryable, err.reason, err.attempts, err.delayMs], [true, 'throttled', 1, 3_600_000]);
});

test('HTTP: 400 is permanent; the message carries the status and the google.rpc.Status message', async () => {
  const status = Buffer.from([...vf(1, 3), ...ld(2, Buffer.from('span 0: trace_id must be 16 bytes'))]);
  const server = await httpServer((_req, _n, res) => res.writeHead(400, { 'content-type': 'application/x-protobuf' }).end(status));
  const client = newClient({ protocol: 'http', endpoint: server.endpoint, timeoutMs: 2000, retry: fastRetry });
  const err = await rejection(client.export(spans));
  assert.equal([err.retryable, err.reason, err.attempts], [false, 'http_4xx', 1]);
  assert.match(err.message, 'HTTP 400');
  assert.match(err.message, 'span 0: trace_id must be 16 bytes');
  assert.is(server.received.length, 1);

  const text = await httpServer((_req, _n, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('x'.repeat(500)));
  const c2 = newClient({ protocol: 'http', endpoint: text.endpoint, timeoutMs: 2000, retry: fastRetry });
  const e2 = await rejection(c2.export(spans));
  assert.equal([e2.retryable, e2.reason], [false, 'http_5xx']);
  assert.match(e2.message, `HTTP 500 Internal Server Error: ${'x'.repeat(200)}…`);
  assert.not.match(e2.message, 'x'.repeat(201));
});

test('HTTP: gzip compression: the server gunzips the very bytes encodeTraceRequest made', async () => {
  const server = await httpServer((_req, _n, res) => res.end());
  const client = newClient({ protocol: 'http', endpoint: server.endpoint, compression: 'gzip', timeoutMs: 2000, retry: fastRetry });
  await client.export(spans);
  const [r] = server.received;
  assert.is(r!.headers['content-encoding'], 'gzip');
  assert.equal(new Uint8Array(gunzipSync(r!.body)), encodeTraceRequest(spans));
});

test('HTTP: connection refused is retryable (unavailable)', async () => {
  const port = await closedPort();
  const client = newClient({ protocol: 'http', endpoint: `127.0.0.1:${port}`, timeoutMs: 2000, retry: { ...fastRetry, maxElapsedMs: 150 } });
  const err = await rejection(client.export(spans));
  assert.equal([err.retryable, err.reason], [true, 'unavailable']);
  assert.match(err.message, 'ECONNREFUSED');
  assert.ok(err.attempts >= 2);
});

test('HTTP: a server that never answers: reason timeout after timeoutMs', async () => {
  const server = await httpServer(() => {});
  const client = newClient({ protocol: 'http', endpoint: server.endpoint, timeoutMs: 100, retry: { ...fastRetry, enabled: false } });
  const started = Date.now();
  const err = await rejection(client.export(spans));
  const took = Date.now() - started;
  assert.equal([err.reason, err.retryable, err.attempts], ['timeout', true, 1]);
  assert.ok(took >= 90 && took < 1000, `took ${took}ms`);
});

test('close() during a backoff wait rejects promptly with shutdown; later exports reject at once', async () => {
  const server = await grpcServer(() => ({ code: grpc.status.UNAVAILABLE, details: 'busy' }));
  const slow = { enabled: true, initialIntervalMs: 10_000, maxIntervalMs: 10_000, maxElapsedMs: 60_000 };
  const client: OtlpClient = grpcClient(server.endpoint, { retry: slow, onRetry: () => setTimeout(() => client.close(), 20) });
  const started = Date.now();
  const err = await rejection(client.export(spans));
  assert.ok(Date.now() - started < 1000, 'does not sit out the 10s wait');
  assert.equal([err.reason, err.retryable, err.attempts], ['shutdown', true, 1]);
  const again = await rejection(client.export(spans));
  assert.is(again.reason, 'shutdown');
  assert.is(server.calls(), 1);
});

test('close() aborts an HTTP attempt in flight', async () => {
  const server = await httpServer(() => {});
  const client = newClient({ protocol: 'http', endpoint: server.endpoint, timeoutMs: 10_000, retry: fastRetry });
  const pending = client.export(spans);
  setTimeout(() => client.close(), 50);
  const err = await rejection(pending);
  assert.equal([err.reason, err.retryable], ['shutdown', true]);
});

test('interop with this repo\'s receivers: a busy consumer (retry-after 0) then success, gzip over both protocols', async () => {
  for (const protocol of ['grpc', 'http'] as const) {
    const consumed: Span[][] = [];
    let busy = true;
    const consumer = {
      consumeSpans: (batch: Span[]) => {
        if (busy) {
          busy = false;
          throw new RetryableError('queue full', 0);
        }
        consumed.push(batch);
      },
    };
    const common = { name: 'otlp', endpoint: '127.0.0.1:0', consumer, metrics: new PipelineMetrics(), logger: silentLogger() };
    const receiver = protocol === 'grpc'
      ? new OtlpGrpcReceiver({ ...common, maxRecvMsgSizeMiB: 4 })
      : new OtlpHttpReceiver({ ...common, maxRequestBodySize: 4 << 20 });
    await receiver.start();
    cleanup.push(() => receiver.shutdown());
    const delays: number[] = [];
    const slowBackoff = { ...fastRetry, initialIntervalMs: 1000, maxIntervalMs: 1000 };
    const client = newClient({ protocol, endpoint: receiver.address, compression: 'gzip', timeoutMs: 2000, retry: slowBackoff, onRetry: (i) => delays.push(i.delayMs) });
    assert.equal(await client.export(spans), { rejectedSpans: 0, errorMessage: '', attempts: 2 }, protocol);
    assert.equal(delays, [0], `${protocol}: the receiver's retry hint replaces the 1s backoff`);
    assert.equal(consumed.flat().map((s) => s.name), ['root', 'child']);
  }
});

test.run();
