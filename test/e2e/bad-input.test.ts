import { connect } from 'node:http2';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXPORT_PATH } from '@kube-correlate/collector';
import { MAX_AUDIT_ID_LENGTH } from '@kube-correlate/audit';
import { encodeTraceRequest, encodeTracesJson, type Span } from '@kube-correlate/otlp';
import { auditEvent, makeSpan } from '@kube-correlate/fixtures';
import { eventList, metricValue, postJson, runCli, startPipeline, waitFor, waitForTree, type TestPipeline } from '../harness/index.js';

/**
 * Every kind of bad input gets a clear answer and a metric, and a good request right after it
 * succeeds: the process keeps serving and nothing else is lost.
 */
let p: TestPipeline;
let client: grpc.Client;
let n = 0;

test.before(async () => {
  p = await startPipeline({ grpcMaxMiB: 1, httpMaxBytes: 256 * 1024, auditMaxBytes: 64 * 1024, pendingAuditTtl: '300ms' });
  client = new grpc.Client(p.grpc, grpc.credentials.createInsecure());
});
test.after(async () => {
  client.close();
  await p.stop();
});

/** A fresh valid one-span request (new trace id each time). */
function goodSpans(): Span[] {
  n++;
  return [makeSpan({ trace: 1000 + n, id: 1, name: `good ${n}`, kind: 2 })];
}

function grpcExport(body: Buffer): Promise<{ code: number; details: string; response?: Buffer }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, body, (err, response) =>
      resolve(err ? { code: err.code, details: err.details } : { code: 0, details: '', response: response as Buffer }),
    );
  });
}

/** Sends a good request by gRPC and checks it is stored: the receiver still serves. */
async function goodAfter(label: string) {
  const spans = goodSpans();
  const r = await grpcExport(Buffer.from(encodeTraceRequest(spans)));
  assert.is(r.code, 0, `good request after ${label}: ${r.details}`);
  await waitForTree(p.query, spans[0]!.traceId, 1, false);
}

const refused = (reason: string, receiver = 'otlp') => metricValue(p.metrics, 'kube_correlate_receiver_refused_total', { receiver, reason });

test('gRPC: malformed protobuf -> INVALID_ARGUMENT with the reason', async () => {
  const r = await grpcExport(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]));
  assert.is(r.code, grpc.status.INVALID_ARGUMENT);
  assert.match(r.details, /^malformed ExportTraceServiceRequest: .*offset/);
  assert.is(await refused('malformed_protobuf'), 1);
  await goodAfter('malformed protobuf');
});

test('gRPC: truncated frame -> INVALID_ARGUMENT', async () => {
  const session = connect(`http://${p.grpc}`);
  const req = session.request({ ':method': 'POST', ':path': EXPORT_PATH, 'content-type': 'application/grpc', te: 'trailers' });
  const frame = Buffer.alloc(5 + 10);
  frame.writeUInt32BE(100, 1); // declares 100 bytes, sends 10, then ends the stream
  const trailers = new Promise<Record<string, unknown>>((resolve) => {
    let headers: Record<string, unknown> = {};
    req.on('response', (h) => (headers = { ...h }));
    req.on('trailers', (t) => resolve({ ...headers, ...t }));
    req.on('end', () => resolve(headers));
    req.resume();
  });
  req.end(frame);
  const t = await trailers;
  session.close();
  assert.is(t['grpc-status'], String(grpc.status.INVALID_ARGUMENT));
  assert.match(decodeURIComponent(String(t['grpc-message'])), 'truncated gRPC message');
  assert.is(await refused('truncated_frame'), 1);
  await goodAfter('truncated frame');
});

