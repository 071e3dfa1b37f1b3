import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { AuditFormatError, parseEventList } from '@kube-correlate/audit';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import { RetryableError, type AuditConsumer, type Component } from '../consumer.js';
import { BodyError, readBody } from '../http-body.js';
import { closeHttp, listenHttp } from '../listen.js';

export interface K8sAuditReceiverOptions {
  name: string;
  endpoint: string;
  maxRequestBodySize: number;
  consumer: AuditConsumer;
  metrics: PipelineMetrics;
  logger: Logger;
}

const MAX_REASONS = 5;

/**
 * The kube-apiserver audit webhook backend: `POST` (any path, the webhook kubeconfig chooses it) of
 * an `audit.k8s.io/v1` or `v1beta1` `EventList`.
 *
 * kube-apiserver retries a batch on any non-2xx answer (5 times, with backoff) and then drops it.
 * So the valid events of a batch are always kept, even when other items are bad; the bad items get
 * a 400 naming them, and the retried batch's good events are deduplicated downstream by
 * (auditID, stage).
 */
export class K8sAuditReceiver implements Component {
  private server: Server | undefined;
  private boundAddress = '';

  constructor(private readonly opts: K8sAuditReceiverOptions) {}

  get address(): string {
    return this.boundAddress;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.requestTimeout = 60_000;
    this.boundAddress = await listenHttp(server, this.opts.endpoint, `receiver ${this.opts.name} (audit webhook)`);
    this.server = server;
    this.opts.logger.info({ receiver: this.opts.name, endpoint: this.boundAddress }, 'audit webhook receiver listening');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { name, metrics, consumer, logger } = this.opts;
    const answer = (code: number, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
      const text = JSON.stringify(body) + '\n';
      res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers, ...(req.complete ? {} : { connection: 'close' }) });
      res.end(text);
    };
    const refuse = (code: number, reason: string, message: string, headers: Record<string, string> = {}) => {
      metrics.receiverRefused.inc({ receiver: name, reason });
      metrics.receiverRequests.inc({ receiver: name, outcome: 'refused' });
      answer(code, { error: message }, headers);
    };

    if (req.method !== 'POST') return refuse(405, 'method', `method ${req.method} not allowed: the audit webhook accepts POST of an audit.k8s.io EventList`, { allow: 'POST' });
    const type = String(req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') return refuse(415, 'unsupported_media_type', `unsupported Content-Type "${type}": the audit webhook sends application/json`);

    let parsed;
    try {
      const body = await readBody(req, this.opts.maxRequestBodySize);
      let json: unknown;
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch (err) {
        return refuse(400, 'invalid_json', `invalid JSON: ${(err as Error).message}`);
      }
      parsed = parseEventList(json);
    } catch (err) {
      if (err instanceof BodyError) return refuse(err.status, err.reason, err.message);
      if (err instanceof AuditFormatError) return refuse(400, 'wrong_kind', err.message);
      logger.error({ err, receiver: name }, 'reading audit batch failed');
      return refuse(400, 'read_error', `cannot read request: ${(err as Error).message}`);
    }

    try {
      if (parsed.events.length) await consumer.consumeAuditEvents(parsed.events);
    } catch (err) {
      if (err instanceof RetryableError) return refuse(503, 'busy', err.message, { 'retry-after': String(err.retryAfterSeconds) });
      logger.error({ err, receiver: name }, 'audit batch failed');
      return refuse(500, 'internal', `internal error: ${(err as Error).message}`);
    }
    metrics.receiverItems.inc({ receiver: name, signal: 'audit_events' }, parsed.events.length);

    if (parsed.errors.length === 0) {
      metrics.receiverRequests.inc({ receiver: name, outcome: 'ok' });
      return answer(200, { accepted: parsed.events.length });
    }
    for (const e of parsed.errors) metrics.receiverRefused.inc({ receiver: name, reason: reasonLabel(e.reason) });
    metrics.receiverRequests.inc({ receiver: name, outcome: 'partial' });
    const shown = parsed.errors.slice(0, MAX_REASONS).map((e) => `items[${e.index}]: ${e.reason}`);
    const more = parsed.errors.length > MAX_REASONS ? `; and ${parsed.errors.length - MAX_REASONS} more` : '';
    return answer(400, {
      error: `${parsed.errors.length} of ${parsed.errors.length + parsed.events.length} events rejected (the other ${parsed.events.length} were accepted): ${shown.join('; ')}${more}`,
      accepted: parsed.events.length,
      rejected: parsed.errors.length,
    });
  }

  async shutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await closeHttp(server);
  }
}

/** A bounded label set for per-item reasons. */
export function reasonLabel(reason: string): string {
  if (/auditID/i.test(reason)) return 'missing_audit_id';
  if (/stage/i.test(reason)) return 'invalid_stage';
  if (/timestamp/i.test(reason)) return 'invalid_timestamp';
  if (/JSON/i.test(reason)) return 'invalid_json';
  return 'invalid_event';
}
