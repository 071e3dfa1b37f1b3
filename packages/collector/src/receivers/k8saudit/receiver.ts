import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { AuditFormatError, parseEventList } from '@kube-correlate/audit';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import type { AuditConsumer } from '../../component/component.js';
import { PermanentError, PipelineError } from '../../component/errors.js';
import { retryAfterHeaders, statusOf } from '../../component/status.js';
import { answer, closeHttp, listenHttp, readBody, receiverServer } from '../../internal/http.js';
import { auditReasonLabel, ReceiverCounters } from '../../internal/receiver-counters.js';

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
 * (auditID, stage). Failures are answered through the status table (status.ts).
 */
export class K8sAuditReceiver {
  private server: Server | undefined;
  private boundAddress = '';
  private readonly counters: ReceiverCounters;

  constructor(private readonly opts: K8sAuditReceiverOptions) {
    this.counters = new ReceiverCounters(opts.metrics, opts.name);
  }

  get address(): string {
    return this.boundAddress;
  }

  async start(): Promise<void> {
    const server = receiverServer((req, res) => void this.handle(req, res));
    this.boundAddress = await listenHttp(server, this.opts.endpoint, `receiver ${this.opts.name} (audit webhook)`);
    this.server = server;
    this.opts.logger.info({ receiver: this.opts.name, endpoint: this.boundAddress }, 'audit webhook receiver listening');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { name, consumer, logger } = this.opts;
    const reply = (code: number, body: Record<string, unknown>, headers: Record<string, string> = {}) => answer(req, res, code, 'application/json', JSON.stringify(body) + '\n', headers);
    const refuse = (err: unknown, headers: Record<string, string> = {}) => {
      const r = statusOf(err);
      this.counters.refusedRequest(r.reason);
      if (r.internal) logger.error({ err, receiver: name }, 'audit batch failed');
      reply(r.http, { error: r.message }, { ...retryAfterHeaders(r), ...headers });
    };

    if (req.method !== 'POST') {
      return refuse(new PermanentError(`method ${req.method} not allowed: the audit webhook accepts POST of an audit.k8s.io EventList`, { http: 405, reason: 'method' }), { allow: 'POST' });
    }
    const type = String(req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      return refuse(new PermanentError(`unsupported Content-Type "${type}": the audit webhook sends application/json`, { http: 415, reason: 'unsupported_media_type' }));
    }

    let parsed;
    try {
      const body = await readBody(req, this.opts.maxRequestBodySize);
      let json: unknown;
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch (err) {
        return refuse(new PermanentError(`invalid JSON: ${(err as Error).message}`, { reason: 'invalid_json' }));
      }
      parsed = parseEventList(json);
    } catch (err) {
      if (err instanceof PipelineError) return refuse(err);
      if (err instanceof AuditFormatError) return refuse(new PermanentError(err.message, { reason: 'wrong_kind' }));
      logger.error({ err, receiver: name }, 'reading audit batch failed');
      return refuse(new PermanentError(`cannot read request: ${(err as Error).message}`, { reason: 'read_error' }));
    }

    try {
      if (parsed.events.length) await consumer.consumeAuditEvents(parsed.events);
    } catch (err) {
      return refuse(err);
    }
    this.counters.accepted('audit_events', parsed.events.length);

    if (parsed.errors.length === 0) {
      this.counters.answered('ok');
      return reply(200, { accepted: parsed.events.length });
    }
    for (const e of parsed.errors) this.counters.refusedItems(auditReasonLabel(e.reason), 1);
    this.counters.answered('partial');
    const shown = parsed.errors.slice(0, MAX_REASONS).map((e) => `items[${e.index}]: ${e.reason}`);
    const more = parsed.errors.length > MAX_REASONS ? `; and ${parsed.errors.length - MAX_REASONS} more` : '';
    return reply(400, {
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