test('gRPC: a frame flagged compressed without grpc-encoding -> INVALID_ARGUMENT (grpc-js alone reads it as uncompressed)', async () => {
  const raw = Buffer.from(encodeTraceRequest(goodSpans()));
  const before = await refused('bad_compression');
  // Flag 1 with a plain protobuf body (grpc-js 1.14 accepted it), with a gzip body (it answered a
  // wire-type error), and with `grpc-encoding: identity` (the same as none).
  for (const [body, headers] of [[raw, {}], [gzipSync(raw), {}], [raw, { 'grpc-encoding': 'identity' }]] as const) {
    const session = connect(`http://${p.grpc}`);
    const req = session.request({ ':method': 'POST', ':path': EXPORT_PATH, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt8(1, 0);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    const answered = new Promise<Record<string, unknown>>((resolve) => {
      let h: Record<string, unknown> = {};
      req.on('response', (x) => (h = { ...x }));
      req.on('trailers', (x) => resolve({ ...h, ...x }));
      req.on('end', () => resolve(h));
      req.resume();
    });
    req.end(frame);
    const t = await answered;
    session.close();
    assert.is(t['grpc-status'], String(grpc.status.INVALID_ARGUMENT), JSON.stringify(headers));
    assert.match(decodeURIComponent(String(t['grpc-message'])), 'flagged compressed, but the call declares no grpc-encoding');
  }
  assert.is(await refused('bad_compression'), before + 3);
  await goodAfter('a compressed flag without grpc-encoding');
});

test('gRPC: message over the limit -> RESOURCE_EXHAUSTED', async () => {
  const big = makeSpan({ trace: 1, id: 1, name: 'x'.repeat(1.5 * 1024 * 1024) });
  const r = await grpcExport(Buffer.from(encodeTraceRequest([big])));
  assert.is(r.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(r.details, /larger than max/);
  assert.is(await refused('too_large'), 1);
  await goodAfter('oversized message');
});

test('gRPC: spans with invalid ids -> partial success, the valid spans are stored', async () => {
  const good = goodSpans()[0]!;
  const zeroTrace = { ...good, traceId: '0'.repeat(32), spanId: 'aaaaaaaaaaaaaaaa' };
  const zeroSpan = { ...good, spanId: '0'.repeat(16) };
  const ok2 = { ...good, spanId: 'bbbbbbbbbbbbbbbb', parentSpanId: good.spanId, name: 'child' };
  const r = await grpcExport(Buffer.from(encodeTraceRequest([good, zeroTrace, zeroSpan, ok2])));
  assert.is(r.code, 0, r.details);
  // ExportTraceServiceResponse.partial_success (field 1) is present: rejected_spans = 2.
  assert.ok(r.response && r.response.length > 0 && r.response[0] === 0x0a, 'partial_success present');
  assert.ok(r.response.includes(Buffer.from([0x08, 0x02])), 'rejected_spans = 2');
  assert.match(r.response.toString('latin1'), 'spans rejected');
  const tree = await waitForTree(p.query, good.traceId, 2, false);
  assert.equal(tree.root.children.map((c) => c.name), ['child']);
  assert.is(await refused('invalid_span'), 2);
});

test('HTTP: malformed protobuf -> 400 with a google.rpc.Status body', async () => {
  const res = await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: Buffer.from([0x0a, 0x05, 0x01]) });
  assert.is(res.status, 400);
  const body = Buffer.from(await res.arrayBuffer());
  assert.is(body[0], 0x08); // Status.code
  assert.is(body[1], 3); // INVALID_ARGUMENT
  assert.match(body.toString('latin1'), 'malformed ExportTraceServiceRequest');
  assert.is(await refused('malformed_protobuf'), 2);
  await goodAfter('HTTP malformed protobuf');
});

test('HTTP: invalid JSON and JSON of the wrong kind -> 400 with a message', async () => {
  const bad = await postJson(`${p.http}/v1/traces`, '{"resourceSpans": [');
  assert.is(bad.status, 400);
  assert.is(bad.body.code, 3);
  assert.match(String(bad.body.message), /^invalid JSON/);
  const wrong = await postJson(`${p.http}/v1/traces`, eventList([]));
  assert.is(wrong.status, 400);
  assert.match(String(wrong.body.message), 'resourceSpans');
  const wrong2 = await postJson(`${p.http}/v1/traces`, { resourceSpans: [{ scopeSpans: [{ spans: 'nope' }] }] });
  assert.is(wrong2.status, 400);
  assert.match(String(wrong2.body.message), 'resourceSpans[0].scopeSpans[0].spans');
  assert.is(await refused('invalid_json'), 1);
  assert.is(await refused('invalid_otlp_json'), 2);
  await goodAfter('invalid JSON');
});

test('HTTP: JSON with invalid ids -> partial success in JSON', async () => {
  const spans = goodSpans();
  const body = encodeTracesJson([...spans, { ...spans[0]!, spanId: 'zz' }]);
  const r = await postJson(`${p.http}/v1/traces`, body);
  assert.is(r.status, 200);
  const partial = r.body.partialSuccess as { rejectedSpans: string; errorMessage: string };
  assert.is(partial.rejectedSpans, '1');
  assert.match(partial.errorMessage, '1 of 2 spans rejected');
  await waitForTree(p.query, spans[0]!.traceId, 1, false);
});

test('HTTP: body over the limit -> 413, also when it only grows past the limit after gzip', async () => {
  const big = Buffer.alloc(300 * 1024, 1);
  const r = await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: big });
  assert.is(r.status, 413);
  const bomb = gzipSync(Buffer.alloc(2 * 1024 * 1024));
  assert.ok(bomb.length < 256 * 1024);
  const r2 = await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' }, body: bomb });
  assert.is(r2.status, 413);
  assert.match(Buffer.from(await r2.arrayBuffer()).toString('latin1'), 'after gzip decompression');
  assert.is(await refused('too_large'), 3);
  // gzip of a good request is accepted.
  const spans = goodSpans();
  const r3 = await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' }, body: gzipSync(encodeTraceRequest(spans)) });
  assert.is(r3.status, 200);
  await waitForTree(p.query, spans[0]!.traceId, 1, false);
});

