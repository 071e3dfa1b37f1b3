import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeTraceRequestJson, encodeRpcStatus, encodeTraceResponse, OtlpDecodeError, type DecodedTraces } from '@kube-correlate/otlp';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import type { SpanConsumer } from '../../component/component.js';
import { PermanentError } from '../../component/errors.js';
import type { Refusal } from '../../component/status.js';
import { HttpReceiver, mediaType, parseJson } from '../../internal/http.js';
import type { ListenerSecurity } from '../../internal/security.js';
import { ingestDecoded, ingestProtobuf } from './ingest.js';

export interface OtlpHttpReceiverOptions {
  name: string;
  endpoint: string;
  /** Limit on the body, as sent and after decompression. */
  maxRequestBodySize: number;
  consumer: SpanConsumer;
  metrics: PipelineMetrics;
  logger: Logger;
  /** `tls` and `auth` of the listener. */
  security?: ListenerSecurity | undefined;
}

/**
 * OTLP/HTTP `POST /v1/traces`, protobuf (`application/x-protobuf`) or JSON (`application/json`),
 * identity, gzip or deflate. Answers in the request's encoding: ExportTraceServiceResponse on
 * success (with partial_success when spans were rejected), google.rpc.Status on error, with the
 * status the status table (status.ts) gives.
 */
export class OtlpHttpReceiver extends HttpReceiver {
  constructor(private readonly opts: OtlpHttpReceiverOptions) {
    super('OTLP/HTTP', opts);
  }

  /** google.rpc.Status, in JSON when the request was JSON. */
  protected refusalBody(r: Refusal, req: IncomingMessage): { contentType: string; body: Buffer | string } {
    return mediaType(req) === 'application/json'
      ? { contentType: 'application/json', body: JSON.stringify({ code: r.grpc, message: r.message }) + '\n' }
      : { contentType: 'application/x-protobuf', body: Buffer.from(encodeRpcStatus(r.grpc, r.message)) };
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { consumer } = this.opts;
    const type = mediaType(req);
    const json = type === 'application/json';
    const contentType = json ? 'application/json' : 'application/x-protobuf';
    const refuse = (err: unknown, headers: Record<string, string> = {}) => this.refuse(req, res, err, headers);

    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/v1/traces') return refuse(new PermanentError(`no route ${path}: OTLP/HTTP traces are POSTed to /v1/traces`, { http: 404, reason: 'not_found' }));
    if (req.method !== 'POST') return refuse(new PermanentError(`method ${req.method} not allowed on /v1/traces: use POST`, { http: 405, reason: 'method' }), { allow: 'POST' });
    if (!json && type !== 'application/x-protobuf' && type !== 'application/protobuf') {
      return refuse(new PermanentError(`unsupported Content-Type "${type || '(none)'}": send application/x-protobuf or application/json`, { http: 415, reason: 'unsupported_media_type' }));
    }

    // JSON is decoded as it is read; protobuf is handed to ingestProtobuf, which scans or decodes it.
    let request: { decoded: DecodedTraces } | { protobuf: Uint8Array };
    try {
      request = await this.read(req, this.opts.maxRequestBodySize, (body) => {
        if (!json) return { protobuf: body };
        try {
          return { decoded: decodeTraceRequestJson(parseJson(body)) };
        } catch (err) {
          if (!(err instanceof OtlpDecodeError)) throw err;
          throw new PermanentError(`malformed ExportTraceServiceRequest: ${err.message}`, { reason: 'invalid_otlp_json' });
        }
      });
    } catch (err) {
      return refuse(err);
    }

    try {
      const partial = 'protobuf' in request ? await ingestProtobuf(this.counters, request.protobuf, consumer) : await ingestDecoded(this.counters, request.decoded, consumer);
      const body = json
        ? JSON.stringify(partial ? { partialSuccess: { rejectedSpans: String(partial.rejectedSpans), errorMessage: partial.errorMessage } } : {}) + '\n'
        : Buffer.from(encodeTraceResponse(partial));
      res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } catch (err) {
      refuse(err);
    }
  }
}
