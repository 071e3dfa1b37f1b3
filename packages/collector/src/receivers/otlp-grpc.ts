import * as grpc from '@grpc/grpc-js';
import { decodeTraceRequest, encodeTraceResponse, OtlpDecodeError } from '@kube-correlate/otlp';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import { RetryableError, type Component, type SpanConsumer } from '../consumer.js';
import { splitEndpoint } from '../listen.js';
import { ingestDecoded } from './otlp-ingest.js';

export const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

export interface OtlpGrpcReceiverOptions {
  /** Receiver name for metrics and logs, e.g. "otlp". */
  name: string;
  endpoint: string;
  maxRecvMsgSizeMiB: number;
  consumer: SpanConsumer;
  metrics: PipelineMetrics;
  logger: Logger;
}

/**
 * OTLP/gRPC `TraceService/Export`. The request bytes reach our own decoder untouched (pass-through
 * deserializer), so a malformed message is answered INVALID_ARGUMENT with the decoder's reason
 * rather than grpc-js's generic INTERNAL.
 */
export class OtlpGrpcReceiver implements Component {
  private server: grpc.Server | undefined;
  private boundAddress = '';

  constructor(private readonly opts: OtlpGrpcReceiverOptions) {}

  get address(): string {
    return this.boundAddress;
  }

  async start(): Promise<void> {
    const { name, metrics, logger } = this.opts;
    const maxBytes = Math.floor(this.opts.maxRecvMsgSizeMiB * 1024 * 1024);
    const server = new grpc.Server({
      'grpc.max_receive_message_length': maxBytes,
      interceptors: [statusInterceptor(name, metrics)],
    });
    const passthrough = (b: Buffer) => b;
    server.addService(
      {
        Export: {
          path: EXPORT_PATH,
          requestStream: false,
          responseStream: false,
          requestSerialize: passthrough,
          requestDeserialize: passthrough,
          responseSerialize: passthrough,
          responseDeserialize: passthrough,
        },
      },
      {
        Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          void this.export(call.request).then(
            (response) => callback(null, response),
            (err: grpc.ServiceError) => callback(err),
          );
        },
      },
    );
    const { host, port } = splitEndpoint(this.opts.endpoint);
    const target = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    const boundPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(new Error(`receiver ${name} (OTLP/gRPC): cannot listen on ${this.opts.endpoint}: ${err.message}`)) : resolve(p),
      ),
    );
    this.server = server;
    this.boundAddress = `${target.slice(0, target.lastIndexOf(':'))}:${boundPort}`;
    logger.info({ receiver: name, endpoint: this.boundAddress }, 'OTLP/gRPC receiver listening');
  }

  private async export(request: Buffer): Promise<Buffer> {
    const { name, metrics, consumer } = this.opts;
    let decoded;
    try {
      decoded = decodeTraceRequest(request);
    } catch (err) {
      if (err instanceof OtlpDecodeError) {
        metrics.receiverRefused.inc({ receiver: name, reason: 'malformed_protobuf' });
        metrics.receiverRequests.inc({ receiver: name, outcome: 'refused' });
        throw status(grpc.status.INVALID_ARGUMENT, `malformed ExportTraceServiceRequest: ${err.message}`);
      }
      throw err;
    }
    try {
      const partial = await ingestDecoded(name, decoded, consumer, metrics, request);
      return Buffer.from(encodeTraceResponse(partial));
    } catch (err) {
      metrics.receiverRequests.inc({ receiver: name, outcome: 'refused' });
      if (err instanceof RetryableError) {
        metrics.receiverRefused.inc({ receiver: name, reason: 'busy' });
        const md = new grpc.Metadata();
        md.set('retry-after', String(err.retryAfterSeconds));
        throw status(grpc.status.UNAVAILABLE, err.message, md);
      }
      metrics.receiverRefused.inc({ receiver: name, reason: 'internal' });
      this.opts.logger.error({ err, receiver: name }, 'export failed');
      throw status(grpc.status.INTERNAL, `internal error: ${(err as Error).message}`);
    }
  }

  async shutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => server.forceShutdown(), 5000);
      force.unref();
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}

function status(code: grpc.status, details: string, metadata = new grpc.Metadata()): Partial<grpc.ServiceError> {
  return { code, details, metadata, message: details } as Partial<grpc.ServiceError>;
}

/**
 * grpc-js answers some bad input before our handler runs. This maps those answers to the codes the
 * OTLP specification asks for, with a message a sender can act on, and counts them:
 *  - stream ended inside a length-prefixed message (truncated frame): grpc-js says UNIMPLEMENTED
 *    "Received no request message" -> INVALID_ARGUMENT;
 *  - two messages on a unary call -> INVALID_ARGUMENT;
 *  - message over the size limit: RESOURCE_EXHAUSTED, kept;
 *  - undecompressable grpc-encoding payload: INTERNAL -> INVALID_ARGUMENT.
 *
 * The over-size answer is sent by grpc-js's own call object straight from its frame decoder,
 * bypassing interceptor responders; so the hook wraps `sendStatus` of the call the interceptor is
 * given, which every status of the call goes through. The bad-input end-to-end test fails if a
 * grpc-js upgrade changes that.
 */
type StatusObject = Parameters<grpc.ServerInterceptingCallInterface['sendStatus']>[0];

function statusInterceptor(receiver: string, metrics: PipelineMetrics): grpc.ServerInterceptor {
  return (_method, call) => {
    const send = call.sendStatus.bind(call);
    call.sendStatus = (st: StatusObject) => send(mapTransportStatus(st, receiver, metrics));
    return new grpc.ServerInterceptingCall(call);
  };
}

function mapTransportStatus(st: StatusObject, receiver: string, metrics: PipelineMetrics): StatusObject {
  const details = st.details ?? '';
  let reason: string | undefined;
  let out = st;
  if (st.code === grpc.status.UNIMPLEMENTED && details.startsWith('Received no request message')) {
    reason = 'truncated_frame';
    out = { ...st, code: grpc.status.INVALID_ARGUMENT, details: 'truncated gRPC message: the stream ended before one complete length-prefixed ExportTraceServiceRequest arrived' };
  } else if (st.code === grpc.status.UNIMPLEMENTED && details.startsWith('Received a second request message')) {
    reason = 'extra_message';
    out = { ...st, code: grpc.status.INVALID_ARGUMENT, details: 'Export is a unary call: send exactly one ExportTraceServiceRequest per call' };
  } else if (st.code === grpc.status.RESOURCE_EXHAUSTED && /larger than max/i.test(details)) {
    reason = 'too_large';
  } else if (st.code === grpc.status.INTERNAL && /decompress|compress|encoding/i.test(details)) {
    reason = 'bad_compression';
    out = { ...st, code: grpc.status.INVALID_ARGUMENT, details: `cannot decompress request: ${details}` };
  }
  if (reason) {
    metrics.receiverRefused.inc({ receiver, reason });
    metrics.receiverRequests.inc({ receiver, outcome: 'refused' });
  }
  return out;
}
