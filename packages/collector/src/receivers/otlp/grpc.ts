import * as grpc from '@grpc/grpc-js';
import { encodeTraceResponse } from '@kube-correlate/otlp';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import type { SecureContextOptions } from 'node:tls';
import type { Host, SpanConsumer } from '../../component/component.js';
import { grpcError, statusOf } from '../../component/status.js';
import { splitEndpoint } from '../../internal/http.js';
import { EXPORT_PATH, passthrough } from '../../wire/otlp-service.js';
import { ReceiverCounters } from '../../internal/receiver-counters.js';
import type { ListenerSecurity } from '../../internal/security.js';
import { ingestProtobuf } from './ingest.js';

export interface OtlpGrpcReceiverOptions {
  /** Receiver name for metrics and logs, e.g. "otlp". */
  name: string;
  endpoint: string;
  maxRecvMsgSizeMiB: number;
  consumer: SpanConsumer;
  metrics: PipelineMetrics;
  logger: Logger;
  /** `tls` and `auth` of `receivers.<name>.protocols.grpc`. */
  security?: ListenerSecurity | undefined;
}

/**
 * OTLP/gRPC `TraceService/Export`. The request bytes reach our own decoder untouched (pass-through
 * deserializer), so a malformed message is answered INVALID_ARGUMENT with the decoder's reason
 * rather than grpc-js's generic INTERNAL. Failures are answered through the status table
 * (status.ts): backpressure is UNAVAILABLE with RetryInfo and `retry-after`. With `tls` it serves
 * TLS (ReloadingServerCredentials: the certificate reloaded when its files change); with `auth`
 * a call without the token is answered UNAUTHENTICATED from its metadata, before its message is
 * read (authInterceptor).
 */
export class OtlpGrpcReceiver {
  private server: grpc.Server | undefined;
  private boundAddress = '';
  private readonly counters: ReceiverCounters;

  constructor(private readonly opts: OtlpGrpcReceiverOptions) {
    this.counters = new ReceiverCounters(opts.metrics, opts.name);
  }

  get address(): string {
    return this.boundAddress;
  }

  /** Listens. `host`: where the `auth.authenticator` extension is found (needed with `auth`). */
  async start(host?: Pick<Host, 'getExtension'>): Promise<void> {
    const { name, logger, security } = this.opts;
    security?.resolve(host);
    const maxBytes = Math.floor(this.opts.maxRecvMsgSizeMiB * 1024 * 1024);
    const server = new grpc.Server({
      'grpc.max_receive_message_length': maxBytes,
      interceptors: [statusInterceptor(this.counters), ...(security?.authenticates ? [authInterceptor(security, this.counters)] : [])],
    });
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
            (err: Partial<grpc.ServiceError>) => callback(err),
          );
        },
      },
    );
    const { host: bindHost, port } = splitEndpoint(this.opts.endpoint);
    const target = `${bindHost.includes(':') ? `[${bindHost}]` : bindHost}:${port}`;
    const credentials = security?.tls ? new ReloadingServerCredentials(security) : grpc.ServerCredentials.createInsecure();
    const boundPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(target, credentials, (err, p) =>
        err ? reject(new Error(`receiver ${name} (OTLP/gRPC): cannot listen on ${this.opts.endpoint}: ${err.message}`)) : resolve(p),
      ),
    );
    this.server = server;
    this.boundAddress = `${target.slice(0, target.lastIndexOf(':'))}:${boundPort}`;
    if (credentials instanceof ReloadingServerCredentials) security!.watch((o) => credentials.update(o));
    security?.warnIfExposed(bindHost, `receiver ${name} (OTLP/gRPC)`);
    logger.info({ receiver: name, endpoint: this.boundAddress, tls: !!security?.tls, auth: !!security?.authenticates }, 'OTLP/gRPC receiver listening');
  }

  private async export(request: Buffer): Promise<Buffer> {
    try {
      return Buffer.from(encodeTraceResponse(await ingestProtobuf(this.counters, request, this.opts.consumer)));
    } catch (err) {
      const refusal = statusOf(err);
      this.counters.refusedRequest(refusal.reason);
      if (refusal.internal) this.opts.logger.error({ err, receiver: this.opts.name }, 'export failed');
      throw grpcError(refusal);
    }
  }

  async shutdown(): Promise<void> {
    this.opts.security?.stop();
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

/**
 * TLS credentials for grpc-js's server from a listener's ServerTls: the protocol floor and suites
 * of every listener (grpc-js's own createSsl sets neither), a client certificate required with a
 * client CA, and new context options handed to grpc-js (which calls setSecureContext on its HTTP/2
 * servers) when the files change.
 */
class ReloadingServerCredentials extends grpc.ServerCredentials {
  constructor(security: ListenerSecurity) {
    const { requestCert, rejectUnauthorized, ...context } = security.serverOptions();
    super({ requestCert, rejectUnauthorized }, context);
  }

  update(options: SecureContextOptions): void {
    this.updateSecureContextOptions(options);
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/**
 * `auth`: the call's `authorization` metadata is checked as soon as it arrives. Without the token,
 * or with a wrong one, the call is answered UNAUTHENTICATED and counted (reason
 * `unauthenticated`); its metadata is not passed on, so the handler never starts and the message is
 * never read.
 */
function authInterceptor(security: ListenerSecurity, counters: ReceiverCounters): grpc.ServerInterceptor {
  return (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const value = metadata.get('authorization')[0];
            const denied = security.check(typeof value === 'string' ? value : undefined);
            if (!denied) return pass(metadata);
            counters.refusedRequest('unauthenticated');
            const r = statusOf(denied.error);
            call.sendStatus({ code: r.grpc, details: r.message, metadata: new grpc.Metadata() });
          },
        }),
    });
}

