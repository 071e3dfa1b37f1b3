import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { decodeTraceRequest, decodeTraceRequestJson, encodeRpcStatus, encodeTraceResponse, OtlpDecodeError, type DecodedTraces } from '@kube-correlate/otlp';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import { RetryableError, type Component, type SpanConsumer } from '../consumer.js';
import { BodyError, readBody } from '../http-body.js';
import { closeHttp, listenHttp } from '../listen.js';
import { ingestDecoded } from './otlp-ingest.js';

export interface OtlpHttpReceiverOptions {
  name: string;
  endpoint: string;
  /** Limit on the body, as sent and after decompression. */
  maxRequestBodySize: number;
  consumer: SpanConsumer;
  metrics: PipelineMetrics;
  logger: Logger;
}

/** google.rpc.Code numbers used in OTLP/HTTP error bodies. */
const RPC = { INVALID_ARGUMENT: 3, RESOURCE_EXHAUSTED: 8, UNAVAILABLE: 14, INTERNAL: 13, UNIMPLEMENTED: 12 } as const;

/**
 * OTLP/HTTP `POST /v1/traces`, protobuf (`application/x-protobuf`) or JSON (`application/json`),
 * identity, gzip or deflate. Answers in the request's encoding: ExportTraceServiceResponse on
 * success (with partial_success when spans were rejected), google.rpc.Status on error.
 */
export class OtlpHttpReceiver implements Component {
  private server: Server | undefined;
  private boundAddress = '';

  constructor(private readonly opts: OtlpHttpReceiverOptions) {}

  get address(): string {
    return this.boundAddress;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.requestTimeout = 60_000;
    this.boundAddress = await listenHttp(server, this.opts.endpoint, `receiver ${this.opts.name} (OTLP/HTTP)`);
    this.server = server;
    this.opts.logger.info({ receiver: this.opts.name, endpoint: this.boundAddress }, 'OTLP/HTTP receiver listening');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { name, metrics, consumer, logger } = this.opts;
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const json = type === 'application/json';
    const refuse = (http: number, rpc: number, reason: string, message: string, headers: Record<string, string> = {}) => {
      metrics.receiverRefused.inc({ receiver: name, reason });
      metrics.receiverRequests.inc({ receiver: name, outcome: 'refused' });
      const body = json ? Buffer.from(JSON.stringify({ code: rpc, message }) + '\n') : Buffer.from(encodeRpcStatus(rpc, message));
      // After an early refusal the rest of the body is not read: close rather than reuse the connection.
      res.writeHead(http, { 'content-type': json ? 'application/json' : 'application/x-protobuf', 'content-length': body.length, ...headers, ...(req.complete ? {} : { connection: 'close' }) });
      res.end(body);
    };

    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/v1/traces') return refuse(404, RPC.UNIMPLEMENTED, 'not_found', `no route ${path}: OTLP/HTTP traces are POSTed to /v1/traces`);
    if (req.method !== 'POST') return refuse(405, RPC.UNIMPLEMENTED, 'method', `method ${req.method} not allowed on /v1/traces: use POST`, { allow: 'POST' });
    if (!json && type !== 'application/x-protobuf' && type !== 'application/protobuf') {
      return refuse(415, RPC.INVALID_ARGUMENT, 'unsupported_media_type', `unsupported Content-Type "${type || '(none)'}": send application/x-protobuf or application/json`);
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
          return refuse(400, RPC.INVALID_ARGUMENT, 'invalid_json', `invalid JSON: ${(err as Error).message}`);
        }
        decoded = decodeTraceRequestJson(parsed);
      } else {
        decoded = decodeTraceRequest(body);
        raw = body;
      }
    } catch (err) {
      if (err instanceof BodyError) return refuse(err.status, err.status === 413 ? RPC.RESOURCE_EXHAUSTED : RPC.INVALID_ARGUMENT, err.reason, err.message);
      if (err instanceof OtlpDecodeError) {
        return refuse(400, RPC.INVALID_ARGUMENT, json ? 'invalid_otlp_json' : 'malformed_protobuf', `malformed ExportTraceServiceRequest: ${err.message}`);
      }
      logger.error({ err, receiver: name }, 'reading request failed');
      return refuse(400, RPC.INVALID_ARGUMENT, 'read_error', `cannot read request: ${(err as Error).message}`);
    }

    try {
      const partial = await ingestDecoded(name, decoded, consumer, metrics, raw);
      const body = json
        ? Buffer.from(JSON.stringify(partial ? { partialSuccess: { rejectedSpans: String(partial.rejectedSpans), errorMessage: partial.errorMessage } } : {}) + '\n')
        : Buffer.from(encodeTraceResponse(partial));
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf', 'content-length': body.length });
      res.end(body);
    } catch (err) {
      if (err instanceof RetryableError) {
        return refuse(503, RPC.UNAVAILABLE, 'busy', err.message, { 'retry-after': String(err.retryAfterSeconds) });
      }
      logger.error({ err, receiver: name }, 'export failed');
      return refuse(500, RPC.INTERNAL, 'internal', `internal error: ${(err as Error).message}`);
    }
  }

  async shutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await closeHttp(server);
  }
}
