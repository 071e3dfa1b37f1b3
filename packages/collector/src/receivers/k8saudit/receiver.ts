import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuditFormatError, parseEventList } from '@kube-correlate/audit';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import type { AuditConsumer } from '../../component/component.js';
import { PermanentError } from '../../component/errors.js';
import type { Refusal } from '../../component/status.js';
import type { ListenerSecurity } from '../../internal/security.js';
import { answer, HttpReceiver, mediaType, parseJson } from '../../internal/http.js';
import { auditReasonLabel } from '../../internal/receiver-counters.js';

export interface K8sAuditReceiverOptions {
  name: string;
  endpoint: string;
  maxRequestBodySize: number;
  consumer: AuditConsumer;
  metrics: PipelineMetrics;
  logger: Logger;
  /** `tls` and `auth` of the listener. */
  security?: ListenerSecurity | undefined;
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
export class K8sAuditReceiver extends HttpReceiver {
  constructor(private readonly opts: K8sAuditReceiverOptions) {
    super('audit webhook', opts);
  }

  protected refusalBody(r: Refusal): { contentType: string; body: string } {
    return { contentType: 'application/json', body: JSON.stringify({ error: r.message }) + '\n' };
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { consumer } = this.opts;
    const reply = (code: number, body: Record<string, unknown>) => answer(req, res, code, 'application/json', JSON.stringify(body) + '\n');
    const refuse = (err: unknown, headers: Record<string, string> = {}) => this.refuse(req, res, err, headers);

    if (req.method !== 'POST') {
      return refuse(new PermanentError(`method ${req.method} not allowed: the audit webhook accepts POST of an audit.k8s.io EventList`, { http: 405, reason: 'method' }), { allow: 'POST' });
    }
    const type = mediaType(req, 'application/json');
    if (type !== 'application/json') {
      return refuse(new PermanentError(`unsupported Content-Type "${type}": the audit webhook sends application/json`, { http: 415, reason: 'unsupported_media_type' }));
    }

    let parsed;
    try {
      parsed = await this.read(req, this.opts.maxRequestBodySize, (body) => {
        try {
          return parseEventList(parseJson(body));
        } catch (err) {
          throw err instanceof AuditFormatError ? new PermanentError(err.message, { reason: 'wrong_kind' }) : err;
        }
      });
    } catch (err) {
      return refuse(err);
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
}