/**
 * grpc-js answers some bad input before our handler runs. This maps those answers to the codes the
 * OTLP specification asks for, with a message a sender can act on, and counts them:
 *  - stream ended inside a length-prefixed message (truncated frame): grpc-js says UNIMPLEMENTED
 *    "Received no request message" -> INVALID_ARGUMENT;
 *  - two messages on a unary call -> INVALID_ARGUMENT;
 *  - message over the size limit: RESOURCE_EXHAUSTED, kept;
 *  - undecompressable grpc-encoding payload: INTERNAL -> INVALID_ARGUMENT;
 *  - a frame flagged compressed without a grpc-encoding: INVALID_ARGUMENT (refuseUndeclaredCompression).
 *
 * The over-size answer is sent by grpc-js's own call object straight from its frame decoder,
 * bypassing interceptor responders; so the hook wraps `sendStatus` of the call the interceptor is
 * given, which every status of the call goes through. The bad-input end-to-end test fails if a
 * grpc-js upgrade changes that.
 */
type StatusObject = Parameters<grpc.ServerInterceptingCallInterface['sendStatus']>[0];

function statusInterceptor(counters: ReceiverCounters): grpc.ServerInterceptor {
  return (_method, call) => {
    const send = call.sendStatus.bind(call);
    call.sendStatus = (st: StatusObject) => send(mapTransportStatus(st, counters));
    refuseUndeclaredCompression(call);
    return new grpc.ServerInterceptingCall(call);
  };
}

/**
 * A message whose frame says "compressed" (flag 1) while the call declares no `grpc-encoding` (or
 * `identity`) cannot be read: the gRPC protocol names the compression in that header. grpc-js
 * 1.14 reads such a frame as uncompressed (a protobuf body flagged compressed was accepted, a gzip
 * body got a decoder error about wire types). Its call object decompresses each frame through its
 * own `decompressMessage(frame, encoding)`, whose rejection it answers as the call's status; the
 * wrapper rejects this case with INVALID_ARGUMENT, which mapTransportStatus counts as
 * `bad_compression`. The bad-input end-to-end test fails if a grpc-js upgrade renames the method.
 */
function refuseUndeclaredCompression(call: grpc.ServerInterceptingCallInterface): void {
  const c = call as unknown as { decompressMessage?: (frame: Buffer, encoding: string) => Buffer | Promise<Buffer> };
  const decompress = c.decompressMessage?.bind(call);
  if (!decompress) return;
  c.decompressMessage = (frame, encoding) => {
    if (frame.length >= 5 && frame.readUInt8(0) === 1 && encoding === 'identity') {
      return Promise.reject({
        code: grpc.status.INVALID_ARGUMENT,
        details: 'message flagged compressed, but the call declares no grpc-encoding (send grpc-encoding: gzip or deflate, or an uncompressed message)',
      });
    }
    return decompress(frame, encoding);
  };
}

function mapTransportStatus(st: StatusObject, counters: ReceiverCounters): StatusObject {
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
  } else if (st.code === grpc.status.INVALID_ARGUMENT && details.startsWith('message flagged compressed')) {
    reason = 'bad_compression';
  }
  if (reason) counters.refusedRequest(reason);
  return out;
}