test('HTTP: wrong method, path and content type are refused clearly', async () => {
  assert.is((await fetch(`${p.http}/v1/traces`)).status, 405);
  assert.is((await fetch(`${p.http}/v1/logs`, { method: 'POST' })).status, 404);
  const r = await fetch(`${p.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
  assert.is(r.status, 415);
});

test('audit webhook: invalid JSON, wrong kind, events without auditID -> 400; good events of the batch are kept', async () => {
  const bad = await postJson(p.audit, '{"kind":"EventList",');
  assert.is(bad.status, 400);
  assert.match(String(bad.body.error), /^invalid JSON/);
  const wrong = await postJson(p.audit, encodeTracesJson(goodSpans()));
  assert.is(wrong.status, 400);
  assert.match(String(wrong.body.error), 'EventList');
  const good = auditEvent({ auditID: 'kept-1', stage: 'ResponseComplete' });
  const noId = { ...good, auditID: undefined };
  const mixed = await postJson(p.audit, eventList([noId, good]));
  assert.is(mixed.status, 400);
  assert.match(String(mixed.body.error), /^1 of 2 events rejected \(the other 1 were accepted\): items\[0\]: .*auditID/);
  assert.is(await refused('missing_audit_id', 'k8saudit'), 1);
  assert.is(await refused('invalid_json', 'k8saudit'), 1);
  assert.is(await refused('wrong_kind', 'k8saudit'), 1);
  // The good event of the mixed batch is stored (alone: its trace never comes), and the receiver still serves.
  await waitFor('audit kept-1 stored', async () => ((await fetch(`${p.query}/api/v1/audit/kept-1`)).ok ? true : undefined));
  const next = await postJson(p.audit, eventList([auditEvent({ auditID: 'kept-2', stage: 'RequestReceived' })]));
  assert.is(next.status, 200);
});

test('audit webhook: a batch over the limit -> 413; the next batch is accepted', async () => {
  const big = eventList(Array.from({ length: 200 }, (_, i) => auditEvent({ auditID: `big-${i}`, stage: 'RequestReceived' })));
  const r = await postJson(p.audit, big);
  assert.is(r.status, 413);
  assert.match(String(r.body.error), 'larger than the limit of 65536 bytes');
  assert.is(await refused('too_large', 'k8saudit'), 1);
  const next = await postJson(p.audit, eventList([auditEvent({ auditID: 'after-big', stage: 'RequestReceived' })]));
  assert.is(next.status, 200);
});

test(`audit webhook: an auditID of ${MAX_AUDIT_ID_LENGTH} characters is stored and can be queried (query API, correlate --audit-id); one more -> 400 naming the item`, async () => {
  const longest = `long-${'x'.repeat(MAX_AUDIT_ID_LENGTH - 5)}`;
  const tooLong = `${longest}y`;
  const r = await postJson(p.audit, eventList([auditEvent({ auditID: tooLong, stage: 'ResponseComplete' }), auditEvent({ auditID: longest, stage: 'ResponseComplete' })]));
  assert.is(r.status, 400);
  assert.match(String(r.body.error), `1 of 2 events rejected (the other 1 were accepted): items[0]: auditID: ${MAX_AUDIT_ID_LENGTH + 1} characters, longer than the limit of ${MAX_AUDIT_ID_LENGTH}`);
  assert.is(await refused('audit_id_too_long', 'k8saudit'), 1);
  const tree = await waitFor('the longest auditID stored', async () => {
    const res = await fetch(`${p.query}/api/v1/audit/${encodeURIComponent(longest)}`);
    return res.ok ? ((await res.json()) as { root: { audit?: { auditID: string } } }) : undefined;
  });
  assert.is(tree.root.audit?.auditID, longest);
  const cli = await runCli(['--endpoint', p.query, '--audit-id', longest, '--json']);
  assert.is(cli.code, 0, cli.stderr);
  assert.is((JSON.parse(cli.stdout) as { root: { audit?: { auditID: string } } }).root.audit?.auditID, longest);
  // The query API's limit is the receivers': one more character is not a valid id.
  assert.is((await fetch(`${p.query}/api/v1/audit/${encodeURIComponent(tooLong)}`)).status, 400);
});

test('gRPC: a gzip-compressed export (grpc-encoding) is accepted', async () => {
  const gz = new grpc.Client(p.grpc, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
  const spans = goodSpans();
  const r = await new Promise<number>((resolve) =>
    gz.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(encodeTraceRequest(spans)), (err) => resolve(err ? err.code : 0)),
  );
  gz.close();
  assert.is(r, 0);
  await waitForTree(p.query, spans[0]!.traceId, 1, false);
});

test.run();
