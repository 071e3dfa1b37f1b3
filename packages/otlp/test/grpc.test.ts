/**
 * A real OTLP/gRPC connection: the SDK's OTLPTraceExporter talks to a grpc-js server that hands us
 * the raw request bytes and sends back our encoded ExportTraceServiceResponse.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '@grpc/grpc-js';
import { DiagLogLevel, diag } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { decodeTraceRequest, encodeTraceResponse } from '../src/index.js';
import { expectedSpans, makeSdkSpans } from './sdk-spans.js';

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
const passThrough = (b: Buffer): Buffer => b;

interface Collector {
  port: number;
  received: Buffer[];
  /** What the next Export call answers. */
  respond: () => Uint8Array;
  server: grpc.Server;
}

async function startCollector(): Promise<Collector> {
  const server = new grpc.Server();
  const collector: Collector = { port: 0, received: [], respond: () => encodeTraceResponse(), server };
  const service: grpc.ServiceDefinition = {
    Export: {
      path: EXPORT_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: passThrough,
      requestDeserialize: passThrough,
      responseSerialize: passThrough,
      responseDeserialize: passThrough,
    },
  };
  server.addService(service, {
    Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      collector.received.push(call.request);
      const body = collector.respond();
      callback(null, Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    },
  });
  collector.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  return collector;
}

function exportSpans(exporter: OTLPTraceExporter, spans: ReadableSpan[]): Promise<ExportResult> {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

test('OTLPTraceExporter over gRPC: received bytes decode to the spans sent', async () => {
  const collector = await startCollector();
  const exporter = new OTLPTraceExporter({ url: `http://127.0.0.1:${collector.port}` });
  try {
    const spans = makeSdkSpans();
    const result = await exportSpans(exporter, spans);
    assert.is(result.code, ExportResultCode.SUCCESS, String(result.error));
    assert.is(collector.received.length, 1);
    const got = decodeTraceRequest(collector.received[0]!);
    assert.equal(got.rejected, []);
    assert.equal(got.spans, expectedSpans(spans));
    // Same bytes as the serializer produces in-process: nothing on the way changed them.
    assert.equal(new Uint8Array(collector.received[0]!), ProtobufTraceSerializer.serializeRequest(spans));
  } finally {
    await exporter.shutdown();
    collector.server.forceShutdown();
  }
});

test('OTLPTraceExporter reads our partial-success response', async () => {
  const collector = await startCollector();
  collector.respond = () => encodeTraceResponse({ rejectedSpans: 2, errorMessage: 'span 1: trace_id is all zero' });
  const warnings: string[] = [];
  const log = (...args: unknown[]): void => void warnings.push(args.map(String).join(' '));
  diag.setLogger({ error: log, warn: log, info: () => {}, debug: () => {}, verbose: () => {} }, DiagLogLevel.WARN);
  const exporter = new OTLPTraceExporter({ url: `http://127.0.0.1:${collector.port}` });
  try {
    const result = await exportSpans(exporter, makeSdkSpans());
    assert.is(result.code, ExportResultCode.SUCCESS);
    assert.is(collector.received.length, 1);
    assert.ok(
      warnings.some((w) => w.includes('Partial Success') && w.includes('"rejectedSpans":2') && w.includes('trace_id is all zero')),
      warnings.join('\n'),
    );
  } finally {
    diag.disable();
    await exporter.shutdown();
    collector.server.forceShutdown();
  }
});

test.run();
