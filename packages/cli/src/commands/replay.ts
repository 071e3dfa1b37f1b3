import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { SingleBar, Presets } from 'cli-progress';
import { CliError } from '../errors.js';
import { answerMessage, HttpClient, loadTransport, parseEndpoint, unauthorizedHint, type Transport, type TransportFlags } from '../transport.js';

export const DEFAULT_OTLP_HTTP_ENDPOINT = 'http://127.0.0.1:4318';
export const DEFAULT_AUDIT_WEBHOOK_ENDPOINT = 'http://127.0.0.1:4319/';

export interface ReplayOptions extends TransportFlags {
  otlp?: string;
  audit?: string;
  /** OTLP/HTTP base URL. */
  otlpEndpoint?: string;
  /** Audit webhook URL. */
  auditEndpoint?: string;
  /** Audit events per EventList POST (kube-apiserver's default batch is 400). */
  batchSize?: number;
  progress?: boolean;
  log?: (line: string) => void;
}

export interface ReplayResult {
  otlpRequests: number;
  auditEvents: number;
  refused: number;
}

const MAX_ATTEMPTS = 8;

/**
 * `correlate replay --otlp <file> --audit <file>`: sends recorded data into a running pipeline.
 * OTLP file: one OTLP/JSON ExportTraceServiceRequest per line (the OpenTelemetry Collector's file
 * exporter format). Audit file: one audit Event per line (kube-apiserver's --audit-log-path
 * format), posted as EventList batches to the audit webhook. Retries 429/503 per Retry-After.
 */
export async function runReplay(opts: ReplayOptions): Promise<ReplayResult> {
  if (!opts.otlp && !opts.audit) throw new CliError('nothing to replay: give --otlp <file> and/or --audit <file>');
  const otlpBase = parseEndpoint('--otlp-endpoint', opts.otlpEndpoint ?? DEFAULT_OTLP_HTTP_ENDPOINT, DEFAULT_OTLP_HTTP_ENDPOINT);
  const auditUrl = parseEndpoint('--audit-endpoint', opts.auditEndpoint ?? DEFAULT_AUDIT_WEBHOOK_ENDPOINT, DEFAULT_AUDIT_WEBHOOK_ENDPOINT);
  const transport = loadTransport(opts);
  const files = [opts.otlp, opts.audit].filter((f): f is string => !!f);
  let total = 0;
  for (const f of files) {
    try {
      total += statSync(f).size;
    } catch (err) {
      throw new CliError(`cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const bar = opts.progress ?? process.stderr.isTTY
    ? new SingleBar({ format: 'replay [{bar}] {percentage}% | {value}/{total} bytes | {what}', stream: process.stderr, hideCursor: true }, Presets.shades_classic)
    : undefined;
  bar?.start(total, 0, { what: '' });
  let done = 0;
  const result: ReplayResult = { otlpRequests: 0, auditEvents: 0, refused: 0 };
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const client = new HttpClient(transport);
  const post = (url: URL, body: string, where: string, what: string) => postOne(client, transport, url, body, where, what, log);
  try {
    if (opts.otlp) {
      const url = new URL('/v1/traces', otlpBase);
      for await (const { line, lineNo, bytes } of lines(opts.otlp)) {
        done += bytes;
        const ok = await post(url, line, `${opts.otlp}:${lineNo}`, 'the OTLP/HTTP receiver');
        if (ok) result.otlpRequests++;
        else result.refused++;
        bar?.update(done, { what: `${result.otlpRequests} OTLP requests` });
      }
    }
    if (opts.audit) {
      const url = auditUrl;
      const size = opts.batchSize ?? 400;
      let batch: string[] = [];
      let firstLine = 1;
      const flush = async (lastLine: number) => {
        if (!batch.length) return;
        const body = `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[${batch.join(',')}]}`;
        const ok = await post(url, body, `${opts.audit}:${firstLine}-${lastLine}`, 'the audit webhook');
        if (ok) result.auditEvents += batch.length;
        else result.refused += 1;
        batch = [];
      };
      for await (const { line, lineNo, bytes } of lines(opts.audit)) {
        done += bytes;
        if (!batch.length) firstLine = lineNo;
        try {
          JSON.parse(line);
        } catch (err) {
          log(`${opts.audit}:${lineNo}: skipped, invalid JSON: ${(err as Error).message}`);
          result.refused++;
          continue;
        }
        batch.push(line);
        if (batch.length >= size) await flush(lineNo);
        bar?.update(done, { what: `${result.auditEvents} audit events` });
      }
      await flush(Infinity);
      bar?.update(done, { what: `${result.auditEvents} audit events` });
    }
  } finally {
    bar?.stop();
    client.close();
  }
  return result;
}

async function* lines(path: string): AsyncGenerator<{ line: string; lineNo: number; bytes: number }> {
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let lineNo = 0;
  for await (const line of rl) {
    lineNo++;
    const bytes = Buffer.byteLength(line) + 1;
    if (line.trim()) yield { line, lineNo, bytes };
  }
}

/**
 * POSTs one JSON body; true when accepted. Retries what the server says is retryable; a 401 ends
 * the replay (every other request would get it too).
 */
async function postOne(client: HttpClient, transport: Transport, url: URL, body: string, where: string, what: string, log: (l: string) => void): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    const res = await client.request(url, { what, method: 'POST', headers: { 'content-type': 'application/json' }, body, timeoutMs: 30_000, hint: 'is `correlate start` running?' });
    if (res.status >= 200 && res.status < 300) {
      const text = res.body.toString('utf8');
      let partial: { errorMessage?: string } | undefined;
      try {
        partial = text ? (JSON.parse(text) as { partialSuccess?: { errorMessage?: string } }).partialSuccess : undefined;
      } catch {
        partial = undefined;
      }
      if (partial?.errorMessage) log(`${where}: partially accepted: ${partial.errorMessage}`);
      return true;
    }
    if (res.status === 401) throw new CliError(`${what} at ${url.origin} answered 401: ${answerMessage(res)} (${unauthorizedHint(transport)})`);
    if ((res.status === 429 || res.status === 503) && attempt < MAX_ATTEMPTS) {
      const retryAfter = res.headers['retry-after'];
      const wait = Math.min(30, Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter ?? '1') || 1);
      await new Promise((r) => setTimeout(r, wait * 1000));
      continue;
    }
    log(`${where}: refused with ${res.status}: ${answerMessage(res)}`);
    return false;
  }
}
