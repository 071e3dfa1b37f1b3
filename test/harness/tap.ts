/**
 * A transparent tap between kube-apiserver and the pipeline under test: it records exactly what
 * kube-apiserver sent and forwards it unchanged, answering kube-apiserver with the pipeline's own
 * answer (status, gRPC details and trailers, HTTP body). End-to-end tests check the pipeline's
 * trees against what the tap saw, the way the capture tests check them against a recording.
 *
 * - OTLP/gRPC `TraceService/Export`: each request's protobuf bytes, as kube-apiserver sent them
 *   (after gRPC framing and any compression are undone), forwarded with a grpc-js client. An error
 *   from the pipeline (UNAVAILABLE, say) goes back to kube-apiserver as is, so its exporter retries
 *   as it would without the tap; retried requests are recorded again (the pipeline deduplicates
 *   spans by trace and span id, and so does `spans()`).
 * - The audit webhook backend (`POST` of an `EventList`): each body, forwarded with fetch; the
 *   pipeline's status and body go back. `auditEvents()` deduplicates by (auditID, stage).
 *
 * Why a tap rather than a second receiver: kube-apiserver sends spans to one endpoint and audit
 * batches to one URL. A tap keeps the pipeline in the path with its real answers (backpressure and
 * retries included) and needs no second copy of the product's decoding.
 */
import * as grpc from '@grpc/grpc-js';
import { createServer, type Server } from 'node:http';
import { parseEventList, type AuditEvent } from '@kube-correlate/audit';
import { decodeTraceRequest, type Span } from '@kube-correlate/otlp';

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

export interface Tap {
  /** "127.0.0.1:<port>": give it to kube-apiserver's TracingConfiguration.endpoint. */
  grpcEndpoint: string;
  /** "http://127.0.0.1:<port>/": give it to kube-apiserver's audit webhook kubeconfig. */
  auditUrl: string;
  /** Every ExportTraceServiceRequest as received, in order (retries included). */
  readonly otlpRequests: Buffer[];
  /** Every audit webhook body as received, in order (retries included). */
  readonly auditBodies: Buffer[];
  /** Answers from the pipeline that were not OK (gRPC code / HTTP status, with details). */
  readonly refusals: string[];
  /** Every span received, once per (trace id, span id). */
  spans(): Span[];
  /** Every audit event received, once per (auditID, stage), in arrival order. */
  auditEvents(): AuditEvent[];
  /** Resolves when nothing received is still being forwarded. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTap(opts: { otlpGrpcUpstream: string; auditUpstream: string }): Promise<Tap> {
  const otlpRequests: Buffer[] = [];
  const auditBodies: Buffer[] = [];
  const refusals: string[] = [];
  let inFlight = 0;
  const passthrough = (b: Buffer) => b;

  const client = new grpc.Client(opts.otlpGrpcUpstream, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  server.addService(
    { Export: { path: EXPORT_PATH, requestStream: false, responseStream: false, requestSerialize: passthrough, requestDeserialize: passthrough, responseSerialize: passthrough, responseDeserialize: passthrough } },
    {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        otlpRequests.push(call.request);
        inFlight++;
        client.makeUnaryRequest(EXPORT_PATH, passthrough, passthrough, call.request, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err, response) => {
          inFlight--;
          if (err) {
            refusals.push(`OTLP/gRPC ${grpc.status[err.code] ?? err.code}: ${err.details}`);
            callback(err);
          } else {
            callback(null, response);
          }
        });
      },
    },
  );
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));

  const http: Server = createServer((req, res) => {
    inFlight++;
    res.on('close', () => inFlight--);
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST') auditBodies.push(body);
      fetch(new URL(req.url ?? '/', opts.auditUpstream), {
        method: req.method ?? 'POST', body: req.method === 'POST' ? body : undefined,
        headers: { 'content-type': String(req.headers['content-type'] ?? 'application/json') },
        signal: AbortSignal.timeout(30_000),
      }).then(async (up) => {
        const text = Buffer.from(await up.arrayBuffer());
        if (up.status >= 300) refusals.push(`audit webhook HTTP ${up.status}: ${text.toString('utf8').slice(0, 300)}`);
        res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json', ...(up.headers.get('retry-after') ? { 'retry-after': up.headers.get('retry-after')! } : {}) });
        res.end(text);
      }, (e: Error) => {
        refusals.push(`audit webhook: upstream ${opts.auditUpstream} unreachable: ${e.message}`);
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: `tap: upstream unreachable: ${e.message}` }));
      });
    });
  });
  await new Promise<void>((resolve, reject) => { http.once('error', reject); http.listen(0, '127.0.0.1', () => resolve()); });
  const httpPort = (http.address() as { port: number }).port;

  return {
    grpcEndpoint: `127.0.0.1:${grpcPort}`,
    auditUrl: `http://127.0.0.1:${httpPort}/`,
    otlpRequests, auditBodies, refusals,
    spans() {
      const seen = new Set<string>();
      const out: Span[] = [];
      for (const r of otlpRequests) {
        for (const s of decodeTraceRequest(r).spans) {
          const key = `${s.traceId}/${s.spanId}`;
          if (seen.has(key)) continue;
          seen.add(key);
          out.push(s);
        }
      }
      return out;
    },
    auditEvents() {
      const seen = new Set<string>();
      const out: AuditEvent[] = [];
      for (const b of auditBodies) {
        const { events, errors } = parseEventList(JSON.parse(b.toString('utf8')));
        if (errors.length) throw new Error(`kube-apiserver sent an EventList with ${errors.length} invalid items (first: ${JSON.stringify(errors[0])})`);
        for (const e of events) {
          const key = `${e.auditID}\u0000${e.stage}`;
          if (seen.has(key)) continue;
          seen.add(key);
          out.push(e);
        }
      }
      return out;
    },
    async idle() {
      while (inFlight > 0) await new Promise((r) => setTimeout(r, 50));
    },
    async stop() {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => { server.forceShutdown(); resolve(); }, 5000);
        server.tryShutdown(() => { clearTimeout(force); resolve(); });
      });
      client.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
