import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { decodeTraceRequest, decodeTraceRequestJson, encodeRpcStatus, encodeTraceResponse, OtlpDecodeError, type DecodedTraces } from '@kube-correlate/otlp';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import type { SpanConsumer } from '../../component/component.js';
import { PermanentError, PipelineError } from '../../component/errors.js';
import { retryAfterHeaders, statusOf } from '../../component/status.js';
import { answer, closeHttp, listenHttp, readBody, receiverServer } from '../../internal/http.js';
import { ReceiverCounters } from '../../internal/receiver-counters.js';
import { ingestDecoded } from './ingest.js';

export interface OtlpHttpReceiverOptions {
  name: string;
  endpoint: string;
  /** Limit on the body, as sent and after decompression. */
  maxRequestBodySize: number;
  consumer: SpanConsumer;
  metrics: PipelineMetrics;
  logger: Logger;
}

/**
 * OTLP/HTTP `POST /v1/traces`, protobuf (`application/x-protobuf`) or JSON (`application/json`),
 * identity, gzip or deflate. Answers in the request's encoding: ExportTraceServiceResponse on
 * success (with partial_success when spans were rejected), google.rpc.Status on error, with the
 * status the status table (status.ts) gives.
 */
export class OtlpHttpReceiver {
  private server: Server | undefined;
  private boundAddress = '';
  private readonly counters: ReceiverCounters;

  constructor(private readonly opts: OtlpHttpReceiverOptions) {
    this.counters = new ReceiverCounters(opts.metrics, opts.name);
  }

  get address(): string {
    return this.boundAddress;
  }

  async start(): Promise<void> {
    const server = receiverServer((req, res) => void this.handle(req, res));
    this.boundAddress = await listenHttp(server, this.opts.endpoint, `receiver ${this.opts.name} (OTLP/HTTP)`);
    this.server = server;
    this.opts.logger.info({ receiver: this.opts.name, endpoint: this.boundAddress }, 'OTLP/HTTP receiver listening');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { name, consumer, logger } = this.opts;
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const json = type === 'application/json';
    const contentType = json ? 'application/json' : 'application/x-protobuf';
    const refuse = (err: unknown, headers: Record<string, string> = {}) => {
      const r = statusOf(err);
      this.counters.refusedRequest(r.reason);
      if (r.internal) logger.error({ err, receiver: name }, 'export failed');
      const body = json ? JSON.stringify({ code: r.grpc, message: r.message }) + '\n' : Buffer.from(encodeRpcStatus(r.grpc, r.message));
      answer(req, res, r.http, contentType, body, { ...retryAfterHeaders(r), ...headers });
    };

    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/v1/traces') return refuse(new PermanentError(`no route ${path}: OTLP/HTTP traces are POSTed to /v1/traces`, { http: 404, reason: 'not_found' }));
    if (req.method !== 'POST') return refuse(new PermanentError(`method ${req.method} not allowed on /v1/traces: use POST`, { http: 405, reason: 'method' }), { allow: 'POST' });
    if (!json && type !== 'application/x-protobuf' && type !== 'application/protobuf') {
      return refuse(new PermanentError(`unsupported Content-Type "${type || '(none)'}": send application/x-protobuf or application/json`, { http: 415, reason: 'unsupported_media_type' }));
    }

    let decoded: DecodedTraces;
    let raw: Uint8Array | undefined;
    try {
      const body = await readBody(req, this.opts.maxRequestBodySize);
      if (json) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch (err) {
          return refuse(new PermanentError(`invalid JSON: ${(err as Error).message}`, { reason: 'invalid_json' }));
        }
        decoded = decodeTraceRequestJson(parsed);
      } else {
        decoded = decodeTraceRequest(body);
        raw = body;
      }
    } catch (err) {
      if (err instanceof PipelineError) return refuse(err);
      if (err instanceof OtlpDecodeError) {
        return refuse(new PermanentError(`malformed ExportTraceServiceRequest: ${err.message}`, { reason: json ? 'invalid_otlp_json' : 'malformed_protobuf' }));
      }
      logger.error({ err, receiver: name }, 'reading request failed');
      return refuse(new PermanentError(`cannot read request: ${(err as Error).message}`, { reason: 'read_error' }));
    }

    try {
      const partial = await ingestDecoded(this.counters, decoded, consumer, raw);
      const body = json
        ? JSON.stringify(partial ? { partialSuccess: { rejectedSpans: String(partial.rejectedSpans), errorMessage: partial.errorMessage } } : {}) + '\n'
        : Buffer.from(encodeTraceResponse(partial));
      res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } catch (err) {
      refuse(err);
    }
  }

  async shutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await closeHttp(server);
  }
}
